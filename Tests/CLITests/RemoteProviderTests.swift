import BackendTesting
import ChunkStore
import Foundation
import Testing

/// `a67 provider add --s3/--webdav/--sftp` and `provider test` against the real servers tools/test
/// starts, and the promise about credentials: never in plaintext on disk, in a message, or in a
/// process listing.
@Suite struct RemoteProviderTests {
    static func env(_ name: String) throws -> String {
        guard let value = ProcessInfo.processInfo.environment[name], !value.isEmpty else {
            throw CocoaError(.featureUnsupported, userInfo: [NSLocalizedDescriptionKey:
                "\(name) is not set: run the tests through tools/test, which starts the S3, WebDAV and SFTP servers"])
        }
        return value
    }

    static func unique(_ label: String) -> String { "\(label)-\(Hex.encode(Crypto.randomBytes(6)))" }

    /// The `provider add` options of one fresh location of each remote kind, by provider name.
    static func remoteLocations() throws -> [(name: String, flags: [String])] {
        [
            ("s3", ["--s3", try env("A67_TEST_S3_ENDPOINT"), "--bucket", try env("A67_TEST_S3_BUCKET"),
                    "--region", try env("A67_TEST_S3_REGION"), "--path-style", "--prefix", unique("cli"),
                    "--access-key-id", try env("A67_TEST_S3_ACCESS_KEY"), "--secret-key-file", try env("A67_TEST_S3_SECRET_FILE")]),
            ("dav", ["--webdav", try env("A67_TEST_WEBDAV_URL") + unique("cli"),
                     "--user", try env("A67_TEST_WEBDAV_USER"), "--password-file", try env("A67_TEST_WEBDAV_PASSWORD_FILE")]),
            ("ssh", ["--sftp", try env("A67_TEST_SFTP_URL") + "/" + unique("cli"),
                     "--password-file", try env("A67_TEST_SFTP_PASSWORD_FILE")]),
        ]
    }

    /// Adds one provider of each remote kind; returns the commands' combined output.
    @discardableResult
    static func addRemotes(_ cli: CLI, _ locations: [(name: String, flags: [String])]? = nil) throws -> String {
        var output = ""
        for (name, flags) in try locations ?? remoteLocations() {
            let result = try cli.ok(["provider", "add", name] + flags)
            output += result.stdout + result.stderr
        }
        return output
    }

    static func secrets() throws -> [String] {
        [try env("A67_TEST_S3_SECRET_KEY"), try env("A67_TEST_WEBDAV_PASSWORD"), try env("A67_TEST_SFTP_PASSWORD")]
    }

    @Test func objectsLiveOnAllThreeRemoteKinds() throws {
        let cli = try CLI()
        try cli.ok(["init"])
        let added = try Self.addRemotes(cli)
        #expect(added.contains("pinned the host key SHA256:\(try Self.env("A67_TEST_SFTP_HOST_KEY_SHA256"))"))
        try cli.ok(["bucket", "create", "remote", "--replicas", "3"])
        let data = randomBytes(12 << 20)
        try cli.ok(["put", cli.file("in", data), "remote/k"])
        let out = cli.scratch + "/out"
        try cli.ok(["get", "remote/k", out])
        let same = cli.read(out) == data
        #expect(same, "the object read back differs")
        let providers = try cli.json(["provider", "ls", "--json"]) as? [[String: Any]] ?? []
        #expect(providers.map { $0["kind"] as? String } == ["webdav", "s3", "sftp"])
        // Three replicas on three providers: every chunk (3 data, 1 manifest) on each.
        #expect(providers.allSatisfy { ($0["chunks"] as? Int) == 4 }, "\(providers)")
        for name in ["s3", "dav", "ssh"] {
            let report = try cli.ok(["provider", "test", name])
            #expect(report.stdout.contains("ok"))
            #expect(report.stdout.contains("put 8.0 MiB"))
        }
        let json = try cli.json(["provider", "test", "s3", "--json"]) as? [String: Any]
        #expect((json?["putBytesPerSecond"] as? Double ?? 0) > 0)
    }

    @Test func credentialsNeverAppearInPlaintext() throws {
        let cli = try CLI()
        try cli.ok(["init"])
        var said = try Self.addRemotes(cli)
        try cli.ok(["bucket", "create", "remote", "--replicas", "3"])

        // In a process listing, while a put that holds every provider open is running.
        let put = Process()
        put.executableURL = URL(fileURLWithPath: CLI.binary)
        put.arguments = ["put", "-", "remote/streamed"]
        put.environment = cli.environment
        let input = Pipe(), output = Pipe()
        put.standardInput = input
        put.standardOutput = output
        put.standardError = output
        try put.run()
        try input.fileHandleForWriting.write(contentsOf: Data(randomBytes(6 << 20)))
        var listing = ""
        for entry in (try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? [] where Int(entry) != nil {
            if let cmdline = FileManager.default.contents(atPath: "/proc/\(entry)/cmdline") {
                listing += String(decoding: cmdline.map { $0 == 0 ? 32 : $0 }, as: UTF8.self) + "\n"
            }
        }
        #expect(listing.contains("remote/streamed"), "the running put was not in the listing")
        try input.fileHandleForWriting.close()
        put.waitUntilExit()
        #expect(put.terminationStatus == 0)
        said += String(decoding: PipeReading.readAll(output.fileHandleForReading.fileDescriptor), as: UTF8.self)

        // In messages: every command's output so far, and a failing add with a wrong secret.
        let wrong = "wrong-secret-" + Self.unique("x")
        let wrongFile = cli.file("wrong", Array(wrong.utf8))
        let failed = try cli.fails(["provider", "add", "bad", "--s3", try Self.env("A67_TEST_S3_ENDPOINT"),
                                    "--bucket", try Self.env("A67_TEST_S3_BUCKET"), "--path-style",
                                    "--access-key-id", try Self.env("A67_TEST_S3_ACCESS_KEY"), "--secret-key-file", wrongFile],
                                   status: 5, message: "provider bad")
        #expect(failed.stderr.contains("access denied"))
        said += failed.stdout + failed.stderr
        for name in ["s3", "dav", "ssh"] {
            let ok = try cli.ok(["provider", "test", name, "--json"])
            said += ok.stdout + ok.stderr
        }

        // On disk: every file of the repository's home (catalog, its WAL, keyring).
        var disk: [UInt8] = []
        for file in FileManager.default.enumerator(atPath: cli.home)?.compactMap({ $0 as? String }) ?? [] {
            disk += cli.read(cli.home + "/" + file) ?? []
        }
        #expect(disk.count > 4096)
        for secret in try Self.secrets() + [wrong] {
            #expect(!said.contains(secret), "a secret appeared in a67's output")
            #expect(!listing.contains(secret), "a secret appeared in the process listing")
            #expect(!contains(disk, Array(secret.utf8)), "a secret is stored in plaintext under A67_HOME")
        }
    }

    @Test func badRemoteArgumentsAreRefusedClearly() throws {
        let cli = try CLI()
        try cli.ok(["init"])
        try cli.fails(["provider", "add", "x", "--s3", "http://127.0.0.1:1", "--bucket", "b1x"], status: 64, message: "--access-key-id")
        try cli.fails(["provider", "add", "x", "--s3", "ftp://host", "--bucket", "abc", "--access-key-id", "k",
                       "--secret-key-file", cli.file("s", Array("s".utf8))], status: 64, message: "not a URL I can use")
        try cli.fails(["provider", "add", "x", "--webdav", "http://u:pw@127.0.0.1:1/", "--user", "u",
                       "--password-file", cli.file("p", Array("p".utf8))], status: 64, message: "must not carry a password")
        try cli.fails(["provider", "add", "x", "--sftp", "sftp://127.0.0.1/x", "--password-file", cli.file("p", Array("p".utf8))],
                      status: 64, message: "names no user")
        try cli.fails(["provider", "add", "x", "--sftp", "sftp://u@127.0.0.1/x"], status: 64, message: "--key-file")
        try cli.fails(["provider", "add", "x", "--dir", cli.provider(1), "--webdav", "http://h/"], status: 64, message: "only one")
        try cli.fails(["provider", "add", "x", "--webdav", "http://127.0.0.1:1/", "--user", "u", "--password-file", "/nonexistent"],
                      status: 64, message: "cannot be read")
        try cli.fails(["provider", "test", "nope"], status: 2, message: "no provider named nope")
        #expect((try cli.json(["provider", "ls", "--json"]) as? [Any])?.isEmpty == true)
    }
}

private func contains(_ haystack: [UInt8], _ needle: [UInt8]) -> Bool {
    guard !needle.isEmpty, haystack.count >= needle.count else { return false }
    let first = needle[0]
    var i = 0
    while i <= haystack.count - needle.count {
        if haystack[i] == first && Array(haystack[i..<(i + needle.count)]) == needle { return true }
        i += 1
    }
    return false
}

extension RemoteProviderTests {
    @Test func webdavPasswordsDoNotCrossTheNetworkInClear() throws {
        let cli = try CLI()
        try cli.ok(["init"])
        try cli.fails(["provider", "add", "x", "--webdav", "http://dav.example.com/a67", "--user", "u",
                       "--password-file", cli.file("p", Array("p".utf8))], status: 64, message: "Use https")
        try cli.fails(["provider", "add", "x", "--webdav", "dav://me:hunter2@dav.example.com/a67", "--user", "u",
                       "--password-file", cli.file("p", Array("p".utf8))], status: 64, message: "not a URL I can use")
        let shown = try cli.run(["provider", "add", "x", "--webdav", "dav://me:hunter2@dav.example.com/a67", "--user", "u",
                                 "--password-file", cli.file("p", Array("p".utf8))])
        #expect(!shown.stderr.contains("hunter2"))
    }

    @Test func recoveryFromEachRemoteKindGetsEveryObjectBack() throws {
        let cli = try CLI()
        try cli.ok(["init"])
        let locations = try Self.remoteLocations()
        try Self.addRemotes(cli, locations)
        try cli.ok(["bucket", "create", "remote", "--replicas", "2"])
        var objects: [String: [UInt8]] = [:]
        for (i, size) in [0, 5000, (5 << 20) * 2 + 11].enumerated() {
            objects["remote/o\(i)"] = randomBytes(size)
            try cli.ok(["put", cli.file("in\(i)", objects["remote/o\(i)"]!), "remote/o\(i)"])
        }
        for (name, flags) in locations {
            try FileManager.default.removeItem(atPath: cli.home)
            let report = try cli.json(["recover"] + flags) as! [String: Any]
            #expect(report["objects"] as? Int == 3, "from \(name): \(report)")
            #expect((report["unreachable"] as? [String])?.isEmpty == true, "from \(name): \(report)")
            for (path, bytes) in objects {
                let out = cli.scratch + "/check"
                try cli.ok(["get", path, out])
                #expect(cli.read(out) == bytes, "\(path) differs after recovering from \(name)")
                try FileManager.default.removeItem(atPath: out)
            }
            // The credentials came back too: every provider answers.
            let probed = try cli.json(["provider", "ls", "--probe"]) as! [[String: Any]]
            #expect(probed.allSatisfy { $0["probeError"] is NSNull }, "from \(name): \(probed)")
        }
    }
}
