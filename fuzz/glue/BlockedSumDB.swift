// Shared by the router and sumdb_path targets: a SumDBProxy whose one lookup worker is kept busy for the
// whole run, so every path it would forward is answered 503 at once, on the calling thread, without network.
#if canImport(Glibc)
import Glibc
#endif
import Foundation
@testable import HostSupport
@testable import PluginHost
@testable import RequestPath

/// A loopback socket that listens and never accepts: a connection to it completes in the kernel's backlog
/// and its request is never answered. Kept open for the process's life.
private let silentPort: UInt16 = {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    var address = sockaddr_in()
    address.sin_family = sa_family_t(AF_INET)
    address.sin_addr.s_addr = inet_addr("127.0.0.1")
    var length = socklen_t(MemoryLayout<sockaddr_in>.size)
    let bound = withUnsafeMutablePointer(to: &address) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
            bind(fd, $0, length) == 0 && listen(fd, 64) == 0 && getsockname(fd, $0, &length) == 0
        }
    }
    require(fd >= 0 && bound, "silent listener: errno \(errno)")
    return UInt16(bigEndian: address.sin_port)
}()

/// A proxy for `names` (each at the silent listener) with one worker and no queue, whose worker is parked on
/// a `/latest` that never answers (no timeouts to free it); returns once that lookup runs.
func blockedSumDB(names: [String], policy: DownloadPolicy) -> SumDBProxy {
    let databases = names.map { (name: $0, url: "http://127.0.0.1:\(silentPort)/\($0)") }
    let proxy = SumDBProxy(databases: databases, policy: policy, workers: 1, queue: 0, timeout: 1e9, idleTimeout: 1e9)
    guard let first = names.first else { return proxy }
    proxy.serve(path: "/sumdb/\(first)/latest", responder: Responder { response in
        require(false, "the parked lookup was answered \(response.status)")
    })
    while proxy.load.running == 0 { sched_yield() }
    return proxy
}
