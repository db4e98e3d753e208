import HostSupport

/// A request's id: the client's Athens-Request-ID, or "<source prefix>-<counter in hex>". Kept as its parts so
/// the hit path builds no string: the bytes go straight into the response head and the crash line.
package struct RequestID: Sendable, CustomStringConvertible {
    /// The client's id, when it sent a sane one.
    package var given: String?
    package var prefix: String
    package var number: UInt64

    package var description: String { given ?? prefix + "-" + String(number, radix: 16) }

    /// Calls `body` with the id's UTF-8 bytes (on the stack for generated ids).
    package func withBytes<R>(_ body: (UnsafeBufferPointer<UInt8>) -> R) -> R {
        if var given { return given.withUTF8(body) }
        var prefix = prefix
        return prefix.withUTF8 { p in
            withUnsafeTemporaryAllocation(of: UInt8.self, capacity: p.count + 17) { out in
                var n = 0
                for c in p { out[n] = c; n += 1 }
                out[n] = UInt8(ascii: "-"); n += 1
                var shift = 60
                while shift > 0 && (number >> UInt64(shift)) & 0xF == 0 { shift -= 4 }
                while shift >= 0 {
                    let digit = UInt8((number >> UInt64(shift)) & 0xF)
                    out[n] = digit < 10 ? 0x30 + digit : 0x57 + digit
                    n += 1
                    shift -= 4
                }
                return body(UnsafeBufferPointer(rebasing: out[0..<n]))
            }
        }
    }
}

/// The one place request ids are made: each event loop owns one (no lock, no shared counter).
/// A request gets the client's Athens-Request-ID when it is a sane token, else a generated id; a head
/// that does not parse always gets a generated one.
package struct RequestIDSource {
    /// Random per source, so generated ids are unique across loops and restarts.
    package let prefix: String
    private var counter: UInt64 = 0

    package init(prefix: String = String(UInt64.random(in: 0...UInt64.max), radix: 16)) {
        self.prefix = prefix
    }

    /// A new generated id.
    package mutating func next() -> RequestID {
        counter += 1
        return RequestID(given: nil, prefix: prefix, number: counter)
    }

    /// The id of `request`: the client's when `acceptable`, else a new one.
    package mutating func id(for request: Request) -> RequestID {
        var id = next()
        if let given = request.header("athens-request-id"), Self.acceptable(given) { id.given = given }
        return id
    }

    /// 1-128 bytes of letters, digits and `-_.:` (what is safe in a header, a log line and the crash line).
    package static func acceptable(_ given: String) -> Bool {
        !given.isEmpty && given.utf8.count <= 128 && given.utf8.allSatisfy {
            ($0 >= 0x30 && $0 <= 0x39) || ($0 | 0x20 >= 0x61 && $0 | 0x20 <= 0x7A) || $0 == 0x2D || $0 == 0x5F || $0 == 0x2E || $0 == 0x3A
        }
    }
}
