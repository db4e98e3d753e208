import HostSupport
import JSON

/// `POST /admin/prefetch` (a job, answered 202 at once) and `GET /admin/jobs/<id>` (its progress).
extension AdminAPI {
    /// Parses the body (all of it, or `400` and nothing starts), keeps the job and starts it: 202 with its id.
    func prefetch(_ query: Substring, _ body: [UInt8], who: String) throws(AdminError) -> (Response, String) {
        let request = try PrefetchRequest.parse(query: query, body: body, maxItems: settings.prefetchMaxItems)
        let job = PrefetchJob(id: PrefetchJobs.newID(), request: request, who: who) { job in
            Log.info("admin", [("who", job.who.isEmpty ? "-" : job.who), ("action", "prefetch"), ("result", "finished"), ("job", job.id),
                               ("total", String(job.request.items.count)), ("done", String(job.count(.done))),
                               ("skipped", String(job.count(.skipped))), ("failed", String(job.count(.failed)))])
        }
        guard jobs.add(job) else {
            throw AdminError(status: 503, result: "busy", message: "\(jobs.capacity) prefetch jobs are running; retry when one is done")
        }
        prefetcher.start(job)
        var response = Response.json(Array(JSONValue.object(JSONObject([
            ("id", .string(job.id)), ("job", .string("/admin/jobs/" + job.id)), ("format", .string(request.format.rawValue)),
            ("total", .number(JSONNumber(request.items.count))), ("notes", .array(request.notes.map(JSONValue.string))),
        ])).text().utf8))
        response.status = 202
        response.headers.append(("Location", "/admin/jobs/" + job.id))
        return (response, "started")
    }

    /// `GET /admin/jobs/<id>` (token checked): the job's JSON, from memory, on the event loop.
    func job(_ id: String?, _ request: Request, _ responder: Responder) {
        guard request.method == .get || request.method == .head else {
            var response = AdminError(status: 405, result: "bad-request", message: "use GET").response
            response.headers.append(("Allow", "GET, HEAD"))
            return responder.respond(response)
        }
        guard let id, !id.isEmpty, let job = jobs.job(id) else {
            return responder.respond(AdminError.notFound("no prefetch job \"\(String((id ?? "").prefix(64)))\" (jobs are kept in memory: gone after a restart, and the oldest finished ones are dropped)").response)
        }
        var response = Response.json(Array(job.json().text().utf8))
        response.headers.append(("Cache-Control", "no-store"))
        responder.respond(response)
    }
}
