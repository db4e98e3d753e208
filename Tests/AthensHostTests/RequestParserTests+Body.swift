import Testing
@testable import RequestPath

/// POST with a Content-Length body: accepted only when a limit is set (the admin API is on).
extension RequestParserTests {
    static let bodyLimits: RequestLimits = {
        var limits = RequestLimits()
        limits.maxBodyBytes = 100
        return limits
    }()

    @Test("with a body limit, POST is parsed with its Content-Length; the body is the connection's to read")
    func postWithLimit() throws {
        guard case let .request(request, consumed) = Self.parse("POST /admin/delete HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello",
                                                                limits: Self.bodyLimits) else {
            Issue.record("refused"); return
        }
        #expect(request.method == .post && request.contentLength == 5)
        #expect(consumed == "POST /admin/delete HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\n".utf8.count, "the head only")
    }

    @Test("body limits: past it 413, no length 411, chunked 400, GET bodies still 413, no limit 405", arguments: [
        ("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 101\r\n\r\n", 413),
        ("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 99999999999999\r\n\r\n", 413),
        ("POST / HTTP/1.1\r\nHost: x\r\n\r\n", 411),
        ("POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n", 400),
        ("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n", 400),
        ("GET / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello", 413),
        ("PUT / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello", 405),
    ])
    func bodyRefusals(text: String, status: Int) {
        guard case let .failure(got, _, _) = Self.parse(text, limits: Self.bodyLimits) else { Issue.record("\(text.debugDescription) was accepted"); return }
        #expect(got == status, "\(text.debugDescription)")
        guard case let .failure(off, _, _) = Self.parse("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello") else { Issue.record("accepted"); return }
        #expect(off == 405, "without a limit POST stays refused")
    }
}

/// A streamed-body limit (admin uploads) raises what the parser lets through; the handler's plan decides the rest.
extension RequestParserTests {
    @Test("with a streamed limit, a Content-Length past maxBodyBytes but within it is parsed; past both is 413")
    func streamedLimit() throws {
        var limits = Self.bodyLimits
        limits.maxStreamedBodyBytes = 1000
        guard case let .request(request, _) = Self.parse("POST /admin/upload HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n", limits: limits) else {
            Issue.record("refused"); return
        }
        #expect(request.contentLength == 1000 && request.bodySink == nil)
        guard case let .failure(status, reason, _) = Self.parse("POST /admin/upload HTTP/1.1\r\nHost: x\r\nContent-Length: 1001\r\n\r\n", limits: limits) else {
            Issue.record("accepted"); return
        }
        #expect(status == 413 && reason.contains("1000"))
        limits.maxBodyBytes = 0
        guard case let .failure(off, _, _) = Self.parse("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello", limits: limits) else { Issue.record("accepted"); return }
        #expect(off == 405, "a streamed limit alone does not turn POST on: maxBodyBytes is the admin API's switch")
    }
}
