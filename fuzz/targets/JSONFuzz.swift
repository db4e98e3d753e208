// Fuzz target: the one JSON reader (Sources/JSON/JSONReader.swift) and its writer.
//
// Input: any bytes, read as a JSON text with the default limits. Besides "never traps" (deep nesting, long
// numbers, bad UTF-8 and escapes), checks that a refusal gives an offset inside the text and a one-line reason;
// that only well-formed UTF-8 is accepted; and that an accepted value written back (as is, and with sorted keys)
// reads back as the same value, the sorted text being a fixed point.
import JSON

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let bytes = inputBytes(data, size)
    let value: JSONValue
    do {
        value = try JSONReader.parse(bytes)
    } catch {
        require(error.offset >= 0 && error.offset <= bytes.count, "offset \(error.offset) of \(bytes.count) bytes")
        require(!error.reason.isEmpty && !error.description.utf8.contains(UInt8(ascii: "\n")), "reason \(error.reason.debugDescription)")
        return 0
    }
    require(String(validating: bytes, as: UTF8.self) != nil, "accepted text that is not UTF-8")
    let written = value.text()
    require(!written.utf8.contains(0), "written text holds a NUL")
    require((try? JSONReader.parse(written)) == value, "written text \(written.prefix(200).debugDescription) reads back differently")
    let sorted = value.text(sortingKeys: true)
    guard let again = try? JSONReader.parse(sorted) else {
        require(false, "sorted text \(sorted.prefix(200).debugDescription) is refused")
        return 0
    }
    require(again.text() == sorted, "sorted text is not a fixed point")
    return 0
}
