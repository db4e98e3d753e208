// Host services (ath_host) and the per-call context (ath_call) of ABI 1.1, as Swift values.
// Both structs are read field by field, each only if it lies inside the struct_size the host declared:
// a host built against another minor may allocate less (or more) than this header's sizeof.
import Glibc
@_exported import PluginABI

/// Severity of a line logged through the host. The corresponding C type is `ath_log_level`.
public enum LogLevel: Sendable {
    case error, warning, info, debug

    var cValue: ath_log_level {
        switch self {
        case .error: ATH_LOG_ERROR
        case .warning: ATH_LOG_WARNING
        case .info: ATH_LOG_INFO
        case .debug: ATH_LOG_DEBUG
        }
    }
}

/// Reads the field at `key` of the host-allocated struct at `base`, or nil when it lies past `size` bytes.
func field<Root, Value>(_ base: UnsafeRawPointer, _ key: KeyPath<Root, Value>, within size: UInt32) -> Value? {
    guard let offset = MemoryLayout<Root>.offset(of: key), offset + MemoryLayout<Value>.size <= Int(size) else { return nil }
    return base.loadUnaligned(fromByteOffset: offset, as: Value.self)
}

/// What the host offers its plugins (`ath_host`): its name and version and its log.
/// `.absent` when the instance was made by a 1.0 host (through `create`): logging then goes nowhere.
public struct HostServices: @unchecked Sendable {  // the host keeps ath_host valid and unchanged until destroy
    private let host: UnsafePointer<ath_host>?
    private let logEntry: (@convention(c) (UnsafeMutableRawPointer?, ath_log_level, UnsafePointer<CChar>) -> Void)?
    private let context: UnsafeMutableRawPointer?
    /// The host program ("athens"), nil when absent.
    public let name: String?
    /// The host's version text, nil when absent.
    public let version: String?

    /// No host services: a 1.0 host, or a test.
    public static let absent = HostServices(nil)

    init(_ host: UnsafePointer<ath_host>?) {
        self.host = host
        guard let host else {
            (logEntry, context, name, version) = (nil, nil, nil, nil)
            return
        }
        let raw = UnsafeRawPointer(host), size = raw.load(as: UInt32.self)  // never the whole struct: it may be shorter
        logEntry = field(raw, \ath_host.log, within: size)
        context = field(raw, \ath_host.host_ctx, within: size) ?? nil
        name = (field(raw, \ath_host.name, within: size)).map { String(cString: $0) }
        version = (field(raw, \ath_host.version, within: size)).map { String(cString: $0) }
    }

    /// Whether a host handed over its services (a 1.1 host, through `create_with_host`).
    public var isAvailable: Bool { logEntry != nil }

    /// Writes one line into the host's log (inside an entry call, the host tags it with the call's request id).
    /// Does nothing when the host offers no log.
    /// - Important: Any thread, concurrently.
    public func log(_ level: LogLevel, _ message: String) {
        guard let logEntry else { return }
        message.withCString { logEntry(context, level.cValue, $0) }
    }
}

/// The context of one entry call (`ath_call`): its deadline, whether the host still wants the result, the
/// request it serves. `.none` (no deadline, never cancelled) when the host called a 1.0 entry.
/// - Important: Valid only until the entry returns; it may be read from any thread meanwhile.
public struct CallContext: @unchecked Sendable {  // ath_call is valid, and `cancelled` callable, during the call
    private let call: UnsafePointer<ath_call>?
    private let cancelledEntry: (@convention(c) (UnsafePointer<ath_call>) -> Int32)?
    /// The host's services, for `log`.
    public let host: HostServices
    /// Absolute CLOCK_MONOTONIC nanoseconds at which the host gives up; nil for none.
    public let deadline: UInt64?
    /// The request this call serves, as the host's log names it; "" when none.
    public let requestID: String

    /// No context: no deadline, never cancelled, no request.
    public static let none = CallContext(nil, host: .absent)

    init(_ call: UnsafePointer<ath_call>?, host: HostServices) {
        self.call = call
        self.host = host
        guard let call else {
            (cancelledEntry, deadline, requestID) = (nil, nil, "")
            return
        }
        let raw = UnsafeRawPointer(call), size = raw.load(as: UInt32.self)
        cancelledEntry = field(raw, \ath_call.cancelled, within: size) ?? nil
        deadline = field(raw, \ath_call.deadline_ns, within: size).flatMap { $0 == 0 ? nil : $0 }
        requestID = field(raw, \ath_call.request_id, within: size).map { String(cString: $0) } ?? ""
    }

    /// A context with only `deadline` set (for tests and for backends that split a call in steps).
    public init(deadline: UInt64?, host: HostServices = .absent) {
        (call, cancelledEntry, self.host, self.deadline, requestID) = (nil, nil, host, deadline, "")
    }

    /// CLOCK_MONOTONIC now, in the deadline's unit.
    public static func now() -> UInt64 {
        var ts = timespec()
        clock_gettime(CLOCK_MONOTONIC, &ts)
        return UInt64(ts.tv_sec) * 1_000_000_000 + UInt64(ts.tv_nsec)
    }

    /// Whether the host no longer wants the result (the client left, shutdown, or the deadline passed).
    public var isCancelled: Bool {
        guard let call, let cancelledEntry else { return false }
        return cancelledEntry(call) != 0
    }

    /// Nanoseconds left before the deadline (0 once it has passed); nil without a deadline.
    public var remainingNanoseconds: UInt64? {
        guard let deadline else { return nil }
        let now = Self.now()
        return deadline > now ? deadline - now : 0
    }

    /// Throws `ATH_CANCELLED` once the call is cancelled, `ATH_TIMEOUT` once its deadline has passed: call it
    /// between the steps of long work (each chunk, each retry).
    /// The deadline is looked at first: a 1.1 host reports a passed deadline as cancelled too.
    public func check(_ what: @autoclosure () -> String) throws(PluginFailure) {
        if remainingNanoseconds == 0 { throw .timeout("\(what()): past the call's deadline") }
        if isCancelled { throw .cancelled("\(what()): cancelled by the host") }
    }

    /// Logs through the host (see `HostServices.log`).
    public func log(_ level: LogLevel, _ message: String) { host.log(level, message) }
}
