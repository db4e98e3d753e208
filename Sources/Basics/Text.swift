// Text: the few string operations the project used from libFoundation.so (trimming, replacing, percent-encoding,
// printf-style decimals), in stdlib code with the same results. Byte- or scalar-wise on purpose: Swift's
// Character-wise matching treats "\r\n" as one character, which NSString did not.
#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

extension StringProtocol {
    /// Without the leading and trailing Unicode scalars for which `trim` holds (`trimmingCharacters(in:)`).
    package func trimming(_ trim: (Unicode.Scalar) -> Bool) -> String {
        let scalars = unicodeScalars
        guard let first = scalars.firstIndex(where: { !trim($0) }) else { return "" }
        let last = scalars.lastIndex(where: { !trim($0) })!
        var kept = String.UnicodeScalarView()
        kept.append(contentsOf: scalars[first...last])
        return String(kept)
    }

    /// Without leading and trailing spaces (Unicode category Zs) and tabs: `CharacterSet.whitespaces`.
    package var trimmingWhitespace: String { trimming(Unicode.Scalar.isWhitespace) }

    /// Without leading and trailing line breaks (U+000A–U+000D, U+0085, U+2028, U+2029): `CharacterSet.newlines`.
    package var trimmingNewlines: String { trimming(Unicode.Scalar.isNewline) }

    /// Every non-overlapping occurrence of `target`, left to right, replaced by `replacement`, comparing UTF-8
    /// bytes (`replacingOccurrences(of:with:)` for the ASCII targets the project replaces).
    package func replacingAll(_ target: String, with replacement: String) -> String {
        let bytes = Array(utf8), pattern = Array(target.utf8)
        guard !pattern.isEmpty, bytes.count >= pattern.count else { return String(self) }
        var result: [UInt8] = []
        result.reserveCapacity(bytes.count)
        var index = 0
        while index < bytes.count {
            if bytes[index] == pattern[0], index + pattern.count <= bytes.count, bytes[index..<index + pattern.count].elementsEqual(pattern) {
                result.append(contentsOf: replacement.utf8)
                index += pattern.count
            } else {
                result.append(bytes[index])
                index += 1
            }
        }
        return String(decoding: result, as: UTF8.self)
    }

    /// Where `target` first occurs, comparing UTF-8 bytes (`range(of:)`); nil when it does not, or is empty.
    package func firstByteRange(of target: String) -> Range<Index>? {
        byteRange(of: target, last: false)
    }

    /// Where `target` last occurs, comparing UTF-8 bytes (`range(of:options: .backwards)`).
    package func lastByteRange(of target: String) -> Range<Index>? {
        byteRange(of: target, last: true)
    }

    private func byteRange(of target: String, last: Bool) -> Range<Index>? {
        let bytes = utf8, pattern = Array(target.utf8)
        guard !pattern.isEmpty, bytes.count >= pattern.count else { return nil }
        let starts = 0...(bytes.count - pattern.count)
        let matches = { (offset: Int) -> Bool in
            let start = bytes.index(bytes.startIndex, offsetBy: offset)
            return bytes[start...].starts(with: pattern)
        }
        guard let offset = last ? starts.reversed().first(where: matches) : starts.first(where: matches) else { return nil }
        let start = bytes.index(bytes.startIndex, offsetBy: offset)
        return start..<bytes.index(start, offsetBy: pattern.count)
    }

    /// UTF-8 bytes for which `allowed` is false as "%XX" (upper-case hex), the rest as they are
    /// (`addingPercentEncoding(withAllowedCharacters:)` for ASCII allowed sets).
    package func percentEncoded(allowing allowed: (UInt8) -> Bool) -> String {
        let hex = Array("0123456789ABCDEF".utf8)
        var result: [UInt8] = []
        result.reserveCapacity(utf8.count)
        for byte in utf8 {
            if allowed(byte) {
                result.append(byte)
            } else {
                result.append(contentsOf: [UInt8(ascii: "%"), hex[Int(byte >> 4)], hex[Int(byte & 15)]])
            }
        }
        return String(decoding: result, as: UTF8.self)
    }
}

extension String {
    /// The path without its last component, as NSString's `deletingLastPathComponent`: "/a/b" → "/a",
    /// "/a/b/" → "/a", "/a" → "/", "a" → "", "/" → "/".
    package var deletingLastPathComponent: String {
        var path = Substring(self)
        while path.utf8.count > 1, path.hasSuffix("/") { path.removeLast() }
        guard let slash = path.lastIndex(of: "/") else { return "" }
        var parent = path[..<slash]
        while parent.utf8.count > 1, parent.hasSuffix("/") { parent.removeLast() }
        return parent.isEmpty ? "/" : String(parent)
    }
}

extension Unicode.Scalar {
    /// Category Zs or a tab (`CharacterSet.whitespaces`).
    package static func isWhitespace(_ scalar: Unicode.Scalar) -> Bool {
        scalar == "\t" || scalar.properties.generalCategory == .spaceSeparator
    }

    /// A line break of `CharacterSet.newlines`.
    package static func isNewline(_ scalar: Unicode.Scalar) -> Bool {
        (0x0A...0x0D).contains(scalar.value) || scalar.value == 0x85 || scalar.value == 0x2028 || scalar.value == 0x2029
    }
}

extension UInt8 {
    /// An ASCII letter or digit.
    package var isASCIIAlphanumeric: Bool {
        (0x30...0x39).contains(self) || (0x41...0x5A).contains(self) || (0x61...0x7A).contains(self)
    }
}

extension Double {
    /// `value` with `digits` decimals, rounded as printf's "%.Nf" does (what `String(format:)` wrote).
    package func fixed(_ digits: Int) -> String {
        withVaList([Int32(digits), self]) { arguments in
            var buffer = [CChar](repeating: 0, count: 64)
            let needed = Int(vsnprintf(&buffer, buffer.count, "%.*f", arguments))
            if needed >= buffer.count {
                buffer = [CChar](repeating: 0, count: needed + 1)
                return withVaList([Int32(digits), self]) { again in
                    _ = vsnprintf(&buffer, buffer.count, "%.*f", again)
                    return String(cString: buffer)
                }
            }
            return String(cString: buffer)
        }
    }
}
