/// The admin API's limits, from the manifest's `admin` object.
package struct AdminSettings: Sendable {
    /// Prefetch items in progress at once (`admin.prefetchConcurrency`); nil: half the download pool's threads, which
    /// is also the most allowed (clients keep the other half).
    package var prefetchConcurrency: Int?
    /// Items one prefetch may name (`admin.prefetchMaxItems`).
    package var prefetchMaxItems = 10_000
    /// Prefetch jobs kept in memory (`admin.maxJobs`): past it the oldest finished one is forgotten.
    package var maxJobs = 100
    /// Largest upload body, go.mod and zip (`admin.maxUploadBytes`): the go command's zip limit plus its go.mod limit.
    package var maxUploadBytes = 516 << 20

    package init() {}
}
