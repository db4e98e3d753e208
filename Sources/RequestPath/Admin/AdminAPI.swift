import Basics
import HostSupport
import FoundationEssentials
import Glibc
import JSON
import SumDB

/// The admin API under `/admin/`: `POST /admin/<action>` with a JSON body, answered in JSON.
///
/// Off unless the manifest has `admin` (then `admin` is nil in the router and every `/admin/` path is 404).
/// A bearer token guards every action, independent of `basicAuth`; a wrong or missing one is 401 and nothing
/// is done. Every call is logged (who: the client address, what, result) and counted in
/// `athens_admin_requests_total{action,result}`. The work runs on the download pool, never on the event loop.
package final class AdminAPI: Sendable {
    private let token: AdminToken
    private let download: DownloadProtocol

    /// Where uploaded zips are spooled while they are checked.
    private let spoolDirectory: String
    /// The checksum database `verify` compares with; nil: verify answers 501.
    private let verifier: SumDBVerifier?
    /// The manifest's retention; nil: `retention` answers 501.
    private let retention: Retention?
    package let settings: AdminSettings
    /// Prefetch jobs, by id (`GET /admin/jobs/<id>`).
    package let jobs: PrefetchJobs
    package let prefetcher: Prefetcher

    package init(token: AdminToken, download: DownloadProtocol, spoolDirectory: String = temporaryDirectory(),
                 verifier: SumDBVerifier? = nil, retention: Retention? = nil, settings: AdminSettings = AdminSettings(),
                 jobs: PrefetchJobs? = nil, stashWorkers: Int? = nil) {
        self.token = token
        self.retention = retention
        self.settings = settings
        // A given table (the process's, kept across reloads) takes this manifest's bound.
        if let jobs { jobs.capacity = settings.maxJobs }
        self.jobs = jobs ?? PrefetchJobs(capacity: settings.maxJobs)
        prefetcher = Prefetcher(download: download, concurrency: settings.prefetchConcurrency, stashWorkers: stashWorkers)
        self.verifier = verifier
        self.download = download
        self.spoolDirectory = spoolDirectory
    }

    /// The actions there are, by path element.
    private static let actions: Set<String> = ["delete", "upload", "verify", "quarantine", "retention", "prefetch", "jobs"]

    /// The action a path names: `jobs` for `/admin/jobs/<id>` (with the id), else the path element.
    private static func action(_ request: Request) -> (action: String, jobID: String?) {
        let name = String(request.path.dropFirst("/admin/".count))
        // GET /admin/jobs/<id>: the one action named by a path below it.
        let jobID = name.hasPrefix("jobs/") ? String(name.dropFirst("jobs/".count)) : nil
        return (jobID == nil ? name : "jobs", jobID)
    }

    /// The refusal of a request whose head already says no (unknown action 404, token 401, method 405), logged and
    /// counted; nil when it may go on. Checked from the head alone, so no body byte is read for a refused call.
    private func refusal(_ request: Request) -> Response? {
        let (action, _) = Self.action(request)
        guard Self.actions.contains(action) else {
            return AdminError(status: 404, result: "not-found", message: "no admin action \"\(action.prefix(64))\"").response
        }
        guard token.accepts(request.header("authorization")) else {
            // Logged like any call: failed attempts are what an operator looks for first.
            var response = logged(action: action, who: request.peer, what: "", AdminError(status: 401, result: "unauthorized", message: "unauthorized"))
            response.headers.append(("WWW-Authenticate", "Bearer realm=\"athens-admin\""))
            return response
        }
        if action == "jobs" {
            guard request.method == .get || request.method == .head else {
                var response = AdminError(status: 405, result: "bad-request", message: "use GET").response
                response.headers.append(("Allow", "GET, HEAD"))
                return response
            }
            return nil
        }
        guard request.method == .post else {
            var response = logged(action: action, who: request.peer, what: "", AdminError(status: 405, result: "bad-request", message: "use POST"))
            response.headers.append(("Allow", "POST"))
            return response
        }
        return nil
    }

    /// The body's fate from the head: refused (nothing read), an upload streamed to a spool file within
    /// `maxUploadBytes`, or a JSON/text body read into memory (within the server's `maxBodyBytes`).
    package func plan(_ request: Request) -> BodyPlan {
        if let response = refusal(request) { return .refuse(response) }
        guard Self.action(request).action == "upload" else { return .buffer }
        do throws(AdminError) {
            guard request.contentLength <= settings.maxUploadBytes else {
                throw AdminError(status: 413, result: "too-large", message: "upload: \(request.contentLength) bytes, more than admin.maxUploadBytes (\(settings.maxUploadBytes))")
            }
            let upload = try UploadRequest.parse(query: request.query, bodyLength: request.contentLength)
            return .stream(try UploadSpool(directory: spoolDirectory, modBytes: upload.modBytes))
        } catch {
            return .refuse(logged(action: "upload", who: request.peer, what: String(request.query.prefix(512)), error))
        }
    }

    /// Answers one request whose path starts with `/admin/`. Called on the event loop. `GET /admin/jobs/<id>` is
    /// answered from memory there and not logged (a CLI polls it); every other action is a POST run on the pool.
    package func handle(_ request: Request, responder: Responder) {
        let responder = responder.tagged("admin")
        if let response = refusal(request) { return responder.respond(response) }
        let (action, jobID) = Self.action(request)
        if action == "jobs" { return job(jobID, request, responder) }
        // An upload's body is in its spool; one that came in memory (no connection planned it) is spooled here.
        let sink = request.bodySink
        let body = request.body, who = request.peer, query = request.query
        let accepted = download.pool.submit { [self] in
            // Bodies of uploads are zips: the query says what they are.
            let what = action == "upload" ? String(query.prefix(512)) : String(decoding: body.prefix(512), as: UTF8.self)
            do throws(AdminError) {
                let (response, result) = try perform(action, query, body, who: who, sink: sink)
                log(action: action, who: who, what: what, status: response.status, result: result)
                responder.respond(response)
            } catch {
                finish(action: action, who: who, what: what, error, responder)
            }
        }
        if !accepted {
            var response = AdminError(status: 503, result: "busy", message: "too many downloads in progress, retry shortly").response
            response.headers.append(("Retry-After", "1"))
            log(action: action, who: who, what: "", status: 503, result: "busy")
            responder.respond(response)
        }
    }

    /// Runs one action on a pool thread.
    private func perform(_ action: String, _ query: Substring, _ body: [UInt8], who: String, sink: (any BodySink)?) throws(AdminError) -> (Response, String) {
        switch action {
        case "delete":
            let request = try DeleteRequest.parse(body)
            return try AdminDelete(storage: download.storage, cache: download.cache, lists: download.lists, deletions: download.deletions).run(request)
        case "upload":
            let streamed = sink as? UploadSpool
            let upload = try UploadRequest.parse(query: query, bodyLength: streamed?.received ?? body.count)
            let spool: UploadSpool
            if let streamed {
                spool = streamed
            } else {
                spool = try UploadSpool(directory: spoolDirectory, modBytes: upload.modBytes)
                guard body.withUnsafeBytes({ spool.write($0) }) else { throw .failed("spool: cannot write the upload") }
            }
            return try AdminUpload(storage: download.storage, cache: download.cache, lists: download.lists).run(upload, spool)
        case "verify":
            return try AdminVerify(storage: download.storage, verifier: verifier, policy: download.policy, quarantine: download.quarantine,
                                   cache: download.cache).run(body)
        case "quarantine":
            return try AdminQuarantine(quarantine: download.quarantine, cache: download.cache).run(body)
        case "retention":
            return try AdminRetention.run(retention, body: body)
        case "prefetch":
            return try prefetch(query, body, who: who)
        default:
            throw .notFound("no admin action \"\(action)\"")
        }
    }

    private func finish(action: String, who: String, what: String, _ error: AdminError, _ responder: Responder) {
        responder.respond(logged(action: action, who: who, what: what, error))
    }

    /// The error's answer, logged and counted.
    private func logged(action: String, who: String, what: String, _ error: AdminError) -> Response {
        log(action: action, who: who, what: what, status: error.status, result: error.result, message: error.message)
        return error.response
    }

    private func log(action: String, who: String, what: String, status: Int, result: String, message: String = "") {
        Metrics.shared.admin(action: action, result: result)
        var fields = [("who", who.isEmpty ? "-" : who), ("action", action), ("result", result), ("status", String(status))]
        if !what.isEmpty { fields.append(("what", what)) }
        if !message.isEmpty { fields.append(("message", message)) }
        Log.info("admin", fields)
    }
}
