// Shared by every fuzz target: compiled into each fuzz binary beside the target's own file.
#if canImport(Glibc)
import Glibc
#endif

/// Stops the run with `message` when an invariant fails, so libFuzzer records the input as a crash.
///
/// `abort()` rather than `precondition`: the message is printed in -O builds too, and libFuzzer saves the input.
func require(_ condition: Bool, _ message: @autoclosure () -> String, file: StaticString = #fileID, line: UInt = #line) {
    if condition { return }
    let text = "fuzz invariant failed at \(file):\(line): \(message())\n"
    // write(2) rather than stderr: the C global is not concurrency-safe in Swift 6.
    var bytes = Array(text.utf8)
    _ = bytes.withUnsafeMutableBytes { write(2, $0.baseAddress, $0.count) }
    abort()
}

/// The fuzz input as a byte array.
func inputBytes(_ data: UnsafePointer<UInt8>, _ size: Int) -> [UInt8] {
    Array(UnsafeBufferPointer(start: data, count: size))
}

/// Splits `bytes` at each `separator` into at most `limit` parts (the last part keeps any further separators).
func splitInput(_ bytes: [UInt8], on separator: UInt8, limit: Int) -> [ArraySlice<UInt8>] {
    var parts: [ArraySlice<UInt8>] = []
    var start = bytes.startIndex
    while parts.count < limit - 1, let end = bytes[start...].firstIndex(of: separator) {
        parts.append(bytes[start..<end])
        start = end + 1
    }
    parts.append(bytes[start...])
    return parts
}

/// An unlinked temporary file in `directory`, for code under test that reads a file descriptor (as production
/// reads spooled zips); `rewrite` refills it for each input.
func unlinkedTemporaryFile(in directory: String, prefix: String) -> Int32 {
    var template = Array((directory + "/" + prefix + "-XXXXXX").utf8CString)
    let fd = template.withUnsafeMutableBufferPointer { mkstemp($0.baseAddress!) }
    require(fd >= 0, "mkstemp in \(directory) failed: errno \(errno)")
    template.withUnsafeBufferPointer { _ = unlink($0.baseAddress!) }
    return fd
}

/// Replaces the contents of `fd` with `bytes`.
func rewrite(_ fd: Int32, with bytes: [UInt8]) {
    require(ftruncate(fd, 0) == 0, "ftruncate failed")
    let written = bytes.withUnsafeBytes { pwrite(fd, $0.baseAddress, $0.count, 0) }
    require(written == bytes.count, "pwrite wrote \(written) of \(bytes.count)")
}
