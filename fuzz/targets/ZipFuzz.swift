// Fuzz target: the zip central-directory reader (Sources/GoModule/ZipDirectory.swift) and the module zip rules
// (Sources/GoModule/ModuleZip.swift), as the stasher applies them to a fetched zip.
//
// Input: the zip file. It is read from memory and, as production reads spooled zips, from a file descriptor;
// a zip the module rules accept is then read in full (ArtifactValidator.checkZip: local headers, inflate, CRC-32);
// both must agree. Accepted entries must lie inside the file without overlapping; stored entries' sizes agree.
// The entries are then checked as the module named by the first entry ("<module>@<version>/…") and as
// example.com/m@v1.0.0; a zip `ModuleZip.check` accepts has every entry under the module's prefix.
#if canImport(Glibc)
import Glibc
#endif
import GoModule

/// One unlinked temporary file, rewritten for each input (the fd path of `ZipDirectory.read`).
private let spool = unlinkedTemporaryFile(in: "/tmp", prefix: "athens-zip-fuzz")

private func readFromFile(_ bytes: [UInt8]) -> Result<[ZipEntry], ZipError> {
    rewrite(spool, with: bytes)
    do throws(ZipError) {
        return .success(try ZipDirectory.read(fd: spool, size: UInt64(bytes.count)))
    } catch {
        return .failure(error)
    }
}

private func checkEntries(_ entries: [ZipEntry], size: Int) {
    require(entries.count * 46 <= size, "\(entries.count) entries in \(size) bytes")
    var ranges: [(start: UInt64, end: UInt64)] = []
    for entry in entries {
        let (end, overflow) = entry.localHeaderOffset.addingReportingOverflow(30 + UInt64(entry.name.utf8.count))
        let (dataEnd, overflow2) = end.addingReportingOverflow(entry.compressedSize)
        require(!overflow && !overflow2 && dataEnd <= UInt64(size), "entry \(entry.name.debugDescription) runs past the file")
        require(entry.method != 0 || entry.compressedSize == entry.uncompressedSize, "stored entry with two sizes")
        require(entry.isDirectory == (entry.name.utf8.last == UInt8(ascii: "/")), "isDirectory of \(entry.name.debugDescription)")
        ranges.append((entry.localHeaderOffset, dataEnd))
    }
    ranges.sort { $0.start < $1.start }
    for (a, b) in zip(ranges, ranges.dropFirst()) {
        require(a.end <= b.start, "overlapping entries accepted")
    }
}

private func checkModule(_ module: String, _ version: String, _ entries: [ZipEntry], size: Int) {
    do throws(ZipError) {
        try ModuleZip.check(module: module, version: version, entries: entries, zipSize: UInt64(size))
    } catch {
        require(!error.message.isEmpty, "an empty module zip error")
        return
    }
    require(ModulePath.canonicalVersion(version) == version, "non-canonical version \(version.debugDescription) accepted")
    let prefix = "\(module)@\(version)/"
    var total: UInt64 = 0
    for entry in entries {
        require(entry.name.utf8.starts(with: prefix.utf8), "entry \(entry.name.debugDescription) outside \(prefix.debugDescription)")
        if !entry.isDirectory { total += entry.uncompressedSize }
    }
    require(total <= ModuleZip.maxZipFile, "total size \(total) accepted")
    if let goMod = ModuleZip.goModEntry(module: module, version: version, entries: entries) {
        require(goMod.name.utf8.elementsEqual((prefix + "go.mod").utf8), "go.mod entry \(goMod.name.debugDescription)")
    }
    // Then what the stasher does next: every entry read in full (local headers, inflate, CRC-32) from the spool.
    do throws(ZipError) {
        let checked = try ArtifactValidator.checkZip(fd: spool, size: UInt64(size), module: module, version: version)
        require(checked == entries, "checkZip saw other entries than the directory read")
    } catch {
        require(error.message.hasPrefix("zip: "), "a content error without the zip: prefix: \(error.message)")
    }
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let bytes = inputBytes(data, size)
    let fromMemory: Result<[ZipEntry], ZipError>
    do throws(ZipError) {
        fromMemory = .success(try ZipDirectory.read(bytes: bytes))
    } catch {
        fromMemory = .failure(error)
    }
    let fromFile = readFromFile(bytes)
    require(fromMemory == fromFile, "memory and fd reads differ: \(fromMemory) vs \(fromFile)")
    guard case let .success(entries) = fromMemory else { return 0 }
    checkEntries(entries, size: size)

    // The module the zip claims to hold: "<module>@<version>/" from the first entry's name.
    if let first = entries.first?.name.utf8, let at = first.firstIndex(of: UInt8(ascii: "@")),
       let slash = first[at...].firstIndex(of: UInt8(ascii: "/")) {
        let module = String(decoding: first[..<at], as: UTF8.self)
        let version = String(decoding: first[first.index(after: at)..<slash], as: UTF8.self)
        checkModule(module, version, entries, size: size)
    }
    checkModule("example.com/m", "v1.0.0", entries, size: size)
    return 0
}
