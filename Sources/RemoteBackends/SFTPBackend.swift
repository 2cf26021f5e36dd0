import ChunkStore
import CurlTransport
import Foundation
import S3Protocol

/// How an SFTP provider logs in: a private key (its bytes, kept in memory) or a password.
public enum SFTPLogin: Sendable {
    case key(SecretFile, passphrase: String?)
    case password(String)
}

/// Chunks on an SFTP server, through libcurl's SFTP (libssh2). A put uploads to a temporary name in
/// the target folder (creating missing folders) and renames it over the final name in the same
/// session, so no reader ever sees a partial object.
public struct SFTPBackend: Backend, LeftoverListing {
    public let settings: SFTPSettings
    let endpoint: Endpoint
    let user: String
    let login: SFTPLogin
    let limits: TransferLimits
    let engine: CurlEngine

    /// `engine`: by default one of its own, so its SSH connections (verified against this
    /// provider's pinned host key) are never reused by another provider.
    public init(settings: SFTPSettings, login: SFTPLogin, limits: TransferLimits = .init(), engine: CurlEngine? = nil) throws {
        endpoint = try Endpoint(settings.url, allowed: ["sftp"], what: "SFTP URL")
        guard let user = URLComponents(string: settings.url)?.user, !user.isEmpty else {
            throw StoreError(.invalidArgument, "SFTP URL \"\(settings.url)\" names no user: write it as sftp://USER@HOST[:PORT]/PATH")
        }
        guard endpoint.path.hasPrefix("/"), endpoint.path.count > 1, !endpoint.path.contains("~") else {
            throw StoreError(.invalidArgument, "SFTP URL \"\(settings.url)\" needs an absolute folder path: sftp://USER@HOST[:PORT]/PATH, like sftp://me@host/home/me/a67 (no ~)")
        }
        self.settings = settings
        self.user = user
        self.login = login
        self.limits = limits
        self.engine = engine ?? CurlEngine()
    }

    public var location: String { "sftp \(user)@\(endpoint.authority)\(root)" }

    /// The folder on the server, decoded.
    private var root: String { endpoint.path.removingPercentEncoding ?? endpoint.path }

    // MARK: Backend

    public func put(_ name: String, data: [UInt8]) async throws {
        let folder = WebDAVBackend.folder(of: name)
        let temporary = folder + "." + WebDAVBackend.leaf(of: name) + TreeListing.partialMarker + Hex.encode(Crypto.randomBytes(6))
        var upload = request(.put, temporary, body: data)
        upload.createMissingFolders = true
        upload.sftpPostQuote = ["rename \(quoted(temporary)) \(quoted(name))"]
        do {
            _ = try await perform(upload, name: name)
        } catch let error as TransferError where error.kind == .commandFailed {
            // OpenSSH's sftp-server will not rename over an existing file: move it aside, move ours in,
            // drop the old one. A concurrent put of the same name can slip in between: try again.
            var lastError: Error = error
            var olds: [String] = []
            for _ in 0..<4 {
                let old = folder + "." + WebDAVBackend.leaf(of: name) + TreeListing.partialMarker + "old-" + Hex.encode(Crypto.randomBytes(6))
                olds.append(old)
                var swap = request(.head, "")
                // Every earlier attempt's aside-file is removed too, whichever rename failed then.
                swap.sftpQuote = ["*rename \(quoted(name)) \(quoted(old))", "rename \(quoted(temporary)) \(quoted(name))"]
                    + olds.map { "*rm \(quoted($0))" }
                do {
                    _ = try await perform(swap, name: name)
                    return
                } catch let failure as TransferError where failure.kind == .commandFailed {
                    lastError = failure
                } catch {
                    lastError = error
                    break
                }
            }
            await removeQuietly([temporary] + olds)
            throw RemoteErrors.classify(lastError, at: location, name: name)
        } catch {
            await removeQuietly([temporary])
            throw RemoteErrors.classify(error, at: location, name: name)
        }
    }

    public func get(_ name: String, range: Range<Int>?) async throws -> [UInt8] {
        if let range, range.isEmpty {
            _ = try await head(name)
            return []
        }
        var fetch = request(.get, name)
        if let range { fetch.range = "\(range.lowerBound)-\(range.upperBound - 1)" }
        do {
            let response = try await perform(fetch, name: name)
            if range == nil, let length = response.contentLength, length != response.body.count {
                throw BackendError.transient("\(location): \(name): got \(response.body.count) of \(length) bytes")
            }
            return response.body
        } catch let error as TransferError where range != nil && (error.code == 33 || error.code == 36) {
            _ = try await head(name) // a range past the end: no bytes (or notFound)
            return []
        } catch {
            throw RemoteErrors.classify(error, at: location, name: name)
        }
    }

    public func head(_ name: String) async throws -> ObjectInfo {
        do {
            let response = try await perform(request(.head, name), name: name)
            if let size = response.contentLength { return ObjectInfo(name: name, size: size) }
            // libcurl reports no size for an empty file: ask the folder.
            let leaf = WebDAVBackend.leaf(of: name)
            guard let entry = try await listFolder(WebDAVBackend.folder(of: name)).first(where: { $0.name == leaf && !$0.isFolder }) else {
                throw BackendError.notFound(name)
            }
            return ObjectInfo(name: name, size: entry.size)
        } catch let error as BackendError {
            throw error
        } catch {
            throw RemoteErrors.classify(error, at: location, name: name)
        }
    }

    public func delete(_ name: String) async throws {
        var remove = request(.head, "")
        remove.sftpQuote = ["rm \(quoted(name))"]
        do {
            _ = try await perform(remove, name: name)
        } catch let error as TransferError where error.kind == .commandFailed {
            do {
                _ = try await head(name)
            } catch BackendError.notFound {
                return // already gone
            }
            throw RemoteErrors.classify(error, at: location, name: name)
        } catch {
            throw RemoteErrors.classify(error, at: location, name: name)
        }
    }

    public func list(prefix: String, after: String?, limit: Int) async throws -> ListPage {
        try await TreeListing.list(prefix: prefix, after: after, limit: limit) { folder in
            try await self.listFolder(folder)
        }
    }

    public func usage() async throws -> BackendUsage { try await usageFromListing() }

    public func leftovers(under prefix: String) async throws -> [String] {
        try await TreeListing.leftovers(under: prefix) { folder in try await self.listFolder(folder) }
    }

    // MARK: Listing

    /// A folder's entries from the server's long listing ("-rw-r--r-- 1 u g SIZE Mon DD HH:MM NAME").
    private func listFolder(_ folder: String) async throws -> [FolderEntry] {
        let response: TransferResponse
        do {
            response = try await perform(request(.get, folder.isEmpty ? "" : folder, folder: true), name: folder)
        } catch let error as TransferError where error.kind == .notFound {
            guard !folder.isEmpty else {
                throw BackendError.permanent("\(location): the provider's folder does not exist (was it removed, or is the path wrong?)")
            }
            return []
        } catch {
            throw RemoteErrors.classify(error, at: location, name: folder)
        }
        var entries: [FolderEntry] = []
        for line in String(decoding: response.body, as: UTF8.self).split(separator: "\n") {
            let fields = line.split(separator: " ", maxSplits: 8, omittingEmptySubsequences: true)
            guard fields.count == 9, let size = Int(fields[4]) else { continue }
            let kind = fields[0].first
            guard kind == "-" || kind == "d" else { continue } // links and devices are not ours
            let name = String(fields[8]).trimmingCharacters(in: CharacterSet(charactersIn: "\r"))
            if name == "." || name == ".." { continue }
            entries.append(FolderEntry(name: name, isFolder: kind == "d", size: size))
        }
        return entries
    }

    // MARK: Requests

    /// An absolute server path, quoted for libcurl's quote commands.
    private func quoted(_ name: String) -> String {
        let path = root + "/" + name
        return "\"" + path.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "\"", with: "\\\"") + "\""
    }

    private func request(_ method: TransferRequest.Method, _ name: String, body: [UInt8]? = nil, folder: Bool = false) -> TransferRequest {
        var url = "sftp://\(endpoint.authority)\(endpoint.path)/" + SigV4Signer.encode(name, keepSlash: true)
        if folder && !url.hasSuffix("/") { url += "/" }
        var credentials = TransferCredentials(user: user)
        switch login {
        case .key(let file, let passphrase):
            credentials.sshPrivateKeyFile = file.path
            credentials.sshKeyPassphrase = passphrase
        case .password(let password):
            credentials.password = password
        }
        return TransferRequest(method, url, body: body, credentials: credentials, limits: limits,
                               trust: PeerTrust(sshHostKeySHA256: settings.hostKeySHA256))
    }

    /// Runs a request; transport errors come back unclassified for the caller to look at.
    private func perform(_ request: TransferRequest, name: String) async throws -> TransferResponse {
        try await engine.perform(request)
    }

    /// Removes leftovers of a failed put, even when the calling task was cancelled.
    private func removeQuietly(_ names: [String]) async {
        var remove = request(.head, "")
        remove.sftpQuote = names.map { "*rm \(quoted($0))" }
        let engine = self.engine
        await Task.detached { _ = try? await engine.perform(remove) }.value
    }

    /// Connects once and returns the server's host key fingerprint, for pinning at `provider add`.
    public func hostKeyFingerprint() async throws -> String {
        let seen: String?
        var probe = request(.get, "", folder: true)
        probe.freshConnection = true // a reused connection would not show the key again
        do {
            seen = try await engine.perform(probe).sshHostKeySHA256
        } catch let error as TransferError where error.kind == .notFound {
            seen = error.sshHostKeySHA256 // the folder does not exist yet: the host answered all the same
        } catch {
            throw RemoteErrors.classify(error, at: location, name: "")
        }
        guard let seen else { throw BackendError.permanent("\(location): libcurl did not report the host key") }
        return seen
    }
}
