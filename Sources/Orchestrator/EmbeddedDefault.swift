import ChunkStore
import Foundation
import Replicator

/// The embedded default: everything in one process on one machine, with no server to set up. Today
/// that is a repository under $A67_HOME with three local directory providers and a demo bucket;
/// later issues add the blob API, the mount and the controller to the same command.
public struct EmbeddedDefault: Sendable {
    public let home: String
    /// Builds the providers' backends.
    public let backends: any BackendFactory
    /// The schemas of the modules with tables in the catalog (see `Repository.initialize`).
    public let catalogModules: [CatalogSchema]
    public static let providerNames = ["local-1", "local-2", "local-3"]
    public static let demoBucket = "demo"
    public static let demoKey = "hello/automator67-demo.bin"

    public init(home: String, backends: any BackendFactory, catalogModules: [CatalogSchema] = []) {
        self.home = home
        self.backends = backends
        self.catalogModules = catalogModules
    }

    public struct Report: Sendable {
        public let created: Bool
        public let providersAdded: [String]
        public let demoBytes: Int64
        public let roundTripIdentical: Bool
        public let putSeconds: Double
        public let getSeconds: Double
    }

    /// Creates what is missing (repository, providers, bucket), then puts a demo object and reads it back.
    public func run(passphrase: Passphrase) async throws -> (Repository, Report) {
        let created = !FileManager.default.fileExists(atPath: home + "/" + Repository.keyringFile)
        let repository = created ? try Repository.initialize(home: home, backends: backends, catalogModules: catalogModules, passphrase: passphrase)
                                 : try Repository.open(home: home, backends: backends, catalogModules: catalogModules, passphrase: { passphrase })
        var added: [String] = []
        try? FileManager.default.createDirectory(atPath: home + "/providers", withIntermediateDirectories: true)
        let existing = Set(try repository.providers().map(\.record.name))
        for name in Self.providerNames where !existing.contains(name) {
            _ = try await repository.addProvider(name: name, spec: .directory(path: home + "/providers/" + name), quota: nil)
            added.append(name)
        }
        if (try? repository.catalog.namespace.bucket(Self.demoBucket)) == nil {
            _ = try await repository.createBucket(Self.demoBucket, replicas: 2)
        }

        // A demo file with text that compresses and bytes that do not: 12 MiB, three chunks.
        let scratch = home + "/demo-scratch"
        try? FileManager.default.createDirectory(atPath: scratch, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: scratch) }
        var content = [UInt8]()
        let line = Array("Automator67 keeps this line once, however often it repeats.\n".utf8)
        while content.count < 8 << 20 { content += line }
        content += Crypto.randomBytes(4 << 20)
        let source = scratch + "/demo.bin", copy = scratch + "/demo.back"
        guard FileManager.default.createFile(atPath: source, contents: Data(content)) else {
            throw StoreError(.io, "cannot write the demo file in \(scratch)")
        }

        let started = Date()
        _ = try await repository.put(try FileSource(path: source), bucket: Self.demoBucket, key: Self.demoKey)
        let putSeconds = Date().timeIntervalSince(started)
        // The catalog goes to the providers too: this home folder can be lost (a67 recover).
        try await repository.snapshotCatalog()
        let object = try repository.object(bucket: Self.demoBucket, key: Self.demoKey)
        let readStart = Date()
        try await FileSink.writing(to: copy) { sink in
            try await repository.get(object, bucket: Self.demoBucket, to: sink)
        }
        let getSeconds = Date().timeIntervalSince(readStart)
        let back = FileManager.default.contents(atPath: copy).map { [UInt8]($0) } ?? []
        return (repository, Report(created: created, providersAdded: added, demoBytes: Int64(content.count),
                                   roundTripIdentical: Crypto.sha256(back) == Crypto.sha256(content),
                                   putSeconds: putSeconds, getSeconds: getSeconds))
    }
}
