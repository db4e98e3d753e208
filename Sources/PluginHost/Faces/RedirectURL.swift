import Basics
import HostSupport
import FoundationEssentials
import Glibc
import PluginABI

/// Checks of what a storage's `url` entry wrote (ABI 1.1), before the host puts it in a `Location` header.
/// The plugin is not trusted: a URL with CR/LF would split the response, one without its NUL would be read past
/// the buffer, and a `file:` or relative URL would send the go command somewhere it must not go.
package enum RedirectURL {
    /// The URL in `buffer` (the host's ATH_URL_CAPACITY bytes), or why it is refused.
    package static func check(_ buffer: UnsafeBufferPointer<UInt8>, validSeconds: UInt32) -> Result<(url: String, validSeconds: Int), Refusal> {
        guard let end = buffer.firstIndex(of: 0) else { return .failure(.unterminated) }
        let bytes = buffer[..<end]
        guard validSeconds >= 1 else { return .failure(.noValidity) }
        // Printable ASCII only (0x21...0x7E): no space, no CR/LF, nothing a header could be split with.
        guard !bytes.isEmpty, bytes.allSatisfy({ $0 >= 0x21 && $0 <= 0x7E }) else { return .failure(.notPrintable) }
        let url = String(decoding: bytes, as: UTF8.self)
        for scheme in ["http://", "https://"] where url.hasPrefix(scheme) && url.utf8.count > scheme.utf8.count {
            return .success((url, Int(validSeconds)))
        }
        return .failure(.notHTTP)
    }

    /// Why a URL is refused; each is logged once per storage (see `StoragePlugin.url`).
    package enum Refusal: String, Error, Sendable {
        case unterminated = "not NUL-terminated within ATH_URL_CAPACITY bytes"
        case notPrintable = "not printable ASCII (0x21-0x7E)"
        case notHTTP = "not an absolute http:// or https:// URL"
        case noValidity = "a validity of 0 seconds"
    }
}

/// Logs a cause the first time it is seen: a storage failing every redirect must not flood the log, one line per
/// cause says what to fix.
package final class OnceLog: @unchecked Sendable {
    private let lock = PosixLock()
    private var seen = Set<String>()

    package init() {}

    /// Logs `message` (an error line) unless `cause` was logged before.
    package func error(cause: String, _ message: @autoclosure () -> String) {
        guard lock.withLock({ seen.insert(cause).inserted }) else { return }
        Log.error(message())
    }
}
