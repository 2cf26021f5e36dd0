/// What one libcurl transfer asks for and returns. The module's only public vocabulary: backends
/// build requests, `CurlEngine.perform` runs them.

public struct HTTPHeader: Sendable, Equatable {
    public let name: String
    public let value: String
    public init(_ name: String, _ value: String) {
        self.name = name
        self.value = value
    }
}

/// Limits that keep a dead or crawling server from holding a request forever.
public struct TransferLimits: Sendable, Equatable {
    /// Seconds to establish the connection (TCP, and TLS or SSH handshake).
    public var connectTimeout: Double
    /// A transfer moving fewer than `stallBytesPerSecond` for `stallSeconds` is abandoned.
    public var stallSeconds: Int
    public var stallBytesPerSecond: Int
    /// Responses larger than this are refused (a server cannot make us buffer without bound).
    public var maxResponseBytes: Int

    public init(connectTimeout: Double = 10, stallSeconds: Int = 30, stallBytesPerSecond: Int = 1024,
                maxResponseBytes: Int = 64 << 20) {
        self.connectTimeout = connectTimeout
        self.stallSeconds = stallSeconds
        self.stallBytesPerSecond = stallBytesPerSecond
        self.maxResponseBytes = maxResponseBytes
    }
}

/// How the server proves who it is. TLS peers are always verified (against the system's CAs, or
/// `caFile`); SSH hosts against a pinned key fingerprint.
public struct PeerTrust: Sendable, Equatable {
    /// PEM bundle of the CAs to trust instead of the system's, for providers with a private CA.
    public var caFile: String?
    /// The SSH host key's SHA-256 fingerprint, base64 without padding (what `ssh-keygen -l` prints
    /// after "SHA256:"). Nil accepts any host key and reports the one seen (trust on first use).
    public var sshHostKeySHA256: String?
    /// A TLS peer's public key, "sha256//" and the base64 SHA-256 of its SubjectPublicKeyInfo (what
    /// `a67 node token create` prints for the controller): checked instead of the CA chain and name.
    public var pinnedPublicKey: String?

    public init(caFile: String? = nil, sshHostKeySHA256: String? = nil, pinnedPublicKey: String? = nil) {
        self.caFile = caFile
        self.sshHostKeySHA256 = sshHostKeySHA256
        self.pinnedPublicKey = pinnedPublicKey
    }
}

/// Credentials, passed to libcurl in memory (never in a URL, an argument list or a file we write).
public struct TransferCredentials: Sendable {
    public var user: String?
    public var password: String?
    /// SSH private key: a path libssh2 can open (see `SecretFile` for keys that live only in memory).
    public var sshPrivateKeyFile: String?
    public var sshKeyPassphrase: String?

    public init(user: String? = nil, password: String? = nil, sshPrivateKeyFile: String? = nil,
                sshKeyPassphrase: String? = nil) {
        self.user = user
        self.password = password
        self.sshPrivateKeyFile = sshPrivateKeyFile
        self.sshKeyPassphrase = sshKeyPassphrase
    }
}

public struct TransferRequest: Sendable {
    public enum Method: Sendable, Equatable {
        case get
        /// Headers only (HTTP HEAD; for SFTP, no transfer: only the quote commands run).
        case head
        /// Uploads `body` (HTTP PUT; SFTP upload).
        case put
        case delete
        /// Any other HTTP verb (PROPFIND, MKCOL), with `body` if given.
        case custom(String)
    }

    public var method: Method
    public var url: String
    public var headers: [HTTPHeader]
    public var body: [UInt8]?
    /// Byte range "FIRST-LAST" (inclusive), or "FIRST-".
    public var range: String?
    public var credentials: TransferCredentials
    public var limits: TransferLimits
    public var trust: PeerTrust
    /// SFTP commands to run before / after the transfer (libcurl's quote syntax: "rename A B",
    /// "rm A", "mkdir A"; a leading `*` ignores that command's failure).
    public var sftpQuote: [String]
    public var sftpPostQuote: [String]
    /// SFTP uploads create missing parent folders.
    public var createMissingFolders: Bool
    /// Open a new connection rather than reuse a cached one (to see the peer's identity afresh).
    public var freshConnection: Bool

    public init(_ method: Method, _ url: String, headers: [HTTPHeader] = [], body: [UInt8]? = nil,
                range: String? = nil, credentials: TransferCredentials = .init(), limits: TransferLimits = .init(),
                trust: PeerTrust = .init()) {
        self.method = method
        self.url = url
        self.headers = headers
        self.body = body
        self.range = range
        self.credentials = credentials
        self.limits = limits
        self.trust = trust
        sftpQuote = []
        sftpPostQuote = []
        createMissingFolders = false
        freshConnection = false
    }
}

public struct TransferResponse: Sendable {
    /// The HTTP status; 0 for protocols without one (SFTP).
    public let status: Int
    /// Headers of the final response (not of a 100 Continue or a redirect).
    public let headers: [HTTPHeader]
    public let body: [UInt8]
    /// The size libcurl learned of the resource (Content-Length; for an SFTP head, the file's size).
    public let contentLength: Int?
    /// The SSH host key's SHA-256 fingerprint (base64, no padding), when the transfer was SFTP.
    public let sshHostKeySHA256: String?

    /// The first header of that name, compared case-insensitively.
    public func header(_ name: String) -> String? {
        headers.first { $0.name.caseInsensitiveCompare(name) == .orderedSame }?.value
    }
}

/// Why a transfer failed below HTTP: the connection, the protocol, or the peer's identity. HTTP error
/// statuses are not errors here; they arrive as responses for the backend to classify.
public struct TransferError: Error, Sendable, Equatable, CustomStringConvertible {
    public enum Kind: Sendable, Equatable {
        /// Could not resolve or connect, or the connection was refused.
        case unreachable
        /// Connect timeout, or the transfer stalled below the low-speed limit.
        case timedOut
        /// The connection broke mid-transfer, or the response was cut short.
        case interrupted
        /// The peer's TLS certificate or SSH host key did not verify.
        case untrustedPeer
        /// The server refused the credentials (SSH login).
        case loginDenied
        /// SFTP: no such file or folder.
        case notFound
        /// SFTP: permission denied.
        case accessDenied
        /// SFTP: a quote command (rename, rm, mkdir) failed.
        case commandFailed
        /// The remote disk or quota is full.
        case full
        /// The response exceeded `TransferLimits.maxResponseBytes`.
        case responseTooLarge
        case cancelled
        case other
    }

    public let kind: Kind
    /// libcurl's code (CURLcode), for diagnosis.
    public let code: Int
    /// libcurl's message. Holds no credentials: they never enter a URL.
    public let message: String
    /// The SSH host key seen before the failure, if the transfer got that far.
    public let sshHostKeySHA256: String?
    /// How long libcurl worked on the transfer before it failed (its own clock: the time the calling
    /// task took to resume is not in it).
    public let seconds: Double?

    public init(_ kind: Kind, code: Int, message: String, sshHostKeySHA256: String? = nil, seconds: Double? = nil) {
        self.kind = kind
        self.code = code
        self.message = message
        self.sshHostKeySHA256 = sshHostKeySHA256
        self.seconds = seconds
    }

    public var description: String { message }
}
