// What NSTemporaryDirectory and Error.localizedDescription gave, without libFoundation.so.
import FoundationEssentials
#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// $TMPDIR with a trailing "/", else "/tmp/" (exactly what `temporaryDirectory()` returned on Linux).
package func temporaryDirectory() -> String {
    guard let value = getenv("TMPDIR") else { return "/tmp/" }
    let path = String(cString: value)
    return path.hasSuffix("/") ? path : path + "/"
}

extension Error {
    /// A short text for a message: the errno text of a FileManager failure ("No such file or directory"),
    /// otherwise the error's own description.
    package var systemDescription: String {
        if let posix = self as? POSIXError { return String(cString: strerror(posix.code.rawValue)) }
        if let cocoa = self as? CocoaError, let posix = cocoa.underlying as? POSIXError {
            return String(cString: strerror(posix.code.rawValue))
        }
        return "\(self)"
    }
}
