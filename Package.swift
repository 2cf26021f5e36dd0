// swift-tools-version:6.0
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
        // S3 (SigV4), WebDAV and SFTP backends over CurlTransport.
        .target(name: "RemoteBackends", dependencies: ["ChunkStore", "CurlTransport"]),
        // In-memory and fault-injecting backends and the shared backend conformance suite.
        .target(name: "BackendTesting", dependencies: ["ChunkStore"]),
        // Placement, replicated reads and writes, the repository facade.
        .target(name: "Replicator", dependencies: ["ChunkStore", "RemoteBackends"]),
        // Controller and node agent (later issues); today the embedded default.
        .target(name: "Orchestrator", dependencies: ["Replicator"]),
        // The namespace as a filesystem through libfuse3 (issue 6). Owns CFUSE.
        .target(name: "FUSEMount", dependencies: ["CFUSE"]),
        // The CLI: thin commands over the libraries.
        .executableTarget(
            name: "a67",
            dependencies: [
                "ChunkStore", "CurlTransport", "RemoteBackends", "Replicator", "Orchestrator", "FUSEMount",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ]
        ),

        .testTarget(name: "ChunkStoreTests", dependencies: ["ChunkStore", "BackendTesting"]),
        .testTarget(name: "ReplicatorTests", dependencies: ["Replicator", "ChunkStore", "BackendTesting"]),
        .testTarget(name: "CLITests", dependencies: ["ChunkStore", "BackendTesting"]),
        .testTarget(
            name: "RemoteBackendTests",
            dependencies: ["RemoteBackends", "CurlTransport", "ChunkStore", "BackendTesting", "Replicator"],
            exclude: ["faultproxy.py"]  // run by the fault tests with python3, beside the real servers
        ),
    ]
)
