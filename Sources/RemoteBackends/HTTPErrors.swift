import ChunkStore
import CurlTransport
import Foundation
import S3Protocol

/// How remote backends turn transport failures and HTTP statuses into `BackendError`s. Backends only
/// classify; whether to retry is `RetryingBackend`'s decision.
enum RemoteErrors {
    /// A failure below HTTP. `where` names the provider location (never a credential).
    static func classify(_ error: Error, at location: String, name: String) -> Error {
        guard let failure = error as? TransferError else { return error }
        let detail = "\(location): \(failure.message)"
        switch failure.kind {
        case .unreachable: return BackendError.transient("\(detail) (is the server up and the address right?)")
        case .timedOut: return BackendError.transient("\(detail) (the server did not answer in time)")
        case .interrupted: return BackendError.transient("\(detail) (the connection broke; retrying may help)")
        case .untrustedPeer: return BackendError.permanent("\(detail): the server's identity did not verify (TLS certificate or SSH host key); check the address, or the CA file or pinned host key")
        case .loginDenied, .accessDenied: return BackendError.permanent("\(detail): access denied; check the user and credentials")
        case .notFound: return BackendError.notFound(name)
        case .full: return BackendError.full(detail)
        case .cancelled: return CancellationError()
        case .commandFailed, .responseTooLarge, .other: return BackendError.permanent(detail)
        }
    }

    /// An HTTP status other than success. `code` is the server's own error code when it sent one.
    static func classify(status: Int, code: String?, message: String?, retryAfter: String?,
                         at location: String, name: String) -> BackendError {
        let said = [code, message].compactMap { $0 }.filter { !$0.isEmpty }.joined(separator: ": ")
        let detail = "\(location): HTTP \(status)" + (said.isEmpty ? "" : " (\(said))")
        switch status {
        case 404:
            // A missing bucket is a misconfigured or deleted provider, not a missing chunk.
            if code == "NoSuchBucket" { return .permanent("\(detail): the bucket does not exist (was it deleted, or is the name or region wrong?)") }
            return .notFound(name)
        case 401, 403:
            return .permanent("\(detail): access denied; check the access key and secret (or user and password), and that they may use this bucket or folder")
        case 507: return .full(detail)
        case 429, 503:
            return .throttled(detail, retryAfter: retryAfter.flatMap(parseRetryAfter))
        // 423: WebDAV's Locked (another request holds the resource): passes.
        case 408, 423, 500...599: return .transient(detail)
        default:
            if code == "QuotaExceeded" || code == "EntityTooLarge" && status == 400 { return .full(detail) }
            if code == "RequestTimeout" { return .transient(detail) }
            return .permanent(detail)
        }
    }

    /// Retry-After is seconds, or an HTTP date.
    static func parseRetryAfter(_ value: String) -> Double? {
        if let seconds = Double(value.trimmingCharacters(in: .whitespaces)), seconds >= 0 { return seconds }
        return HTTPDates.parse(value.trimmingCharacters(in: .whitespaces)).map { max(0, $0.timeIntervalSinceNow) }
    }
}

/// Pieces of a URL the backends need for signing and Host headers.
struct Endpoint: Sendable, Equatable {
    let scheme: String
    let host: String
    let port: Int?
    /// The path without a trailing slash ("" for the root).
    let path: String

    init(_ text: String, allowed schemes: Set<String>, what: String) throws {
        guard let components = URLComponents(string: text), let scheme = components.scheme?.lowercased(),
              schemes.contains(scheme), let host = components.host, !host.isEmpty else {
            // Never echo a password someone put in the URL.
            let shown = text.range(of: "@").map { "…" + text[$0.lowerBound...] } ?? text
            throw StoreError(.invalidArgument, "\(what) \"\(shown)\" is not a URL I can use: write it as \(schemes.sorted().map { "\($0)://HOST[:PORT]/..." }.joined(separator: " or "))")
        }
        guard components.password == nil else {
            throw StoreError(.invalidArgument, "\(what) must not carry a password: pass it in a file with --password-file or --secret-key-file")
        }
        self.scheme = scheme
        self.host = host
        port = components.port
        var path = components.percentEncodedPath
        while path.hasSuffix("/") { path.removeLast() }
        self.path = path
    }

    /// "host" or "host:port" as the Host header carries it (the default port left out).
    var authority: String {
        let isDefault = port == nil || (scheme == "http" && port == 80) || (scheme == "https" && port == 443)
        let bracketed = host.contains(":") ? "[\(host)]" : host
        return isDefault ? bracketed : "\(bracketed):\(port!)"
    }

    var origin: String { "\(scheme)://\(authority)" }

    /// 127.0.0.1, ::1 or localhost: traffic that never leaves the machine.
    var isLoopback: Bool { ["127.0.0.1", "::1", "localhost"].contains(host.lowercased()) || host.hasPrefix("127.") }
}
