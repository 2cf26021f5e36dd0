import Agent
import ChunkStore
import Controller
import Foundation
import Logging
import ServiceLifecycle
import Synchronization

/// `a67 up --serve`'s first node: this machine, as an agent inside the same process as the
/// controller. It is an ordinary agent: it joins over HTTP with a one-use token (made here, in the
/// catalog), follows its desired state and fetches bundles through the controller's agent API like
/// an agent on a VM. Its data folder is `HOME/node` (or, when a67 runs as root and instances, which
/// run as an unprivileged user, could not reach into HOME, a folder under /var/lib/a67-local). On
/// shutdown it stops its instances: Ctrl-C on `a67 up --serve` stops everything.
struct LocalNode: Service {
    static let name = "local"
    /// Where the local nodes of repositories in private homes keep their data when a67 runs as root.
    static let localRoot = "/var/lib/a67-local"

    let home: String
    let catalog: Catalog
    /// The server's URL, once bound (`Address.set` from the server's ready callback).
    let address: Address
    let logger = Logger(label: "a67.agent")

    /// The server's URL ("http://127.0.0.1:7067"), known once it is bound; for one reader.
    final class Address: Sendable {
        private let stream: AsyncStream<String>
        private let continuation: AsyncStream<String>.Continuation
        init() { (stream, continuation) = AsyncStream.makeStream(of: String.self, bufferingPolicy: .bufferingNewest(1)) }
        func set(_ address: String) { continuation.yield(address) }
        /// The address; nil when the server shuts down (or fails to bind) first.
        func get() async -> String? {
            for await address in stream.cancelOnGracefulShutdown() { return address }
            return nil
        }
    }

    /// The node's data folder for the repository in `home` (see the type's comment).
    static func dataFolder(home: String, isRoot: Bool = getuid() == 0) -> String {
        let inHome = home + "/node"
        guard isRoot, !othersCanTraverse(parentsOf: inHome) else { return inHome }
        let digest = Hex.encode(Array(Crypto.sha256(Array(home.utf8)).prefix(6)))
        return localRoot + "/" + digest
    }

    /// Whether a user other than the owner may pass through every folder above `path` (o+x).
    static func othersCanTraverse(parentsOf path: String) -> Bool {
        var folder = (path as NSString).deletingLastPathComponent
        while !folder.isEmpty {
            var info = stat()
            if stat(folder, &info) == 0, info.st_mode & S_IXOTH == 0 { return false }
            if folder == "/" { break }
            folder = (folder as NSString).deletingLastPathComponent
        }
        return true
    }

    func run() async throws {
        guard let controller = await address.get() else { return }
        let data = Self.dataFolder(home: home)
        if data.hasPrefix(Self.localRoot + "/") {
            // Instances pass through it to their releases, as the unprivileged user.
            try FileManager.default.createDirectory(atPath: Self.localRoot, withIntermediateDirectories: true)
            chmod(Self.localRoot, 0o755)
        }
        let (identity, credential) = try await joined(controller: controller, data: data)
        let supervisor = Supervisor(dataDirectory: data, logger: logger)
        let node = try AgentNode(data: data, identity: identity, credential: credential, supervisor: supervisor, logger: logger)
        try await node.run()
        await supervisor.shutdown(stopInstances: true)
    }

    /// The identity saved in `data`, following `controller` (the port may differ from the last run);
    /// joined first when there is none, or when the controller no longer knows the node (removed
    /// with a67 node rm): then the old folder is cleared.
    func joined(controller: String, data: String) async throws -> (AgentIdentity, String) {
        if let (saved, credential) = try? AgentIdentity.load(data: data) {
            var identity = saved
            let known = try ControllerStore(catalog: catalog).nodeSummaries().contains { $0.id == identity.nodeID }
            if known {
                identity.controller = controller
                return (identity, credential)
            }
            try FileManager.default.removeItem(atPath: data)
        }
        let token = try ControllerStore(catalog: catalog).createJoinToken(ttl: .seconds(60), now: Catalog.now())
        let identity = try await AgentNode.join(controller: controller, token: token, name: Self.name, advertise: "127.0.0.1",
                                                labels: [:], data: data, caFile: nil, pinnedKey: nil)
        note("this machine joined as node \(identity.name) (its data: \(data))")
        return try AgentIdentity.load(data: data)
    }

    /// `HOST:PORT` to reach a server bound to `address` from this machine: a wildcard address by loopback.
    static func reachable(_ address: String) -> String {
        guard let colon = address.lastIndex(of: ":") else { return address }
        let host = address[..<colon], port = address[address.index(after: colon)...]
        switch host {
        case "0.0.0.0", "": return "127.0.0.1:\(port)"
        case "::", "[::]": return "[::1]:\(port)"
        default: return host.contains(":") && !host.hasPrefix("[") ? "[\(host)]:\(port)" : address
        }
    }
}
