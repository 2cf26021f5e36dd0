import ChunkStore
import CurlTransport
import Foundation
import RemoteBackends

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

    var limits: TransferLimits { TransferLimits(connectTimeout: connectTimeout, stallSeconds: stallTimeout) }
}

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
    var identity: String {
        switch self {
        case .directory(let path): return "dir:" + path
        case .s3(let s, _): return "s3:\(s.endpoint.lowercased())/\(s.bucket)/\(s.prefix)"
        case .webdav(let s, _): return "webdav:" + s.url.lowercased().trimmingCharacters(in: CharacterSet(charactersIn: "/"))
        case .sftp(let s, _): return "sftp:" + s.url.lowercased().trimmingCharacters(in: CharacterSet(charactersIn: "/"))
        }
    }

    var options: ConnectionOptions? {
        switch self {
        case .directory: return nil
        case .s3(_, let o), .webdav(_, let o), .sftp(_, let o): return o
        }
    }

    /// The backend, with remote ones wrapped for retries and a request limit. `secret` is what
    /// `ProviderSecret.open` returned for this provider.
    public func makeBackend(secret: ProviderSecret?) throws -> any Backend {
        switch self {
        case .directory(let path):
            return DirectoryBackend(root: path)
        case .s3(let settings, let options):
            guard case .s3SecretKey(let key)? = secret else { throw Self.missingSecret("S3 secret key") }
            let backend = try S3Backend(settings: settings, secretKey: key, limits: options.limits,
                                        trust: PeerTrust(caFile: options.caFile))
            return RetryingBackend(backend, maxConcurrent: options.maxRequests)
        case .webdav(let settings, let options):
            guard case .password(let password)? = secret else { throw Self.missingSecret("WebDAV password") }
            let backend = try WebDAVBackend(settings: settings, password: password, limits: options.limits,
                                            trust: PeerTrust(caFile: options.caFile))
            return RetryingBackend(backend, maxConcurrent: options.maxRequests)
        case .sftp(let settings, let options):
            let login: SFTPLogin
            switch secret {
            case .password(let password)?: login = .password(password)
            case .sshKey(let key, let passphrase)?: login = .key(try SecretFile(contents: key), passphrase: passphrase)
            default: throw Self.missingSecret("SFTP key or password")
            }
            let backend = try SFTPBackend(settings: settings, login: login, limits: options.limits)
            return RetryingBackend(backend, maxConcurrent: options.maxRequests)
        }
    }

    private static func missingSecret(_ what: String) -> StoreError {
        StoreError(.internal, "the catalog holds no \(what) for this provider")
    }

    private struct Stored: Codable {
        var path: String?
        var s3: S3Settings?
        var webdav: WebDAVSettings?
        var sftp: SFTPSettings?
        var connection: ConnectionOptions?
    }

    var configJSON: String {
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

    init(kind: String, config: String) throws {
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

/// A provider's credentials. Kept only sealed in the catalog (see `seal`) and in memory.
public enum ProviderSecret: Sendable, Equatable {
    case s3SecretKey(String)
    case password(String)
    /// An SSH private key's file contents, and its passphrase if it has one.
    case sshKey([UInt8], passphrase: String?)

    private struct Stored: Codable {
        var kind: String
        var value: String?
        var key: Data?
        var passphrase: String?
    }

    /// AES-256-GCM under the repository's secrets key, bound to the repository and provider name.
    func seal(keys: RepositoryKeys, repositoryID: String, provider: String) -> [UInt8] {
        let stored: Stored = switch self {
        case .s3SecretKey(let value): Stored(kind: "s3-secret-key", value: value)
        case .password(let value): Stored(kind: "password", value: value)
        case .sshKey(let key, let passphrase): Stored(kind: "ssh-key", key: Data(key), passphrase: passphrase)
        }
        let plaintext = [UInt8](try! JSONEncoder().encode(stored))
        return Crypto.sealBox(plaintext, key: keys.secretsKey, context: Self.context(repositoryID, provider))
    }

    static func open(_ sealed: [UInt8], keys: RepositoryKeys, repositoryID: String, provider: String) throws -> ProviderSecret {
        guard let plaintext = Crypto.openBox(sealed, key: keys.secretsKey, context: context(repositoryID, provider)),
              let stored = try? JSONDecoder().decode(Stored.self, from: Data(plaintext)) else {
            throw StoreError(.integrity, "the credentials of provider \(provider) do not open under this repository's key: the catalog was altered or belongs elsewhere; add the provider again")
        }
        switch (stored.kind, stored.value, stored.key) {
        case ("s3-secret-key", let value?, _): return .s3SecretKey(value)
        case ("password", let value?, _): return .password(value)
        case ("ssh-key", _, let key?): return .sshKey([UInt8](key), passphrase: stored.passphrase)
        default: throw StoreError(.internal, "the credentials of provider \(provider) are of an unknown kind \(stored.kind)")
        }
    }

    private static func context(_ repositoryID: String, _ provider: String) -> [UInt8] {
        Array("automator67/v1/provider-secret\0\(repositoryID)\0\(provider)".utf8)
    }
}

/// Sizes as people write them: `500M`, `10G`, `1.5TiB`, `2048` (bytes). K, M, G, T with or without
/// `iB` are powers of 1024; `KB`, `MB`, `GB`, `TB` are powers of 1000.
public enum ByteSize {
    public static func parse(_ text: String) throws -> Int64 {
        let trimmed = text.trimmingCharacters(in: .whitespaces)
        let digits = trimmed.prefix { $0.isNumber || $0 == "." }
        let unit = trimmed.dropFirst(digits.count).uppercased()
        let kib = 1024.0
        let binary: [String: Double] = ["": 1, "B": 1, "K": kib, "KIB": kib, "M": kib * kib, "MIB": kib * kib,
                                        "G": kib * kib * kib, "GIB": kib * kib * kib, "T": kib * kib * kib * kib,
                                        "TIB": kib * kib * kib * kib]
        let decimal: [String: Double] = ["KB": 1e3, "MB": 1e6, "GB": 1e9, "TB": 1e12]
        guard let number = Double(digits), number >= 0, let factor = binary[unit] ?? decimal[unit],
              number * factor < 9e18 else {
            throw StoreError(.invalidArgument, "cannot read \"\(text)\" as a size: write a number with an optional unit, like 500M, 10G or 1TiB")
        }
        return Int64(number * factor)
    }

    /// 1536 -> "1.5 KiB".
    public static func format(_ bytes: Int64) -> String {
        let units = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"]
        var value = Double(bytes)
        var unit = 0
        while abs(value) >= 1024 && unit < units.count - 1 {
            value /= 1024
            unit += 1
        }
        return unit == 0 ? "\(bytes) B" : String(format: "%.1f %@", value, units[unit])
    }
}
