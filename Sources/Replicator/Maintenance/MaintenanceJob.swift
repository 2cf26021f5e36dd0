import ChunkStore
import ServiceLifecycle

/// One kind of background work on a repository (scrub, repair, drain, rebalance, gc, snapshot): a
/// value holding its settings, whose `run` makes one pass and returns what it found. The CLI runs a
/// pass once (`a67 scrub`); `a67 serve` runs passes every so often (`MaintenanceService`).
///
/// A pass walks the catalog in pages (`ChunkIndex.forEachPage`), never the whole chunk index at
/// once, and changes the catalog only after the providers did what the change says, so that a pass
/// stopped anywhere (cancelled, or the process killed) leaves a consistent repository.
public protocol MaintenanceJob: Sendable {
    associatedtype Report: MaintenanceReport
    /// What the job is called in logs ("scrub").
    static var name: String { get }
    /// Makes one pass; `progress` is called with the bytes handled as it goes.
    func run(progress: ProgressHandler?) async throws -> Report
}

/// What a maintenance pass found: the CLI prints it after one pass, `a67 serve` logs it after each.
public protocol MaintenanceReport: Sendable {
    /// One line saying what the pass did ("repaired 3 chunk(s): 3 replica(s), 15.0 MiB copied in 1.2 s").
    var summary: String { get }
    /// One line for each thing that needs a person or another pass (a lost chunk, a provider that did
    /// not answer, a chunk still short of replicas); empty when all is well.
    var problems: [String] { get }
    /// Whether the pass changed the catalog (a snapshot should follow).
    var changedCatalog: Bool { get }
}

/// Runs a maintenance job as a background service of a `ServiceGroup`: a pass after `initialDelay`,
/// then one every `interval` (counted from the end of the last pass). Each pass's report, or its
/// error, goes to `onPass`; a failed pass does not stop the service. On graceful shutdown the pass
/// running is cancelled (each is safe to stop anywhere) and `run` returns.
public struct MaintenanceService<Job: MaintenanceJob>: Service {
    public let job: Job
    public let interval: Duration
    public let initialDelay: Duration
    private let onPass: @Sendable (Result<Job.Report, any Error>) -> Void

    public init(_ job: Job, every interval: Duration, initialDelay: Duration = .zero,
                onPass: @escaping @Sendable (Result<Job.Report, any Error>) -> Void) {
        self.job = job
        self.interval = interval
        self.initialDelay = initialDelay
        self.onPass = onPass
    }

    public func run() async throws {
        let (job, interval, initialDelay, onPass) = (job, interval, initialDelay, onPass)
        try? await cancelWhenGracefulShutdown {
            try await Task.sleep(for: initialDelay)
            while !Task.isCancelled {
                do {
                    onPass(.success(try await job.run(progress: nil)))
                } catch is CancellationError {
                    return
                } catch {
                    onPass(.failure(error))
                }
                try await Task.sleep(for: interval)
            }
        }
    }
}

/// A catalog snapshot as a maintenance job (see `Repository.snapshotCatalog`).
public struct SnapshotJob: MaintenanceJob {
    public static let name = "snapshot"
    public let repository: Repository

    public init(repository: Repository) { self.repository = repository }

    public func run(progress: ProgressHandler?) async throws -> Repository.SnapshotReport {
        try await repository.snapshotCatalog()
    }
}

extension Repository.SnapshotReport: MaintenanceReport {
    public var summary: String {
        unchanged ? "catalog unchanged since snapshot \(sequence)"
            : "catalog snapshot \(sequence): \(ByteSize.format(size)) in \(chunks) chunk(s), \(chunksStored) stored"
    }
    public var problems: [String] { behind.map { "\($0) keeps an older catalog snapshot" } }
    public var changedCatalog: Bool { false }
}
