import ChunkStore
import Compute
import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// The agent's bundles on disk, under its data folder:
///
///     chunks/HEX              sealed chunks as the controller relayed them (a cache: a new version
///                             fetches only the chunks it does not share with an older one)
///     releases/SHA256         a bundle unpacked, named by its archive's SHA-256 (versions with equal
///                             bundles share it)
///
/// A release appears only complete and verified: every chunk opens under the key the controller
/// granted for it (the GCM tag binds the bytes to the chunk ID), and the archive's SHA-256 matches the
/// grant before the unpacker renames its staging folder into place (`BundleUnpacker`). The agent never
/// holds the repository's keys: a grant opens exactly the chunks it lists.
public struct ReleaseStore: Sendable {
    public let root: String
    var chunks: String { root + "/chunks" }
    var releases: String { root + "/releases" }
    /// Bytes free in the file system holding a path (nil: unknown); tests pass a small one.
    let freeSpace: @Sendable (String) -> Int64?

    public init(root: String, freeSpace: @escaping @Sendable (String) -> Int64? = ReleaseStore.freeBytes) throws {
        self.root = root
        self.freeSpace = freeSpace
        // Instances run under an unprivileged uid when the agent is root: they pass through the data
        // folder (0711: no listing) into their release (0755); the chunk cache stays the agent's.
        for (folder, mode) in [(root, 0o711), (root + "/chunks", 0o700), (root + "/releases", 0o755)] {
            try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true, attributes: [.posixPermissions: mode])
            chmod(folder, mode_t(mode))
        }
    }

    /// Where `grant` is (or will be) unpacked.
    public func path(of grant: BundleGrant) -> String { releases + "/" + grant.sha256 }

    /// The SHA-256s (hex) of the bundles held unpacked: what the heartbeat reports for locality.
    public func held() -> [String] {
        ((try? FileManager.default.contentsOfDirectory(atPath: releases)) ?? []).filter { !$0.hasPrefix(".") }.sorted()
    }

    /// The release folder of `grant`, fetched and unpacked first when not held yet. `fetch` returns a
    /// sealed chunk by its hex ID (the controller's relay). Fails, leaving nothing half-made, when a
    /// chunk does not open under its key, the archive does not hash to the grant's SHA-256, or the data
    /// folder lacks room for the bundle ("needs 20 MiB, 3 MiB free").
    public func release(_ grant: BundleGrant, app: String, fetch: @Sendable (String) async throws -> [UInt8]) async throws -> String {
        let destination = path(of: grant)
        guard let sha256 = Hex.decode(grant.sha256), sha256.count == 32, grant.sha256 == grant.sha256.lowercased() else {
            throw StoreError(.invalidArgument, "the controller granted \(app) a bundle without a valid SHA-256")
        }
        if FileManager.default.fileExists(atPath: destination) { return destination }
        // Room for the unpacked files and the sealed chunks cached beside them.
        let free = freeSpace(root)
        let needed = grant.size * 2
        if let free, free < needed {
            throw StoreError(.quotaExceeded, "the bundle of \(app) needs \(ByteSize.format(needed)) in \(root) and only \(ByteSize.format(free)) is free; "
                + "free space on this node or place the app elsewhere")
        }
        let unpacker = try BundleUnpacker(into: destination, expectedSHA256: sha256, expectedSize: grant.size)
        for chunk in grant.chunks {
            guard let id = ChunkID(hex: chunk.id), let keyBytes = Hex.decode(chunk.key), keyBytes.count == 32 else {
                throw StoreError(.invalidArgument, "the controller granted \(app) a chunk without a valid ID or key")
            }
            let plaintext = try await open(id, key: SecretKey(bytes: keyBytes), length: chunk.length, fetch: fetch)
            try unpacker.write(plaintext[...])
        }
        _ = try unpacker.finish()
        return destination
    }

    /// A granted chunk's plaintext, from the cache when it holds a copy that opens, else fetched (and
    /// cached once it opened).
    func open(_ id: ChunkID, key: SecretKey, length: Int, fetch: @Sendable (String) async throws -> [UInt8]) async throws -> [UInt8] {
        let cached = chunks + "/" + id.hex
        if let sealed = try? LocalFile.read(cached, atMost: ChunkSealer.maxChunkSize + 4096),
           let plaintext = try? ChunkSealer.open(sealed, id: id, chunkKey: key, expectedLength: length) {
            return plaintext
        }
        let sealed = try await fetch(id.hex)
        let plaintext = try ChunkSealer.open(sealed, id: id, chunkKey: key, expectedLength: length)
        try? LocalFile.write(sealed, to: cached)
        return plaintext
    }

    /// Removes the releases whose SHA-256 is not in `keep` (the cached chunks stay: a later version
    /// likely shares most of them).
    public func prune(keeping keep: Set<String>) {
        for name in held() where !keep.contains(name) {
            try? FileManager.default.removeItem(atPath: releases + "/" + name)
        }
    }

    /// Bytes free to an unprivileged writer in the file system holding `path`; nil when unknown.
    public static func freeBytes(_ path: String) -> Int64? { LocalFiles.space(of: path)?.free }
}
