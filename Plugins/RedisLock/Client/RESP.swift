// RESP2, the Redis wire protocol: commands out (arrays of bulk strings), replies in (a strict incremental reader).
// The reader is the part a hostile or broken server talks to, so it is bounded in every dimension and never
// allocates what a length prefix claims before the bytes have arrived.

/// One RESP2 reply.
public enum RedisValue: Equatable, Sendable {
    /// `+OK`: a status line.
    case simple(String)
    /// `-ERR text`: an error. At the top level the client throws `RedisError.server` instead; nested errors
    /// (inside an `EVAL` result, say) stay values.
    case error(String)
    /// `:42`
    case integer(Int64)
    /// `$3\r\nabc`; nil is the null bulk string `$-1` (a missing key).
    case bulk([UInt8]?)
    /// `*2\r\n…`; nil is the null array `*-1` (`BLPOP` timing out).
    case array([RedisValue]?)

    /// The bulk or simple string's text, if it is one.
    public var string: String? {
        switch self {
        case .simple(let text): return text
        case .bulk(let bytes?): return String(decoding: bytes, as: UTF8.self)
        default: return nil
        }
    }

    /// The integer, if the reply is one.
    public var integer: Int64? {
        if case .integer(let value) = self { return value }
        return nil
    }

    /// The value in RESP2 form; the reader accepts only this (canonical) form, so `encoded` of a parsed value
    /// gives back exactly the bytes it was parsed from.
    public var encoded: [UInt8] {
        var out: [UInt8] = []
        RedisValue.encode(self, into: &out)
        return out
    }

    private static func encode(_ value: RedisValue, into out: inout [UInt8]) {
        func line(_ type: UInt8, _ text: String) {
            out.append(type); out.append(contentsOf: text.utf8); out.append(0x0D); out.append(0x0A)
        }
        switch value {
        case .simple(let text): line(UInt8(ascii: "+"), text)
        case .error(let text): line(UInt8(ascii: "-"), text)
        case .integer(let number): line(UInt8(ascii: ":"), String(number))
        case .bulk(nil): line(UInt8(ascii: "$"), "-1")
        case .bulk(let bytes?):
            line(UInt8(ascii: "$"), String(bytes.count)); out.append(contentsOf: bytes); out.append(0x0D); out.append(0x0A)
        case .array(nil): line(UInt8(ascii: "*"), "-1")
        case .array(let items?):
            line(UInt8(ascii: "*"), String(items.count))
            for item in items { encode(item, into: &out) }
        }
    }
}

/// How much a single reply may hold. Every limit is checked before memory is committed to it.
public struct RESPLimits: Sendable, Equatable {
    /// Longest bulk string payload.
    public var maxBulkLength: Int
    /// Most elements one array may announce.
    public var maxArrayLength: Int
    /// Deepest array nesting (the top-level array is depth 1). Also bounds recursion when a value is freed.
    public var maxDepth: Int
    /// Longest status, error or length line (without CRLF).
    public var maxLineLength: Int
    /// Most wire bytes one top-level reply may take; bounds a reply made of many small elements.
    public var maxReplyBytes: Int

    public init(maxBulkLength: Int = 64 << 20, maxArrayLength: Int = 1 << 20, maxDepth: Int = 16,
                maxLineLength: Int = 64 << 10, maxReplyBytes: Int = 128 << 20) {
        self.maxBulkLength = maxBulkLength
        self.maxArrayLength = maxArrayLength
        self.maxDepth = maxDepth
        self.maxLineLength = maxLineLength
        self.maxReplyBytes = maxReplyBytes
    }
}

/// Encodes one command as RESP2: an array of bulk strings (binary-safe, no quoting).
public enum RESPEncoder {
    public static func command(_ arguments: [[UInt8]], into out: inout [UInt8]) {
        out.append(UInt8(ascii: "*")); out.append(contentsOf: String(arguments.count).utf8); out.append(0x0D); out.append(0x0A)
        for argument in arguments {
            out.append(UInt8(ascii: "$")); out.append(contentsOf: String(argument.count).utf8); out.append(0x0D); out.append(0x0A)
            out.append(contentsOf: argument); out.append(0x0D); out.append(0x0A)
        }
    }
}

/// A strict, incremental RESP2 reader: `feed` bytes as they arrive, take replies with `next()`.
///
/// Strict means only the canonical form is accepted: lines end in CRLF, lengths and integers are plain decimal
/// without sign, `+` or leading zeros (`-1` only for null), bulk payloads are followed by CRLF. Anything else, or
/// anything past `limits`, is a `RedisError.protocolError`, after which the reader stays failed (the connection
/// it reads is beyond repair). State is kept between calls, so a reply arriving one byte at a time costs no more
/// than one arriving at once.
public struct RESPReader: Sendable {
    public let limits: RESPLimits
    private var buffer: [UInt8] = []
    private var position = 0
    /// Where the search for the current line's CR resumes (a long line arriving in pieces is scanned once).
    private var scanFrom = 0
    /// Arrays being filled, outermost first.
    private var stack: [(remaining: Int, items: [RedisValue])] = []
    /// A bulk payload being read: its announced length and the bytes so far.
    private var bulk: (length: Int, bytes: [UInt8])?
    /// Wire bytes of the current top-level reply consumed so far.
    private var replyBytes = 0
    private var failure: RedisError?

    public init(limits: RESPLimits = RESPLimits()) { self.limits = limits }

    /// Bytes received but not yet part of a returned reply.
    public var bufferedCount: Int { buffer.count - position }

    public mutating func feed<Bytes: Collection>(_ bytes: Bytes) where Bytes.Element == UInt8 {
        if position > 0 && position >= buffer.count / 2 {
            buffer.removeFirst(position)
            scanFrom -= position
            position = 0
        }
        buffer.append(contentsOf: bytes)
    }

    /// The next complete reply, nil when more bytes are needed.
    public mutating func next() throws(RedisError) -> RedisValue? {
        if let failure { throw failure }
        do {
            return try step()
        } catch {
            failure = error
            throw error
        }
    }

    private mutating func fail(_ message: String) -> RedisError { .protocolError(message) }

    private mutating func consume(_ count: Int) throws(RedisError) {
        position += count
        replyBytes += count
        if replyBytes > limits.maxReplyBytes { throw fail("reply longer than \(limits.maxReplyBytes) bytes") }
    }

    /// Runs until a top-level value completes or the buffer runs dry.
    private mutating func step() throws(RedisError) -> RedisValue? {
        while true {
            var value: RedisValue
            if var pending = bulk {
                bulk = nil  // so the append below does not copy the payload
                let take = min(buffer.count - position, pending.length - pending.bytes.count)
                if take > 0 {
                    pending.bytes.append(contentsOf: buffer[position..<(position + take)])
                    try consume(take)
                }
                if pending.bytes.count < pending.length || buffer.count - position < 2 {
                    bulk = pending
                    return nil
                }
                guard buffer[position] == 0x0D, buffer[position + 1] == 0x0A else {
                    throw fail("bulk string of \(pending.length) bytes not followed by CRLF")
                }
                try consume(2)
                value = .bulk(pending.bytes)
            } else {
                guard let lineEnd = try findLineEnd() else { return nil }
                let type = buffer[position]
                let body = buffer[(position + 1)..<lineEnd]
                switch type {
                case UInt8(ascii: "+"), UInt8(ascii: "-"):
                    let text = String(decoding: body, as: UTF8.self)
                    try consume(lineEnd + 2 - position)
                    value = type == UInt8(ascii: "+") ? .simple(text) : .error(text)
                case UInt8(ascii: ":"):
                    guard let number = RESPReader.integer(body) else { throw fail("malformed integer reply") }
                    try consume(lineEnd + 2 - position)
                    value = .integer(number)
                case UInt8(ascii: "$"):
                    guard let length = RESPReader.length(body) else { throw fail("malformed bulk string length") }
                    if length > limits.maxBulkLength { throw fail("bulk string of \(length) bytes exceeds the limit of \(limits.maxBulkLength)") }
                    try consume(lineEnd + 2 - position)
                    if length < 0 {
                        value = .bulk(nil)
                    } else {
                        // Capacity grows with the bytes that arrive, not with the length the server claims.
                        bulk = (length, [])
                        continue
                    }
                case UInt8(ascii: "*"):
                    guard let count = RESPReader.length(body) else { throw fail("malformed array length") }
                    if count > limits.maxArrayLength { throw fail("array of \(count) elements exceeds the limit of \(limits.maxArrayLength)") }
                    try consume(lineEnd + 2 - position)
                    if count < 0 {
                        value = .array(nil)
                    } else if stack.count + 1 > limits.maxDepth {
                        // Empty arrays count too: the limit is on the depth of the value, not of the reader's stack.
                        throw fail("arrays nested deeper than \(limits.maxDepth)")
                    } else if count == 0 {
                        value = .array([])
                    } else {
                        var items: [RedisValue] = []
                        items.reserveCapacity(min(count, 64))
                        stack.append((count, items))
                        continue
                    }
                default:
                    preconditionFailure("findLineEnd checked the type byte")
                }
            }
            // Attach the finished value to its array; a full array is itself a finished value.
            while true {
                guard !stack.isEmpty else {
                    replyBytes = 0
                    return value
                }
                let top = stack.count - 1
                stack[top].items.append(value)
                stack[top].remaining -= 1
                if stack[top].remaining > 0 { break }
                value = .array(stack.removeLast().items)
            }
        }
    }

    /// The index of the CR ending the line at `position`, nil when the line is not complete yet.
    ///
    /// Each byte is judged on its own as it is reached (type byte, then CR, length, LF), so the outcome does not
    /// depend on how the stream was split into reads.
    private mutating func findLineEnd() throws(RedisError) -> Int? {
        guard position < buffer.count else { return nil }
        switch buffer[position] {
        case UInt8(ascii: "+"), UInt8(ascii: "-"), UInt8(ascii: ":"), UInt8(ascii: "$"), UInt8(ascii: "*"): break
        default: throw fail("unknown reply type byte 0x\(String(buffer[position], radix: 16))")
        }
        if scanFrom <= position { scanFrom = position + 1 }
        var index = scanFrom
        let end = buffer.count
        while index < end {
            let byte = buffer[index]
            if byte == 0x0D {
                if index + 1 >= end { scanFrom = index; return nil }
                guard buffer[index + 1] == 0x0A else { throw fail("CR not followed by LF in a reply line") }
                scanFrom = index + 2
                return index
            }
            if index - position > limits.maxLineLength { throw fail("reply line longer than \(limits.maxLineLength) bytes") }
            if byte == 0x0A { throw fail("LF without CR in a reply line") }
            index += 1
        }
        scanFrom = end
        return nil
    }

    /// `-1` or a canonical non-negative decimal (no sign, no leading zeros) below 2^31.
    static func length(_ body: ArraySlice<UInt8>) -> Int? {
        if body.elementsEqual("-1".utf8) { return -1 }
        guard !body.isEmpty, body.count <= 10, body.first != UInt8(ascii: "0") || body.count == 1 else { return nil }
        var value = 0
        for byte in body {
            guard (0x30...0x39).contains(byte) else { return nil }
            value = value * 10 + Int(byte - 0x30)
        }
        return value <= Int(Int32.max) ? value : nil
    }

    /// A canonical Int64 in decimal: optional `-`, no leading zeros, no `-0`.
    static func integer(_ body: ArraySlice<UInt8>) -> Int64? {
        var digits = body[...]
        let negative = digits.first == UInt8(ascii: "-")
        if negative { digits = digits.dropFirst() }
        guard !digits.isEmpty, digits.count <= 19, digits.first != UInt8(ascii: "0") || (digits.count == 1 && !negative) else { return nil }
        var value: UInt64 = 0
        for byte in digits {
            guard (0x30...0x39).contains(byte) else { return nil }
            value = value * 10 + UInt64(byte - 0x30)
        }
        if negative { return value <= UInt64(Int64.max) + 1 ? Int64(truncatingIfNeeded: 0 &- value) : nil }
        return value <= UInt64(Int64.max) ? Int64(value) : nil
    }
}
