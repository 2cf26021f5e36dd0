import Logging
import ServiceLifecycle

/// The provider watcher of a long-running process (a67 serve, a67 mount) as a service: a round of
/// `Repository.watchProviders` at start and every `Repository.providerWatchSeconds`, what changed
/// logged at notice level; stops at once on graceful shutdown or cancellation.
public struct ProviderWatcher: Service {
    let repository: Repository
    let logger: Logger

    public init(repository: Repository, logger: Logger) {
        self.repository = repository
        self.logger = logger
    }

    public func run() async throws {
        try? await cancelWhenGracefulShutdown {
            while !Task.isCancelled {
                for line in await repository.watchProviders() { logger.notice("\(line)") }
                try await Task.sleep(for: .seconds(Repository.providerWatchSeconds))
            }
        }
    }
}
