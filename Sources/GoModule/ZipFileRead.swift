// ZipFileRead: the one exact positional read of a zip file.

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// The one exact positional read of a zip file (the validator, the directory reader and h1 hashing share it).
public enum ZipFileRead {
    /// Fills `buffer[0..<count]` with the bytes of `fd` at `offset`, retrying short reads and EINTR; throws the
    /// read error, or "file ends" when the file is shorter than the `fileSize` the caller was told.
    public static func exactly(fd: Int32, at offset: UInt64, into buffer: inout [UInt8], count: Int,
                               fileSize: UInt64) throws(ZipError) {
        var done = 0
        var failure: Int32 = 0
        buffer.withUnsafeMutableBytes { raw in
            while done < count {
                let n = pread(fd, raw.baseAddress! + done, count - done, off_t(offset) + off_t(done))
                if n > 0 {
                    done += n
                } else if n == 0 {
                    return  // end of file: the caller's size was wrong
                } else if errno != EINTR {
                    failure = errno
                    return
                }
            }
        }
        if failure != 0 {
            throw ZipError(message: "zip: read failed at offset \(offset): \(String(cString: strerror(failure)))")
        }
        guard done == count else {
            throw ZipError(message: "zip: file ends at offset \(offset + UInt64(done)), before its declared size \(fileSize)")
        }
    }
}
