// One attempt (one request/response, no redirect) in flight on one curl easy handle, and the C callbacks
// that drive it. curl calls the callbacks on the thread running curl_easy_perform, i.e. the caller's, so
// the state needs no lock. The callbacks capture nothing: the Transfer travels as curl's userdata,
// unretained (curl_easy_perform's caller keeps it alive for the whole call).
import CCurl
import Glibc

/// State of one attempt; every limit is checked here as the bytes arrive.
final class Transfer {
    /// Why the transfer stopped early, if it did; set once, by the first check that fails.
    enum Stop {
        case failed(HTTPClientError)
        /// The caller threw `HTTPClient.Stop`: end quietly with the head already delivered.
        case quietly
        /// A redirect to follow: the 3xx head is complete and its body is not wanted.
        case redirect(status: Int, location: String)
    }

    let method: HTTPMethod
    let url: String
    let limits: HTTPLimits
    let followsRedirects: Bool
    let onHead: (HTTPResponseHead) throws -> Void
    let onBody: (UnsafeRawBufferPointer) throws -> Void
    private(set) var stop: Stop?

    // Response side.
    private var status = 0
    private var fields = HTTPHeaders()
    private var headerBytes = 0
    private(set) var head: HTTPResponseHead?
    private(set) var received: Int64 = 0

    // Request side.
    private let body: HTTPRequestBody
    private(set) var sent: Int64 = 0

    /// Monotonic time of the last byte moved either way (or of the start).
    private var lastActivity = ContinuousClock.now
    private var lastDownloaded: Int64 = 0
    private var lastUploaded: Int64 = 0

    init(method: HTTPMethod, url: String, body: HTTPRequestBody, limits: HTTPLimits, followsRedirects: Bool,
         onHead: @escaping (HTTPResponseHead) throws -> Void, onBody: @escaping (UnsafeRawBufferPointer) throws -> Void) {
        self.method = method
        self.url = url
        self.body = body
        self.limits = limits
        self.followsRedirects = followsRedirects
        self.onHead = onHead
        self.onBody = onBody
    }

    private func fail(_ why: Stop) {
        if stop == nil { stop = why }
    }

    // MARK: response head

    /// One header line (status line, field, or the blank line ending a block). Returns false to abort.
    func header(_ line: UnsafeRawBufferPointer) -> Bool {
        guard stop == nil else { return false }
        lastActivity = .now
        headerBytes += line.count
        if headerBytes > limits.maxHeaderBytes {
            fail(.failed(.headersTooLarge(limit: limits.maxHeaderBytes)))
            return false
        }
        // Trailers of a chunked body come here too; they change nothing.
        if head != nil { return true }
        if line.starts(with: "HTTP/".utf8) {
            // A new block (interim 1xx responses come first): start over.
            let text = String(decoding: line, as: UTF8.self)
            let parts = text.split(separator: " ", maxSplits: 2, omittingEmptySubsequences: true)
            status = parts.count >= 2 ? Int(parts[1].prefix(3)) ?? 0 : 0
            fields = HTTPHeaders()
            return true
        }
        if line.elementsEqual("\r\n".utf8) || line.elementsEqual("\n".utf8) { return endOfHead() }
        if let first = line.first, first == 0x20 || first == 0x09 {
            // Obsolete line folding: part of the previous field's value.
            guard var last = fields.fields.popLast() else { return true }
            last.value += " " + Self.trimmedString(line[...])
            fields.append(last.name, last.value)
            return true
        }
        // On the bytes: String slicing and trimming cost ~2,700 instructions per field (callgrind, cold fetches).
        guard let colon = line.firstIndex(of: UInt8(ascii: ":")) else { return true }
        fields.append(Self.trimmedString(line[..<colon]), Self.trimmedString(line[(colon + 1)...]))
        return true
    }

    /// `bytes` without leading and trailing spaces, tabs, CR and LF, as a String.
    private static func trimmedString(_ bytes: Slice<UnsafeRawBufferPointer>) -> String {
        let isSpace = { (byte: UInt8) in byte == 0x20 || byte == 0x09 || byte == 0x0D || byte == 0x0A }
        var start = bytes.startIndex, end = bytes.endIndex
        while start < end, isSpace(bytes[start]) { start += 1 }
        while end > start, isSpace(bytes[end - 1]) { end -= 1 }
        return String(decoding: UnsafeRawBufferPointer(rebasing: bytes[start..<end]), as: UTF8.self)
    }

    private func endOfHead() -> Bool {
        // 101 would switch protocols; we never ask for it. Other 1xx are interim.
        if (100..<200).contains(status) && status != 101 { return true }
        let complete = HTTPResponseHead(status: status, headers: fields, url: url)
        if followsRedirects, [301, 302, 303, 307, 308].contains(status), let location = fields["Location"] {
            fail(.redirect(status: status, location: location))
            return false
        }
        let hasBody = method != .head && status != 204 && status != 304 && complete.contentLength != 0
        if hasBody, let announced = complete.contentLength, announced > limits.maxBodyBytes {
            fail(.failed(.tooLarge(limit: limits.maxBodyBytes)))
            return false
        }
        let encoding = (fields["Content-Encoding"] ?? "identity").trimmed.lowercased()
        if hasBody, encoding != "identity", !encoding.isEmpty {
            fail(.failed(.encodedBody(String(encoding.prefix(40)))))
            return false
        }
        head = complete
        return call { try onHead(complete) }
    }

    // MARK: response body

    /// Body bytes; returns false to abort.
    func body(_ bytes: UnsafeRawBufferPointer) -> Bool {
        guard stop == nil, head != nil else {
            if stop == nil { fail(.failed(.transport("sent body bytes before a complete head"))) }
            return false
        }
        lastActivity = .now
        received += Int64(bytes.count)
        if received > limits.maxBodyBytes {
            fail(.failed(.tooLarge(limit: limits.maxBodyBytes)))
            return false
        }
        return checkClocks() && call { try onBody(bytes) }
    }

    /// Runs a caller's callback, turning what it throws into the transfer's stop reason.
    private func call(_ callback: () throws -> Void) -> Bool {
        do {
            try callback()
            return true
        } catch is HTTPClient.Stop {
            fail(.quietly)
        } catch {
            fail(.failed(.consumer(error)))
        }
        return false
    }

    // MARK: request body

    /// Fills `buffer` with the next upload bytes; nil aborts the transfer.
    func read(into buffer: UnsafeMutableRawBufferPointer) -> Int? {
        guard stop == nil else { return nil }
        let remaining = body.length - sent
        let room = UnsafeMutableRawBufferPointer(rebasing: buffer.prefix(Int(min(Int64(buffer.count), max(0, remaining)))))
        var count = 0
        switch body {
        case .empty:
            count = 0
        case .bytes(let bytes):
            let start = Int(sent)
            bytes.withUnsafeBytes { source in
                let slice = UnsafeRawBufferPointer(rebasing: source[start..<start + room.count])
                room.copyMemory(from: slice)
            }
            count = room.count
        case .stream(_, let pull):
            guard room.count > 0 else { break }
            do {
                count = try pull(room)
            } catch is HTTPClient.Stop {
                fail(.failed(.consumer(HTTPClient.Stop())))
                return nil
            } catch {
                fail(.failed(.consumer(error)))
                return nil
            }
            guard count >= 0, count <= room.count else {
                fail(.failed(.invalidRequest("upload source returned \(count) for a \(room.count)-byte buffer")))
                return nil
            }
            if count == 0 && remaining > 0 {
                fail(.failed(.invalidRequest("upload source ended after \(sent) of \(body.length) bytes")))
                return nil
            }
        }
        sent += Int64(count)
        if count > 0 { lastActivity = .now }
        return count
    }

    /// Restarts the upload from the beginning (curl asks when it resends on a fresh connection).
    func rewind() -> Bool {
        switch body {
        case .empty, .bytes:
            sent = 0
            return true
        case .stream:
            return sent == 0
        }
    }

    // MARK: clocks

    /// curl's progress report: the place where cancellation, the deadline and idleness are checked while
    /// nothing else happens (curl calls it at least about once a second). Returns false to abort.
    func progress(downloaded: Int64, uploaded: Int64) -> Bool {
        guard stop == nil else { return false }
        if downloaded != lastDownloaded || uploaded != lastUploaded {
            lastDownloaded = downloaded
            lastUploaded = uploaded
            lastActivity = .now
        }
        return checkClocks()
    }

    private func checkClocks() -> Bool {
        if let isCancelled = limits.isCancelled, isCancelled() {
            fail(.failed(.cancelled))
            return false
        }
        let now = ContinuousClock.now
        if now >= limits.deadline {
            fail(.failed(.timedOut(.deadline)))
            return false
        }
        if now - lastActivity > limits.idleTimeout {
            fail(.failed(.timedOut(.idle(limits.idleTimeout))))
            return false
        }
        return true
    }
}

// MARK: - C callbacks (capture nothing; userdata is an unretained Transfer)

private func transfer(_ userdata: UnsafeMutableRawPointer?) -> Transfer {
    Unmanaged<Transfer>.fromOpaque(userdata!).takeUnretainedValue()
}

let curlWriteCallback: curl_write_callback = { data, size, count, userdata in
    let length = size * count
    let ok = transfer(userdata).body(UnsafeRawBufferPointer(start: data, count: length))
    // Any other count than `length` makes curl abort with CURLE_WRITE_ERROR and close the connection.
    return ok ? length : 0
}

let curlHeaderCallback: curl_write_callback = { data, size, count, userdata in
    let length = size * count
    return transfer(userdata).header(UnsafeRawBufferPointer(start: data, count: length)) ? length : 0
}

let curlReadCallback: curl_read_callback = { data, size, count, userdata in
    let buffer = UnsafeMutableRawBufferPointer(start: data, count: size * count)
    return transfer(userdata).read(into: buffer) ?? ccurl_readfunc_abort()
}

let curlSeekCallback: curl_seek_callback = { userdata, offset, origin in
    // curl only ever rewinds to the start.
    guard offset == 0, origin == SEEK_SET, transfer(userdata).rewind() else { return Int32(CURL_SEEKFUNC_CANTSEEK) }
    return Int32(CURL_SEEKFUNC_OK)
}

let curlProgressCallback: curl_xferinfo_callback = { userdata, _, downloaded, _, uploaded in
    transfer(userdata).progress(downloaded: Int64(downloaded), uploaded: Int64(uploaded)) ? 0 : 1
}
