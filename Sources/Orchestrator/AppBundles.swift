import ChunkStore
import Compute
import Controller
import Foundation
import Replicator

/// App folders stored as bundles in the store, and recorded as versions: what `a67 app deploy` and
/// `a67 up --serve` (the demo app) both do before the controller takes over.
///
/// A bundle is an object of the internal bucket `a67-apps`, key `APP/SHA256` (its archive's SHA-256 in
/// hex), so it is chunked, sealed, deduplicated and replicated like any object, a version that changes
/// one file stores about one new chunk, and gc keeps every bundle a kept version names (it is a live
/// object). `a67 app rm` removes the app's bundles with it.
public enum AppBundles {
    /// The internal bucket of app bundles.
    public static let bucket = "a67-apps"

    /// A folder stored as a new version.
    public struct Stored: Sendable {
        public let manifest: AppManifest
        public let version: Int
        public let sha256: [UInt8]
        /// The put: size, chunks, and how many were new.
        public let put: ObjectWriter.Result
    }

    /// A folder read for a deploy: its manifest (and the text it was parsed from), the archive's
    /// members and its SHA-256. Nothing is stored yet.
    public struct Prepared: Sendable {
        public let folder: String
        public let manifest: AppManifest
        public let manifestText: String
        public let members: BundleManifest
        public let sha256: [UInt8]

        /// The archive, piece by piece as the store cuts it into chunks.
        public func stream() -> BundleStream { BundleStream(folder: folder, manifest: members) }
    }

    /// Reads `folder/a67app.toml` (errors name the file, line and key) and the folder's archive once,
    /// for its SHA-256 (which names the bundle's object).
    public static func prepare(folder: String) throws -> Prepared {
        let manifestPath = folder + "/" + AppManifest.fileName
        let text: String
        do throws(SystemCallError) {
            text = String(decoding: try LocalFile.read(manifestPath, atMost: 1 << 20), as: UTF8.self)
        } catch {
            throw StoreError(.invalidArgument, "\(folder) is not an app folder: cannot read \(AppManifest.fileName) (\(error.reason)); "
                + "write one with at least name and command")
        }
        let manifest = try AppManifest(toml: text, file: manifestPath)
        let survey = try BundleStream(folder: folder)
        while try survey.nextPiece() != nil {}
        guard let sha256 = survey.sha256 else { throw StoreError(.internal, "the bundle of \(folder) was not read to its end") }
        return Prepared(folder: folder, manifest: manifest, manifestText: text, members: survey.manifest, sha256: sha256)
    }

    /// Reads `folder/a67app.toml` (errors name the file, line and key), stores the folder's bundle and
    /// records it as the app's next version (not yet deployed).
    public static func store(folder: String, repository: Repository) async throws -> Stored {
        let prepared = try prepare(folder: folder)
        return try await store(prepared.stream(), manifest: prepared.manifest, sha256: prepared.sha256, repository: repository)
    }

    /// Stores a bundle (`source` cuts it into its chunks) as `APP/SHA256` and records it as the app's
    /// next version: what a deploy on the controller's machine and one sent to it (`--controller`) share.
    public static func store(_ source: PieceSource, manifest: AppManifest, sha256: [UInt8], repository: Repository) async throws -> Stored {
        if (try? repository.catalog.namespace.bucket(bucket)) == nil {
            _ = try await repository.createBucket(bucket)
        }
        let key = "\(manifest.name)/\(Hex.encode(sha256))"
        let put = try await repository.put(source, bucket: bucket, key: key)
        let version = try ControllerStore(catalog: repository.catalog)
            .addVersion(manifest: manifest, bundle: "\(bucket)/\(key)", bundleSHA256: sha256, now: Catalog.now())
        return Stored(manifest: manifest, version: version, sha256: sha256, put: put)
    }

    /// Removes app `name` and the bundles its versions named; returns how many bundles, and whether
    /// the app is gone already (false: its instances are stopping, and the controller removes the app
    /// once none holds a node's resources; the nodes keep what they unpacked until then).
    public static func remove(app name: String, repository: Repository) async throws -> (bundles: Int, removed: Bool) {
        let store = ControllerStore(catalog: repository.catalog)
        let bundles = Set(try store.versions(app: name).map(\.bundle))
        let removed = try store.removeApp(name, now: Catalog.now())
        for bundle in bundles where bundle.hasPrefix(bucket + "/") {
            try? await repository.remove(bucket: bucket, key: String(bundle.dropFirst(bucket.count + 1)))
        }
        return (bundles.count, removed)
    }
}

/// A bundle received whole (a deploy sent to the controller), handed to the store in the pieces its
/// sender's `BundleStream` cut, so that it dedupes against earlier versions as a local deploy does.
public final class ReceivedBundle: PieceSource, @unchecked Sendable {
    private let bytes: [UInt8]
    private let pieces: [Int]
    private var piece = 0
    private var offset = 0
    public var knownSize: Int64? { Int64(bytes.count) }

    /// Refused unless the pieces are each 1 byte to one chunk and add up to the bundle.
    public init(_ bytes: [UInt8], pieces: [Int]) throws {
        guard pieces.allSatisfy({ (1...ChunkSealer.maxChunkSize).contains($0) }), pieces.reduce(0, +) == bytes.count else {
            throw StoreError(.invalidArgument, "the bundle's pieces do not cut its \(bytes.count) bytes into chunks of at most \(ChunkSealer.maxChunkSize)")
        }
        self.bytes = bytes
        self.pieces = pieces
    }

    public func nextPiece() throws -> [UInt8]? {
        guard piece < pieces.count else { return nil }
        defer { offset += pieces[piece]; piece += 1 }
        return Array(bytes[offset..<offset + pieces[piece]])
    }

    public func read(upTo count: Int) throws -> [UInt8] {
        throw StoreError(.internal, "a received bundle is read by pieces")
    }
}
