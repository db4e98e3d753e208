// SHA-256 from the system libcrypto: S3Storage's SigV4, and h1 hashes and tree hashes of the checksum database.
import CCrypto

/// SHA-256, fed in pieces.
public struct SHA256: ~Copyable {
    private let context: OpaquePointer

    /// A fresh digest.
    public init() {
        // Only fails when out of memory; nothing sensible is left to do then.
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

    /// Feeds `bytes`.
    public mutating func update(_ bytes: some Collection<UInt8>) {
        if bytes.withContiguousStorageIfAvailable({ update(UnsafeRawBufferPointer($0)) }) == nil {
            let copy = Array(bytes)
            copy.withUnsafeBytes { update($0) }
        }
    }

    /// The 32-byte digest; the value is used up.
    public consuming func finish() -> [UInt8] {
        var out = [UInt8](repeating: 0, count: 32)
        var length: UInt32 = 0
        EVP_DigestFinal_ex(context, &out, &length)
        EVP_MD_CTX_free(context)
        discard self
        return out
    }

    /// The digest of `bytes`.
    public static func hash(_ bytes: some Collection<UInt8>) -> [UInt8] {
        var digest = SHA256()
        digest.update(bytes)
        return digest.finish()
    }

    /// The lower-case hex digest of `bytes`, as SigV4 writes payload hashes.
    public static func hexHash(_ bytes: some Collection<UInt8>) -> String { Hex.encode(hash(bytes)) }

    deinit { EVP_MD_CTX_free(context) }
}
