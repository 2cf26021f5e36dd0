// Transitional (removed by the next commit, which rewrites the call sites with
// /work/notes/catalog-rename.py): the old one-class Catalog's methods, forwarding to their aggregates.
import Foundation

extension Catalog {
    public func chunkLocations(_ id: ChunkID) async throws -> [Int64]? { try await self.chunks.locations(id) }
    public func recordChunks(_ chunks: [StoredChunk]) async throws { try await self.chunks.record(chunks) }
    public func allLocations() throws -> [(chunk: ChunkID, provider: Int64)] { try self.chunks.allLocations() }
    public func forgetLocation(_ chunk: ChunkID, provider: Int64, evenLast: Bool = false) throws { try self.chunks.forgetLocation(chunk, provider: provider, evenLast: evenLast) }
    public func addLocations(_ chunk: ChunkID, providers: [Int64]) throws { try self.chunks.addLocations(chunk, providers: providers) }
    public func underReplicated() throws -> [Catalog.ChunkPlacement] { try self.chunks.underReplicated() }
    public func chunksInUse() throws -> [Catalog.ChunkPlacement] { try self.chunks.inUse() }
    public func chunks(on provider: Int64) throws -> [Catalog.ChunkPlacement] { try self.chunks.placements(on: provider) }
    public func allChunks() throws -> [Catalog.ChunkPlacement] { try self.chunks.all() }
    public func unreferencedChunks(recordedBefore cutoff: Int64) throws -> [Catalog.ChunkPlacement] { try self.chunks.unreferenced(recordedBefore: cutoff) }
    public func forgetUnreferencedChunk(_ id: ChunkID, listings: Catalog.LeasedListings = Catalog.LeasedListings()) throws -> Bool { try self.chunks.forgetUnreferenced(id, listings: listings) }
    public func chunkIDs(on provider: Int64) throws -> Set<ChunkID> { try self.chunks.ids(on: provider) }
    public func noteOrphans(_ names: [String], provider: Int64, now: Int64, cutoff: Int64) throws -> [String] { try self.chunks.noteOrphans(names, provider: provider, now: now, cutoff: cutoff) }
    public func forgetOrphan(_ name: String, provider: Int64) throws { try self.chunks.forgetOrphan(name, provider: provider) }
    public func replicationSummary() throws -> Catalog.ReplicationSummary { try self.chunks.replicationSummary() }
    public func lease(_ ids: [ChunkID], holder: ProcessIdentity = .current) throws { try self.chunks.lease(ids, holder: holder) }
    public func releaseLeases(_ ids: [ChunkID], holder: ProcessIdentity = .current) throws { try self.chunks.releaseLeases(ids, holder: holder) }
    public func leaseManifest(_ id: ChunkID, holder: ProcessIdentity = .current) throws { try self.chunks.leaseManifest(id, holder: holder) }
    public func liveLeases() throws -> Set<ChunkID> { try self.chunks.liveLeases() }
    public func auditReferences(lost: Set<ChunkID> = []) throws -> Catalog.ReferenceAudit { try self.chunks.auditReferences(lost: lost) }
    public func recountReferences() throws -> Int { try self.chunks.recountReferences() }
    public func createBucket(_ name: String, replicas: Int, minReplicas: Int = 1, owner: Int64? = nil) throws -> BucketRecord { try self.namespace.createBucket(name, replicas: replicas, minReplicas: minReplicas, owner: owner) }
    public func buckets() throws -> [BucketSummary] { try self.namespace.buckets() }
    public func bucket(_ name: String) throws -> BucketRecord { try self.namespace.bucket(name) }
    public func removeBucket(_ name: String) throws { try self.namespace.removeBucket(name) }
    public func setBucketOwner(_ bucket: String, owner: Int64?) throws { try self.namespace.setBucketOwner(bucket, owner: owner) }
    public func commitObject(bucket: BucketRecord, segments: [String], manifestID: ChunkID, manifest: Manifest, chunks: [StoredChunk], owner: (uid: UInt32, gid: UInt32, mode: UInt32), releasing upload: String? = nil, condition: ObjectCondition? = nil) async throws { try await self.namespace.commitObject(bucket: bucket, segments: segments, manifestID: manifestID, manifest: manifest, chunks: chunks, owner: owner, releasing: upload, condition: condition) }
    public func object(bucket: BucketRecord, segments: [String]) throws -> ObjectRecord { try self.namespace.object(bucket: bucket, segments: segments) }
    public func removeObject(bucket: BucketRecord, segments: [String], condition: ObjectCondition? = nil) throws { try self.namespace.removeObject(bucket: bucket, segments: segments, condition: condition) }
    public func list(bucket: BucketRecord, prefix: String, recursive: Bool, startAfter: String? = nil, visit: (ListEntry) throws -> Void) throws { try self.namespace.list(bucket: bucket, prefix: prefix, recursive: recursive, startAfter: startAfter, visit: visit) }
    public func listPage(bucket: BucketRecord, prefix: String, recursive: Bool, startAfter: String?, limit: Int) throws -> (entries: [ListEntry], truncated: Bool) { try self.namespace.listPage(bucket: bucket, prefix: prefix, recursive: recursive, startAfter: startAfter, limit: limit) }
    public func attributes(of manifests: [ChunkID]) throws -> [ChunkID: [String: String]] { try self.namespace.attributes(of: manifests) }
    public func manifest(_ id: ChunkID) throws -> Manifest { try self.namespace.manifest(id) }
    public func inode(_ id: Int64) throws -> Inode? { try self.namespace.inode(id) }
    public func lookup(parent: Int64, name: String) throws -> Inode? { try self.namespace.lookup(parent: parent, name: name) }
    public func children(of folder: Int64, after: Int64, limit: Int) throws -> [(row: Int64, name: String, inode: Inode)] { try self.namespace.children(of: folder, after: after, limit: limit) }
    public func parent(of id: Int64) throws -> Int64? { try self.namespace.parent(of: id) }
    public func makeNode(parent: Int64, name: String, kind: Inode.Kind, mode: UInt32, uid: UInt32, gid: UInt32, symlinkTarget: String? = nil, manifest: (id: ChunkID, body: [UInt8])? = nil, special: (type: UInt32, rdev: UInt64)? = nil) throws -> Inode { try self.namespace.makeNode(parent: parent, name: name, kind: kind, mode: mode, uid: uid, gid: gid, symlinkTarget: symlinkTarget, manifest: manifest, special: special) }
    public func link(_ id: Int64, parent: Int64, name: String) throws -> Inode { try self.namespace.link(id, parent: parent, name: name) }
    @discardableResult public func unlink(parent: Int64, name: String) throws -> Int64 { try self.namespace.unlink(parent: parent, name: name) }
    public func rmdir(parent: Int64, name: String) throws { try self.namespace.rmdir(parent: parent, name: name) }
    public func rename(parent: Int64, name: String, newParent: Int64, newName: String, flags: Catalog.RenameFlags = []) throws { try self.namespace.rename(parent: parent, name: name, newParent: newParent, newName: newName, flags: flags) }
    public func setAttributes(_ id: Int64, _ change: Catalog.AttributeChange) throws -> Inode { try self.namespace.setAttributes(id, change) }
    public func commitContent(_ id: Int64, manifestID: ChunkID, manifest: Manifest, chunks: [StoredChunk], mtime: Int64, durable: Bool = false) throws -> Bool { try self.namespace.commitContent(id, manifestID: manifestID, manifest: manifest, chunks: chunks, mtime: mtime, durable: durable) }
    public func xattr(_ id: Int64, name: String) throws -> [UInt8]? { try self.namespace.xattr(id, name: name) }
    public func xattrNames(_ id: Int64) throws -> [String] { try self.namespace.xattrNames(id) }
    public func setXattr(_ id: Int64, name: String, value: [UInt8], create: Bool = false, replace: Bool = false) throws { try self.namespace.setXattr(id, name: name, value: value, create: create, replace: replace) }
    public func removeXattr(_ id: Int64, name: String) throws { try self.namespace.removeXattr(id, name: name) }
    public func key(ofInode id: Int64) -> String? { self.namespace.key(ofInode: id) }
    public func trash(bucket: BucketRecord? = nil, key: String? = nil) throws -> [Catalog.TrashEntry] { try self.namespace.trash(bucket: bucket, key: key) }
    @discardableResult public func undelete(bucket: BucketRecord, segments: [String]) throws -> Catalog.TrashEntry { try self.namespace.undelete(bucket: bucket, segments: segments) }
    public func purgeTrash(deletedBefore cutoff: Int64) throws -> Int { try self.namespace.purgeTrash(deletedBefore: cutoff) }
    public func addUser(name: String, admin: Bool = false, quota: Int64? = nil) throws -> UserRecord { try self.accounts.addUser(name: name, admin: admin, quota: quota) }
    public func users() throws -> [UserRecord] { try self.accounts.users() }
    public func user(named name: String) throws -> UserRecord { try self.accounts.user(named: name) }
    public func user(id: Int64) throws -> UserRecord? { try self.accounts.user(id: id) }
    public func setQuota(user name: String, bytes: Int64?) throws { try self.accounts.setQuota(user: name, bytes: bytes) }
    public func usage(user: Int64) throws -> UsageRecord { try self.accounts.usage(user: user) }
    public func addAccessKey(id: String, user: Int64, sealedSecret: [UInt8]) throws { try self.accounts.addAccessKey(id: id, user: user, sealedSecret: sealedSecret) }
    public func accessKey(_ id: String) throws -> AccessKeyRecord? { try self.accounts.accessKey(id) }
    public func accessKeys(user: Int64? = nil) throws -> [AccessKeyRecord] { try self.accounts.accessKeys(user: user) }
    public func removeAccessKey(_ id: String) throws { try self.accounts.removeAccessKey(id) }
    public func reserveQuota(user: Int64, total: Int64, reservation id: Int64?, holder: ProcessIdentity = .current) throws -> Int64? { try self.accounts.reserveQuota(user: user, total: total, reservation: id, holder: holder) }
    public func shrinkReservation(_ id: Int64, to total: Int64) throws { try self.accounts.shrinkReservation(id, to: total) }
    public func releaseReservation(_ id: Int64) throws { try self.accounts.releaseReservation(id) }
    public func createUpload(id: String, bucket: BucketRecord, key: String, attributes: [String: String]) throws { try self.uploads.create(id: id, bucket: bucket, key: key, attributes: attributes) }
    public func upload(_ id: String, bucket: BucketRecord) throws -> UploadRecord { try self.uploads.upload(id, bucket: bucket) }
    public func uploads(bucket: BucketRecord, prefix: String = "") throws -> [UploadRecord] { try self.uploads.list(bucket: bucket, prefix: prefix) }
    public func putPart(upload: String, number: Int, entries: [Manifest.Entry], etag: String, chunks: [StoredChunk]) async throws { try await self.uploads.putPart(upload: upload, number: number, entries: entries, etag: etag, chunks: chunks) }
    public func parts(upload: String) throws -> [PartRecord] { try self.uploads.parts(upload: upload) }
    public func abortUpload(_ id: String) throws { try self.uploads.abort(id) }
    public func addProvider(name: String, kind: String, config: String, quota: Int64?, sealedSecret: [UInt8]? = nil, group: String? = nil) throws -> ProviderRecord { try self.providers.add(name: name, kind: kind, config: config, quota: quota, sealedSecret: sealedSecret, group: group) }
    public func providersVersion() throws -> Int64 { try self.providers.version() }
    public func setProviderState(_ provider: Int64, _ state: String) throws { try self.providers.setState(provider, state) }
    public func setProviderHealth(_ provider: Int64, _ health: ProviderHealthRecord) throws { try self.providers.setHealth(provider, health) }
    public func removeProvider(_ provider: Int64, name: String) throws { try self.providers.remove(provider, name: name) }
}

extension ProviderRegistry {
    /// `catalog.providers()`, as before the split.
    public func callAsFunction() throws -> [ProviderRecord] { try all() }
}
