/// Why a checksum-database answer was refused; each case names one distinct failure an operator can act on.
public enum SumDBError: Error, Equatable, Sendable, CustomStringConvertible {
    /// Bytes that do not follow the format (key, note, tree, record, tile path or tile data).
    case malformed(String)
    /// No signature on the note is by the configured key (a different server, or a rotated key).
    case unknownKey(String)
    /// A signature by the configured key that does not verify: the signed text was altered.
    case badSignature(String)
    /// An inclusion or consistency proof that does not lead to the signed tree hash.
    case proofFailed(String)
    /// A record that does not describe the module@version asked for.
    case recordMismatch(String)
    /// The fetch function failed for a path.
    case fetchFailed(path: String, reason: String)
    /// The database answered that it has nothing at a path (HTTP 404 or 410): for a lookup, no record of the version.
    case notFound(path: String)

    public var description: String {
        switch self {
        case .malformed(let message): "sumdb: malformed: \(message)"
        case .unknownKey(let message): "sumdb: unknown key: \(message)"
        case .badSignature(let message): "sumdb: bad signature: \(message)"
        case .proofFailed(let message): "sumdb: proof failure: \(message)"
        case .recordMismatch(let message): "sumdb: record mismatch: \(message)"
        case .fetchFailed(let path, let reason): "sumdb: fetching \(path): \(reason)"
        case .notFound(let path): "sumdb: \(path): not found (the database has no record of it)"
        }
    }
}
