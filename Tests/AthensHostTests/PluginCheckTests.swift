// `athens plugin-check` against good, broken and lying plugins. Longer than ~400 lines on purpose: the broken
// plugins are C sources inline in this file, each next to the check that must catch it.
import Foundation
import Testing
@testable import HostSupport
@testable import PluginCheck
@testable import PluginHost
@testable import RequestPath

/// `athens plugin-check`: known-good plugins pass, and each deliberately broken plugin fails the very check
/// that covers its bug. The broken plugins are the C examples with one entry replaced by a wrapper.
@Suite("athens plugin-check", .blockingBodies)
struct PluginCheckTests {
    static let directory = TestSupport.makeTemporaryDirectory("plugin-check")

    /// Runs the checks in-process (no watchdog) and returns the rows by name.
    static func check(_ path: String, config: String = "{}", module: String? = nil, version: String? = nil,
                      catalogVersions: Int = 1000) throws -> (status: Int32, rows: [String: CheckResult]) {
        var options = PluginCheck.Options(path: path)
        options.configJSON = config
        options.module = module
        options.version = version
        options.largeZipMiB = 8
        options.catalogVersions = catalogVersions
        let report = CheckReport(output: nil)
        let status = PluginCheck.run(options, report: report)
        var rows: [String: CheckResult] = [:]
        for row in report.results {
            #expect(rows[row.name] == nil, "two rows named \(row.name)")
            rows[row.name] = row
        }
        return (status, rows)
    }

    /// A storage plugin made of the C example with `patch` applied to its tables by a wrapping query.
    static func brokenStorage(_ name: String, _ code: String, patch: String) throws -> String {
        let text = """
        #define _DEFAULT_SOURCE
        #define ath_plugin_query example_inner_query
        #include "\(CPluginBuild.storageSource)"
        #undef ath_plugin_query
        \(code)
        static ath_storage_methods patched;
        static ath_plugin descriptor_copy;
        ATH_EXPORT const ath_plugin *ath_plugin_query(uint32_t major) {
            const ath_plugin *inner = example_inner_query(major);
            if (!inner) return NULL;
            patched = *inner->storage;
            \(patch)
            descriptor_copy = *inner;
            descriptor_copy.storage = &patched;
            return &descriptor_copy;
        }
        """
        return try CPluginBuild.compile(text: text, into: directory, name: "libBroken\(name).so")
    }

    /// A fetcher plugin made of the C fetcher example with `patch` applied to its table.
    static func brokenFetcher(_ name: String, _ code: String, patch: String) throws -> String {
        let text = """
        #define ath_plugin_query example_inner_query
        #include "\(CPluginBuild.fetcherSource)"
        #undef ath_plugin_query
        \(code)
        static ath_fetcher_methods patched;
        static ath_plugin descriptor_copy;
        ATH_EXPORT const ath_plugin *ath_plugin_query(uint32_t major) {
            const ath_plugin *inner = example_inner_query(major);
            if (!inner) return NULL;
            patched = *inner->fetcher;
            \(patch)
            descriptor_copy = *inner;
            descriptor_copy.fetcher = &patched;
            return &descriptor_copy;
        }
        """
        return try CPluginBuild.compile(text: text, into: directory, name: "libBroken\(name).so")
    }

    // MARK: - Good plugins pass

    @Test("known-good storage plugins pass every check, whatever their blob shape", arguments: ["ExampleStorage", "MemoryStorage", "FileStorage", "CTestStorage"])
    func goodStoragePasses(plugin: String) throws {
        var config = "{}"
        let path: String
        switch plugin {
        case "ExampleStorage": path = try CPluginBuild.built.storage
        case "CTestStorage": path = try TestSupport.compileCPlugin("test_storage.c", into: Self.directory, name: "libCTestStorageForCheck.so")
        case "FileStorage":
            path = TestSupport.plugin(plugin)
            // Built with the package: missing is a broken build, not a reason to pass without checking.
            try #require(FileManager.default.fileExists(atPath: path), "FileStorage not built at \(path)")
            config = CPluginBuild.rootConfig(TestSupport.makeTemporaryDirectory("check-filestorage"))
        default: path = TestSupport.plugin(plugin)
        }
        let (status, rows) = try Self.check(path, config: config)
        let failures = rows.values.filter { $0.outcome == .fail }
        #expect(failures.isEmpty, "\(failures)")
        #expect(status == 0)
        #expect(rows.count == 20)
        // The shapes each one hands out: plugin-check reads fd, data and stream blobs alike.
        let shapes = try #require(rows["storage: round trip of all three files"]).detail
        let expected = ["ExampleStorage": ".zip=fd", "MemoryStorage": ".zip=data", "FileStorage": ".zip=fd", "CTestStorage": ".zip=read"][plugin]!
        #expect(shapes.contains(expected), "\(shapes)")
        // The C fixture has no catalog: skipped with a note, not failed.
        let catalog = try #require(rows["storage: catalog pages complete, never repeat"])
        #expect(catalog.outcome == (plugin == "CTestStorage" ? .skip : .pass), "\(catalog.detail)")
        let release = try #require(rows["storage: blobs well-formed, released exactly once"])
        #expect(release.detail.contains("each released once"))
    }

    @Test("ProxyFetcher passes against a GOPROXY upstream without @latest: it picks latest from the list as the go command does")
    func proxyFetcherPasses() throws {
        let upstream = try ChildProcess("/usr/bin/env", ["python3", TestSupport.packageRoot + "/Tests/Fixtures/fake_upstream.py",
                                                         "--root", CPluginBuild.tree, "--port", "0"])
        defer { upstream.stop() }
        let port = try #require(upstream.firstLine(), "upstream did not start: \(upstream.stderr)")
        let (status, rows) = try Self.check(TestSupport.plugin("ProxyFetcher"), config: #"{"url":"http://127.0.0.1:\#(port)"}"#,
                                            module: "example.com/hello", version: "v1.2.0-pre.1")
        #expect(status == 0, "\(rows.values.filter { $0.outcome == .fail })")
        #expect(rows.count == 15)
        let latest = try #require(rows["fetcher: resolve \"latest\" gives a canonical version"])
        #expect(latest.outcome == .pass)
        #expect(latest.detail == "latest is v1.1.0", "\(latest.detail)")
    }

    // MARK: - Broken storage plugins fail the matching check

    static let brokenStorages: [(name: String, code: String, patch: String, failing: String)] = [
        ("Overwrites", """
         static ath_status overwrite(void *i, const char *m, const char *v, const uint8_t *info, uint64_t is,
                                     const uint8_t *mod, uint64_t ms, const ath_reader *zip, ath_error *err) {
             int32_t there = 0;
             storage_exists(i, m, v, &there, err);
             if (there) storage_remove(i, m, v, err);
             return storage_save(i, m, v, info, is, mod, ms, zip, err);
         }
         """, "patched.save = overwrite;", "storage: second save keeps the first bytes"),
        ("MissingIsInternal", """
         static ath_status open_internal(void *i, const char *m, const char *v, ath_artifact a, ath_blob *out, ath_error *err) {
             ath_status s = storage_open(i, m, v, a, out, err);
             return s == ATH_NOT_FOUND ? ATH_INTERNAL : s;
         }
         """, "patched.open = open_internal;", "storage: missing version is not found"),
        ("UnterminatedMessage", """
         static ath_status open_unterminated(void *i, const char *m, const char *v, ath_artifact a, ath_blob *out, ath_error *err) {
             ath_status s = storage_open(i, m, v, a, out, err);
             if (s != ATH_OK) memset(err->message, 'x', sizeof err->message);
             return s;
         }
         """, "patched.open = open_unterminated;", "storage: error messages NUL-terminated, bounded"),
        ("OverflowingMessage", """
         static ath_status open_overflow(void *i, const char *m, const char *v, ath_artifact a, ath_blob *out, ath_error *err) {
             ath_status s = storage_open(i, m, v, a, out, err);
             if (s != ATH_OK) {
                 volatile char *p = (volatile char *)err;
                 for (int k = 0; k < 600; k++) p[k] = k == 599 ? 0 : 'y';
             }
             return s;
         }
         """, "patched.open = open_overflow;", "storage: error messages NUL-terminated, bounded"),
        ("EmptyMessage", """
         static ath_status remove_silent(void *i, const char *m, const char *v, ath_error *err) {
             ath_status s = storage_remove(i, m, v, err);
             if (s != ATH_OK) err->message[0] = 0;
             return s;
         }
         """, "patched.remove = remove_silent;", "storage: error messages NUL-terminated, bounded"),
        ("TouchesOutOnFailure", """
         static ath_status open_scribble(void *i, const char *m, const char *v, ath_artifact a, ath_blob *out, ath_error *err) {
             ath_status s = storage_open(i, m, v, a, out, err);
             if (s != ATH_OK) out->size = 12345;
             return s;
         }
         """, "patched.open = open_scribble;", "storage: blobs well-formed, released exactly once"),
        ("TwoShapes", """
         static ath_status open_two(void *i, const char *m, const char *v, ath_artifact a, ath_blob *out, ath_error *err) {
             ath_status s = storage_open(i, m, v, a, out, err);
             if (s == ATH_OK && out->data) out->fd = 0;
             return s;
         }
         """, "patched.open = open_two;", "storage: blobs well-formed, released exactly once"),
        ("CatalogIgnoresToken", """
         static ath_status catalog_restart(void *i, const char *t, uint32_t n, ath_emit_module_version_fn e, void *c, char *next, ath_error *err) {
             (void)t;
             return storage_catalog(i, "", n, e, c, next, err);
         }
         """, "patched.catalog = catalog_restart;", "storage: catalog pages complete, never repeat"),
        ("CatalogStopsEarly", """
         static ath_status catalog_one_page(void *i, const char *t, uint32_t n, ath_emit_module_version_fn e, void *c, char *next, ath_error *err) {
             ath_status s = storage_catalog(i, t, n, e, c, next, err);
             next[0] = 0;
             return s;
         }
         """, "patched.catalog = catalog_one_page;", "storage: catalog pages complete, never repeat"),
        ("CatalogUnterminatedToken", """
         static ath_status catalog_unterminated(void *i, const char *t, uint32_t n, ath_emit_module_version_fn e, void *c, char *next, ath_error *err) {
             ath_status s = storage_catalog(i, t, n, e, c, next, err);
             if (next[0]) memset(next, 'z', ATH_CATALOG_TOKEN_CAPACITY);
             return s;
         }
         """, "patched.catalog = catalog_unterminated;", "storage: catalog pages complete, never repeat"),
        ("RemoveWipesBytes", """
         static ath_status remove_wipe(void *i, const char *m, const char *v, ath_error *err) {
             struct store *s = i;
             int found;
             pthread_mutex_lock(&s->lock);
             size_t at = lower_bound(s, m, v, &found);
             if (found) {
                 struct entry *e = s->entries[at];
                 memset(e->info, 0, e->info_size);
                 if (ftruncate(e->zip_fd, 0) != 0) e->zip_size = 0;
             }
             pthread_mutex_unlock(&s->lock);
             return storage_remove(i, m, v, err);
         }
         """, "patched.remove = remove_wipe;", "storage: remove keeps a held blob readable"),
        ("IgnoresReaderFailure", """
         struct lenient { const ath_reader *inner; };
         static int64_t lenient_read(void *ctx, uint8_t *buf, uint64_t cap) {
             struct lenient *l = ctx;
             int64_t n = l->inner->read(l->inner->ctx, buf, cap);
             if (n >= 0) return n;
             memset(buf, 0, cap);
             return (int64_t)cap;
         }
         static ath_status save_lenient(void *i, const char *m, const char *v, const uint8_t *info, uint64_t is,
                                        const uint8_t *mod, uint64_t ms, const ath_reader *zip, ath_error *err) {
             struct lenient l = {zip};
             ath_reader wrapped = {zip->size, lenient_read, &l};
             return storage_save(i, m, v, info, is, mod, ms, &wrapped, err);
         }
         """, "patched.save = save_lenient;", "storage: failed zip read stores nothing"),
        ("ListsOtherModules", """
         struct all_ctx { ath_emit_version_fn emit; void *ctx; };
         static int32_t emit_all(void *c, const char *m, const char *v) { (void)m; struct all_ctx *a = c; return a->emit(a->ctx, v); }
         static ath_status list_everything(void *i, const char *m, ath_emit_version_fn e, void *c, ath_error *err) {
             char next[ATH_CATALOG_TOKEN_CAPACITY];
             struct all_ctx a = {e, c};
             (void)m;
             return storage_catalog(i, "", 100000, emit_all, &a, next, err);
         }
         """, "patched.list = list_everything;", "storage: list"),
        ("ShortZip", """
         static ath_status open_short(void *i, const char *m, const char *v, ath_artifact a, ath_blob *out, ath_error *err) {
             ath_status s = storage_open(i, m, v, a, out, err);
             if (s == ATH_OK && a == ATH_ARTIFACT_ZIP && out->size > 1000000) out->size -= 4096;
             return s;
         }
         """, "patched.open = open_short;", "storage: large streamed zip"),
    ]

    @Test("a storage plugin with one bug fails the check that covers it", arguments: brokenStorages.map(\.name))
    func brokenStorageFails(name: String) throws {
        let broken = try #require(Self.brokenStorages.first { $0.name == name })
        let path = try Self.brokenStorage(broken.name, broken.code, patch: broken.patch)
        let (status, rows) = try Self.check(path)
        #expect(status == 1)
        let row = try #require(rows[broken.failing], "no row \(broken.failing)")
        #expect(row.outcome == .fail, "\(name): \(row)")
        // The bug is named, not just flagged: the round trip of a healthy entry still passes.
        if !broken.failing.contains("round trip") && name != "TwoShapes" {
            #expect(rows["storage: round trip of all three files"]?.outcome == .pass)
        }
    }

    @Test("the failure details say what went wrong")
    func failureDetails() throws {
        let overwrites = try Self.check(try Self.brokenStorage("OverwritesDetail", Self.brokenStorages[0].code, patch: Self.brokenStorages[0].patch))
        #expect(overwrites.rows["storage: second save keeps the first bytes"]?.detail.contains("replaced the stored") == true)
        let overflow = Self.brokenStorages.first { $0.name == "OverflowingMessage" }!
        let overflowing = try Self.check(try Self.brokenStorage("OverflowDetail", overflow.code, patch: overflow.patch))
        #expect(overflowing.rows["storage: error messages NUL-terminated, bounded"]?.detail.contains("wrote past the 512-byte") == true)
        let stuck = Self.brokenStorages.first { $0.name == "CatalogIgnoresToken" }!
        let looping = try Self.check(try Self.brokenStorage("StuckDetail", stuck.code, patch: stuck.patch))
        #expect(looping.rows["storage: catalog pages complete, never repeat"]?.detail.contains("came back twice") == true)
    }

    // MARK: - Fetchers

    @Test("the CTestFetcher fixture's deliberate lies are caught", arguments: [
        ("fetcher: list gives canonical versions", "\"junk\""),
        ("fetcher: unknown module is not found", "succeeded"),
        ("fetcher: resolve of the version gives it back", "ATH_NOT_FOUND"),
    ])
    func lyingFetcher(row: String, detail: String) throws {
        let path = try TestSupport.compileCPlugin("test_fetcher.c", into: Self.directory, name: "libCTestFetcherForCheck.so")
        let (status, rows) = try Self.check(path, module: "example.com/ok/x", version: "v1.0.0")
        #expect(status == 1)
        #expect(rows[row]?.outcome == .fail)
        #expect(rows[row]?.detail.contains(detail) == true, "\(String(describing: rows[row]))")
        // What it does right is still reported as right.
        #expect(rows["fetcher: zip passes the go command's checks"]?.outcome == .pass)
        #expect(rows["fetcher: a refused sink makes fetch fail"]?.outcome == .pass)
    }

    static let brokenFetchers: [(name: String, code: String, patch: String, failing: [String])] = [
        ("IgnoresRefusal", """
         struct deaf { const ath_sink *inner; };
         /* Passes the bytes on in 16-byte pieces and never hears a refusal. */
         static int32_t deaf_write(void *ctx, const uint8_t *d, uint64_t n) {
             struct deaf *x = ctx;
             for (uint64_t k = 0; k < n; k += 16) (void)x->inner->write(x->inner->ctx, d + k, n - k < 16 ? n - k : 16);
             return 0;
         }
         static ath_status fetch_deaf(void *i, const char *m, const char *v, const ath_sink *info, const ath_sink *mod, const ath_sink *zip, ath_error *err) {
             struct deaf a = {info}, b = {mod}, c = {zip};
             ath_sink sa = {deaf_write, &a}, sb = {deaf_write, &b}, sc = {deaf_write, &c};
             return fetch(i, m, v, &sa, &sb, &sc, err);
         }
         """, "patched.fetch = fetch_deaf;", ["fetcher: a refused sink makes fetch fail", "fetcher: sinks used serially, not after a refusal"]),
        ("ListsPseudoVersions", """
         static ath_status list_pseudo(void *i, const char *m, ath_emit_version_fn e, void *c, ath_error *err) {
             ath_status s = list(i, m, e, c, err);
             if (s == ATH_OK) e(c, "v0.0.0-20240101000000-abcdefabcdef");
             return s;
         }
         """, "patched.list = list_pseudo;", ["fetcher: list gives canonical versions"]),
        ("UnknownIsUnavailable", """
         static ath_status fetch_unavailable(void *i, const char *m, const char *v, const ath_sink *info, const ath_sink *mod, const ath_sink *zip, ath_error *err) {
             ath_status s = fetch(i, m, v, info, mod, zip, err);
             return s == ATH_NOT_FOUND ? ATH_UNAVAILABLE : s;
         }
         """, "patched.fetch = fetch_unavailable;", ["fetcher: unknown module is not found", "fetcher: unknown version is not found"]),
        ("LatestIsPseudoJunk", """
         static ath_status resolve_junk(void *i, const char *m, const char *q, const ath_sink *info, ath_error *err) {
             if (strcmp(q, "latest") != 0) return resolve(i, m, q, info, err);
             const char *j = "{\\"Version\\":\\"latest\\"}";
             return info->write(info->ctx, (const uint8_t *)j, strlen(j)) ? ATH_INVALID : ATH_OK;
         }
         """, "patched.resolve = resolve_junk;", ["fetcher: resolve \"latest\" gives a canonical version"]),
    ]

    @Test("a fetcher plugin with one bug fails the checks that cover it", arguments: brokenFetchers.map(\.name))
    func brokenFetcherFails(name: String) throws {
        let broken = try #require(Self.brokenFetchers.first { $0.name == name })
        let path = try Self.brokenFetcher(broken.name, broken.code, patch: broken.patch)
        let (status, rows) = try Self.check(path, config: CPluginBuild.rootConfig(CPluginBuild.tree), module: "example.com/hello", version: "v1.1.0")
        #expect(status == 1)
        for failing in broken.failing {
            #expect(rows[failing]?.outcome == .fail, "\(name): \(String(describing: rows[failing]))")
        }
        #expect(rows["fetcher: fetch writes all three files"]?.outcome == .pass)
    }

    @Test("a source serving a wrong .info, a bad go.mod or a broken zip fails the matching check", arguments: [
        ("v1.1.0.info", #"{"Version":"v1.0.0"}"#, "fetcher: .info names the version"),
        ("v1.1.0.mod", "go 1.19\n", "fetcher: .mod declares the module's path"),
        ("v1.1.0.mod", "module example.com/other\n", "fetcher: .mod declares the module's path"),
        ("v1.1.0.zip", "PK this is not a zip", "fetcher: zip passes the go command's checks"),
    ])
    func badSourceFiles(file: String, content: String, failing: String) throws {
        let tree = TestSupport.makeTemporaryDirectory("bad-tree") + "/tree"
        try TestSupport.makeFixtureProxy(tree)
        try content.write(toFile: tree + "/example.com/hello/@v/" + file, atomically: true, encoding: .utf8)
        let (status, rows) = try Self.check(CPluginBuild.built.fetcher, config: CPluginBuild.rootConfig(tree), module: "example.com/hello", version: "v1.1.0")
        #expect(status == 1)
        #expect(rows[failing]?.outcome == .fail, "\(String(describing: rows[failing]))")
        let failed = rows.values.filter { $0.outcome == .fail }.map(\.name)
        // Only the checks that read the broken file fail.
        #expect(failed.allSatisfy { $0 == failing || $0.contains("resolve") }, "\(failed)")
    }

    @Test("a zip whose data does not match its directory (one byte flipped) fails the zip check: entries are read in full")
    func zipCorruptData() throws {
        let tree = TestSupport.makeTemporaryDirectory("corrupt-tree") + "/tree"
        try TestSupport.makeFixtureProxy(tree)
        let path = tree + "/example.com/hello/@v/v1.1.0.zip"
        var bytes = try [UInt8](Data(contentsOf: URL(fileURLWithPath: path)))
        // The first entry's data starts after its 30-byte local header, name and extra field.
        let dataStart = 30 + Int(bytes[26]) + Int(bytes[27]) << 8 + Int(bytes[28]) + Int(bytes[29]) << 8
        bytes[dataStart + 1] ^= 0x10
        try Data(bytes).write(to: URL(fileURLWithPath: path))
        let (status, rows) = try Self.check(CPluginBuild.built.fetcher, config: CPluginBuild.rootConfig(tree), module: "example.com/hello", version: "v1.1.0")
        #expect(status == 1)
        let row = try #require(rows["fetcher: zip passes the go command's checks"])
        #expect(row.outcome == .fail)
        #expect(row.detail.hasPrefix("invalid module zip: zip: "), "\(row.detail)")
    }

    @Test("a zip with entries outside module@version/ is caught with Go's message")
    func zipWrongPrefix() throws {
        let tree = TestSupport.makeTemporaryDirectory("prefix-tree") + "/tree"
        try TestSupport.makeFixtureProxy(tree)
        // Serve hello v1.0.0's zip as v1.1.0's: every entry has the wrong prefix.
        let versions = tree + "/example.com/hello/@v/"
        try FileManager.default.removeItem(atPath: versions + "v1.1.0.zip")
        try FileManager.default.copyItem(atPath: versions + "v1.0.0.zip", toPath: versions + "v1.1.0.zip")
        let (_, rows) = try Self.check(CPluginBuild.built.fetcher, config: CPluginBuild.rootConfig(tree), module: "example.com/hello", version: "v1.1.0")
        let row = try #require(rows["fetcher: zip passes the go command's checks"])
        #expect(row.outcome == .fail)
        #expect(row.detail.contains("path does not have prefix \"example.com/hello@v1.1.0/\""), "\(row.detail)")
    }

    // MARK: - The command

    @Test("the command prints a heading, one row per check and a summary, and exits 0 when all pass")
    func tableFormat() throws {
        let result = try TestSupport.run(TestSupport.athens, ["plugin-check", CPluginBuild.built.fetcher, "--config", CPluginBuild.rootConfig(CPluginBuild.tree),
                                                              "--module", "example.com/hello", "--version", "v1.1.0"])
        #expect(result.status == 0, "\(result.stdout) \(result.stderr)")
        let lines = result.stdout.split(separator: "\n").map(String.init)
        #expect(lines.first == "athens plugin-check \(try CPluginBuild.built.fetcher)")
        #expect(lines.dropFirst().first?.hasPrefix("CHECK") == true)
        #expect(lines.dropFirst().first?.contains("RESULT") == true)
        #expect(lines.last == "plugin-check OK: 15 checks (15 pass, 0 fail, 0 skip)")
        let rows = CheckRow.parse(result.stdout)
        #expect(rows.count == 15)
        #expect(rows.first?.name == "load")
        #expect(rows.first?.detail.contains("fetcher plugin \"ExampleFetcher\", ABI 1.1") == true)
        // The config's keys are named, its values never (they may be credentials): the tree's path is a value.
        #expect(rows.first(where: { $0.name == "create" })?.detail == "config keys: root (values not shown)")
    }

    @Test("a failing plugin makes the command exit 1, with FAIL rows and a FAILED summary")
    func failingExit() throws {
        let broken = Self.brokenStorages[0]
        let path = try Self.brokenStorage("OverwritesCLI", broken.code, patch: broken.patch)
        let result = try TestSupport.run(TestSupport.athens, ["plugin-check", path, "--large-zip-mib", "2"])
        #expect(result.status == 1)
        #expect(CheckRow.parse(result.stdout).contains { $0.name == broken.failing && $0.outcome == "FAIL" })
        #expect(result.stdout.split(separator: "\n").last?.hasPrefix("plugin-check FAILED: 20 checks") == true, "\(result.stdout)")
    }

    @Test("what cannot be checked is a FAIL row and exit 1", arguments: [
        ("not-a-plugin", [String](), "load"),
        ("fetcher", [String](), "arguments"),
        ("storage", ["--config", #"{"bogus":"1"}"#], "create"),
    ])
    func cannotCheck(kind: String, extra: [String], row: String) throws {
        let path: String
        switch kind {
        case "not-a-plugin":
            path = Self.directory + "/libText.so"
            try "not a library".write(toFile: path, atomically: true, encoding: .utf8)
        case "fetcher": path = try CPluginBuild.built.fetcher
        default: path = try CPluginBuild.built.storage
        }
        let result = try TestSupport.run(TestSupport.athens, ["plugin-check", path] + extra)
        #expect(result.status == 1)
        let rows = CheckRow.parse(result.stdout)
        #expect(rows.last?.name == row)
        #expect(rows.last?.outcome == "FAIL")
        if kind == "storage" { #expect(rows.last?.detail.contains("unknown key \"bogus\"") == true) }
        if kind == "not-a-plugin" { #expect(rows.last?.detail.hasPrefix("cannot load") == true) }
    }

    @Test("bad command lines are refused with a reason and exit 2", arguments: [
        ([String](), "which plugin?"),
        (["a.so", "b.so"], "one plugin at a time"),
        (["a.so", "--bogus"], "unknown option --bogus"),
        (["a.so", "--config"], "--config needs a value"),
        (["a.so", "--config", "[1]"], "not a JSON object"),
        (["a.so", "--config", "{"], "not a JSON object"),
        (["a.so", "--config", #"{"a": 1, "a": 2}"#], #"not a JSON object (duplicate key "a" at byte 9)"#),
        (["a.so", "--config", #"{"a": 1,}"#], "not a JSON object (expected a string key"),
        (["a.so", "--module", "example.com/m"], "--module and --version go together"),
        (["a.so", "--version", "v1.0.0"], "--module and --version go together"),
        (["a.so", "--module", "Example Com", "--version", "v1.0.0"], "--module/--version"),
        (["a.so", "--module", "example.com/m", "--version", "v1.0"], "--module/--version"),
        (["a.so", "--module", "example.com/m/v2", "--version", "v1.0.0"], "--module/--version"),
        (["a.so", "--large-zip-mib", "0"], "not a number in 1...4096"),
        (["a.so", "--large-zip-mib", "x"], "not a number"),
        (["a.so", "--catalog-versions", "-1"], "not a number"),
        (["a.so", "--check-timeout", "0"], "not a number"),
    ])
    func usageErrors(arguments: [String], message: String) throws {
        let error = #expect(throws: PluginCheck.UsageError.self) { _ = try PluginCheck.parse(arguments) }
        #expect(error?.description.contains(message) == true, "got: \(error?.description ?? "")")
    }

    @Test("the report names a config's keys, never its values")
    func configSummary() {
        #expect(PluginCheck.configSummary(#"{"secretAccessKey": "s3cr3t", "bucket": {"x": 1}}"#) == "config keys: bucket, secretAccessKey (values not shown)")
        #expect(PluginCheck.configSummary("{}") == "config {}")
        #expect(PluginCheck.configSummary(#"{"a": 1,}"#) == "config given (not a JSON object)")
        #expect(PluginCheck.configSummary("[1]") == "config given (not a JSON object)")
    }

    @Test("a usage error exits 2 and prints the usage on stderr")
    func usageExit() throws {
        let result = try TestSupport.run(TestSupport.athens, ["plugin-check", "--bogus"])
        #expect(result.status == 2)
        #expect(result.stderr.contains("unknown option --bogus"))
        #expect(result.stderr.contains("usage: athens plugin-check"))
        #expect(result.stdout.isEmpty)
        let help = try TestSupport.run(TestSupport.athens, ["plugin-check", "--help"])
        #expect(help.status == 0)
        #expect(help.stderr.contains("--module M"))
    }

    @Test("options are read as given")
    func parsesOptions() throws {
        let options = try PluginCheck.parse(["x.so", "--config", #"{"root":"/t"}"#, "--module", "example.com/Upper/v2", "--version", "v2.1.0-rc.1",
                                             "--large-zip-mib", "3", "--catalog-versions", "1200", "--check-timeout", "9"])
        #expect(options == PluginCheck.Options(path: "x.so", configJSON: #"{"root":"/t"}"#, module: "example.com/Upper/v2", version: "v2.1.0-rc.1",
                                               largeZipMiB: 3, catalogVersions: 1200, checkTimeout: 9))
        #expect(try PluginCheck.parse(["y.so"]) == PluginCheck.Options(path: "y.so"))
    }

    @Test("a plugin that hangs is reported by the watchdog, naming the check, instead of hanging the command")
    func watchdog() throws {
        let path = try Self.brokenStorage("Hangs", """
            static ath_status open_hang(void *i, const char *m, const char *v, ath_artifact a, ath_blob *out, ath_error *err) {
                if (strstr(m, "/missing")) for (;;) sleep(1000);
                return storage_open(i, m, v, a, out, err);
            }
            """, patch: "patched.open = open_hang;")
        let started = Date()
        let result = try TestSupport.run(TestSupport.athens, ["plugin-check", path, "--check-timeout", "2"], timeout: 60)
        #expect(result.status == 1)
        #expect(Date().timeIntervalSince(started) < 30)
        let row = try #require(CheckRow.parse(result.stdout).last)
        #expect(row.name == "storage: missing version is not found")
        #expect(row.outcome == "FAIL")
        #expect(row.detail.contains("still running after 2 s"))
    }

    @Test("a plugin that crashes the process leaves a FAIL row naming the check and the signal", arguments: [
        ("Segfault", "*(volatile int *)0 = 1;", "SIGSEGV"),
        ("Abort", "abort();", "SIGABRT"),
    ])
    func crash(name: String, statement: String, signal: String) throws {
        let path = try Self.brokenStorage("Crash" + name, """
            static ath_status open_crash(void *i, const char *m, const char *v, ath_artifact a, ath_blob *out, ath_error *err) {
                if (strstr(m, "/empty")) { \(statement) }
                return storage_open(i, m, v, a, out, err);
            }
            """, patch: "patched.open = open_crash;")
        let result = try TestSupport.run(TestSupport.athens, ["plugin-check", path, "--large-zip-mib", "1"], timeout: 60)
        #expect(result.status != 0)
        let rows = CheckRow.parse(result.stdout)
        // The checks before the crash ran (not vacuous) and passed.
        #expect(rows.dropLast().contains { $0.name == "storage: round trip of all three files" }, "\(rows)")
        #expect(rows.dropLast().allSatisfy { $0.outcome == "PASS" }, "\(rows)")
        let last = try #require(rows.last)
        #expect(last.name == "storage: empty files round trip")
        #expect(last.outcome == "FAIL")
        #expect(last.detail.hasPrefix(signal + " "), "\(last.detail)")
        #expect(last.detail.contains("in the plugin: the process died"))
        // The same handler as the server's: one stderr line naming the call in flight.
        #expect(result.stderr.contains("athens: fatal \(signal) "), "\(result.stderr)")
        #expect(result.stderr.contains(" in plugin call: plugin-check call storage.open example.com/athens-plugin-check/"), "\(result.stderr)")
    }

    @Test("rows stay one line: long names keep a separator, multi-line details are joined and bounded")
    func rowFormat() {
        let long = String(repeating: "n", count: 60)
        #expect(CheckReport.format(name: long, outcome: "PASS", detail: "d") == long + " PASS   d\n")
        #expect(CheckReport.format(name: "x", outcome: "FAIL", detail: "a\nb\r\nc") == "x" + String(repeating: " ", count: 51) + " FAIL   a | b  | c\n")
        let bounded = CheckReport.format(name: "x", outcome: "SKIP", detail: String(repeating: "d", count: 5000))
        #expect(bounded.count < CheckReport.detailLimit + 70)
        #expect(bounded.hasSuffix("…\n"))
    }
}
