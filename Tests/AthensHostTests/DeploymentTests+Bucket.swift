import Foundation
import Testing

/// The deployment's bucket as a reader sees it (S3Storage's layout is the GOPROXY tree: `<module>/@v/<version>.info`).
extension DeploymentTests {
    /// What the bucket holds, by version (`<escaped module>/@v/<escaped version>`).
    struct BucketContents {
        /// Versions with an `.info`: committed, visible.
        var committed: Set<String> = []
        /// Versions with a `.mod` or `.zip` but no `.info`: a save that did not commit (invisible: a version exists
        /// exactly when its `.info` does; the next save of the version overwrites them).
        var uncommitted: Set<String> = []
        /// `<version>.lock` keys: a save in progress, or one whose saver died (taken over once stale).
        var locks: Set<String> = []
        /// Keys with a multipart upload in progress (a dead saver's; aborted when its lock is taken over).
        var uploads: [String] = []
        var keys: Set<String> = []
    }

    var bucket: String { settings["DEPLOY_BUCKET"]! }

    func bucketContents() throws -> BucketContents {
        var contents = BucketContents()
        contents.keys = Set(try RGW.keys(bucket))
        for key in contents.keys {
            for suffix in [".info", ".mod", ".zip", ".lock"] where key.hasSuffix(suffix) {
                let version = String(key.dropLast(suffix.count))
                switch suffix {
                case ".info": contents.committed.insert(version)
                case ".lock": contents.locks.insert(version)
                default: contents.uncommitted.insert(version)
                }
            }
        }
        contents.uncommitted.subtract(contents.committed)
        contents.uploads = try RGW.uploadsInProgress(bucket)
        return contents
    }

    /// Every committed version is whole: its `.mod` and `.zip` are there and equal the upstream's files, its `.info`
    /// names the version. Returns the contents for the caller's checks of what is left over.
    @discardableResult
    func expectBucketWhole(sourceLocation: SourceLocation = #_sourceLocation) throws -> BucketContents {
        let contents = try bucketContents()
        for version in contents.committed {
            for suffix in [".mod", ".zip"] {
                let key = version + suffix
                guard contents.keys.contains(key) else {
                    Issue.record("\(version): committed (.info) without its \(suffix)", sourceLocation: sourceLocation)
                    continue
                }
                let stored = try RGW.send(.get, bucket: bucket, key: key)
                let upstream = try [UInt8](Data(contentsOf: URL(fileURLWithPath: tree + "/" + key)))
                #expect(stored.status == 200 && stored.body == upstream, "\(key): \(stored.status), \(stored.body.count) bytes, upstream \(upstream.count)",
                        sourceLocation: sourceLocation)
            }
            let info = try RGW.send(.get, bucket: bucket, key: version + ".info")
            let name = version.split(separator: "/").last.map(String.init) ?? ""
            #expect(info.status == 200 && String(decoding: info.body, as: UTF8.self).contains("\"\(name)\""), "\(version).info",
                    sourceLocation: sourceLocation)
        }
        return contents
    }
}
