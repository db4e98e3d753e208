import JSON

/// Why an admin call was refused or failed: the HTTP status, the metrics result label and a one-line message.
package struct AdminError: Error {
    package var status: Int
    package var result: String
    package var message: String

    package static func badRequest(_ message: String) -> AdminError { AdminError(status: 400, result: "bad-request", message: message) }
    package static func notFound(_ message: String) -> AdminError { AdminError(status: 404, result: "not-found", message: message) }
    package static func notSupported(_ message: String) -> AdminError { AdminError(status: 501, result: "not-supported", message: message) }
    package static func failed(_ message: String) -> AdminError { AdminError(status: 500, result: "error", message: message) }

    /// The JSON answer: `{"error": message}`.
    package var response: Response {
        var response = Response.json(Array(JSONValue.object(JSONObject([("error", .string(message))])).text().utf8))
        response.status = status
        return response
    }
}
