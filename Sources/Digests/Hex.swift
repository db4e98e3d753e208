// Lower-case hexadecimal (SigV4 hashes and signatures, dirhash summaries).

/// Lower-case hexadecimal.
public enum Hex {
    /// Two lower-case hex digits per byte.
    public static func encode(_ bytes: some Sequence<UInt8>) -> String {
        encode(Array(bytes))
    }

    /// Same for an array, written straight into the string's storage (one digest per zip file on the cold path).
    public static func encode(_ bytes: [UInt8]) -> String {
        bytes.withUnsafeBufferPointer { input in
            String(unsafeUninitializedCapacity: input.count * 2) { output in
                for (index, byte) in input.enumerated() {
                    output[2 * index] = digit(byte >> 4)
                    output[2 * index + 1] = digit(byte & 15)
                }
                return input.count * 2
            }
        }
    }

    @inline(__always)
    private static func digit(_ value: UInt8) -> UInt8 { value < 10 ? 0x30 + value : 0x57 + value }
}
