import Basics
import HostSupport
import PluginHost
import Dispatch
import FoundationEssentials
import Glibc

/// How one conformance check ended.
package enum CheckOutcome: String, Sendable, Equatable {
    case pass = "PASS"
    case fail = "FAIL"
    /// The plugin does not offer what the check needs (an optional entry); never a failure.
    case skip = "SKIP"
}

/// One row of the plugin-check table.
package struct CheckResult: Sendable, Equatable {
    /// Stable, human-readable name, e.g. "storage: round trip of all three files".
    package var name: String
    package var outcome: CheckOutcome
    /// What was seen: why it failed, or a note (blob shapes, counts, why it was skipped).
    package var detail: String
}

/// A failed expectation inside a check; its message becomes the row's detail.
package struct CheckFailure: Error, CustomStringConvertible {
    package var description: String
    package init(_ description: String) { self.description = description }
}

/// A check that cannot run because the plugin lacks an optional entry.
package struct CheckSkipped: Error, CustomStringConvertible {
    package var description: String
    package init(_ description: String) { self.description = description }
}

/// Collects check results, printing each row as soon as it is known.
///
/// Rows are streamed rather than printed at the end so that a plugin that crashes or hangs the process
/// still leaves the checks that ran, and the one that was running, on the terminal.
package final class CheckReport: @unchecked Sendable {
    /// Width of the name column; longer names push their row's columns right.
    package static let nameWidth = 52
    /// Longest detail printed; a detail is one line.
    package static let detailLimit = 400

    private let lock = PosixLock()
    private var rows: [CheckResult] = []
    private let output: ((String) -> Void)?
    /// When the running check started and its name, for the watchdog.
    private var running: (name: String, started: DispatchTime)?
    /// Longest a single check may run before the whole run is reported as hung.
    package let checkTimeout: Double
    /// Whether each check arms `CrashReporter` with its row (the command does; in-process callers do not).
    private let reportsCrashes: Bool

    /// `output` receives each line (with its newline); nil collects silently (tests).
    package init(output: ((String) -> Void)?, checkTimeout: Double = 300, reportsCrashes: Bool = false) {
        self.output = output
        self.checkTimeout = checkTimeout
        self.reportsCrashes = reportsCrashes
    }

    /// Every result so far, in order.
    package var results: [CheckResult] { lock.withLock { rows } }

    /// Whether any check failed.
    package var failed: Bool { results.contains { $0.outcome == .fail } }

    /// Prints the table heading.
    package func begin(title: String) {
        output?(title + "\n")
        output?(Self.format(name: "CHECK", outcome: "RESULT", detail: "DETAIL"))
    }

    /// Runs one check: PASS when `body` returns (its string is the detail), FAIL on `CheckFailure` or
    /// any other error, SKIP on `CheckSkipped`.
    @discardableResult
    package func check(_ name: String, _ body: () throws -> String) -> CheckOutcome {
        lock.withLock { running = (name, DispatchTime.now()) }
        if reportsCrashes { CrashReporter.arm(row: String(Self.format(name: name, outcome: "FAIL", detail: "CRASH").dropLast("CRASH\n".count))) }
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
    package func record(_ result: CheckResult) {
        lock.withLock {
            rows.append(result)
            running = nil
        }
        output?(Self.format(name: result.name, outcome: result.outcome.rawValue, detail: result.detail))
    }

    /// The closing line: counts and the verdict.
    package func summary() -> String {
        let all = results
        let passed = all.filter { $0.outcome == .pass }.count
        let failed = all.filter { $0.outcome == .fail }.count
        let skipped = all.filter { $0.outcome == .skip }.count
        // Deliberately not "N passed, N failed": CI log scanners read that shape as a test runner's verdict.
        return "plugin-check \(failed == 0 ? "OK" : "FAILED"): \(all.count) checks (\(passed) pass, \(failed) fail, \(skipped) skip)\n"
    }

    /// Name of the check running for longer than `checkTimeout`, if any.
    package func overdueCheck(now: DispatchTime = .now()) -> String? {
        lock.withLock {
            guard let running else { return nil }
            let elapsed = Double(now.uptimeNanoseconds - running.started.uptimeNanoseconds) / 1e9
            return elapsed > checkTimeout ? running.name : nil
        }
    }

    /// One table row: name padded to the column, the outcome, the detail on one bounded line.
    package static func format(name: String, outcome: String, detail: String) -> String {
        var line = detail.replacingAll("\r", with: " ").replacingAll("\n", with: " | ")
        if line.count > detailLimit { line = String(line.prefix(detailLimit)) + "…" }
        let padded = name.count >= nameWidth ? name : name + String(repeating: " ", count: nameWidth - name.count)
        let status = outcome.count >= 6 ? outcome + " " : outcome + String(repeating: " ", count: 6 - outcome.count)
        return padded + " " + status + " " + line + "\n"
    }
}
