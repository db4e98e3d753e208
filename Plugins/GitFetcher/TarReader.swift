// TarReader: a push parser for the tar stream `git archive --format=tar` writes (ustar headers, pax extended
// headers for long names, a pax global header carrying the commit id). Fed chunk by chunk; holds one header.
import PluginKit

/// Parses a tar stream fed in arbitrary chunks and reports its members.
struct TarReader {
    /// What a member is.
    enum Kind { case regular, symlink, directory, other }

    /// Called at each member's header; returns whether the member's bytes should be passed to `content`.
    var member: (_ path: [UInt8], _ kind: Kind, _ size: UInt64) throws(PluginFailure) -> Bool
    /// Receives the bytes of a wanted member, in order.
    var content: (UnsafeRawBufferPointer) throws(PluginFailure) -> Void
    /// Called after the last byte of a wanted member.
    var memberEnd: () throws(PluginFailure) -> Void

    private var header: [UInt8] = []
    /// Bytes of the current member still to come, and padding after them.
    private var remaining: UInt64 = 0
    private var padding: UInt64 = 0
    private var wanted = false
    /// A pax extended header being collected, and what it said for the next member.
    private var collectingPax: [UInt8]?
    private var paxPath: [UInt8]?
    private var paxSize: UInt64?
    private(set) var ended = false

    init(member: @escaping (_ path: [UInt8], _ kind: Kind, _ size: UInt64) throws(PluginFailure) -> Bool,
         content: @escaping (UnsafeRawBufferPointer) throws(PluginFailure) -> Void,
         memberEnd: @escaping () throws(PluginFailure) -> Void) {
        self.member = member
        self.content = content
        self.memberEnd = memberEnd
    }

    /// Feeds the next chunk of the stream.
    mutating func feed(_ chunk: UnsafeRawBufferPointer) throws(PluginFailure) {
        var index = 0
        while index < chunk.count {
            if remaining > 0 {
                let take = Int(min(remaining, UInt64(chunk.count - index)))
                let piece = UnsafeRawBufferPointer(rebasing: chunk[index..<(index + take)])
                if collectingPax != nil {
                    collectingPax!.append(contentsOf: piece)
                } else if wanted {
                    try content(piece)
                }
                remaining -= UInt64(take)
                index += take
                if remaining == 0 { try finishMember() }
                continue
            }
            if padding > 0 {
                let take = Int(min(padding, UInt64(chunk.count - index)))
                padding -= UInt64(take)
                index += take
                continue
            }
            let take = min(512 - header.count, chunk.count - index)
            header.append(contentsOf: chunk[index..<(index + take)])
            index += take
            if header.count == 512 {
                try parseHeader()
                header.removeAll(keepingCapacity: true)
            }
        }
    }

    private mutating func finishMember() throws(PluginFailure) {
        if let pax = collectingPax {
            collectingPax = nil
            parsePax(pax)
        } else if wanted {
            try memberEnd()
        }
        wanted = false
    }

    private mutating func parseHeader() throws(PluginFailure) {
        if ended { return }
        if header.allSatisfy({ $0 == 0 }) {
            ended = true
            return
        }
        guard let size = Self.octal(header[124..<136]) else { throw .internal("git archive: unreadable tar size field") }
        let type = header[156]
        padding = (512 - size % 512) % 512
        switch type {
        case UInt8(ascii: "x"):
            collectingPax = []
            remaining = size
            if size == 0 { try finishMember() }
            return
        case UInt8(ascii: "g"):
            // The global header (git puts the commit id there): nothing we need.
            collectingPax = nil
            wanted = false
            remaining = size
            return
        default:
            break
        }
        var path = paxPath ?? Self.field(header[0..<100])
        if paxPath == nil {
            let prefix = Self.field(header[345..<500])
            if !prefix.isEmpty, header[257..<262].elementsEqual("ustar".utf8) { path = prefix + [UInt8(ascii: "/")] + path }
        }
        let realSize = paxSize ?? size
        paxPath = nil
        paxSize = nil
        let kind: Kind
        switch type {
        case UInt8(ascii: "0"), 0, UInt8(ascii: "7"): kind = .regular
        case UInt8(ascii: "2"): kind = .symlink
        case UInt8(ascii: "5"): kind = .directory
        default: kind = .other
        }
        remaining = kind == .regular ? realSize : size
        padding = (512 - remaining % 512) % 512
        wanted = try member(path, kind, realSize)
        if remaining == 0 && wanted { try memberEnd(); wanted = false }
    }

    /// Reads "len key=value\n" records; keeps path and size.
    private mutating func parsePax(_ data: [UInt8]) {
        var index = 0
        while index < data.count {
            guard let space = data[index...].firstIndex(of: UInt8(ascii: " ")),
                  let length = Int(String(decoding: data[index..<space], as: UTF8.self)),
                  // The length counts its own digits, the space and the newline (fuzzed: "2 path=…" trapped).
                  length > space - index + 1, length <= data.count - index else { return }
            let record = data[(space + 1)..<(index + length - 1)]
            if let equals = record.firstIndex(of: UInt8(ascii: "=")) {
                let key = String(decoding: record[..<equals], as: UTF8.self)
                let value = Array(record[(equals + 1)...])
                if key == "path" { paxPath = value }
                if key == "size" { paxSize = UInt64(String(decoding: value, as: UTF8.self)) }
            }
            index += length
        }
    }

    private static func field(_ bytes: ArraySlice<UInt8>) -> [UInt8] {
        Array(bytes.prefix { $0 != 0 })
    }

    private static func octal(_ bytes: ArraySlice<UInt8>) -> UInt64? {
        var value: UInt64 = 0
        var seen = false
        for byte in bytes {
            if byte == 0 || byte == UInt8(ascii: " ") {
                if seen { break } else { continue }
            }
            guard (UInt8(ascii: "0")...UInt8(ascii: "7")).contains(byte) else { return nil }
            value = value * 8 + UInt64(byte - UInt8(ascii: "0"))
            seen = true
        }
        return value
    }
}
