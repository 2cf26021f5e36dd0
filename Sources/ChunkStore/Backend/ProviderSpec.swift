import Foundation

// What a provider is, as the catalog stores it (`provider.kind`, `provider.config` as JSON, FORMAT.md),
// and its credentials. Every layer reads these; a `BackendFactory` turns them into backends.

/// What a provider is, as stored in the catalog's `provider.config` (JSON, no secrets).
public enum ProviderSpec: Sendable, Equatable {
    case directory(path: String)
    case s3(S3Settings, ConnectionOptions)
    case webdav(WebDAVSettings, ConnectionOptions)
    case sftp(SFTPSettings, ConnectionOptions)

    public var kind: String {
        switch self {
        case .directory: return "dir"
        case .s3: return "s3"
        case .webdav: return "webdav"
        case .sftp: return "sftp"
        }
    }

    /// Where it stores, for people.
    public var summary: String {
        switch self {
        case .directory(let path): return path
        case .s3(let s, _):
            return (s.pathStyle ? "\(s.endpoint) bucket \(s.bucket)" : "\(s.endpoint) bucket \(s.bucket) (virtual-hosted)")
                + (s.prefix.isEmpty ? "" : " prefix \(s.prefix)")
        case .webdav(let s, _): return "\(s.url) as \(s.user)"
        case .sftp(let s, _): return s.url
        }
    }

    /// Two specs with the same identity store in the same place.
    public var identity: String {
        switch self {
        case .directory(let path): return "dir:" + path
        case .s3(let s, _): return "s3:\(s.endpoint.lowercased())/\(s.bucket)/\(s.prefix)"
        case .webdav(let s, _): return "webdav:" + s.url.lowercased().trimmingCharacters(in: CharacterSet(charactersIn: "/"))
        case .sftp(let s, _): return "sftp:" + s.url.lowercased().trimmingCharacters(in: CharacterSet(charactersIn: "/"))
        }
    }

    /// How a remote provider is reached; nil for a directory.
    public var options: ConnectionOptions? {
        switch self {
        case .directory: return nil
        case .s3(_, let o), .webdav(_, let o), .sftp(_, let o): return o
        }
    }

    private struct Stored: Codable {
        var path: String?
        var s3: S3Settings?
        var webdav: WebDAVSettings?
        var sftp: SFTPSettings?
        var connection: ConnectionOptions?
    }

    /// What the catalog keeps in `provider.config` (FORMAT.md).
    public var configJSON: String {
        var stored = Stored()
        switch self {
        case .directory(let path): stored.path = path
        case .s3(let s, let o): stored.s3 = s; stored.connection = o
        case .webdav(let s, let o): stored.webdav = s; stored.connection = o
        case .sftp(let s, let o): stored.sftp = s; stored.connection = o
        }
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        return String(decoding: try! encoder.encode(stored), as: UTF8.self)
    }

    /// A spec as the catalog keeps it: `kind` and `provider.config`.
    public init(kind: String, config: String) throws {
        guard let stored = try? JSONDecoder().decode(Stored.self, from: Data(config.utf8)) else {
            throw StoreError(.internal, "provider config for kind \(kind) cannot be read: \(config.prefix(200))")
        }
        let options = stored.connection ?? ConnectionOptions()
        switch kind {
        case "dir": if let path = stored.path { self = .directory(path: path); return }
        case "s3": if let s = stored.s3 { self = .s3(s, options); return }
        case "webdav": if let s = stored.webdav { self = .webdav(s, options); return }
        case "sftp": if let s = stored.sftp { self = .sftp(s, options); return }
        default: throw StoreError(.internal, "provider kind \(kind) is not known to this a67: is it older than the repository?")
        }
        throw StoreError(.internal, "provider config for kind \(kind) lacks its settings")
    }
}

/// A provider's credentials. Kept only sealed in the catalog (Replicator's `ProviderSecret.seal`,
/// FORMAT.md "Provider credentials") and in memory.
public enum ProviderSecret: Sendable, Equatable {
    case s3SecretKey(String)
    case password(String)
    /// An SSH private key's file contents, and its passphrase if it has one.
    case sshKey([UInt8], passphrase: String?)
}

/// How a remote provider is reached, beyond its address: timeouts, trust, and how many requests it
/// may have in flight. Stored with the provider's settings.
public struct ConnectionOptions: Sendable, Equatable, Codable {
    /// Seconds to connect (TCP plus TLS or SSH handshake) before giving up.
    public var connectTimeout: Double
    /// Seconds a transfer may crawl below 1 KiB/s before it is abandoned (and retried).
    public var stallTimeout: Int
    /// At most this many requests at once to this provider.
    public var maxRequests: Int
    /// A PEM file of CAs to trust instead of the system's (TLS providers with a private CA).
    public var caFile: String?

    public init(connectTimeout: Double = 10, stallTimeout: Int = 30, maxRequests: Int = 8, caFile: String? = nil) {
        self.connectTimeout = connectTimeout
        self.stallTimeout = stallTimeout
        self.maxRequests = maxRequests
        self.caFile = caFile
    }
}

/// Where an S3-compatible bucket is and how to reach it. No secrets: the secret key travels apart.
public struct S3Settings: Sendable, Equatable, Codable {
    /// "https://s3.eu-central-1.amazonaws.com", "http://127.0.0.1:8333".
    public var endpoint: String
    public var bucket: String
    public var region: String
    /// Path-style addressing (ENDPOINT/BUCKET/KEY) instead of virtual-hosted (BUCKET.HOST/KEY).
    public var pathStyle: Bool
    /// Objects go under this prefix ("" for the bucket's root).
    public var prefix: String
    public var accessKeyID: String

    public init(endpoint: String, bucket: String, region: String = "us-east-1", pathStyle: Bool = false,
                prefix: String = "", accessKeyID: String) {
        self.endpoint = endpoint
        self.bucket = bucket
        self.region = region
        self.pathStyle = pathStyle
        self.prefix = prefix
        self.accessKeyID = accessKeyID
    }
}

/// Where a WebDAV folder is and who logs in. The password travels apart.
public struct WebDAVSettings: Sendable, Equatable, Codable {
    /// The folder to keep chunks in: "https://dav.example.com/remote.php/dav/files/me/a67".
    public var url: String
    public var user: String

    public init(url: String, user: String) {
        self.url = url
        self.user = user
    }
}

/// Where an SFTP folder is and which host key to expect. The key or password travels apart.
public struct SFTPSettings: Sendable, Equatable, Codable {
    /// "sftp://USER@HOST:PORT/PATH" (no password in it).
    public var url: String
    /// The host key's SHA-256 fingerprint (base64, no padding), pinned on first contact.
    public var hostKeySHA256: String?

    public init(url: String, hostKeySHA256: String? = nil) {
        self.url = url
        self.hostKeySHA256 = hostKeySHA256
    }
}
