// SHA-256 and HMAC-SHA256 from the system's libcrypto: all SigV4 needs.
import CCrypto

/// SHA-256 digests, in one call or fed in pieces.
public struct SHA256 {
    private let context: OpaquePointer

    /// A fresh digest.
    public init() {
        // Only fails when out of memory; there is nothing sensible to do then but stop.
        guard let context = EVP_MD_CTX_new(), EVP_DigestInit_ex(context, EVP_sha256(), nil) == 1 else {
            fatalError("libcrypto: EVP_DigestInit_ex(sha256) failed")
        }
        self.context = context
    }

    /// Feeds `bytes`.
    public mutating func update(_ bytes: UnsafeRawBufferPointer) {
        guard let base = bytes.baseAddress, !bytes.isEmpty else { return }
        EVP_DigestUpdate(context, base, bytes.count)
    }

    /// The 32-byte digest; the value is used up.
    public consuming func finish() -> [UInt8] {
        var out = [UInt8](repeating: 0, count: Int(EVP_MAX_MD_SIZE))
        var length: UInt32 = 0
        EVP_DigestFinal_ex(context, &out, &length)
        EVP_MD_CTX_free(context)
        return Array(out[0..<Int(length)])
    }

    /// The digest of `bytes`.
    public static func hash(_ bytes: [UInt8]) -> [UInt8] {
        var digest = SHA256()
        bytes.withUnsafeBytes { digest.update($0) }
        return digest.finish()
    }

    /// The lower-case hex digest of `bytes`, as SigV4 writes payload hashes.
    public static func hexHash(_ bytes: [UInt8]) -> String { Hex.encode(hash(bytes)) }
}

/// HMAC-SHA256.
public enum HMACSHA256 {
    /// The 32-byte MAC of `data` under `key`.
    public static func mac(key: [UInt8], data: [UInt8]) -> [UInt8] {
        var out = [UInt8](repeating: 0, count: Int(EVP_MAX_MD_SIZE))
        var length: UInt32 = 0
        key.withUnsafeBytes { k in
            data.withUnsafeBytes { d in
                _ = HMAC(EVP_sha256(), k.baseAddress, Int32(k.count), d.baseAddress?.assumingMemoryBound(to: UInt8.self),
                         d.count, &out, &length)
            }
        }
        return Array(out[0..<Int(length)])
    }
}

/// Lower-case hexadecimal.
public enum Hex {
    private static let digits = Array("0123456789abcdef".utf8)

    public static func encode(_ bytes: some Sequence<UInt8>) -> String {
        var out: [UInt8] = []
        out.reserveCapacity(64)
        for byte in bytes {
            out.append(digits[Int(byte >> 4)])
            out.append(digits[Int(byte & 15)])
        }
        return String(decoding: out, as: UTF8.self)
    }
}
