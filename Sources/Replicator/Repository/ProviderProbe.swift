import ChunkStore
import Foundation

/// `a67 provider test`: a quick live check of one configured provider (the way kopia validates a
/// storage before trusting it). Writes, reads back, lists and deletes probe objects under
/// `a67-probe/`, outside the chunk namespace, and measures latency and throughput.
public struct ProviderProbe: Sendable {
    public struct Step: Sendable {
        public let name: String
        public let seconds: Double
    }

    public struct Report: Sendable {
        public let provider: String
        public let location: String
        /// Each request in order, with how long it took.
        public let steps: [Step]
        /// Bytes per second for the large probe object.
        public let putBytesPerSecond: Double
        public let getBytesPerSecond: Double
        public let largeSize: Int
    }

    public static let prefix = "a67-probe/"

    /// Runs the probe. A failing step throws `providerFailure` naming the step; probe objects are
    /// removed either way.
    public static func run(on backend: any Backend, provider: String, expectedRepositoryID: [UInt8],
                           largeSize: Int = 8 << 20) async throws -> Report {
        let small = Crypto.randomBytes(1024)
        let large = Crypto.randomBytes(largeSize)
        let smallName = prefix + Hex.encode(Crypto.randomBytes(8))
        let largeName = prefix + Hex.encode(Crypto.randomBytes(8))
        var steps: [Step] = []

        func step<T>(_ name: String, _ body: () async throws -> T) async throws -> T {
            let start = Date()
            do {
                let value = try await body()
                steps.append(Step(name: name, seconds: Date().timeIntervalSince(start)))
                return value
            } catch {
                throw StoreError(.providerFailure, "provider \(provider) (\(backend.location)): \(name) failed: \(error)")
            }
        }

        do {
            let keyring = try await step("get keyring") { try await backend.get(Keyring.objectName) }
            guard let theirs = try? Keyring(decoding: keyring, source: "\(backend.location)/keyring"),
                  theirs.repositoryID == expectedRepositoryID else {
                throw StoreError(.conflict, "provider \(provider) (\(backend.location)) holds no keyring of this repository: was it emptied, or replaced by another store?")
            }
            try await step("put 1 KiB") { try await backend.put(smallName, data: small) }
            let back = try await step("get 1 KiB") { try await backend.get(smallName) }
            guard back == small else {
                throw StoreError(.integrity, "provider \(provider) (\(backend.location)) returned other bytes than were put")
            }
            let info = try await step("head") { try await backend.head(smallName) }
            guard info.size == small.count else {
                throw StoreError(.integrity, "provider \(provider) (\(backend.location)) reports \(info.size) bytes for a \(small.count)-byte object")
            }
            let putStart = Date()
            try await step("put \(ByteSize.format(Int64(largeSize)))") { try await backend.put(largeName, data: large) }
            let putSeconds = Date().timeIntervalSince(putStart)
            let getStart = Date()
            let largeBack = try await step("get \(ByteSize.format(Int64(largeSize)))") { try await backend.get(largeName) }
            let getSeconds = Date().timeIntervalSince(getStart)
            guard largeBack == large else {
                throw StoreError(.integrity, "provider \(provider) (\(backend.location)) returned other bytes than were put")
            }
            let listed = try await step("list") { try await backend.listAll(prefix: prefix) }
            guard Set(listed.map(\.name)).isSuperset(of: [smallName, largeName]) else {
                throw StoreError(.integrity, "provider \(provider) (\(backend.location)) does not list objects just put")
            }
            try await step("delete") {
                try await backend.delete(smallName)
                try await backend.delete(largeName)
            }
            let gone = try await step("get deleted") { () async throws -> Bool in
                do {
                    _ = try await backend.get(smallName)
                    return false
                } catch BackendError.notFound {
                    return true
                }
            }
            guard gone else {
                throw StoreError(.integrity, "provider \(provider) (\(backend.location)) still returns a deleted object")
            }
            return Report(provider: provider, location: backend.location, steps: steps,
                          putBytesPerSecond: Double(largeSize) / max(putSeconds, 1e-6),
                          getBytesPerSecond: Double(largeSize) / max(getSeconds, 1e-6), largeSize: largeSize)
        } catch {
            try? await backend.delete(smallName)
            try? await backend.delete(largeName)
            throw error
        }
    }
}

extension Repository {
    /// Runs `ProviderProbe` on the provider named `name`.
    public func testProvider(_ name: String) async throws -> ProviderProbe.Report {
        guard let provider = try providers().first(where: { $0.record.name == name }) else {
            throw StoreError(.notFound, "no provider named \(name): see a67 provider ls")
        }
        let keyring = try Self.localKeyring(home: home)
        return try await ProviderProbe.run(on: try backend(for: provider), provider: name, expectedRepositoryID: keyring.repositoryID)
    }
}
