// Fuzz target: the RESP2 reply reader (Plugins/RedisLock/Client/RESP.swift), which reads whatever a Redis server
// (or something pretending to be one) sends.
//
// Input: byte 0 picks tiny or default limits and a chunk size; the rest is the server's byte stream. Besides
// "never traps", checks: feeding in chunks gives the same replies and the same error as feeding at once; each reply
// is within the limits and encodes back to exactly the bytes it was read from (the reader accepts only canonical
// RESP2); after an error the reader stays failed.
import RedisClient

private func depth(_ value: RedisValue) -> Int {
    if case .array(let items?) = value { return 1 + (items.map(depth).max() ?? 0) }
    return 0
}

private func withinLimits(_ value: RedisValue, _ limits: RESPLimits) -> Bool {
    switch value {
    case .bulk(let bytes?): return bytes.count <= limits.maxBulkLength
    case .array(let items?): return items.count <= limits.maxArrayLength && items.allSatisfy { withinLimits($0, limits) }
    case .simple(let text), .error(let text): return text.utf8.count <= limits.maxLineLength * 3  // lossy UTF-8 may grow
    default: return true
    }
}

private func read(_ input: ArraySlice<UInt8>, _ limits: RESPLimits, chunk: Int) -> (values: [RedisValue], sizes: [Int], error: RedisError?) {
    var reader = RESPReader(limits: limits)
    var values: [RedisValue] = [], sizes: [Int] = []
    var offset = input.startIndex
    var fed = 0
    repeat {
        let end = input.endIndex - offset <= chunk ? input.endIndex : offset + chunk
        reader.feed(input[offset..<end])
        fed += end - offset
        offset = end
        do {
            var before = reader.bufferedCount
            while let value = try reader.next() {
                values.append(value)
                // Bytes this reply took: those buffered before it (plus those consumed by earlier partial reads).
                sizes.append(before - reader.bufferedCount)
                before = reader.bufferedCount
            }
        } catch {
            do {
                _ = try reader.next()
                require(false, "reader recovered after \(error)")
            } catch let again {
                require(again == error, "a failed reader changed its error")
            }
            return (values, sizes, error)
        }
    } while offset < input.endIndex
    return (values, sizes, nil)
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let bytes = inputBytes(data, size)
    guard let control = bytes.first else { return 0 }
    let input = bytes.dropFirst()
    let limits = control & 1 == 0
        ? RESPLimits(maxBulkLength: 64, maxArrayLength: 8, maxDepth: 4, maxLineLength: 32, maxReplyBytes: 256)
        : RESPLimits()
    let whole = read(input, limits, chunk: Int.max)
    for value in whole.values {
        require(depth(value) <= limits.maxDepth, "depth \(depth(value)) past \(limits.maxDepth)")
        require(withinLimits(value, limits), "value past the limits")
    }
    // Canonical: replies read at once re-encode to exactly the bytes they came from, in order (when their status
    // lines are valid UTF-8: the reader decodes those lossily).
    var position = input.startIndex
    for (value, size) in zip(whole.values, whole.sizes) {
        if containsOnlyValidText(value) {
            require(input[position..<(position + size)].elementsEqual(value.encoded), "reply does not re-encode to its bytes")
        }
        position += size
    }
    require(whole.sizes.reduce(0, +) <= input.count, "consumed more than the input")
    let chunk = Int(control >> 1) % 7 + 1
    let pieces = read(input, limits, chunk: chunk)
    require(pieces.values == whole.values, "chunked read (\(chunk)) differs")
    require(pieces.error == whole.error, "chunked error differs: \(String(describing: pieces.error)) vs \(String(describing: whole.error))")
    return 0
}

/// True when every status and error line in `value` decoded without replacement characters, so its encoding is
/// byte-exact (the reader decodes lossily; invalid UTF-8 in a status line is kept as U+FFFD).
private func containsOnlyValidText(_ value: RedisValue) -> Bool {
    switch value {
    case .simple(let text), .error(let text): return !text.unicodeScalars.contains("\u{FFFD}")
    case .array(let items?): return items.allSatisfy(containsOnlyValidText)
    default: return true
    }
}
