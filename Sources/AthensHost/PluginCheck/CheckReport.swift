import Foundation

/// How one conformance check ended.
enum CheckOutcome: String, Sendable, Equatable {
    case pass = "PASS"
    case fail = "FAIL"
    /// The plugin does not offer what the check needs (an optional entry); never a failure.
    case skip = "SKIP"
}

/// One row of the plugin-check table.
struct CheckResult: Sendable, Equatable {
    /// Stable, human-readable name, e.g. "storage: round trip of all three files".
    var name: String
    var outcome: CheckOutcome
    /// What was seen: why it failed, or a note (blob shapes, counts, why it was skipped).
    var detail: String
}

/// A failed expectation inside a check; its message becomes the row's detail.
struct CheckFailure: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}

/// A check that cannot run because the plugin lacks an optional entry.
struct CheckSkipped: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}

/// Collects check results, printing each row as soon as it is known.
///
/// Rows are streamed rather than printed at the end so that a plugin that crashes or hangs the process
/// still leaves the checks that ran, and the one that was running, on the terminal.
final class CheckReport: @unchecked Sendable {
    /// Width of the name column; longer names push their row's columns right.
    static let nameWidth = 52
    /// Longest detail printed; a detail is one line.
    static let detailLimit = 400

    private let lock = NSLock()
    private var rows: [CheckResult] = []
    private let output: ((String) -> Void)?
    /// When the running check started and its name, for the watchdog.
    private var running: (name: String, started: DispatchTime)?
    /// Longest a single check may run before the whole run is reported as hung.
    let checkTimeout: Double
    /// Whether each check arms `CrashReporter` with its row (the command does; in-process callers do not).
    private let reportsCrashes: Bool

    /// `output` receives each line (with its newline); nil collects silently (tests).
    init(output: ((String) -> Void)?, checkTimeout: Double = 300, reportsCrashes: Bool = false) {
        self.output = output
        self.checkTimeout = checkTimeout
        self.reportsCrashes = reportsCrashes
    }

    /// Every result so far, in order.
    var results: [CheckResult] { lock.withLock { rows } }

    /// Whether any check failed.
    var failed: Bool { results.contains { $0.outcome == .fail } }

    /// Prints the table heading.
    func begin(title: String) {
        output?(title + "\n")
        output?(Self.format(name: "CHECK", outcome: "RESULT", detail: "DETAIL"))
    }

    /// Runs one check: PASS when `body` returns (its string is the detail), FAIL on `CheckFailure` or
    /// any other error, SKIP on `CheckSkipped`.
    @discardableResult
    func check(_ name: String, _ body: () throws -> String) -> CheckOutcome {
        lock.withLock { running = (name, DispatchTime.now()) }
        if reportsCrashes { CrashReporter.arm(name) }
        defer { if reportsCrashes { CrashReporter.disarm() } }
        let result: CheckResult
        do {
            result = CheckResult(name: name, outcome: .pass, detail: try body())
        } catch let skipped as CheckSkipped {
            result = CheckResult(name: name, outcome: .skip, detail: skipped.description)
        } catch {
            result = CheckResult(name: name, outcome: .fail, detail: "\(error)")
        }
        record(result)
        return result.outcome
    }

    /// Adds a row decided elsewhere (e.g. "load").
    func record(_ result: CheckResult) {
        lock.withLock {
            rows.append(result)
            running = nil
        }
        output?(Self.format(name: result.name, outcome: result.outcome.rawValue, detail: result.detail))
    }

    /// The closing line: counts and the verdict.
    func summary() -> String {
        let all = results
        let passed = all.filter { $0.outcome == .pass }.count
        let failed = all.filter { $0.outcome == .fail }.count
        let skipped = all.filter { $0.outcome == .skip }.count
        // Deliberately not "N passed, N failed": CI log scanners read that shape as a test runner's verdict.
        return "plugin-check \(failed == 0 ? "OK" : "FAILED"): \(all.count) checks (\(passed) pass, \(failed) fail, \(skipped) skip)\n"
    }

    /// Name of the check running for longer than `checkTimeout`, if any.
    func overdueCheck(now: DispatchTime = .now()) -> String? {
        lock.withLock {
            guard let running else { return nil }
            let elapsed = Double(now.uptimeNanoseconds - running.started.uptimeNanoseconds) / 1e9
            return elapsed > checkTimeout ? running.name : nil
        }
    }

    /// One table row: name padded to the column, the outcome, the detail on one bounded line.
    static func format(name: String, outcome: String, detail: String) -> String {
        var line = detail.replacingOccurrences(of: "\r", with: " ").replacingOccurrences(of: "\n", with: " | ")
        if line.count > detailLimit { line = String(line.prefix(detailLimit)) + "…" }
        let padded = name.count >= nameWidth ? name : name + String(repeating: " ", count: nameWidth - name.count)
        let status = outcome.count >= 6 ? outcome + " " : outcome + String(repeating: " ", count: 6 - outcome.count)
        return padded + " " + status + " " + line + "\n"
    }
}
