import ChunkStore
import GRDB

/// The controller's tables in the catalog (`catalog.db`), one `CatalogSchema` of module "controller":
/// nodes, join tokens, apps, versions, deployments, allocations and the event log. Every opener that
/// runs the compute half passes it (`Catalog(path:modules:)`, `Repository.…(catalogModules:)`), so the
/// tables are created on a new catalog and added to an existing store-only one, and catalog snapshots
/// carry them into a recovered repository.
///
/// Conventions, as in the store's own tables: every time is nanoseconds since 1970 (`Catalog.now()`),
/// every state column takes only its enum's raw values (a CHECK), secrets are never stored, only their
/// SHA-256. Table names start with `controller_` so that they never collide with another module's.
public enum ControllerSchema {
    public static let schema: CatalogSchema = {
        var schema = CatalogSchema(module: "controller")
        schema.register("v1: nodes, join tokens, apps, versions, deployments, allocations, events") { db in
            // A removed node keeps its row (its allocations and events still name it) with state
            // 'removed' and no credential; only the names of nodes not removed are unique, so a machine
            // can join again under its old name.
            // A join token is consumed by the node it admitted (node_id, used_at).
            // A version's number counts from 1 per app; its bundle is an object in the store (bundle)
            // whose archive hashes to bundle_sha256.
            // An allocation is one instance of one version of an app on one node; its resources are
            // the version's [resources] when it was placed.
            try db.execute(sql: """
                CREATE TABLE controller_node (
                    id TEXT PRIMARY KEY,
                    name TEXT NOT NULL,
                    address TEXT NOT NULL,
                    labels TEXT NOT NULL,
                    capacity_memory INTEGER NOT NULL CHECK (capacity_memory >= 0),
                    capacity_cpu INTEGER NOT NULL CHECK (capacity_cpu >= 0),
                    capacity_disk INTEGER NOT NULL CHECK (capacity_disk >= 0),
                    used_memory INTEGER NOT NULL DEFAULT 0,
                    used_cpu INTEGER NOT NULL DEFAULT 0,
                    used_disk INTEGER NOT NULL DEFAULT 0,
                    state TEXT NOT NULL CHECK (state IN ('ready', 'draining', 'down', 'removed')),
                    last_heartbeat INTEGER,
                    agent_version TEXT NOT NULL,
                    credential_hash BLOB CHECK (credential_hash IS NULL OR length(credential_hash) = 32),
                    created_at INTEGER NOT NULL,
                    CHECK ((state = 'removed') = (credential_hash IS NULL))) WITHOUT ROWID;
                CREATE UNIQUE INDEX controller_node_name ON controller_node(name) WHERE state != 'removed';
                CREATE TABLE controller_join_token (
                    hash BLOB PRIMARY KEY CHECK (length(hash) = 32),
                    created_at INTEGER NOT NULL,
                    expires_at INTEGER NOT NULL,
                    used_at INTEGER,
                    node_id TEXT REFERENCES controller_node(id),
                    CHECK ((used_at IS NULL) = (node_id IS NULL))) WITHOUT ROWID;
                CREATE TABLE controller_app (
                    id INTEGER PRIMARY KEY,
                    name TEXT NOT NULL UNIQUE,
                    created_at INTEGER NOT NULL);
                CREATE TABLE controller_version (
                    app_id INTEGER NOT NULL REFERENCES controller_app(id) ON DELETE CASCADE,
                    number INTEGER NOT NULL CHECK (number >= 1),
                    manifest TEXT NOT NULL,
                    bundle TEXT NOT NULL,
                    bundle_sha256 BLOB NOT NULL CHECK (length(bundle_sha256) = 32),
                    state TEXT NOT NULL CHECK (state IN ('stored', 'deployed', 'superseded', 'failed')),
                    created_at INTEGER NOT NULL,
                    PRIMARY KEY (app_id, number)) WITHOUT ROWID;
                CREATE TABLE controller_deployment (
                    id INTEGER PRIMARY KEY,
                    app_id INTEGER NOT NULL,
                    version INTEGER NOT NULL,
                    from_version INTEGER,
                    state TEXT NOT NULL CHECK (state IN ('running', 'succeeded', 'failed', 'reverted', 'cancelled')),
                    message TEXT,
                    created_at INTEGER NOT NULL,
                    finished_at INTEGER,
                    FOREIGN KEY (app_id, version) REFERENCES controller_version(app_id, number) ON DELETE CASCADE);
                CREATE INDEX controller_deployment_app ON controller_deployment(app_id, version);
                CREATE TABLE controller_allocation (
                    id TEXT PRIMARY KEY,
                    node_id TEXT NOT NULL REFERENCES controller_node(id),
                    app_id INTEGER NOT NULL,
                    version INTEGER NOT NULL,
                    state TEXT NOT NULL CHECK (state IN ('pending', 'starting', 'running', 'stopping', 'stopped', 'failed')),
                    port INTEGER CHECK (port BETWEEN 1 AND 65535),
                    restarts INTEGER NOT NULL DEFAULT 0 CHECK (restarts >= 0),
                    exit_code INTEGER,
                    memory INTEGER NOT NULL,
                    cpu INTEGER NOT NULL,
                    disk INTEGER NOT NULL,
                    created_at INTEGER NOT NULL,
                    updated_at INTEGER NOT NULL,
                    FOREIGN KEY (app_id, version) REFERENCES controller_version(app_id, number) ON DELETE CASCADE) WITHOUT ROWID;
                CREATE INDEX controller_allocation_node ON controller_allocation(node_id);
                CREATE INDEX controller_allocation_app ON controller_allocation(app_id, version);
                CREATE TABLE controller_event (
                    id INTEGER PRIMARY KEY,
                    at INTEGER NOT NULL,
                    kind TEXT NOT NULL CHECK (kind IN ('token.created', 'node.joined', 'node.state', 'node.removed',
                                                       'version.added', 'app.removed', 'allocation.placed', 'allocation.changed')),
                    subject TEXT NOT NULL,
                    message TEXT NOT NULL);
                """)
        }
        schema.register("v2: intents (desired version, instances, stopped), health and drain of allocations, desired-state generations") { db in
            // What the operator asks of an app (a67 app deploy, scale, stop, start, rollback): the
            // version to run (desired_version; NULL until its first deploy), how many instances
            // (desired_instances; NULL means the desired version's manifest's `instances`), and whether
            // it is stopped (stopped = 1: no instance runs, the intents are kept for a67 app start).
            // placement_problem: the scheduler's explanation when the last placement left instances
            // unplaced (a67 app status shows it), NULL when everything fit. removing = 1: a67 app rm was
            // asked while instances still held nodes' resources; the app is stopped and its rows go once
            // none does.
            // An allocation's `desired` is the controller's intent for it: 'run'; 'drain' (taken out
            // of the proxy's routes at drain_at, still running); 'stop' (its agent stops it). `healthy`
            // is what its agent last reported, healthy_since when that became true (NULL while not
            // healthy); message is the agent's last word on it ("exited with status 1; restarting in 4 s").
            // A node's generation counts the changes of its desired state (AgentProtocol's DesiredState);
            // kept here so that it keeps increasing across restarts of a67 serve.
            // controller_event is rebuilt (SQLite cannot change a CHECK) to take the new kinds.
            try db.execute(sql: """
                ALTER TABLE controller_app ADD COLUMN desired_version INTEGER;
                ALTER TABLE controller_app ADD COLUMN desired_instances INTEGER CHECK (desired_instances IS NULL OR desired_instances >= 0);
                ALTER TABLE controller_app ADD COLUMN stopped INTEGER NOT NULL DEFAULT 0 CHECK (stopped IN (0, 1));
                ALTER TABLE controller_app ADD COLUMN placement_problem TEXT;
                ALTER TABLE controller_app ADD COLUMN removing INTEGER NOT NULL DEFAULT 0 CHECK (removing IN (0, 1));
                ALTER TABLE controller_allocation ADD COLUMN desired TEXT NOT NULL DEFAULT 'run' CHECK (desired IN ('run', 'drain', 'stop'));
                ALTER TABLE controller_allocation ADD COLUMN healthy INTEGER NOT NULL DEFAULT 0 CHECK (healthy IN (0, 1));
                ALTER TABLE controller_allocation ADD COLUMN healthy_since INTEGER;
                ALTER TABLE controller_allocation ADD COLUMN drain_at INTEGER;
                ALTER TABLE controller_allocation ADD COLUMN message TEXT;
                ALTER TABLE controller_node ADD COLUMN generation INTEGER NOT NULL DEFAULT 0 CHECK (generation >= 0);
                CREATE TABLE controller_event_v2 (
                    id INTEGER PRIMARY KEY,
                    at INTEGER NOT NULL,
                    kind TEXT NOT NULL CHECK (kind IN ('token.created', 'node.joined', 'node.state', 'node.removed',
                                                       'version.added', 'app.removed', 'allocation.placed', 'allocation.changed',
                                                       'app.changed', 'deployment.started', 'deployment.finished', 'version.state',
                                                       'placement.failed', 'allocation.desired')),
                    subject TEXT NOT NULL,
                    message TEXT NOT NULL);
                INSERT INTO controller_event_v2(id, at, kind, subject, message) SELECT id, at, kind, subject, message FROM controller_event;
                DROP TABLE controller_event;
                ALTER TABLE controller_event_v2 RENAME TO controller_event;
                """)
        }
        return schema
    }()
}
