// The environment variables that override a manifest (ATHENS_*), applied after the file is read.
import FoundationEssentials
import JSON

extension Manifest {
    /// Applies the environment overrides (named like Athens' where Athens has the knob).
    package mutating func applyEnvironment(_ env: [String: String]) throws(ManifestError) {
        if let listen = env["ATHENS_LISTEN"], !listen.isEmpty { self.listen = listen }
        if let port = env["ATHENS_PORT"], !port.isEmpty {
            let digits = port.hasPrefix(":") ? String(port.dropFirst()) : port
            guard let number = UInt16(digits) else { throw ManifestError("ATHENS_PORT: \"\(port)\" is not a port") }
            let host = (try? HTTPServer.parseListen(listen).host) ?? "127.0.0.1"
            self.listen = (host.contains(":") ? "[\(host)]" : host) + ":\(number)"
        }
        if let dir = env["ATHENS_PLUGIN_DIR"], !dir.isEmpty { pluginDirectory = dir }
        if let type = env["ATHENS_STORAGE_TYPE"], !type.isEmpty {
            switch type {
            case "memory": storage = PluginUse(plugin: "MemoryStorage", configJSON: "{}")
            case "disk": storage = PluginUse(plugin: "FileStorage", configJSON: #"{"root":"./athens-data"}"#)
            default: storage = PluginUse(plugin: type, configJSON: "{}")
            }
        }
        if let root = env["ATHENS_DISK_STORAGE_ROOT"], !root.isEmpty {
            guard storage.plugin == "FileStorage" else { throw ManifestError("ATHENS_DISK_STORAGE_ROOT: storage is \(storage.plugin), not FileStorage") }
            storage.configJSON = JSONValue.object(JSONObject([("root", .string(root))])).text()
        }
        if let url = env["ATHENS_UPSTREAM_URL"], !url.isEmpty {
            guard let index = fetchers.firstIndex(where: { $0.use.plugin == "ProxyFetcher" }) else {
                throw ManifestError("ATHENS_UPSTREAM_URL: no ProxyFetcher in fetchers")
            }
            var config = JSONObject()
            if case .object(let object)? = try? JSONReader.parse(fetchers[index].use.configJSON) { config = object }
            config["url"] = .string(url)
            fetchers[index].use.configJSON = JSONValue.object(config).text(sortingKeys: true)
        }
        if let workers = env["ATHENS_PROTOCOL_WORKERS"], !workers.isEmpty {
            guard let n = Int(workers), n >= 1, n <= 4096 else { throw ManifestError("ATHENS_PROTOCOL_WORKERS: must be 1…4096") }
            downloadWorkers = n
        }
        let user = env["ATHENS_BASIC_AUTH_USER"] ?? env["BASIC_AUTH_USER"] ?? ""
        let password = env["ATHENS_BASIC_AUTH_PASS"] ?? env["BASIC_AUTH_PASS"] ?? ""
        if !user.isEmpty || !password.isEmpty {
            guard !user.isEmpty, !password.isEmpty, !user.utf8.contains(UInt8(ascii: ":")) else { throw ManifestError("BASIC_AUTH_USER/BASIC_AUTH_PASS: both required, user without ':'") }
            basicAuth = (user, password)
        }
        if let format = env["ATHENS_LOG_FORMAT"], !format.isEmpty {
            guard format == "logfmt" || format == "json" else { throw ManifestError("ATHENS_LOG_FORMAT: must be logfmt or json") }
            logFormat = format
        }
        if let timeout = env["ATHENS_SHUTDOWN_TIMEOUT"], !timeout.isEmpty {
            guard let seconds = Double(timeout), seconds >= 0, seconds <= 86400 else { throw ManifestError("ATHENS_SHUTDOWN_TIMEOUT: seconds, 0…86400") }
            shutdownTimeout = seconds
        }
        if let level = env["ATHENS_LOG_LEVEL"], !level.isEmpty {
            guard ["debug", "info", "error"].contains(level) else { throw ManifestError("ATHENS_LOG_LEVEL: must be debug, info or error") }
            logLevel = level
        }
    }
}
