import ChunkStore
import Logging
import Replicator
import ServiceLifecycle

/// The maintenance `a67 serve` runs in the background, each job at its own interval (nil: not run).
/// The first pass of each comes one interval after the start, so that restarting a server does not
/// restart its passes.
public struct MaintenanceSchedule: Sendable, Equatable {
    /// Repair: chunks short of replicas (a provider lost, a copy found damaged) get them back.
    public var repair: Duration? = .seconds(600)
    /// Scrub: every replica read and verified. Off unless asked for: it reads everything stored,
    /// which a metered provider counts as egress.
    public var scrub: Duration?
    /// Scrub's read rate cap, in bytes per second (nil: none).
    public var scrubRate: Double?
    /// Garbage collection: expired trash dropped, unreferenced chunks and stray files deleted.
    public var gc: Duration? = .seconds(86_400)
    /// gc's grace period, in seconds (see `GarbageCollectionJob`).
    public var gcGrace: Double = Repository.defaultGraceSeconds

    public init() {}
}

extension BlobServer {
    /// The background services running `schedule` on this server's repository. Each pass is logged
    /// (its summary at notice level when it changed or found something, at info otherwise; each
    /// problem as a warning; a failed pass as an error), counted in `/_a67/metrics`, and a pass that
    /// changed the catalog marks it for the next snapshot.
    public func maintenanceServices(_ schedule: MaintenanceSchedule) -> [any Service] {
        var services: [any Service] = []
        if let every = schedule.repair {
            services.append(MaintenanceService(RepairJob(repository: repository), every: every, initialDelay: every,
                                               onPass: observe(RepairJob.self)))
        }
        if let every = schedule.scrub {
            services.append(MaintenanceService(ScrubJob(repository: repository, rate: schedule.scrubRate), every: every,
                                               initialDelay: every, onPass: observe(ScrubJob.self)))
        }
        if let every = schedule.gc {
            services.append(MaintenanceService(GarbageCollectionJob(repository: repository, grace: schedule.gcGrace), every: every,
                                               initialDelay: every, onPass: observe(GarbageCollectionJob.self)))
        }
        return services
    }

    /// What happens after each pass of `Job`.
    func observe<Job: MaintenanceJob>(_: Job.Type) -> @Sendable (Result<Job.Report, any Error>) -> Void {
        let (logger, metrics) = (Self.logger, self.metrics)
        return { [weak self] result in
            switch result {
            case .success(let report):
                let problems = report.problems
                metrics.maintenancePass(job: Job.name, failed: false, problems: problems.count)
                if report.changedCatalog { self?.changed() }
                let level: Logger.Level = report.changedCatalog || !problems.isEmpty ? .notice : .info
                logger.log(level: level, "\(Job.name) pass: \(report.summary)")
                for line in problems.prefix(20) { logger.warning("\(Job.name): \(line)") }
                if problems.count > 20 { logger.warning("\(Job.name): ... and \(problems.count - 20) more") }
            case .failure(let error):
                metrics.maintenancePass(job: Job.name, failed: true, problems: 0)
                logger.error("\(Job.name) pass failed: \(error); the next pass retries")
            }
        }
    }
}
