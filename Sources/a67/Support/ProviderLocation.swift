import ArgumentParser
import ChunkStore
import Foundation
import RemoteBackends
import Replicator

/// Where a provider is and how to reach it: the options `a67 provider add` and `a67 recover` share.
struct ProviderLocation: ParsableArguments {
    @Option(help: "A local directory to store chunks in.")
    var dir: String?

    @Option(help: ArgumentHelp("An S3-compatible endpoint URL, like https://s3.eu-central-1.amazonaws.com.", valueName: "endpoint-url"))
    var s3: String?
    @Option(help: "S3: the bucket (it must exist).")
    var bucket: String?
    @Option(help: "S3: the region to sign for.")
    var region = "us-east-1"
    @Flag(help: "S3: address the bucket as ENDPOINT/BUCKET rather than BUCKET.HOST (needed by most self-hosted stores).")
    var pathStyle = false
    @Option(help: "S3: keep objects under this prefix of the bucket.")
    var prefix = ""
    @Option(help: "S3: the access key ID.")
    var accessKeyId: String?
    @Option(help: ArgumentHelp("S3: a file holding the secret access key.", valueName: "file"))
    var secretKeyFile: String?

    @Option(help: ArgumentHelp("A WebDAV folder URL (created if missing; its parent must exist).", valueName: "url"))
    var webdav: String?
    @Flag(help: "WebDAV: allow plain http to another machine (the password then crosses the network readable).")
    var insecureHttp = false
    @Option(help: "WebDAV: the user name.")
    var user: String?
    @Option(help: ArgumentHelp("WebDAV or SFTP: a file holding the password.", valueName: "file"))
    var passwordFile: String?

    @Option(help: ArgumentHelp("An SFTP location: sftp://USER@HOST[:PORT]/PATH.", valueName: "url"))
    var sftp: String?
    @Option(help: ArgumentHelp("SFTP: the private key file to log in with.", valueName: "file"))
    var keyFile: String?
    @Option(help: ArgumentHelp("SFTP: a file holding the private key's passphrase, if it has one.", valueName: "file"))
    var keyPassphraseFile: String?
    @Option(help: ArgumentHelp("SFTP: the host key fingerprint to expect, as `ssh-keygen -lf` prints it (SHA256:...).", valueName: "fingerprint"))
    var hostKeySha256: String?

    @Option(help: ArgumentHelp("Remote: seconds to connect before giving up.", valueName: "seconds"))
    var connectTimeout: Double = 10
    @Option(help: ArgumentHelp("Remote: seconds a transfer may crawl below 1 KiB/s before it is retried.", valueName: "seconds"))
    var stallTimeout: Int = 30
    @Option(help: ArgumentHelp("Remote: at most this many requests at once (default 8; 4 for SFTP).", valueName: "n"))
    var maxRequests: Int?
    @Option(help: ArgumentHelp("Remote over TLS: a PEM file of CAs to trust instead of the system's.", valueName: "file"))
    var caFile: String?


    func specification() throws -> (ProviderSpec, ProviderSecret?) {
        let chosen = [dir, s3, webdav, sftp].compactMap { $0 }
        guard chosen.count == 1 else {
            throw StoreError(.invalidArgument, chosen.isEmpty
                ? "say where the provider stores: --dir PATH, --s3 URL, --webdav URL or --sftp URL (see a67 provider add --help)"
                : "give only one of --dir, --s3, --webdav and --sftp")
        }
        guard connectTimeout > 0, stallTimeout > 0 else {
            throw StoreError(.invalidArgument, "--connect-timeout and --stall-timeout must be more than 0 seconds")
        }
        if let maxRequests, !(1...64).contains(maxRequests) {
            throw StoreError(.invalidArgument, "--max-requests \(maxRequests) is out of range: use 1 to 64")
        }
        func options(defaultRequests: Int) -> ConnectionOptions {
            ConnectionOptions(connectTimeout: connectTimeout, stallTimeout: stallTimeout,
                              maxRequests: maxRequests ?? defaultRequests, caFile: caFile.map(absolute))
        }
        if let caFile, !FileManager.default.isReadableFile(atPath: absolute(caFile)) {
            throw StoreError(.invalidArgument, "--ca-file \(caFile) cannot be read")
        }
        if let dir { return (.directory(path: absolute(dir)), nil) }
        if let s3 {
            guard let bucket else { throw StoreError(.invalidArgument, "--s3 needs --bucket NAME") }
            guard let accessKeyId, !accessKeyId.isEmpty else { throw StoreError(.invalidArgument, "--s3 needs --access-key-id ID") }
            guard let secretKeyFile else { throw StoreError(.invalidArgument, "--s3 needs --secret-key-file FILE (a file holding the secret access key)") }
            let settings = S3Settings(endpoint: s3, bucket: bucket, region: region, pathStyle: pathStyle,
                                      prefix: prefix.trimmingCharacters(in: CharacterSet(charactersIn: "/")), accessKeyID: accessKeyId)
            return (.s3(settings, options(defaultRequests: 8)), .s3SecretKey(try readSecret(secretKeyFile, option: "--secret-key-file")))
        }
        if let webdav {
            guard let user, !user.isEmpty else { throw StoreError(.invalidArgument, "--webdav needs --user NAME") }
            guard let passwordFile else { throw StoreError(.invalidArgument, "--webdav needs --password-file FILE") }
            if WebDAVBackend.sendsPasswordInClear(webdav) && !insecureHttp {
                throw StoreError(.invalidArgument, "\(webdav) is plain http to another machine: the password would cross the network readable. Use https, or add --insecure-http if you accept that")
            }
            return (.webdav(WebDAVSettings(url: webdav, user: user), options(defaultRequests: 8)),
                    .password(try readSecret(passwordFile, option: "--password-file")))
        }
        let url = sftp!
        let pin = hostKeySha256.map { $0.hasPrefix("SHA256:") ? String($0.dropFirst(7)) : $0 }.map { $0.replacingOccurrences(of: "=", with: "") }
        let settings = SFTPSettings(url: url, hostKeySHA256: pin)
        switch (keyFile, passwordFile) {
        case (let keyFile?, nil):
            guard let key = FileManager.default.contents(atPath: absolute(keyFile)), !key.isEmpty else {
                throw StoreError(.invalidArgument, "--key-file \(keyFile) cannot be read, or is empty")
            }
            let passphrase = try keyPassphraseFile.map { try readSecret($0, option: "--key-passphrase-file") }
            return (.sftp(settings, options(defaultRequests: 4)), .sshKey([UInt8](key), passphrase: passphrase))
        case (nil, let passwordFile?):
            return (.sftp(settings, options(defaultRequests: 4)), .password(try readSecret(passwordFile, option: "--password-file")))
        default:
            throw StoreError(.invalidArgument, "--sftp needs exactly one of --key-file FILE and --password-file FILE")
        }
    }

    /// A secret from a file, without its trailing newline.
    private func readSecret(_ path: String, option: String) throws -> String {
        guard let data = FileManager.default.contents(atPath: absolute(path)) else {
            throw StoreError(.invalidArgument, "\(option) \(path) cannot be read: give a file that holds the secret")
        }
        var text = String(decoding: data, as: UTF8.self)
        while text.hasSuffix("\n") || text.hasSuffix("\r") { text.removeLast() }
        guard !text.isEmpty else { throw StoreError(.invalidArgument, "\(option) \(path) is empty") }
        return text
    }
}
