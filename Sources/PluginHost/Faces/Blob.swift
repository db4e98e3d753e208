import HostSupport
import Glibc
import PluginABI

/// One of the three stored files of a module version.
package enum Artifact: Sendable, Hashable, CustomStringConvertible {
    case info, mod, zip

    package var cValue: ath_artifact {
        switch self {
        case .info: ATH_ARTIFACT_INFO
        case .mod: ATH_ARTIFACT_MOD
        case .zip: ATH_ARTIFACT_ZIP
        }
    }

    /// The GOPROXY file extension.
    package var description: String {
        switch self {
        case .info: ".info"
        case .mod: ".mod"
        case .zip: ".zip"
        }
    }
}

/// Bytes a storage plugin handed out; released exactly once, when the last reference goes.
///
/// - Important: a stream blob must be read from one thread at a time.
package final class Blob: @unchecked Sendable {
    /// How the bytes can be read.
    package enum Shape {
        /// `size` bytes at `offset` of `fd` (owned by the plugin): sendfile-able.
        case file(fd: Int32, offset: UInt64)
        /// Contiguous bytes valid until release.
        case bytes(UnsafeRawBufferPointer)
        /// A pull stream.
        case stream
    }

    package let shape: Shape
    package let size: UInt64
    private let raw: ath_blob
    /// Keeps the plugin instance alive while its blob is (a reload may drop every other reference).
    private let owner: AnyObject?
    /// How a crash in the blob's read or release entry is reported.
    private let labels: (read: CallLabel, release: CallLabel)?

    /// Takes ownership of `raw`; throws (after releasing it) if it is not one valid shape, or if an fd blob's
    /// range does not lie inside its file (checked with fstat now, before any status line is sent, so a lying
    /// storage gets a 502 instead of a 200 cut short).
    /// A bytes blob holding a copy of `bytes` (in-process storages, tests): freed when the blob goes.
    package convenience init(copying bytes: [UInt8]) {
        var raw = ath_blob()
        raw.fd = -1
        let copy = UnsafeMutableRawPointer.allocate(byteCount: max(bytes.count, 1), alignment: 16)
        bytes.withUnsafeBytes { if let base = $0.baseAddress { copy.copyMemory(from: base, byteCount: $0.count) } }
        raw.data = UnsafeRawPointer(copy).assumingMemoryBound(to: UInt8.self)
        raw.size = UInt64(bytes.count)
        raw.private_data = copy
        raw.release = { $0?.deallocate() }
        // A valid bytes shape by construction: the checks below cannot fail.
        try! self.init(taking: raw, plugin: "in-process")
    }

    package init(taking raw: ath_blob, plugin: String, library: String = "", labels: (read: CallLabel, release: CallLabel)? = nil,
         owner: AnyObject? = nil) throws(PluginError) {
        self.raw = raw
        self.owner = owner
        self.labels = labels
        size = raw.size
        let shapes = (raw.fd >= 0 ? 1 : 0) + (raw.data != nil ? 1 : 0) + (raw.read != nil ? 1 : 0)
        func violation(_ why: String) -> PluginError {
            PluginError(code: .contractViolation, plugin: plugin, operation: "storage.open", message: why, library: library)
        }
        guard raw.release != nil else { throw violation("blob without release") }
        guard shapes == 1 else {
            raw.release?(raw.private_data)
            throw violation("blob must have exactly one of fd, data, read (has \(shapes))")
        }
        if raw.fd >= 0 {
            var status = stat()
            guard fstat(raw.fd, &status) == 0 else {
                let why = String(cString: strerror(errno))
                raw.release?(raw.private_data)
                throw violation("fd blob: fstat(\(raw.fd)) failed: \(why)")
            }
            guard status.st_mode & S_IFMT == S_IFREG else {
                raw.release?(raw.private_data)
                throw violation("fd blob: fd \(raw.fd) is not a regular file")
            }
            let (end, overflow) = raw.offset.addingReportingOverflow(raw.size)
            guard !overflow, end <= UInt64(status.st_size) else {
                raw.release?(raw.private_data)
                throw violation("fd blob: range offset \(raw.offset) + size \(raw.size) runs past the end of its file (\(status.st_size) bytes)")
            }
            shape = .file(fd: raw.fd, offset: raw.offset)
        } else if let data = raw.data {
            shape = .bytes(UnsafeRawBufferPointer(start: data, count: Int(raw.size)))
        } else {
            shape = .stream
        }
    }

    deinit {
        if let labels {
            CrashReporter.during(labels.release) { raw.release?(raw.private_data) }
        } else {
            raw.release?(raw.private_data)
        }
    }

    /// Reads the next bytes of a stream blob; 0 at the end, nil on error.
    package func readStream(into buffer: UnsafeMutableRawBufferPointer) -> Int? {
        guard let read = raw.read, let base = buffer.baseAddress else { return nil }
        let call = { read(self.raw.private_data, base.assumingMemoryBound(to: UInt8.self), UInt64(buffer.count)) }
        let n = labels.map { CrashReporter.during($0.read, call) } ?? call()
        return n >= 0 && n <= buffer.count ? Int(n) : nil
    }

    /// The whole content as an array (for small files such as .info and .mod).
    package func readAll(limit: UInt64) -> [UInt8]? {
        guard size <= limit else { return nil }
        switch shape {
        case let .bytes(bytes):
            return Array(bytes)
        case let .file(fd, offset):
            var out = [UInt8](repeating: 0, count: Int(size))
            var done = 0
            while done < out.count {
                let n = out.withUnsafeMutableBytes { pread(fd, $0.baseAddress! + done, $0.count - done, off_t(offset) + off_t(done)) }
                if n <= 0 { return nil }
                done += n
            }
            return out
        case .stream:
            var out: [UInt8] = []
            var chunk = [UInt8](repeating: 0, count: 65536)
            while true {
                guard let n = chunk.withUnsafeMutableBytes({ readStream(into: $0) }) else { return nil }
                if n == 0 { break }
                out += chunk[0..<n]
                if out.count > size { return nil }
            }
            return out.count == size ? out : nil
        }
    }
}

