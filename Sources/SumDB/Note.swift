// Signed notes (golang.org/x/mod/sumdb/note): verifier keys and Ed25519 signature checks through libcrypto.
//
// A note is UTF-8 text ending in "\n", a blank line, then signature lines "— <name> <base64(keyhash4 || sig)>\n".
// A verifier key is "<name>+<8 hex digits keyhash>+<base64(0x01 || 32-byte Ed25519 public key)>", where
// keyhash is the first 4 bytes (big-endian) of SHA-256(name + "\n" + 0x01 || key).

import CCrypto
import Digests

/// A parsed verifier key (the part of GOSUMDB before the URL).
public struct VerifierKey: Equatable, Sendable {
    /// The server name, e.g. "sum.golang.org".
    public let name: String
    /// The 32-bit key hash that signature lines carry.
    public let keyHash: UInt32
    /// The raw 32-byte Ed25519 public key.
    public let publicKey: [UInt8]

    private static let ed25519Algorithm: UInt8 = 1

    /// Parses `text` ("name+hash+base64"); refuses anything x/mod's `note.NewVerifier` would refuse.
    public init(_ text: String) throws(SumDBError) {
        // Split on bytes, as Go does: a "+" followed by a combining mark is still a separator.
        let parts = text.utf8.split(separator: UInt8(ascii: "+"), maxSplits: 2, omittingEmptySubsequences: false)
            .map { Substring(decoding: $0, as: UTF8.self) }
        guard parts.count == 3, Note.isValidName(parts[0]) else {
            throw .malformed("verifier key \(quote(text)): want name+hash+key")
        }
        let hashText = parts[1]
        guard hashText.utf8.count == 8, hashText.utf8.allSatisfy({ hexValue($0) != nil }), let hash = UInt32(hashText, radix: 16)
        else { throw .malformed("verifier key \(quote(text)): the key hash is not 8 hex digits") }
        guard let key = Base64.decode(parts[2]), !key.isEmpty else {
            throw .malformed("verifier key \(quote(text)): the key is not base64")
        }
        guard hash == Note.keyHash(name: String(parts[0]), key: key) else {
            throw .malformed("verifier key \(quote(text)): the key hash does not match the key")
        }
        guard key[0] == Self.ed25519Algorithm else {
            throw .malformed("verifier key \(quote(text)): unknown algorithm \(key[0])")
        }
        guard key.count == 33 else {
            throw .malformed("verifier key \(quote(text)): an Ed25519 key has 32 bytes, not \(key.count - 1)")
        }
        name = String(parts[0])
        keyHash = hash
        publicKey = Array(key[1...])
    }

    /// Whether `signature` is a valid Ed25519 signature of `message` under this key.
    public func verify(message: some Collection<UInt8>, signature: [UInt8]) -> Bool {
        guard signature.count == 64 else { return false }
        let message = Array(message)
        guard let pkey = publicKey.withUnsafeBufferPointer({
            EVP_PKEY_new_raw_public_key(EVP_PKEY_ED25519, nil, $0.baseAddress, $0.count)
        }) else { return false }
        defer { EVP_PKEY_free(pkey) }
        guard let context = EVP_MD_CTX_new() else { return false }
        defer { EVP_MD_CTX_free(context) }
        // Ed25519 is a one-shot scheme: no digest is named, and the whole message goes to EVP_DigestVerify.
        guard EVP_DigestVerifyInit(context, nil, nil, nil, pkey) == 1 else { return false }
        return EVP_DigestVerify(context, signature, signature.count, message, message.count) == 1
    }
}

/// A note whose signature by the expected key verified.
public struct Note: Equatable, Sendable {
    /// The signed text (ends with "\n").
    public let text: [UInt8]
    /// Signatures by keys other than the expected one, as "name+hash" (kept for error messages, never trusted).
    public let otherSigners: [String]

    /// The most signature lines a note may carry, as in x/mod.
    public static let maxSignatures = 100

    /// Parses `message` and verifies it with `key`. Other keys' signatures are skipped; the note must carry a
    /// valid signature by `key`.
    public static func open(_ message: some Collection<UInt8>, key: VerifierKey) throws(SumDBError) -> Note {
        let message = Array(message)
        guard String(validating: message, as: UTF8.self) != nil else { throw .malformed("note is not valid UTF-8") }
        guard !message.contains(where: { $0 < 0x20 && $0 != 0x0A }) else {
            throw .malformed("note contains a control character")
        }
        guard let split = lastBlankLine(message) else { throw .malformed("note has no signature block") }
        let text = Array(message[...split])  // up to and including the first of the two newlines
        let block = message[(split + 2)...]
        guard let last = block.last, last == 0x0A else { throw .malformed("note's signature block does not end in a newline") }

        let prefix: [UInt8] = Array("— ".utf8)
        var verified = false
        var others: [String] = []
        var count = 0
        for line in block.dropLast().split(separator: 0x0A, omittingEmptySubsequences: false) {
            count += 1
            guard count <= maxSignatures else { throw .malformed("note has more than \(maxSignatures) signatures") }
            guard line.starts(with: prefix) else { throw .malformed("note signature line does not start with \"— \"") }
            let body = line.dropFirst(prefix.count)
            guard let space = body.firstIndex(of: 0x20) else { throw .malformed("note signature line has no signature") }
            let name = String(decoding: body[..<space], as: UTF8.self)
            guard isValidName(name[...]), let signature = Base64.decode(bytes: body[(space + 1)...]), signature.count >= 5 else {
                throw .malformed("note signature line is not \"— name base64\"")
            }
            let hash = signature[0..<4].reduce(UInt32(0)) { $0 << 8 | UInt32($1) }
            guard name == key.name, hash == key.keyHash else {
                others.append(name + "+" + hex8(hash))
                continue
            }
            guard key.verify(message: text, signature: Array(signature[4...])) else {
                throw .badSignature("invalid signature for key \(key.name)+\(hex8(key.keyHash))")
            }
            verified = true
        }
        guard verified else {
            let seen = others.isEmpty ? "none" : others.joined(separator: ", ")
            throw .unknownKey("note is not signed by \(key.name)+\(hex8(key.keyHash)) (signed by: \(seen))")
        }
        return Note(text: text, otherSigners: others)
    }

    /// The index of the first newline of the last "\n\n" in `bytes`.
    private static func lastBlankLine(_ bytes: [UInt8]) -> Int? {
        guard bytes.count >= 2 else { return nil }
        var index = bytes.count - 2
        while index >= 0 {
            if bytes[index] == 0x0A && bytes[index + 1] == 0x0A { return index }
            index -= 1
        }
        return nil
    }

    /// A key or signer name: non-empty, no white space, no "+".
    static func isValidName(_ name: Substring) -> Bool {
        !name.isEmpty && !name.unicodeScalars.contains { $0.properties.isWhitespace || $0 == "+" }
    }

    /// The 32-bit key hash: the first 4 bytes of SHA-256(name "\n" key), big-endian.
    static func keyHash(name: String, key: [UInt8]) -> UInt32 {
        var digest = SHA256()
        digest.update(Array(name.utf8) + [0x0A])
        digest.update(key)
        return digest.finish()[0..<4].reduce(UInt32(0)) { $0 << 8 | UInt32($1) }
    }
}

/// Eight lower-case hex digits.
func hex8(_ value: UInt32) -> String {
    let digits = String(value, radix: 16)
    return String(repeating: "0", count: 8 - digits.count) + digits
}

func hexValue(_ byte: UInt8) -> UInt8? {
    switch byte {
    case UInt8(ascii: "0")...UInt8(ascii: "9"): byte - UInt8(ascii: "0")
    case UInt8(ascii: "a")...UInt8(ascii: "f"): byte - UInt8(ascii: "a") + 10
    case UInt8(ascii: "A")...UInt8(ascii: "F"): byte - UInt8(ascii: "A") + 10
    default: nil
    }
}

/// `text` in double quotes, for messages.
func quote(_ text: some StringProtocol) -> String {
    let limited = text.count > 200 ? String(text.prefix(200)) + "…" : String(text)
    return "\"" + limited + "\""
}
