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

    /// Reads `folder/a67app.toml` (errors name the file, line and key), stores the folder's bundle and
    /// records it as the app's next version (not yet deployed).
    public static func store(folder: String, repository: Repository) async throws -> Stored {
        let manifestPath = folder + "/" + AppManifest.fileName
        let text: String
        do throws(SystemCallError) {
            text = String(decoding: try LocalFile.read(manifestPath, atMost: 1 << 20), as: UTF8.self)
        } catch {
            throw StoreError(.invalidArgument, "\(folder) is not an app folder: cannot read \(AppManifest.fileName) (\(error.reason)); "
                + "write one with at least name and command")
        }
        let manifest = try AppManifest(toml: text, file: manifestPath)
        if (try? repository.catalog.namespace.bucket(bucket)) == nil {
            _ = try await repository.createBucket(bucket)
        }
        // The archive's SHA-256 names its object, so the folder is read once before the put.
        let survey = try BundleStream(folder: folder)
        while try survey.nextPiece() != nil {}
        guard let sha256 = survey.sha256 else { throw StoreError(.internal, "the bundle of \(folder) was not read to its end") }
        let key = "\(manifest.name)/\(Hex.encode(sha256))"
        let put = try await repository.put(BundleStream(folder: folder, manifest: survey.manifest), bucket: bucket, key: key)
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
