import HTTPTypes

/// Which requests are an app's and where they go, from the request head alone (pure).
///
/// - `Host: NAME.<domain>` (any port; case does not matter): app NAME, the path as sent. Every
///   path of such a host is the app's, `/_a67` included: the domain belongs to the apps.
/// - `/apps/NAME/REST`: app NAME, forwarded as `/REST` (the query kept). `/apps/NAME` alone is
///   redirected to `/apps/NAME/` so that the app's relative links resolve under the prefix; the
///   instance is told the prefix in X-Forwarded-Prefix.
///   A request signed for S3 (SigV4 in the Authorization header or a presigned query) is left to
///   S3 even on such a path, so that a bucket named `apps` still works with every S3 client; app
///   traffic carries no S3 signature.
struct AppAddressing: Sendable {
    /// ".DOMAIN", lowercased ASCII.
    let hostSuffix: [UInt8]

    static let pathPrefix: [UInt8] = Array("/apps/".utf8)

    init(domain: String) {
        var domain = domain.lowercased()
        while domain.hasPrefix(".") { domain.removeFirst() }
        while domain.hasSuffix(".") { domain.removeLast() }
        hostSuffix = Array(("." + domain).utf8)
    }

    /// Where a request goes.
    enum Target: Equatable {
        /// To app `app`, with `path` (and query) as the instance sees it; `prefix` is the path
        /// prefix taken off (`/apps/NAME`), sent as X-Forwarded-Prefix so the app can build its URLs.
        case app(String, path: String, prefix: String? = nil)
        /// Redirect to `location` (`/apps/NAME` without its slash).
        case redirect(location: String)
    }

    /// Whether the request is an app's: the check every request pays for (no allocation).
    func takes(_ head: HTTPRequest) -> Bool {
        if let authority = head.authority, hostApp(authority) != nil { return true }
        guard let path = head.path, Self.pathApp(path) != nil else { return false }
        return !Self.isSignedForS3(head)
    }

    /// Where a request `takes` accepted goes; nil when it is not an app's.
    func target(_ head: HTTPRequest) -> Target? {
        if let authority = head.authority, let name = hostApp(authority) {
            return .app(String(name).lowercased(), path: head.path ?? "/")
        }
        guard let path = head.path, let (name, rest) = Self.pathApp(path), !Self.isSignedForS3(head) else { return nil }
        if rest.utf8.first == UInt8(ascii: "/") { return .app(String(name), path: String(rest), prefix: "/apps/\(name)") }
        return .redirect(location: "/apps/\(name)/\(rest)")
    }

    /// The app name a Host header names (the labels before the domain), nil when it is not under the domain.
    func hostApp(_ authority: String) -> Substring? {
        let utf8 = authority.utf8
        guard utf8.first != UInt8(ascii: "[") else { return nil }  // an IPv6 literal
        let hostEnd = utf8.firstIndex(of: UInt8(ascii: ":")) ?? utf8.endIndex
        let hostLength = utf8.distance(from: utf8.startIndex, to: hostEnd)
        guard hostLength > hostSuffix.count else { return nil }
        let nameEnd = utf8.index(hostEnd, offsetBy: -hostSuffix.count)
        var at = nameEnd
        for byte in hostSuffix {
            let sent = utf8[at]
            guard sent == byte || (sent >= UInt8(ascii: "A") && sent <= UInt8(ascii: "Z") && sent + 32 == byte) else { return nil }
            at = utf8.index(after: at)
        }
        return Substring(authority[authority.startIndex..<nameEnd])
    }

    /// For `/apps/NAME...`: NAME and what follows it (`/REST?QUERY`, `?QUERY` or nothing); nil for
    /// any other path, and for an empty NAME.
    static func pathApp(_ path: String) -> (name: Substring, rest: Substring)? {
        let utf8 = path.utf8
        guard utf8.count > pathPrefix.count, utf8.starts(with: pathPrefix) else { return nil }
        let nameStart = utf8.index(utf8.startIndex, offsetBy: pathPrefix.count)
        let nameEnd = utf8[nameStart...].firstIndex { $0 == UInt8(ascii: "/") || $0 == UInt8(ascii: "?") } ?? utf8.endIndex
        guard nameEnd > nameStart else { return nil }
        return (path[nameStart..<nameEnd], path[nameEnd...])
    }

    /// Whether the request carries an S3 signature (SigV4 header or presigned query).
    static func isSignedForS3(_ head: HTTPRequest) -> Bool {
        if let authorization = head.headerFields[.authorization], authorization.hasPrefix("AWS4-") { return true }
        guard let path = head.path, let query = path.firstIndex(of: "?") else { return false }
        return path[query...].contains("X-Amz-Signature=")
    }
}
