import GRDB

extension CatalogSchema {
    /// ChunkStore's tables (every aggregate of Catalog). Its identifiers are the bare "vN: ..." ones
    /// that catalogs made since the first release have recorded: they never change.
    public static let store: CatalogSchema = {
        var schema = CatalogSchema(module: "")
        schema.register("v1: providers, buckets, inodes, chunks, manifests") { db in
            try db.execute(sql: """
                CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
                CREATE TABLE provider (
                    id INTEGER PRIMARY KEY,
                    name TEXT NOT NULL UNIQUE,
                    kind TEXT NOT NULL,
                    config TEXT NOT NULL,
                    quota INTEGER,
                    created_at REAL NOT NULL);
                CREATE TABLE bucket (
                    id INTEGER PRIMARY KEY,
                    name TEXT NOT NULL UNIQUE,
                    root_inode INTEGER,
                    replicas INTEGER NOT NULL,
                    created_at INTEGER NOT NULL);
                CREATE TABLE chunk (
                    id BLOB PRIMARY KEY,
                    plain_size INTEGER NOT NULL,
                    sealed_size INTEGER NOT NULL,
                    refcount INTEGER NOT NULL DEFAULT 0 CHECK (refcount >= 0),
                    entry_refs INTEGER NOT NULL DEFAULT 0 CHECK (entry_refs >= 0),
                    created_at INTEGER NOT NULL) WITHOUT ROWID;
                CREATE TABLE chunk_location (
                    chunk_id BLOB NOT NULL REFERENCES chunk(id),
                    provider_id INTEGER NOT NULL REFERENCES provider(id),
                    PRIMARY KEY (chunk_id, provider_id)) WITHOUT ROWID;
                CREATE INDEX chunk_location_provider ON chunk_location(provider_id);
                CREATE TABLE manifest (
                    id BLOB PRIMARY KEY REFERENCES chunk(id),
                    size INTEGER NOT NULL,
                    chunk_count INTEGER NOT NULL,
                    body BLOB NOT NULL) WITHOUT ROWID;
                CREATE TABLE inode (
                    id INTEGER PRIMARY KEY,
                    bucket_id INTEGER NOT NULL REFERENCES bucket(id),
                    parent_id INTEGER REFERENCES inode(id),
                    name TEXT NOT NULL,
                    kind TEXT NOT NULL CHECK (kind IN ('d', 'f', 'l')),
                    mode INTEGER NOT NULL,
                    uid INTEGER NOT NULL,
                    gid INTEGER NOT NULL,
                    size INTEGER NOT NULL DEFAULT 0,
                    mtime INTEGER NOT NULL,
                    ctime INTEGER NOT NULL,
                    manifest BLOB REFERENCES manifest(id),
                    symlink_target TEXT,
                    implicit INTEGER NOT NULL DEFAULT 0);
                CREATE UNIQUE INDEX inode_parent_name ON inode(parent_id, name);
                CREATE INDEX inode_bucket ON inode(bucket_id);
                """)
        }
        schema.register("v2: sealed provider credentials") { db in
            // AES-256-GCM under the repository's secrets key; NULL for providers without credentials.
            try db.execute(sql: "ALTER TABLE provider ADD COLUMN sealed_secret BLOB")
        }
        schema.register("v3: replication, health, trash, orphans") { db in
            try db.execute(sql: """
                ALTER TABLE provider ADD COLUMN fault_group TEXT;
                ALTER TABLE provider ADD COLUMN state TEXT NOT NULL DEFAULT 'active';
                ALTER TABLE provider ADD COLUMN health_breaker TEXT;
                ALTER TABLE provider ADD COLUMN health_latency REAL;
                ALTER TABLE provider ADD COLUMN health_error_rate REAL;
                ALTER TABLE provider ADD COLUMN health_requests INTEGER;
                ALTER TABLE provider ADD COLUMN health_checked_at INTEGER;
                ALTER TABLE bucket ADD COLUMN min_replicas INTEGER NOT NULL DEFAULT 1;
                ALTER TABLE chunk ADD COLUMN want INTEGER NOT NULL DEFAULT 1;
                UPDATE chunk SET want = MAX(1, (SELECT COUNT(*) FROM chunk_location l WHERE l.chunk_id = chunk.id));
                CREATE TABLE trash (
                    id INTEGER PRIMARY KEY,
                    bucket_id INTEGER NOT NULL REFERENCES bucket(id),
                    key TEXT NOT NULL,
                    manifest BLOB NOT NULL REFERENCES manifest(id),
                    size INTEGER NOT NULL,
                    mtime INTEGER NOT NULL,
                    mode INTEGER NOT NULL,
                    uid INTEGER NOT NULL,
                    gid INTEGER NOT NULL,
                    deleted_at INTEGER NOT NULL);
                CREATE INDEX trash_key ON trash(bucket_id, key, deleted_at);
                CREATE TABLE orphan (
                    provider_id INTEGER NOT NULL REFERENCES provider(id),
                    name TEXT NOT NULL,
                    first_seen INTEGER NOT NULL,
                    PRIMARY KEY (provider_id, name)) WITHOUT ROWID;
                """)
        }
        schema.register("v4: users, access keys, bucket owners, multipart uploads") { db in
            try db.execute(sql: """
                CREATE TABLE user (
                    id INTEGER PRIMARY KEY,
                    name TEXT NOT NULL UNIQUE,
                    admin INTEGER NOT NULL DEFAULT 0,
                    quota INTEGER,
                    created_at INTEGER NOT NULL);
                CREATE TABLE access_key (
                    id TEXT PRIMARY KEY,
                    user_id INTEGER NOT NULL REFERENCES user(id),
                    sealed_secret BLOB NOT NULL,
                    created_at INTEGER NOT NULL);
                CREATE INDEX access_key_user ON access_key(user_id);
                ALTER TABLE bucket ADD COLUMN owner_id INTEGER REFERENCES user(id);
                CREATE TABLE upload (
                    id TEXT PRIMARY KEY,
                    bucket_id INTEGER NOT NULL REFERENCES bucket(id),
                    key TEXT NOT NULL,
                    attributes TEXT NOT NULL,
                    created_at INTEGER NOT NULL);
                CREATE INDEX upload_bucket ON upload(bucket_id, key);
                CREATE TABLE upload_part (
                    upload_id TEXT NOT NULL REFERENCES upload(id),
                    number INTEGER NOT NULL,
                    size INTEGER NOT NULL,
                    etag TEXT NOT NULL,
                    body BLOB NOT NULL,
                    created_at INTEGER NOT NULL,
                    PRIMARY KEY (upload_id, number)) WITHOUT ROWID;
                """)
        }
        schema.register("v5: the mount: access times, hard links, special files, extended attributes") { db in
            // link_of: a hard link's extra name points at the inode that holds the file (its content,
            // owner and times); the row itself holds only the name. See FORMAT.md, "Namespace".
            try db.execute(sql: """
                ALTER TABLE inode ADD COLUMN atime INTEGER;
                ALTER TABLE inode ADD COLUMN link_of INTEGER REFERENCES inode(id);
                ALTER TABLE inode ADD COLUMN special INTEGER;
                ALTER TABLE inode ADD COLUMN rdev INTEGER;
                CREATE INDEX inode_link_of ON inode(link_of) WHERE link_of IS NOT NULL;
                CREATE INDEX inode_children ON inode(parent_id, id);
                CREATE INDEX inode_subfolders ON inode(parent_id, kind);
                CREATE TABLE xattr (
                    inode_id INTEGER NOT NULL REFERENCES inode(id),
                    name TEXT NOT NULL,
                    value BLOB NOT NULL,
                    PRIMARY KEY (inode_id, name)) WITHOUT ROWID;
                """)
        }
        schema.register("v6: leases on chunks not yet committed, quota reservations") { db in
            // Rows a running process holds for as long as it lives (`holder` is its ProcessIdentity,
            // "PID:START_TICKS"): gc keeps every chunk with a live lease, whether or not the catalog
            // records it yet, and a quota counts the live reservations of uploads in flight. A
            // holder that was killed is recognized as gone and its rows are dropped.
            try db.execute(sql: """
                CREATE TABLE chunk_lease (
                    chunk_id BLOB NOT NULL,
                    holder TEXT NOT NULL,
                    PRIMARY KEY (chunk_id, holder)) WITHOUT ROWID;
                CREATE TABLE quota_reservation (
                    id INTEGER PRIMARY KEY,
                    user_id INTEGER NOT NULL REFERENCES user(id),
                    bytes INTEGER NOT NULL CHECK (bytes >= 0),
                    holder TEXT NOT NULL,
                    created_at INTEGER NOT NULL);
                CREATE INDEX quota_reservation_user ON quota_reservation(user_id);
                """)
        }
        schema.register("v7: why a provider takes no chunks") { db in
            try db.execute(sql: "ALTER TABLE provider ADD COLUMN health_problem TEXT")
        }
        schema.register("v8: one time unit, provider states checked") { db in
            // provider.created_at was seconds as a real; every time is nanoseconds since 1970 now. SQLite
            // cannot change a column's type, so the table is rebuilt (GRDB runs migrations with foreign
            // keys off and checks them after: chunk_location and orphan keep pointing at the same ids).
            // The state columns take only their enums' raw values (ProviderState, BreakerState).
            try db.execute(sql: """
                CREATE TABLE provider_v8 (
                    id INTEGER PRIMARY KEY,
                    name TEXT NOT NULL UNIQUE,
                    kind TEXT NOT NULL,
                    config TEXT NOT NULL,
                    quota INTEGER,
                    created_at INTEGER NOT NULL,
                    sealed_secret BLOB,
                    fault_group TEXT,
                    state TEXT NOT NULL DEFAULT 'active' CHECK (state IN ('active', 'draining')),
                    health_breaker TEXT CHECK (health_breaker IN ('closed', 'open', 'half-open')),
                    health_latency REAL,
                    health_error_rate REAL,
                    health_requests INTEGER,
                    health_checked_at INTEGER,
                    health_problem TEXT);
                INSERT INTO provider_v8(id, name, kind, config, quota, created_at, sealed_secret, fault_group, state, health_breaker,
                                       health_latency, health_error_rate, health_requests, health_checked_at, health_problem)
                    SELECT id, name, kind, config, quota, CAST(ROUND(created_at * 1000000000) AS INTEGER), sealed_secret, fault_group,
                           state, health_breaker, health_latency, health_error_rate, health_requests, health_checked_at, health_problem
                    FROM provider;
                DROP TABLE provider;
                ALTER TABLE provider_v8 RENAME TO provider;
                """)
        }
        schema.register("v9: where leased chunks not yet recorded are stored") { db in
            // A mount stores a file's short last block and records it only when the file is committed;
            // meanwhile its lease says where the copies are, so that provider rm does not remove the one
            // provider holding a block that no location records yet.
            try db.execute(sql: """
                CREATE TABLE chunk_lease_copy (
                    chunk_id BLOB NOT NULL,
                    holder TEXT NOT NULL,
                    provider_id INTEGER NOT NULL,
                    PRIMARY KEY (chunk_id, holder, provider_id)) WITHOUT ROWID;
                CREATE INDEX chunk_lease_copy_provider ON chunk_lease_copy(provider_id);
                """)
        }
        return schema
    }()
}
