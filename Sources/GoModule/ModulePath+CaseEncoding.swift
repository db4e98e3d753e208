// ModulePath: the `!`-for-uppercase encoding of module paths and versions in proxy URLs and cache paths.

extension ModulePath {
    /// module.escapeString: `!` + lower case for each upper-case letter. Callers have already rejected
    /// `!` and non-ASCII, which would make the encoding ambiguous; Go re-checks, and so do we.
    static func escape(_ s: String) throws(ModuleError) -> String {
        var hasUpper = false
        for byte in s.utf8 {
            if byte == bang || byte >= 0x80 {
                throw ModuleError("internal error: inconsistency in EscapePath")
            }
            if isUpper(byte) { hasUpper = true }
        }
        if !hasUpper { return s }
        var out: [UInt8] = []
        out.reserveCapacity(s.utf8.count + 8)
        for byte in s.utf8 {
            if isUpper(byte) {
                out.append(bang)
                out.append(byte | 0x20)
            } else {
                out.append(byte)
            }
        }
        return String(decoding: out, as: UTF8.self)
    }

    /// module.unescapeString: `nil` for non-ASCII, a bare upper-case letter, or a `!` not followed by `a`–`z`.
    static func unescape(_ escaped: String) -> String? {
        var out: [UInt8] = []
        out.reserveCapacity(escaped.utf8.count)
        var afterBang = false
        for byte in escaped.utf8 {
            if byte >= 0x80 { return nil }
            if afterBang {
                afterBang = false
                guard isLower(byte) else { return nil }
                out.append(byte & ~0x20)
                continue
            }
            if byte == bang {
                afterBang = true
                continue
            }
            if isUpper(byte) { return nil }
            out.append(byte)
        }
        if afterBang { return nil }
        return String(decoding: out, as: UTF8.self)
    }
}
