// What ZipDirectory reads out of a zip (one entry of its central directory) and why it may refuse one.

/// Why a zip file was rejected: a structural problem found by `ZipDirectory` or a rule broken in `ModuleZip`.
public struct ZipError: Error, Equatable, Sendable, CustomStringConvertible {
    /// What is wrong; for `ModuleZip` rules, in the words `golang.org/x/mod/zip` uses.
    public var message: String

    /// Creates an error carrying `message`.
    public init(message: String) {
        self.message = message
    }

    /// The message, as is.
    public var description: String { message }
}

/// One entry of a zip's central directory.
public struct ZipEntry: Sendable, Equatable {
    /// The file name as stored, e.g. `example.com/m@v1.0.0/go.mod`.
    public var name: String
    /// The compression method: 0 stored, 8 deflate (others are read but `ModuleZip.check` rejects them).
    public var method: UInt16
    /// The CRC-32 of the uncompressed data, as declared.
    public var crc32: UInt32
    /// The size of the stored (possibly compressed) data, from the ZIP64 extra field when needed.
    public var compressedSize: UInt64
    /// The declared size of the data once uncompressed, from the ZIP64 extra field when needed.
    public var uncompressedSize: UInt64
    /// Where the entry's local header starts, from the beginning of the file.
    public var localHeaderOffset: UInt64
    /// Whether the name ends with "/" (the go command never writes such entries, but they are legal).
    public var isDirectory: Bool

    /// Creates an entry; `ZipDirectory.read` is the usual source.
    public init(
        name: String, method: UInt16, crc32: UInt32, compressedSize: UInt64, uncompressedSize: UInt64,
        localHeaderOffset: UInt64, isDirectory: Bool
    ) {
        self.name = name
        self.method = method
        self.crc32 = crc32
        self.compressedSize = compressedSize
        self.uncompressedSize = uncompressedSize
        self.localHeaderOffset = localHeaderOffset
        self.isDirectory = isDirectory
    }
}

/// Reads and sanity-checks a zip's central directory (APPNOTE.TXT §4.3.12–4.3.16, with ZIP64).
///
