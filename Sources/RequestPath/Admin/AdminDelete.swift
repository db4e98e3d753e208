import GoModule
import JSON
import HostSupport
import PluginHost

/// Runs a `DeleteRequest` against storage: finds what it names, and unless a dry run removes each version and
/// makes the memory cache and the list cache forget it, here at once and on every other instance on the same storage
/// within the list-cache TTL (Deletions). Blocks on storage: runs on the download pool.
package struct AdminDelete {
    package let storage: any Storage
    package let cache: ArtifactCache
    package let lists: ListCache
    /// Where the deletions are recorded for the other instances on this storage.
    package let deletions: Deletions
    /// Catalog page size while a glob is matched.
    package var pageSize = 1000

    /// The versions `request` names and, unless a dry run, the outcome of removing each: a JSON answer.
    package func run(_ request: DeleteRequest) throws(AdminError) -> (response: Response, result: String) {
        let targets = try select(request.selection)
        func item(_ module: String, _ version: String) -> JSONValue {
            .object(JSONObject([("module", .string(module)), ("version", .string(version))]))
        }
        if request.dryRun {
            let body = JSONObject([("dryRun", .bool(true)), ("wouldDelete", .array(targets.map { item($0.module, $0.version) }))])
            return (.json(Array(JSONValue.object(body).text().utf8)), "dry-run")
        }
        let (removed, errors) = remove(targets.map { VersionID($0.module, $0.version) })
        let deleted = removed.map { item($0.module, $0.version) }
        let failed = errors.map { id, error in
            JSONValue.object(JSONObject([("module", .string(id.module)), ("version", .string(id.version)), ("error", .string(error))]))
        }
        let body = JSONObject([("dryRun", .bool(false)), ("deleted", .array(deleted)), ("failed", .array(failed))])
        var response = Response.json(Array(JSONValue.object(body).text().utf8))
        if !failed.isEmpty { response.status = 500 }
        return (response, failed.isEmpty ? "ok" : "error")
    }

    /// Removes each version and makes the memory and list caches forget it (retention deletes through here too):
    /// what went, and what could not be removed with why.
    package func remove(_ targets: [VersionID]) -> (deleted: [VersionID], failed: [(VersionID, String)]) {
        var deleted: [VersionID] = [], failed: [(VersionID, String)] = []
        for id in targets {
            do {
                try storage.remove(module: id.module, version: id.version)
                deleted.append(id)
            } catch where error.code == .notFound {
                // Gone already (another instance, a concurrent delete): what was asked holds.
                deleted.append(id)
            } catch {
                failed.append((id, error.description))
            }
            // Forgotten even after a failed remove: the next request asks storage, which knows what it still holds.
            cache.forget(module: id.module, version: id.version)
            lists.forget(module: id.module)
        }
        if !deleted.isEmpty {
            // The versions are gone whatever happens here; without the tombstone only other instances' memory keeps them.
            do { try deletions.record(deleted) } catch { Log.error("recording deletions for other instances: \(error)") }
        }
        return (deleted, failed)
    }

    /// The stored versions a selection names.
    private func select(_ selection: DeleteRequest.Selection) throws(AdminError) -> [(module: String, version: String)] {
        do {
            switch selection {
            case let .version(module, version):
                guard try storage.exists(module: module, version: version) else {
                    throw AdminError.notFound("\(module)@\(version) is not stored")
                }
                return [(module, version)]
            case let .allVersions(module):
                return try storage.list(module: module).sorted { SemVer.compare($0, $1) < 0 }.map { (module, $0) }
            case let .glob(glob):
                guard storage.hasCatalog else {
                    throw AdminError.notSupported("storage \(storage.name) has no catalog: globs cannot be matched")
                }
                var found: [(module: String, version: String)] = [], token = ""
                repeat {
                    let page = try storage.catalog(token: token, pageSize: pageSize)
                    // The reserved modules are operator state, not modules: a glob ("*") never removes a quarantine.
                    found += page.entries.filter { !Quarantine.isReserved($0.module) && ModulePath.matchPrefixPatterns(glob, $0.module) }
                    token = page.next
                } while !token.isEmpty
                return found
            }
        } catch let error as AdminError {
            throw error
        } catch {
            throw AdminError.failed("storage: \(error)")
        }
    }
}
