import ChunkStore
import CurlTransport
import Foundation
import S3Protocol
import Synchronization

/// Chunks on a WebDAV drive with basic auth. A put uploads to a temporary name in the target folder
/// and MOVEs it over the final name, so a broken upload never leaves a partial object under the real
/// name (many servers write PUT bodies in place). Fan-out folders are created with MKCOL on demand.
public struct WebDAVBackend: Backend, LeftoverListing {
    public let settings: WebDAVSettings
    let endpoint: Endpoint
    let password: String
    let limits: TransferLimits
    let trust: PeerTrust
    let engine: CurlEngine
    private let knownFolders = FolderCache()

    public init(settings: WebDAVSettings, password: String, limits: TransferLimits = .init(), trust: PeerTrust = .init(),
                engine: CurlEngine = .shared) throws {
        endpoint = try Endpoint(settings.url, allowed: ["http", "https"], what: "WebDAV URL")
        guard !settings.user.isEmpty else { throw StoreError(.invalidArgument, "a WebDAV provider needs a user (--user)") }
        self.settings = settings
        self.password = password
        self.limits = limits
        self.trust = trust
        self.engine = engine
    }

    public var location: String { "webdav \(endpoint.origin)\(endpoint.path)" }

    /// Whether basic auth to `url` would cross the network unencrypted (plain http to another machine).
    public static func sendsPasswordInClear(_ url: String) -> Bool {
        guard let endpoint = try? Endpoint(url, allowed: ["http", "https"], what: "") else { return false }
        return endpoint.scheme == "http" && !endpoint.isLoopback
    }

    // MARK: Backend

    public func put(_ name: String, data: [UInt8]) async throws {
        let folder = Self.folder(of: name)
        let temporary = folder + "." + Self.leaf(of: name) + TreeListing.partialMarker + Hex.encode(Crypto.randomBytes(6))
        var response = try await send(.put, temporary, body: data)
        if response.status == 404 || response.status == 409 {
            // A parent folder is missing: never made, or removed on the server since we made it.
            try await makeFolders(for: name, trustCache: false)
            response = try await send(.put, temporary, body: data)
        }
        guard (200...299).contains(response.status) else {
            throw failure(response, name: name)
        }
        let moved: TransferResponse
        do {
            moved = try await send(.custom("MOVE"), temporary, headers: [HTTPHeader("Destination", url(name)), HTTPHeader("Overwrite", "T")])
        } catch {
            await removeQuietly(temporary)
            throw error
        }
        guard (200...299).contains(moved.status) else {
            await removeQuietly(temporary)
            throw failure(moved, name: name)
        }
    }

    public func get(_ name: String, range: Range<Int>?) async throws -> [UInt8] {
        try await HTTPGet.read(name, range: range, at: location, head: { try await head(name) },
                               send: { try await send(.get, name, range: $0) }, failure: { failure($0, name: name) })
    }

    public func head(_ name: String) async throws -> ObjectInfo {
        try HTTPGet.size(try await send(.head, name), name: name, at: location, failure: { failure($0, name: name) })
    }

    public func delete(_ name: String) async throws {
        let response = try await send(.delete, name)
        guard (200...299).contains(response.status) || response.status == 404 else { throw failure(response, name: name) }
    }

    public func list(prefix: String, after: String?, limit: Int) async throws -> ListPage {
        try await TreeListing.list(prefix: prefix, after: after, limit: limit) { folder in
            try await self.propfind(folder)
        }
    }

    public func usage() async throws -> BackendUsage { try await usageFromListing() }

    public func leftovers(under prefix: String) async throws -> [String] {
        try await TreeListing.leftovers(under: prefix) { folder in try await self.propfind(folder) }
    }

    // MARK: Folders

    /// Creates the provider's folder itself when it is missing (its parent must exist), the way a
    /// directory provider's folder is created at `provider add`.
    public func prepare() async throws {
        let response = try await send(.custom("MKCOL"), "")
        guard response.status == 201 || response.status == 405 || (200...299).contains(response.status) else {
            throw response.status == 409
                ? BackendError.permanent("\(location): the parent folder does not exist; create it first")
                : failure(response, name: "")
        }
    }

    /// Removes a temporary upload, even when the calling task was cancelled (a cancelled put must
    /// not leave hidden objects behind).
    private func removeQuietly(_ name: String) async {
        await Task.detached { _ = try? await self.send(.delete, name) }.value
    }

    /// Creates each missing folder on the way to `name` ("data/", "data/ab/").
    private func makeFolders(for name: String, trustCache: Bool) async throws {
        var path = ""
        for part in name.split(separator: "/").dropLast() {
            path += part + "/"
            if trustCache && knownFolders.contains(path) { continue }
            let response = try await send(.custom("MKCOL"), path)
            // 201 made; 405 Method Not Allowed: it exists already.
            guard response.status == 201 || response.status == 405 || (200...299).contains(response.status) else {
                throw failure(response, name: path)
            }
            knownFolders.insert(path)
        }
    }

    private static let propfindBody = Array("""
        <?xml version="1.0" encoding="utf-8"?>
        <d:propfind xmlns:d="DAV:"><d:prop><d:resourcetype/><d:getcontentlength/></d:prop></d:propfind>
        """.utf8)

    /// The entries of `folder` ("" or "data/ab/"); none when it does not exist.
    private func propfind(_ folder: String) async throws -> [FolderEntry] {
        let response = try await send(.custom("PROPFIND"), folder,
                                      headers: [HTTPHeader("Depth", "1"), HTTPHeader("Content-Type", "application/xml; charset=utf-8")],
                                      body: Self.propfindBody)
        if response.status == 404 {
            guard !folder.isEmpty else {
                throw BackendError.permanent("\(location): the provider's folder does not exist (was it removed, or is the URL wrong?)")
            }
            return []
        }
        guard response.status == 207 else { throw failure(response, name: folder) }
        guard let document = XMLElement.parse(response.body), document.name == "multistatus" else {
            throw BackendError.transient("\(location): the PROPFIND reply for \"\(folder)\" is not a multistatus document")
        }
        let selfPath = Self.decodedPath(endpoint.path + "/" + folder)
        var entries: [FolderEntry] = []
        for item in document.children("response") {
            guard let href = item.child("href")?.text else { continue }
            let path = Self.decodedPath(href)
            if path == selfPath || path + "/" == selfPath { continue }
            var trimmed = path
            while trimmed.hasSuffix("/") { trimmed.removeLast() }
            guard let slash = trimmed.lastIndex(of: "/") else { continue }
            let name = String(trimmed[trimmed.index(after: slash)...])
            let props = item.descendants("prop")
            let isFolder = props.contains { $0.child("resourcetype")?.child("collection") != nil }
            let size = props.compactMap { $0.child("getcontentlength").flatMap { Int($0.text.trimmingCharacters(in: .whitespaces)) } }.first ?? 0
            entries.append(FolderEntry(name: name, isFolder: isFolder, size: size))
        }
        return entries
    }

    /// An href's path, percent-decoded, whether the server sent a full URL or an absolute path.
    private static func decodedPath(_ href: String) -> String {
        let path = URLComponents(string: href)?.percentEncodedPath ?? href
        return (path.removingPercentEncoding ?? path).replacingOccurrences(of: "//", with: "/")
    }

    // MARK: Requests

    private func url(_ name: String) -> String {
        endpoint.origin + endpoint.path + "/" + SigV4Signer.encode(name, keepSlash: true)
    }

    private func send(_ method: TransferRequest.Method, _ name: String, headers: [HTTPHeader] = [], body: [UInt8]? = nil,
                      range: String? = nil) async throws -> TransferResponse {
        var request = TransferRequest(method, url(name), headers: headers, body: body, range: range,
                                      credentials: TransferCredentials(user: settings.user, password: password),
                                      limits: limits, trust: trust)
        if method == .put { request.headers.append(HTTPHeader("Content-Type", "application/octet-stream")) }
        do {
            return try await engine.perform(request)
        } catch {
            throw RemoteErrors.classify(error, at: location, name: name)
        }
    }

    private func failure(_ response: TransferResponse, name: String) -> BackendError {
        RemoteErrors.classify(status: response.status, code: nil, message: nil, retryAfter: response.header("Retry-After"),
                              at: location, name: name)
    }

    static func folder(of name: String) -> String {
        name.lastIndex(of: "/").map { String(name[...$0]) } ?? ""
    }

    static func leaf(of name: String) -> String {
        name.lastIndex(of: "/").map { String(name[name.index(after: $0)...]) } ?? name
    }
}

/// Folders known to exist, so MKCOL is sent once per folder and process.
final class FolderCache: Sendable {
    private let folders = Mutex<Set<String>>([])
    func contains(_ path: String) -> Bool { folders.withLock { $0.contains(path) } }
    func insert(_ path: String) { folders.withLock { _ = $0.insert(path) } }
}
