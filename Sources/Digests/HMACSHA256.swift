// HMAC-SHA256 from the system libcrypto (SigV4 signing keys and signatures).
import CCrypto

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
