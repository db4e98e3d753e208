// Catalog paging: ListObjectsV2 over the prefix, keeping the `.info` keys (commit markers) in the server's
// bytewise key order. The token is "s3." + base64url of the last returned .info key below the prefix, so a page
// resumes with StartAfter wherever the previous one stopped, whatever S3's own page boundaries were.
import Basics
import FoundationEssentials
import Glibc
import PluginKit
import S3Core

extension S3Storage {
    static let tokenTag = "s3."

    func catalog(token: String, pageSize: Int, call: CallContext) throws(PluginFailure) -> (entries: [(module: String, version: String)], next: String) {
        var startAfter: String?
        if !token.isEmpty {
            guard let key = decodeToken(token) else { throw .invalid("catalog: not a token this storage issued") }
            startAfter = key
        }
        var entries: [(module: String, version: String)] = []
        var continuation: String?
        while true {
            // Three keys per version (.info, .mod, .zip) and maybe a lock: ask for little more than the page needs.
            let wanted = min(1000, 4 * (pageSize - entries.count) + 1)
            let page = try listPage(prefix: layout.prefix, delimiter: nil, continuation: continuation,
                                    startAfter: continuation == nil ? startAfter : nil, maxKeys: wanted, in: call)
            for key in page.keys {
                guard let found = layout.moduleVersion(ofInfoKey: key) else { continue }
                entries.append(found)
                if entries.count == pageSize { return (entries, encodeToken(key)) }
            }
            guard page.isTruncated, let next = page.nextContinuationToken else { return (entries, "") }
            continuation = next
        }
    }

    private func encodeToken(_ key: String) -> String {
        let relative = Data(key.dropFirst(layout.prefix.count).utf8).base64EncodedString()
        // base64url without padding: the token stays free of characters that need escaping in a URL.
        return Self.tokenTag + relative.replacingAll("+", with: "-").replacingAll("/", with: "_")
            .replacingAll("=", with: "")
    }

    /// The .info key a token stands for, or nil if this storage could not have issued it.
    private func decodeToken(_ token: String) -> String? {
        guard token.hasPrefix(Self.tokenTag), token.utf8.count < ATH_CATALOG_TOKEN_CAPACITY else { return nil }
        var text = String(token.dropFirst(Self.tokenTag.count)).replacingAll("-", with: "+").replacingAll("_", with: "/")
        guard !text.contains("=") else { return nil }
        while text.utf8.count % 4 != 0 { text += "=" }
        guard let data = Data(base64Encoded: text), data.count <= S3Layout.maxRelativeKey,
              let relative = String(data: data, encoding: .utf8) else { return nil }
        let key = layout.prefix + relative
        // Only the commit marker of a valid module version is a place we stop at.
        guard layout.moduleVersion(ofInfoKey: key) != nil, encodeToken(key) == token else { return nil }
        return key
    }
}
