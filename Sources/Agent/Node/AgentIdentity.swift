import ChunkStore
import Foundation

/// Who this agent is to its controller, kept in its data folder: `node.json` (this value, readable)
/// and `credential` (the secret "NODEID.SECRET", mode 0600, read only by the agent). Written once by
/// the join; every later start (`a67 agent run`, the systemd unit) reads them.
public struct AgentIdentity: Sendable, Codable, Equatable {
    /// The controller's base URL ("https://HOST:7067").
    public var controller: String
    public var nodeID: String
    public var name: String
    /// Where the controller says this node's instances are reached.
    public var address: String
    /// `--ca-file`: the CA bundle that signs the controller's certificate (instead of the system's).
    public var caFile: String?
    /// `--pin`: the SHA-256 of the controller's public key ("sha256//BASE64"), printed by
    /// `a67 node token create`; checked instead of a CA.
    public var pinnedKey: String?
    public var heartbeatSeconds: Double

    public init(controller: String, nodeID: String, name: String, address: String, caFile: String?, pinnedKey: String?,
                heartbeatSeconds: Double) {
        self.controller = controller
        self.nodeID = nodeID
        self.name = name
        self.address = address
        self.caFile = caFile
        self.pinnedKey = pinnedKey
        self.heartbeatSeconds = heartbeatSeconds
    }

    static func identityPath(_ data: String) -> String { data + "/node.json" }
    static func credentialPath(_ data: String) -> String { data + "/credential" }

    /// The identity and credential saved in `data`; a clear error when the agent has not joined.
    public static func load(data: String) throws -> (AgentIdentity, credential: String) {
        guard FileManager.default.fileExists(atPath: identityPath(data)) else {
            throw StoreError(.notInitialized, "\(data) holds no joined agent: run a67 agent join URL --token-file FILE --name NAME --data \(data) first")
        }
        let identity: AgentIdentity
        do {
            identity = try JSONDecoder().decode(AgentIdentity.self, from: Data(try LocalFile.read(identityPath(data), atMost: 1 << 16)))
        } catch {
            throw StoreError(.integrity, "\(identityPath(data)) is damaged (\(error)); remove \(data) and join again with a new token")
        }
        let credential = String(decoding: try LocalFile.read(credentialPath(data), atMost: 4096), as: UTF8.self)
            .trimmingCharacters(in: .whitespacesAndNewlines)
        guard credential.hasPrefix(identity.nodeID + ".") else {
            throw StoreError(.integrity, "\(credentialPath(data)) does not hold this node's credential; remove \(data) and join again")
        }
        return (identity, credential)
    }

    /// Saves the identity and the credential (0600), the credential first, each through a rename.
    public func save(data: String, credential: String) throws {
        try FileManager.default.createDirectory(atPath: data, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
        try LocalFile.write(Array(credential.utf8), to: Self.credentialPath(data), mode: 0o600)
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        try LocalFile.write(Array(try encoder.encode(self)), to: Self.identityPath(data), mode: 0o644)
    }
}
