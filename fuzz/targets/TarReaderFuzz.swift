// Fuzz target: GitFetcher's tar reader (Plugins/GitFetcher/TarReader.swift), which parses the output of
// `git archive --format=tar` — bytes that come from whatever repository a module path points at.
//
// Input: byte 0 picks the chunk size (1 to 753 bytes) and which members are wanted; the rest is the tar stream.
// The stream is fed once whole and once in chunks; besides "never traps", checks: both feeds report the same
// members, contents and failure; a wanted member receives exactly the `size` it was announced with, then
// one memberEnd; content never exceeds the input; nothing is reported after the end marker.
import PluginKit

private enum Event: Equatable {
    case member(path: [UInt8], kind: TarReader.Kind, size: UInt64)
    case content([UInt8])
    case end
    case failed(String)
}

/// Feeds `stream` in chunks of `chunk` bytes (0: all at once); returns what the reader reported.
private func read(_ stream: ArraySlice<UInt8>, chunk: Int, wantEvery: Int) -> (events: [Event], ended: Bool) {
    final class Log {
        var events: [Event] = []
        var members = 0
        /// Content since the last other event: adjacent pieces are merged, so chunking does not change the log.
        var pending: [UInt8] = []
        var hasPending = false
        func append(_ event: Event) {
            if hasPending { events.append(.content(pending)); pending.removeAll(keepingCapacity: true); hasPending = false }
            events.append(event)
        }
    }
    let log = Log()
    var reader = TarReader(
        member: { path, kind, size throws(PluginFailure) in
            log.append(.member(path: path, kind: kind, size: size))
            log.members += 1
            return wantEvery > 0 && log.members % wantEvery == 0
        },
        content: { bytes throws(PluginFailure) in
            log.pending.append(contentsOf: bytes)
            log.hasPending = true
        },
        memberEnd: { () throws(PluginFailure) in log.append(.end) })
    let step = chunk == 0 ? max(stream.count, 1) : chunk
    var index = stream.startIndex
    do throws(PluginFailure) {
        while index < stream.endIndex {
            let end = min(index + step, stream.endIndex)
            let fed: Result<Void, PluginFailure> = stream[index..<end].withUnsafeBytes { piece in
                do throws(PluginFailure) { try reader.feed(piece); return .success(()) } catch { return .failure(error) }
            }
            try fed.get()
            index = end
        }
    } catch {
        log.append(.failed(error.message))
    }
    if log.hasPending { log.append(.end); log.events.removeLast() }
    return (log.events, reader.ended)
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    guard size > 0 else { return 0 }
    let bytes = inputBytes(data, size)
    // Bits 0-2 a base, bits 3-6 sixteens to add: sizes that put chunk edges anywhere in a 512-byte block.
    // Byte-by-byte feeds (base 1, nothing added) are rare on purpose: they cost about 10x a whole input.
    let chunk = [1, 3, 7, 61, 100, 255, 511, 513][Int(data[0] & 7)] + Int(data[0] >> 3 & 0x0F) * 16
    let wantEvery = data[0] & 0x80 == 0 ? 1 : 2
    let stream = bytes[1...]

    let whole = read(stream, chunk: 0, wantEvery: wantEvery)
    let chunked = read(stream, chunk: chunk, wantEvery: wantEvery)
    require(whole.events == chunked.events && whole.ended == chunked.ended,
            "feeding in \(chunk)-byte chunks reports differently from one feed")

    var contentBytes = 0
    var open: (kind: TarReader.Kind, size: UInt64, received: Int)?
    var members = 0
    for event in whole.events {
        switch event {
        case let .member(_, kind, size):
            require(open == nil, "member before the previous wanted one's end")
            members += 1
            let wanted = members % wantEvery == 0
            open = wanted ? (kind, size, 0) : nil
        case let .content(piece):
            require(open != nil, "content for a member that was not wanted")
            open!.received += piece.count
            contentBytes += piece.count
            require(UInt64(open!.received) <= open!.size, "more content than the member's size \(open!.size)")
        case .end:
            require(open != nil, "memberEnd without a wanted member")
            require(UInt64(open!.received) == open!.size,
                    "memberEnd after \(open!.received) of \(open!.size) bytes")
            open = nil
        case .failed:
            break
        }
    }
    require(contentBytes <= stream.count, "\(contentBytes) content bytes from a \(stream.count)-byte stream")
    if whole.ended, let failure = whole.events.last, case .failed = failure {
        require(false, "failure after the end marker")
    }
    return 0
}
