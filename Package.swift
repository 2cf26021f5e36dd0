// swift-tools-version:6.1
// Automator67: an encrypted, replicated, content-addressed store over free-tier providers.
import PackageDescription

let package = Package(
    name: "Automator67",
    platforms: [.macOS(.v14)],
    products: [
        .executable(name: "a67", targets: ["a67"]),
        .library(name: "ChunkStore", targets: ["ChunkStore"]),
        .library(name: "Replicator", targets: ["Replicator"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/groue/GRDB.swift", from: "7.10.0"),
        // The HTTP server. Its default traits pull in swift-configuration, which a67 does not use.
        .package(url: "https://github.com/hummingbird-project/hummingbird", from: "2.28.1", traits: []),
        .package(url: "https://github.com/apple/swift-nio", from: "2.101.2"),
        .package(url: "https://github.com/apple/swift-log", from: "1.16.2"),
        .package(url: "https://github.com/apple/swift-http-types", from: "1.8.0"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle", from: "2.13.0"),
        .package(url: "https://github.com/apple/swift-nio-extras", from: "1.35.2"),
        .package(url: "https://github.com/swift-server/swift-prometheus", from: "2.4.1"),
        // The app proxy's client to instances: pooled connections, bodies streamed both ways.
        .package(url: "https://github.com/swift-server/async-http-client", from: "1.37.0"),
    ],
    targets: [
        // C shims: a module map and a header each. Exactly one Swift module imports each shim.
        .systemLibrary(name: "COpenSSL", pkgConfig: "openssl", providers: [.apt(["libssl-dev"])]),
        .systemLibrary(name: "CZstd", pkgConfig: "libzstd", providers: [.apt(["libzstd-dev"])]),
        .systemLibrary(name: "CCurl", pkgConfig: "libcurl", providers: [.apt(["libcurl4-openssl-dev"])]),
        .systemLibrary(name: "CFUSE", pkgConfig: "fuse3", providers: [.apt(["libfuse3-dev"])]),
        .systemLibrary(name: "CGlibc"),

        // Chunker, IDs, sealing, keyring, backends, catalog, object streams. Owns COpenSSL, CZstd, CGlibc.
        .target(
            name: "ChunkStore",
            dependencies: ["COpenSSL", "CZstd", "CGlibc", .product(name: "GRDB", package: "GRDB.swift")]
        ),
        // The one libcurl wrapper: pooled handles on one multi-handle thread, bridged to async. Owns CCurl.
        .target(name: "CurlTransport", dependencies: ["CCurl", "ChunkStore"]),
        // The S3 protocol both sides speak: SigV4 (signing and its canonical forms), XML, HTTP dates.
        .target(name: "S3Protocol", dependencies: ["ChunkStore"]),
        // S3 (SigV4), WebDAV and SFTP backends over CurlTransport.
        .target(name: "RemoteBackends", dependencies: ["ChunkStore", "CurlTransport", "S3Protocol"]),
        // In-memory and fault-injecting backends and the shared backend conformance suite.
        .target(name: "BackendTesting", dependencies: ["ChunkStore"]),
        // Placement, replicated reads and writes, the repository facade, maintenance jobs (services).
        .target(
            name: "Replicator",
            dependencies: [
                "ChunkStore",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ]
        ),
        // The embedded default (a67 up) and app folders stored as bundles and versions (a67 app deploy).
        .target(name: "Orchestrator", dependencies: ["Replicator", "Compute", "Controller"]),
        // Long-running processes apart from the command that starts them: detaching, pid files, liveness
        // from /proc (the mount now, the node agent later).
        .target(name: "Supervision", dependencies: ["ChunkStore"]),
        // The compute half's values and pure logic, shared by the controller and the node agent (issue
        // 15): app manifests (a67app.toml), the scheduler, app bundles. No I/O but the bundle's files.
        .target(name: "Compute", dependencies: ["ChunkStore"]),
        // The controller inside a67 serve (issue 15): nodes, join tokens, apps, versions, deployments,
        // allocations and events, kept in the catalog under its own migrations.
        .target(name: "Controller", dependencies: ["ChunkStore", "Compute", .product(name: "GRDB", package: "GRDB.swift")]),
        // The controller's HTTP face (issue 15): the agent protocol (/_a67/agent) as an HTTPModule of a67 serve.
        .target(
            name: "ControllerHTTP",
            dependencies: [
                "ChunkStore", "Compute", "Controller", "Orchestrator", "Replicator", "Server",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ]
        ),
        // The node agent (issue 15): joins, heartbeats, fetches and verifies bundles, runs instances as
        // supervised process groups (cgroups v1 and v2), health checks, bounded logs, adoption.
        .target(
            name: "Agent",
            dependencies: [
                "ChunkStore", "Compute", "CurlTransport",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ]
        ),
        // Request forwarding to app instances (issue 15): Host NAME.apps.DOMAIN and /apps/NAME/ routed to
        // healthy instances, balanced, drained, outliers ejected.
        .target(
            name: "AppProxy",
            dependencies: [
                "ChunkStore", "Compute", "Server",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ]
        ),
        // The namespace as a filesystem through libfuse3 (issue 6). Owns CFUSE.
        .target(
            name: "FUSEMount",
            dependencies: [
                "CFUSE", "ChunkStore", "Replicator",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ]
        ),
        // a67 serve: the S3-compatible blob API, the JSON control API and /metrics, on Hummingbird.
        .target(
            name: "Server",
            dependencies: [
                "ChunkStore", "Replicator", "S3Protocol",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "HummingbirdCore", package: "hummingbird"),
                .product(name: "HummingbirdTLS", package: "hummingbird"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOHTTPTypes", package: "swift-nio-extras"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "HTTPTypes", package: "swift-http-types"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ]
        ),
        // The CLI: thin commands over the libraries.
        .executableTarget(
            name: "a67",
            dependencies: [
                "ChunkStore", "CurlTransport", "RemoteBackends", "Replicator", "Orchestrator", "FUSEMount", "Server", "Supervision",
                "Compute", "Controller", "ControllerHTTP", "Agent", "AppProxy", "S3Protocol",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),

        .testTarget(name: "ChunkStoreTests", dependencies: ["ChunkStore", "BackendTesting"]),
        .testTarget(
            name: "ReplicatorTests",
            dependencies: [
                "Replicator", "ChunkStore", "BackendTesting", "Compute",
                .product(name: "ServiceLifecycleTestKit", package: "swift-service-lifecycle"),
                .product(name: "GRDB", package: "GRDB.swift"),
            ]
        ),
        .testTarget(name: "SupervisionTests", dependencies: ["Supervision", "ChunkStore"]),
        .testTarget(name: "ComputeTests", dependencies: ["Compute", "ChunkStore", "BackendTesting"]),
        .testTarget(name: "ControllerTests", dependencies: ["Controller", "Compute", "ChunkStore", "BackendTesting"]),
        .testTarget(name: "ControllerHTTPTests", dependencies: ["ControllerHTTP", "Controller", "Compute", "Server", "S3Protocol", "Replicator",
                                                        "ChunkStore", "BackendTesting", "CurlTransport"]),
        .testTarget(name: "AgentTests", dependencies: ["Agent", "Compute", "ChunkStore"]),
        .testTarget(
            name: "AppProxyTests",
            dependencies: ["AppProxy", "Server", "Compute", "ChunkStore", "BackendTesting", "Replicator", "S3Protocol",
                           .product(name: "Hummingbird", package: "hummingbird"),
                           .product(name: "AsyncHTTPClient", package: "async-http-client")]
        ),
        .testTarget(name: "CLITests", dependencies: ["ChunkStore", "BackendTesting"]),
        // The mount's filesystem logic and reply type, without a kernel (the real mount: Tests/Mount, pytest).
        .testTarget(name: "FUSEMountTests", dependencies: ["FUSEMount", "ChunkStore", "Replicator", "BackendTesting"]),
        .testTarget(
            name: "ServerTests",
            dependencies: [
                "Server", "ChunkStore", "S3Protocol", "Replicator", "BackendTesting",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "NIOEmbedded", package: "swift-nio"),
            ]
        ),
        .testTarget(name: "S3ProtocolTests", dependencies: ["S3Protocol", "ChunkStore"]),
        .testTarget(
            name: "RemoteBackendTests",
            dependencies: ["RemoteBackends", "S3Protocol", "CurlTransport", "ChunkStore", "BackendTesting", "Replicator"],
            exclude: ["faultproxy.py"]  // run by the fault tests with python3, beside the real servers
        ),
    ]
)
