// Fuzz target: the HTTP request-head parser (Sources/RequestPath/HTTP/RequestParser.swift).
//
// Input: byte 0 picks the limits (bit 0 even: the server's defaults, odd: tiny limits, so the 414/431 edges are
// reachable by short inputs) and, with its other bits, the sizes of the pieces the bytes arrive in; the rest is
// what a client sent. Besides "never traps", checks: fed in those pieces to one parser (as a connection feeds
// it), the verdict is the one-shot verdict and no byte is scanned more than twice (the parser is incremental);
// a request consumed at most the buffer, ends on LF, has a target starting with "/" in visible ASCII,
// parses the same from its own bytes alone, and is incomplete from any shorter prefix; a failure has a
// status in the documented set; an incomplete head is within the limits (the server never buffers more).
// The pieces are fed twice to a parser with a string table (as a connection's parser has): the second time its
// strings come from the table and its header array is refilled in place, and the verdict must not change.
@testable import HostSupport
@testable import PluginHost
@testable import RequestPath

/// Every status `RequestParser.parse` may answer with (see `ParseResult.failure`).
private let documentedStatuses: Set<Int> = [400, 405, 413, 414, 431, 505]

private let tinyLimits = RequestLimits(maxRequestLine: 32, maxHeaderBytes: 64, maxHeaderCount: 3)

private func parse(_ bytes: ArraySlice<UInt8>, _ limits: RequestLimits) -> ParseResult {
    bytes.withUnsafeBytes { RequestParser.parse($0, limits: limits) }
}

/// Feeds `bytes` to one parser in pieces of 1 to 16 bytes, sizes drawn from `seed`; stops at the first verdict.
private func parseInPieces(_ bytes: ArraySlice<UInt8>, _ limits: RequestLimits, seed: UInt8,
                           parser: inout RequestParser) -> (ParseResult, scanned: Int) {
    let scannedBefore = parser.scannedBytes
    var state = UInt32(seed) &* 2_654_435_761 | 1
    var given = 0
    while true {
        state ^= state << 13; state ^= state >> 17; state ^= state << 5
        given = min(bytes.count, given + 1 + Int(state % 16))
        let result = bytes.withUnsafeBytes { parser.parse(UnsafeRawBufferPointer(rebasing: $0[0..<given]), limits: limits) }
        if case .incomplete = result, given < bytes.count { continue }
        return (result, parser.scannedBytes - scannedBefore)
    }
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    guard size > 0 else { return 0 }
    let limits = data[0] & 1 == 0 ? RequestLimits() : tinyLimits
    let buffer = inputBytes(data, size)[1...]
    let count = buffer.count
    let oneShot = parse(buffer, limits)

    let table = StringTable(slotCount: 4)
    var parser = RequestParser(strings: table)
    for round in 0..<2 {
        let (pieces, scanned) = parseInPieces(buffer, limits, seed: data[0] >> 1, parser: &parser)
        require("\(pieces)" == "\(oneShot)", "in pieces (round \(round)): \(pieces); at once: \(oneShot)")
        require(scanned <= 2 * count, "\(scanned) bytes scanned for \(count) fed in pieces")
        // Waiting for more of an unfinished head: the second round starts on a new parser (same table).
        if case .incomplete = pieces { parser = RequestParser(strings: table) }
    }

    switch oneShot {
    case .incomplete:
        // Worst case: 8 leading empty lines, a full request line and its LF, a full header section and CRLF.
        require(count <= limits.maxRequestLine + limits.maxHeaderBytes + 11,
                "incomplete after \(count) bytes, past the limits \(limits)")
    case let .failure(status, reason, allow):
        require(documentedStatuses.contains(status), "status \(status) (\(reason)) is not documented")
        require(!allow || status == 405, "Allow header asked for with status \(status)")
        require(!reason.isEmpty, "failure \(status) without a reason")
    case let .request(request, consumed):
        require(consumed > 0 && consumed <= count, "consumed \(consumed) of \(count)")
        require(buffer[buffer.startIndex + consumed - 1] == 0x0A, "head does not end on LF")
        require(request.target.utf8.first == UInt8(ascii: "/"), "target \(request.target.debugDescription)")
        require(request.target.utf8.allSatisfy { $0 > 0x20 && $0 < 0x7F && $0 != UInt8(ascii: "#") },
                "target has a byte outside visible ASCII or a fragment")
        require(request.minorVersion == 0 || request.minorVersion == 1, "HTTP/1.\(request.minorVersion)")
        require(request.headers.count <= limits.maxHeaderCount, "\(request.headers.count) header fields")
        for (name, value) in request.headers {
            require(!name.isEmpty && !name.utf8.contains { $0 >= 0x41 && $0 <= 0x5A }, "header name \(name.debugDescription)")
            require(!value.utf8.contains { ($0 < 0x20 && $0 != 0x09) || $0 == 0x7F }, "control byte in header value")
        }
        if request.minorVersion == 1 {
            require(request.headers.filter { $0.name == "host" }.count == 1, "HTTP/1.1 request without exactly one Host")
        }
        let rejoined = request.query.isEmpty && !request.target.contains("?")
            ? String(request.path) : String(request.path) + "?" + String(request.query)
        require(rejoined == request.target, "path and query do not make up the target")
        // The same head alone parses the same way; any shorter prefix of it is incomplete (streaming is consistent).
        let head = buffer.prefix(consumed)
        guard case let .request(again, consumedAgain) = parse(head, limits) else {
            require(false, "the head alone does not parse")
            return 0
        }
        require(consumedAgain == consumed && again.target == request.target && again.keepAlive == request.keepAlive
                && again.method == request.method && again.headers.count == request.headers.count,
                "the head alone parses differently")
        guard case .incomplete = parse(head.dropLast(), limits) else {
            require(false, "a prefix of a complete head is not incomplete")
            return 0
        }
    }
    return 0
}
