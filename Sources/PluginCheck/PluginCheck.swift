import Basics
import HostSupport
import JSON
import PluginHost
import FoundationEssentials
import Glibc
import GoModule
import PluginABI

/// `athens plugin-check PATH.so [options]`: loads any plugin as athens would and runs the storage,
/// fetcher or lock conformance checks against it at run time, printing one row per check.
///
/// Exit status: 0 when no check failed (skipped ones do not count), 1 when one did or the plugin could not
/// be loaded or created, 2 for a usage error.
package enum PluginCheck {
    package static let usage = """
    usage: athens plugin-check PLUGIN.so [--config JSON] [--module M --version V] [options]
      --config JSON        the plugin's config object, as in the manifest (default {})
      --module M           fetchers: a module the fetcher's source has (required for fetchers)
      --version V          fetchers: one of its canonical versions (required for fetchers)
      --large-zip-mib N    storage: size of the large streamed zip (default 64)
      --catalog-versions N storage: versions saved for the catalog walk (default 1050)
      --check-timeout S    seconds one check may run before the run is reported as hung (default 300)
    Prints CHECK, RESULT (PASS, FAIL or SKIP) and DETAIL for each check, then a summary line.
    Exits 0 if no check failed, 1 if one did (or the plugin did not load), 2 on a usage error.
    """

    /// What the command line asked for.
    package struct Options: Equatable {
        package var path: String
        package var configJSON = "{}"
        package var module: String?
        package var version: String?
        package var largeZipMiB: UInt64 = 64
        package var catalogVersions = 1050
        package var checkTimeout: Double = 300
    }

    /// A command line that cannot be run; the message says why.
    package struct UsageError: Error, Equatable, CustomStringConvertible {
        package var description: String
        package init(_ description: String) { self.description = description }
    }

    /// Parses the arguments after "plugin-check".
    package static func parse(_ arguments: [String]) throws(UsageError) -> Options {
        var path: String?
        var options = Options(path: "")
        var rest = arguments[...]
        func value(_ flag: String) throws(UsageError) -> String {
            guard let value = rest.popFirst() else { throw UsageError("\(flag) needs a value") }
            return value
        }
        func number<T: FixedWidthInteger>(_ flag: String, _ range: ClosedRange<T>) throws(UsageError) -> T {
            let text = try value(flag)
            guard let n = T(text), range.contains(n) else { throw UsageError("\(flag): \"\(text)\" is not a number in \(range)") }
            return n
        }
        while let argument = rest.popFirst() {
            switch argument {
            case "--config":
                let text = try value(argument)
                // The reader PluginKit's PluginConfig uses, so a config refused here is refused by create too.
                let parsed: JSONValue
                do {
                    parsed = try JSONReader.parse(text)
                } catch {
                    throw UsageError("--config: not a JSON object (\(error)): \(text)")
                }
                guard case .object = parsed else { throw UsageError("--config: not a JSON object: \(text)") }
                options.configJSON = text
            case "--module": options.module = try value(argument)
            case "--version": options.version = try value(argument)
            case "--large-zip-mib": options.largeZipMiB = try number(argument, 1...4096)
            case "--catalog-versions": options.catalogVersions = try number(argument, 1...1_000_000)
            case "--check-timeout": options.checkTimeout = Double(try number(argument, 1...86_400) as Int)
            case "--help", "-h": throw UsageError("")
            default:
                guard !argument.hasPrefix("-") else { throw UsageError("unknown option \(argument)") }
                guard path == nil else { throw UsageError("one plugin at a time (got \(path!) and \(argument))") }
                path = argument
            }
        }
        guard let path else { throw UsageError("which plugin? give the path of its .so") }
        options.path = path
        if options.module != nil || options.version != nil {
            guard let module = options.module, let version = options.version else {
                throw UsageError("--module and --version go together")
            }
            do {
                try ModulePath.check(path: module, version: version)
            } catch {
                throw UsageError("--module/--version: \(error.message)")
            }
            guard ModulePath.canonicalVersion(version) == version else { throw UsageError("--module/--version: \(version) is not canonical") }
        }
        return options
    }

    /// Runs the command; returns the exit status. Output goes to stdout, usage errors to stderr.
    package static func run(_ arguments: [String]) -> Int32 {
        let options: Options
        do {
            options = try parse(arguments)
        } catch {
            let message = error.description.isEmpty ? usage : "athens plugin-check: \(error.description)\n\(usage)"
            FileDescriptor.writeAll(2, message + "\n")
            return error.description.isEmpty ? 0 : 2
        }
        let report = CheckReport(output: { line in
            FileDescriptor.writeAll(1, line)
        }, checkTimeout: options.checkTimeout, reportsCrashes: true)
        CrashReporter.install()
        startWatchdog(report)
        let status = run(options, report: report)
        FileDescriptor.writeAll(1, report.summary())
        return status
    }

    /// Loads the plugin and runs the checks of its kind into `report`; returns the exit status.
    package static func run(_ options: Options, report: CheckReport) -> Int32 {
        report.begin(title: "athens plugin-check \(options.path)")
        let library: PluginLibrary
        do {
            library = try PluginLibrary(path: options.path)
        } catch {
            report.record(CheckResult(name: "load", outcome: .fail, detail: error.reason))
            return 1
        }
        let toolchain = library.descriptor.toolchain.map { String(cString: $0) } ?? "none (C ABI only)"
        report.record(CheckResult(name: "load", outcome: .pass,
                                  detail: "\(library.kind) plugin \"\(library.name)\", ABI \(ATH_ABI_MAJOR).\(library.abiMinor), toolchain \(toolchain)"))
        let runID = String(UInt64.random(in: 0...UInt64(UInt32.max)), radix: 16)
        switch library.kind {
        case .storage:
            let storage: InstrumentedStorage
            do {
                storage = try InstrumentedStorage(library: library, configJSON: options.configJSON)
            } catch {
                report.record(CheckResult(name: "create", outcome: .fail, detail: "\(PluginCallError.name(of: error.cStatus)): \(error.message)"))
                return 1
            }
            report.record(CheckResult(name: "create", outcome: .pass, detail: Self.configSummary(options.configJSON)))
            StorageChecks(storage: storage, report: report, runID: runID, largeZipBytes: options.largeZipMiB << 20,
                          catalogVersions: options.catalogVersions).run()
        case .fetcher:
            guard let module = options.module, let version = options.version else {
                report.record(CheckResult(name: "arguments", outcome: .fail,
                                          detail: "a fetcher needs --module M --version V: a module version its source has"))
                return 1
            }
            let fetcher: InstrumentedFetcher
            do {
                fetcher = try InstrumentedFetcher(library: library, configJSON: options.configJSON, spoolDirectory: temporaryDirectory())
            } catch {
                report.record(CheckResult(name: "create", outcome: .fail, detail: "\(PluginCallError.name(of: error.cStatus)): \(error.message)"))
                return 1
            }
            report.record(CheckResult(name: "create", outcome: .pass, detail: Self.configSummary(options.configJSON)))
            FetcherChecks(fetcher: fetcher, report: report, module: module, version: version, runID: runID).run()
        case .lock:
            let lock: InstrumentedLock
            do {
                lock = try InstrumentedLock(library: library, configJSON: options.configJSON)
            } catch {
                report.record(CheckResult(name: "create", outcome: .fail, detail: "\(PluginCallError.name(of: error.cStatus)): \(error.message)"))
                return 1
            }
            report.record(CheckResult(name: "create", outcome: .pass, detail: Self.configSummary(options.configJSON)))
            LockChecks(lock: lock, report: report, runID: runID).run()
        }
        return report.failed ? 1 : 0
    }

    /// What the report says of the config: its keys, never its values (a config may hold credentials, and the
    /// report is pasted into issues and CI logs).
    package static func configSummary(_ json: String) -> String {
        guard case .object(let object)? = try? JSONReader.parse(json) else {
            return "config given (not a JSON object)"
        }
        return object.isEmpty ? "config {}" : "config keys: " + object.keys.sorted().joined(separator: ", ") + " (values not shown)"
    }

    /// A thread that ends the process if one check runs past the timeout: a plugin that deadlocks gets a
    /// FAIL row naming the check instead of a silent hang.
    private static func startWatchdog(_ report: CheckReport) {
        PosixThread.start(name: "check-watchdog") {
            while true {
                PosixThread.sleep(seconds: 0.5)
                if let name = report.overdueCheck() {
                    report.record(CheckResult(name: name, outcome: .fail, detail: "still running after \(Int(report.checkTimeout)) s: the plugin hangs"))
                    FileDescriptor.writeAll(1, report.summary())
                    _exit(1)
                }
            }
        }
    }
}

fileprivate extension PluginError {
    /// The C status this error stands for (`ATH_INTERNAL` for a contract violation).
    var cStatus: ath_status {
        switch code {
        case .notFound: ATH_NOT_FOUND
        case .alreadyExists: ATH_ALREADY_EXISTS
        case .invalid: ATH_INVALID
        case .unavailable: ATH_UNAVAILABLE
        case .timeout: ATH_TIMEOUT
        default: ATH_INTERNAL
        }
    }
}
