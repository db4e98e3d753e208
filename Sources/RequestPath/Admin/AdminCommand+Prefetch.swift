import Basics
import FoundationEssentials
import Glibc
import HTTPClient
import JSON

/// `athens admin prefetch FILE|- [--format gosum|gomod|list]` and `athens admin job ID`.
///
/// prefetch posts the file (a go.sum, a go.mod or a module@version list; `-` is stdin), then polls the job until it is
/// done: on a terminal (stderr is a TTY) one `\r`-redrawn progress line (a bar, finished/total, failed, the item in
/// progress); otherwise one line per finished item. Then a summary line. Exit 0 when every item is done or skipped,
/// 1 when any failed or the server refused the body, 2 on a usage error or when the server cannot be reached.
extension AdminCommand {
    /// How often the job is polled.
    static let pollSeconds = 0.5

    static func prefetch(url: String, token: String, _ arguments: [String]) throws -> Int32 {
        var format: String?, files: [String] = []
        var rest = arguments[...]
        while let argument = rest.popFirst() {
            if argument == "--format" {
                guard let value = rest.popFirst(), ["gosum", "gomod", "list"].contains(value) else { throw Usage(message: "--format gosum|gomod|list") }
                format = value
            } else if argument.hasPrefix("--") {
                throw Usage(message: "unknown option \(argument)")
            } else {
                files.append(argument)
            }
        }
        guard files.count == 1 else { throw Usage(message: "prefetch: one FILE (a go.sum, a go.mod or a module@version list), or - for stdin") }
        let body: [UInt8]
        if files[0] == "-" {
            guard let data = FileDescriptor.readToEnd(0) else { throw Usage(message: "cannot read stdin") }
            body = data
        } else {
            guard let data = FileManager.default.contents(atPath: files[0]) else { throw Usage(message: "cannot read \(files[0])") }
            body = Array(data)
        }
        let client = HTTPClient()
        let started: HTTPResponse
        do {
            started = try client.fetch(HTTPRequest(.post, url: url + "/admin/prefetch" + (format.map { "?format=" + $0 } ?? ""),
                                                   headers: headers(token, json: false), body: .bytes(Array(body))), limits: limits)
        } catch {
            return fail("\(url): \(error)", status: 2)
        }
        guard started.status == 202, case let .object(answer) = try? JSONReader.parse(started.body), case let .string(id)? = answer["id"] else {
            return fail("HTTP \(started.status): \(message(started.body))", status: 1)
        }
        if case let .array(notes)? = answer["notes"] {
            for case let .string(note) in notes { err("note: \(note)\n") }
        }
        let tty = isatty(STDERR_FILENO) == 1
        var reported = Set<Int>()
        while true {
            let job: JSONObject
            do {
                let response = try client.fetch(HTTPRequest(.get, url: url + "/admin/jobs/" + id, headers: headers(token, json: false)), limits: limits)
                guard response.status == 200, case let .object(object) = try? JSONReader.parse(response.body) else {
                    return fail("job \(id): HTTP \(response.status): \(message(response.body))", status: 1)
                }
                job = object
            } catch {
                return fail("\(url): \(error)", status: 2)
            }
            let progress = Progress(job)
            if tty {
                err("\r\u{1B}[K" + progress.bar(width: 30))
            } else {
                for (index, line) in progress.finishedLines() where reported.insert(index).inserted { err(line + "\n") }
            }
            if progress.done {
                if tty { err("\n") }
                err(progress.summary(id: id) + "\n")
                if progress.failed > 0 {
                    if tty { for (_, line) in progress.finishedLines() where line.hasPrefix("failed") { err(line + "\n") } }
                    return 1
                }
                return 0
            }
            PosixThread.sleep(seconds: pollSeconds)
        }
    }

    static func job(url: String, token: String, _ arguments: [String]) throws -> Int32 {
        guard arguments.count == 1, !arguments[0].hasPrefix("--") else { throw Usage(message: "job: one job ID") }
        do {
            let response = try HTTPClient().fetch(HTTPRequest(.get, url: url + "/admin/jobs/" + escape(arguments[0]), headers: headers(token, json: false)),
                                                  limits: limits)
            FileDescriptor.writeAll(1, response.body + (response.body.last == 0x0A ? [] : [0x0A]))
            guard response.status == 200 else { return fail("HTTP \(response.status)", status: 1) }
            if case let .object(job)? = try? JSONReader.parse(response.body), Progress(job).failed > 0 { return 1 }
            return 0
        } catch {
            return fail("\(url): \(error)", status: 2)
        }
    }

    private static let limits = HTTPLimits(maxBodyBytes: 64 << 20, timeout: .seconds(60), idleTimeout: .seconds(60))

    static func headers(_ token: String, json: Bool) -> HTTPHeaders {
        HTTPHeaders([("Authorization", "Bearer " + token)] + (json ? [("Content-Type", "application/json")] : [("Content-Type", "text/plain")]))
    }

    private static func err(_ text: String) { FileDescriptor.writeAll(2, text) }

    private static func fail(_ text: String, status: Int32) -> Int32 {
        err("athens admin: \(text)\n")
        return status
    }

    /// The `error` of a JSON error answer, else the body as text (short).
    private static func message(_ body: [UInt8]) -> String {
        if case let .object(object)? = try? JSONReader.parse(body), case let .string(message)? = object["error"] { return message }
        return String(decoding: body.prefix(500), as: UTF8.self)
    }

    /// One poll's answer, read for display.
    struct Progress {
        var total = 0, finished = 0, failed = 0, doneCount = 0, skipped = 0
        var done = false
        var seconds = ""
        var current: String?
        /// (index, "state module@version[: error]") of each finished item.
        var items: [(Int, String, String)] = []

        init(_ job: JSONObject) {
            func int(_ key: String) -> Int { if case let .number(n)? = job[key] { n.int ?? 0 } else { 0 } }
            total = int("total")
            doneCount = int("done")
            skipped = int("skipped")
            failed = int("failed")
            finished = doneCount + skipped + failed
            done = job["state"] == .string("done")
            if case let .number(n)? = job["seconds"] { seconds = n.literal }
            guard case let .array(list)? = job["items"] else { return }
            for (index, value) in list.enumerated() {
                guard case let .object(item) = value, case let .string(state)? = item["state"], case let .string(module)? = item["module"] else { continue }
                var name = module
                if case let .string(version)? = item["version"] { name += "@" + version } else if case let .string(query)? = item["query"] { name += "@" + query }
                if state == "running" && current == nil { current = name }
                guard state == "done" || state == "skipped" || state == "failed" else { continue }
                var error = ""
                if case let .string(message)? = item["error"] { error = ": " + message }
                items.append((index, state, name + error))
            }
        }

        func finishedLines() -> [(Int, String)] { items.map { ($0.0, "\($0.1) \($0.2)") } }

        /// `[#####.....] 12/40  failed 1  example.com/m@v1.2.3`
        func bar(width: Int) -> String {
            let filled = total == 0 ? width : finished * width / total
            let bar = String(repeating: "#", count: filled) + String(repeating: ".", count: width - filled)
            var line = "[\(bar)] \(finished)/\(total)"
            if failed > 0 { line += "  failed \(failed)" }
            if let current { line += "  " + String(current.prefix(80)) }
            return line
        }

        func summary(id: String) -> String {
            "prefetch \(id): \(total) items: \(doneCount) fetched, \(skipped) already stored, \(failed) failed (\(seconds) s)"
        }
    }
}
