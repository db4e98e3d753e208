import HostSupport
import PluginHost
import Glibc
import Synchronization

/// Who a connection comes from, for the per-client cap: an IPv4 address, or an IPv6 /64 (one site's
/// share of the network: a single machine can pick any address inside its /64 at will).
package struct ClientAddress: Hashable, Sendable {
    private let high: UInt64
    private let low: UInt64

    /// From the peer address `accept` filled in; anything but IPv4/IPv6 counts as one shared client.
    package init(_ storage: sockaddr_storage) {
        var storage = storage
        switch Int32(storage.ss_family) {
        case AF_INET:
            let v4 = withUnsafeBytes(of: &storage) { $0.load(as: sockaddr_in.self) }
            self.init(high: 0, low: 0xFFFF_0000_0000 | UInt64(UInt32(bigEndian: v4.sin_addr.s_addr)))
        case AF_INET6:
            let v6 = withUnsafeBytes(of: &storage) { $0.load(as: sockaddr_in6.self) }
            let bytes = withUnsafeBytes(of: v6.sin6_addr) { Array($0) }
            let high = bytes[0..<8].reduce(UInt64(0)) { $0 << 8 | UInt64($1) }
            let low = bytes[8..<16].reduce(UInt64(0)) { $0 << 8 | UInt64($1) }
            // An IPv4 client of a dual-stack listener (::ffff:a.b.c.d) is that IPv4 address, not a /64.
            self.init(high: high, low: high == 0 && low >> 32 == 0xFFFF ? low : 0)
        default:
            self.init(high: 0, low: 0)
        }
    }

    private init(high: UInt64, low: UInt64) {
        self.high = high
        self.low = low
    }
}

/// Admission of new connections, shared by every event loop: a global cap (`maxConnections`), a cap per
/// client address, and a threshold near the global cap past which each new connection makes room by
/// evicting an idle or header-incomplete one (connections with a request in progress are never evicted).
/// So one client cannot fill the server, and many idle ones cannot lock out a client that has a request.
package final class ConnectionLimiter: Sendable {
    /// What `admit` decided.
    package enum Admission: Equatable {
        /// Counted in; `makeRoom`: the server is near its cap, evict an idle connection.
        case admitted(makeRoom: Bool)
        /// This client already holds its share: refuse (503).
        case clientFull
        /// Every slot is taken: evict an idle connection and ask again, or refuse (503).
        case full
    }

    package let maxConnections: Int
    package let maxPerClient: Int
    /// Open connections past which every admission asks for an eviction.
    package let evictionThreshold: Int
    private struct State {
        var open = 0
        var perClient: [ClientAddress: Int] = [:]
    }
    private let state = Mutex(State())
    /// Connections refused because their client held its share, or because the server was full; and
    /// connections evicted to make room (metrics).
    package let refusedPerClient = Atomic<Int>(0)
    package let refusedFull = Atomic<Int>(0)
    package let evicted = Atomic<Int>(0)

    package init(maxConnections: Int, maxPerClient: Int) {
        self.maxConnections = max(1, maxConnections)
        self.maxPerClient = min(max(1, maxPerClient), self.maxConnections)
        // Headroom of 5 % (at most 256): evictions start before the cap, so a newcomer rarely meets a full server.
        evictionThreshold = self.maxConnections - max(1, min(self.maxConnections / 20, 256))
    }

    /// Open connections right now.
    package var open: Int { state.withLock { $0.open } }

    /// Counts a new connection from `client` in, or says why not.
    package func admit(_ client: ClientAddress) -> Admission {
        state.withLock { state in
            let held = state.perClient[client, default: 0]
            guard held < maxPerClient else { return .clientFull }
            guard state.open < maxConnections else { return .full }
            state.open += 1
            state.perClient[client] = held + 1
            return .admitted(makeRoom: state.open > evictionThreshold)
        }
    }

    /// Counts a closed connection out.
    package func release(_ client: ClientAddress) {
        state.withLock { state in
            state.open -= 1
            let held = state.perClient[client, default: 1] - 1
            state.perClient[client] = held > 0 ? held : nil
        }
    }

    /// The index of the candidate whose client holds the most connections (the first, i.e. the oldest,
    /// among equals): the one to evict.
    package func heaviest(_ candidates: [ClientAddress]) -> Int? {
        state.withLock { state in
            var best: (index: Int, held: Int)?
            for (index, client) in candidates.enumerated() {
                let held = state.perClient[client, default: 0]
                if best == nil || held > best!.held { best = (index, held) }
            }
            return best?.index
        }
    }
}

/// A node of an `EvictionList`: it carries its own links, so listing and unlisting cost no allocation.
package protocol EvictionListNode: AnyObject {
    var evictionLinks: EvictionLinks<Self> { get set }
}

/// Where a node sits in its `EvictionList`.
package struct EvictionLinks<Node: AnyObject> {
    fileprivate var older: Node?
    fileprivate var newer: Node?
    fileprivate var listed = false
}

/// One event loop's connections that may be evicted, oldest first (an intrusive doubly linked list;
/// a node listed twice or removed unlisted is left as it is). Touched only on its loop's thread.
package struct EvictionList<Node: EvictionListNode> {
    private var oldestNode: Node?
    private var newestNode: Node?
    package private(set) var count = 0

    /// Lists `node` as the newest.
    package mutating func append(_ node: Node) {
        guard !node.evictionLinks.listed else { return }
        node.evictionLinks = EvictionLinks(older: newestNode, newer: nil, listed: true)
        newestNode?.evictionLinks.newer = node
        newestNode = node
        if oldestNode == nil { oldestNode = node }
        count += 1
    }

    /// Unlists `node`, dropping its links (the list's strong references run both ways until then).
    package mutating func remove(_ node: Node) {
        let links = node.evictionLinks
        guard links.listed else { return }
        if let older = links.older { older.evictionLinks.newer = links.newer } else { oldestNode = links.newer }
        if let newer = links.newer { newer.evictionLinks.older = links.older } else { newestNode = links.older }
        node.evictionLinks = EvictionLinks()
        count -= 1
    }

    /// Up to `limit` nodes, oldest first.
    package func oldest(_ limit: Int) -> [Node] {
        var nodes: [Node] = []
        var node = oldestNode
        while let current = node, nodes.count < limit {
            nodes.append(current)
            node = current.evictionLinks.newer
        }
        return nodes
    }
}
