import Basics
import FoundationEssentials
import Glibc
import HTTPClient
import JSON

/// `athens admin <command>`: the admin API from the command line against a running athens.
///
///     athens admin [--url URL] [--token TOKEN | --token-file FILE] delete MODULE@VERSION|MODULE@all|--glob GLOB [--yes]
///     athens admin [--url URL] [--token …] upload MODULE@VERSION --mod go.mod --zip module.zip [--time RFC3339] [--force]
///     athens admin [--url URL] [--token …] verify MODULE@VERSION [--quarantine]
///     athens admin [--url URL] [--token …] quarantine list | add MODULE@VERSION --reason TEXT | release MODULE@VERSION
///     athens admin [--url URL] [--token …] retention [--apply]
///
/// URL and token default to ATHENS_ADMIN_URL (else http://127.0.0.1:3000) and ATHENS_ADMIN_TOKEN. Prints the
/// server's JSON answer on stdout; exit 0 on success, 1 when the server refused or failed, 2 on a usage error.
/// `delete` is a dry run unless `--yes` is given.
package enum AdminCommand {
    package static let usage = """
    usage: athens admin [--url URL] [--token TOKEN | --token-file FILE] COMMAND
      delete MODULE@VERSION | MODULE@all | --glob GLOB  [--yes]   (a dry run without --yes)
      upload MODULE@VERSION --mod FILE --zip FILE [--time RFC3339] [--force]
      verify MODULE@VERSION [--quarantine]   (exit 1 when the stored hashes differ from the checksum database's
                                              or the ingest record; --quarantine: then it answers 410)
      quarantine list | add MODULE@VERSION --reason TEXT | release MODULE@VERSION
      retention [--apply]     (what the retention policy removes; a dry run without --apply)
      prefetch FILE|- [--format gosum|gomod|list]   (a go.sum, a go.mod or module@version lines; shows progress;
                                                     exit 1 when any item failed)
      job ID   (a prefetch job's state as JSON)
    URL and token default to $ATHENS_ADMIN_URL (else http://127.0.0.1:3000) and $ATHENS_ADMIN_TOKEN.
    """

    /// A usage error: printed with the usage, exit 2.
    struct Usage: Error { var message: String }

    /// Runs one command; returns the exit status.
    package static func run(_ arguments: [String], environment: [String: String] = ProcessInfo.processInfo.environment) -> Int32 {
        do {
            let (url, token, rest) = try connection(arguments, environment)
            guard let command = rest.first else { throw Usage(message: "no command") }
            // These two poll a job: more than one request each.
            if command == "prefetch" { return try prefetch(url: url, token: token, Array(rest.dropFirst())) }
            if command == "job" { return try job(url: url, token: token, Array(rest.dropFirst())) }
            let (path, body) = try request(command, Array(rest.dropFirst()))
            return send(url: url + path, token: token, body: body)
        } catch let error as Usage {
            FileDescriptor.writeAll(2, "athens admin: \(error.message)\n\(usage)\n")
            return 2
        } catch {
            FileDescriptor.writeAll(2, "athens admin: \(error)\n")
            return 2
        }
    }

    private static func connection(_ arguments: [String], _ env: [String: String]) throws -> (String, String, [String]) {
        var url = env["ATHENS_ADMIN_URL"].flatMap { $0.isEmpty ? nil : $0 } ?? "http://127.0.0.1:3000"
        var token = env["ATHENS_ADMIN_TOKEN"] ?? ""
        var rest = arguments[...]
        while let first = rest.first, first.hasPrefix("--") {
            rest = rest.dropFirst()
            guard let value = rest.popFirst() else { throw Usage(message: "\(first) needs a value") }
            switch first {
            case "--url": url = value
            case "--token": token = value
            case "--token-file":
                guard let text = try? String(contentsOfFile: value, encoding: .utf8) else { throw Usage(message: "cannot read \(value)") }
                token = text.trimmingNewlines
            default: throw Usage(message: "unknown option \(first)")
            }
        }
        guard url.hasPrefix("http://") || url.hasPrefix("https://") else { throw Usage(message: "--url must be http:// or https://") }
        guard !token.isEmpty else { throw Usage(message: "no token: --token, --token-file or ATHENS_ADMIN_TOKEN") }
        while url.hasSuffix("/") { url.removeLast() }
        return (url, token, Array(rest))
    }

    /// The API path and body of a command.
    private static func request(_ command: String, _ arguments: [String]) throws -> (String, HTTPRequestBody) {
        var options: [String: String] = [:], flags = Set<String>(), positional: [String] = []
        var rest = arguments[...]
        while let argument = rest.popFirst() {
            switch argument {
            case "--yes", "--force", "--quarantine", "--apply": flags.insert(argument)
            case "--glob", "--mod", "--zip", "--time", "--reason":
                guard let value = rest.popFirst() else { throw Usage(message: "\(argument) needs a value") }
                options[argument] = value
            default:
                guard !argument.hasPrefix("--") else { throw Usage(message: "unknown option \(argument)") }
                positional.append(argument)
            }
        }
        switch command {
        case "delete":
            var fields: [(String, JSONValue)]
            if let glob = options["--glob"] {
                guard positional.isEmpty else { throw Usage(message: "delete: --glob or MODULE@VERSION, not both") }
                fields = [("glob", .string(glob))]
            } else {
                guard positional.count == 1 else { throw Usage(message: "delete: one MODULE@VERSION, MODULE@all or --glob") }
                let (module, version) = try split(positional[0])
                fields = [("module", .string(module)), version == "all" ? ("versions", .string("all")) : ("version", .string(version))]
            }
            fields.append(("dryRun", .bool(!flags.contains("--yes"))))
            return ("/admin/delete", .bytes(Array(JSONValue.object(JSONObject(fields)).text().utf8)))
        case "upload":
            guard positional.count == 1, let modFile = options["--mod"], let zipFile = options["--zip"] else {
                throw Usage(message: "upload: MODULE@VERSION --mod FILE --zip FILE")
            }
            let (module, version) = try split(positional[0])
            guard let mod = FileManager.default.contents(atPath: modFile), !mod.isEmpty else { throw Usage(message: "cannot read \(modFile)") }
            // The zip is streamed from its file (it may be 500 MiB), after the go.mod.
            guard let zip = ReadOnlyFile(path: zipFile), let zipSize = zip.size else {
                throw Usage(message: "cannot read \(zipFile)")
            }
            var query = "module=\(escape(module))&version=\(escape(version))&modBytes=\(mod.count)"
            if let time = options["--time"] { query += "&time=\(escape(time))" }
            if flags.contains("--force") { query += "&force=true" }
            var head = Array(mod)[...]
            return ("/admin/upload?" + query, .stream(length: Int64(mod.count + zipSize)) { buffer in
                if !head.isEmpty {
                    let n = min(head.count, buffer.count)
                    buffer.copyBytes(from: head.prefix(n))
                    head = head.dropFirst(n)
                    return n
                }
                return try zip.read(into: buffer)
            })
        case "verify":
            guard positional.count == 1, options.isEmpty, flags.subtracting(["--quarantine"]).isEmpty else {
                throw Usage(message: "verify: one MODULE@VERSION [--quarantine]")
            }
            let (module, version) = try split(positional[0])
            return ("/admin/verify", .bytes(Array(JSONValue.object(JSONObject([("module", .string(module)), ("version", .string(version)),
                                                                        ("quarantine", .bool(flags.contains("--quarantine")))])).text().utf8)))
        case "quarantine":
            guard flags.isEmpty, let action = positional.first, ["list", "add", "release"].contains(action),
                  positional.count == (action == "list" ? 1 : 2), (options["--reason"] != nil) == (action == "add"), options.count <= 1
            else { throw Usage(message: "quarantine: list | add MODULE@VERSION --reason TEXT | release MODULE@VERSION") }
            var fields: [(String, JSONValue)] = [("action", .string(action))]
            if action != "list" {
                let (module, version) = try split(positional[1])
                fields += [("module", .string(module)), ("version", .string(version))]
            }
            if let reason = options["--reason"] { fields.append(("reason", .string(reason))) }
            return ("/admin/quarantine", .bytes(Array(JSONValue.object(JSONObject(fields)).text().utf8)))
        case "retention":
            guard positional.isEmpty, options.isEmpty, flags.isSubset(of: ["--apply"]) else { throw Usage(message: "retention: only --apply") }
            return ("/admin/retention", .bytes(Array(JSONValue.object(JSONObject([("dryRun", .bool(!flags.contains("--apply")))])).text().utf8)))
        default:
            throw Usage(message: "unknown command \(command)")
        }
    }

    private static func split(_ text: String) throws -> (String, String) {
        guard let at = text.lastIndex(of: "@"), at != text.startIndex, text.index(after: at) != text.endIndex else {
            throw Usage(message: "\(text): expected MODULE@VERSION")
        }
        return (String(text[..<at]), String(text[text.index(after: at)...]))
    }

    static func escape(_ text: String) -> String {
        text.percentEncoded { $0.isASCIIAlphanumeric || "-._~/".utf8.contains($0) }
    }

    private static func send(url: String, token: String, body: HTTPRequestBody) -> Int32 {
        let request = HTTPRequest(.post, url: url, headers: HTTPHeaders([("Authorization", "Bearer " + token), ("Content-Type", "application/json")]),
                                  body: body)
        do {
            let response = try HTTPClient().fetch(request, limits: HTTPLimits(maxBodyBytes: 64 << 20, timeout: .seconds(600), idleTimeout: .seconds(600)))
            FileDescriptor.writeAll(1, response.body + (response.body.last == 0x0A ? [] : [0x0A]))
            // A verify that found a mismatch answers 200: the command still fails, so scripts notice.
            let mismatch = url.hasSuffix("/admin/verify") && response.body.starts(with: Array(#"{"module""#.utf8))
                && String(decoding: response.body, as: UTF8.self).contains(#""match":false"#)
            if !(200..<300).contains(response.status) || mismatch {
                FileDescriptor.writeAll(2, "athens admin: HTTP \(response.status)\n")
                return 1
            }
            return 0
        } catch {
            FileDescriptor.writeAll(2, "athens admin: \(url): \(error)\n")
            return 1
        }
    }
}

/// A file open for reading, closed when the last holder (an upload's body stream) lets go of it.
private final class ReadOnlyFile {
    private let fd: Int32

    init?(path: String) {
        fd = open(path, O_RDONLY | O_CLOEXEC)
        if fd < 0 { return nil }
    }

    deinit { close(fd) }

    /// The file's size now; nil when fstat fails.
    var size: Int? {
        var info = stat()
        return fstat(fd, &info) == 0 ? Int(info.st_size) : nil
    }

    struct ReadError: Error, CustomStringConvertible {
        let code: Int32
        var description: String { "cannot read the zip: " + String(cString: strerror(code)) }
    }

    /// The next bytes into a prefix of `buffer`; 0 at the end.
    func read(into buffer: UnsafeMutableRawBufferPointer) throws(ReadError) -> Int {
        while true {
            let n = Glibc.read(fd, buffer.baseAddress, buffer.count)
            if n >= 0 { return n }
            if errno != EINTR { throw ReadError(code: errno) }
        }
    }
}
