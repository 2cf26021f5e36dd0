import BackendTesting
import ChunkStore
import Foundation
import Testing

/// `a67 provider add --s3/--webdav/--sftp` and `provider test` against the real servers tools/test
/// starts, and the promise about credentials: never in plaintext on disk, in a message, or in a
/// process listing.
@Suite struct RemoteProviderTests {
    /// The `provider add` options of one fresh location of each remote kind, by provider name.
    static func remoteLocations() throws -> [(name: String, flags: [String])] {
        [
            ("s3", ["--s3", try TestServers.env("A67_TEST_S3_ENDPOINT"), "--bucket", try TestServers.env("A67_TEST_S3_BUCKET"),
                    "--region", try TestServers.env("A67_TEST_S3_REGION"), "--path-style", "--prefix", TestServers.unique("cli"),
                    "--access-key-id", try TestServers.env("A67_TEST_S3_ACCESS_KEY"), "--secret-key-file", try TestServers.env("A67_TEST_S3_SECRET_FILE")]),
            ("dav", ["--webdav", try TestServers.env("A67_TEST_WEBDAV_URL") + TestServers.unique("cli"),
                     "--user", try TestServers.env("A67_TEST_WEBDAV_USER"), "--password-file", try TestServers.env("A67_TEST_WEBDAV_PASSWORD_FILE")]),
            ("ssh", ["--sftp", try TestServers.env("A67_TEST_SFTP_URL") + "/" + TestServers.unique("cli"),
                     "--password-file", try TestServers.env("A67_TEST_SFTP_PASSWORD_FILE")]),
        ]
    }

    /// Adds one provider of each remote kind; returns the commands' combined output.
    @discardableResult
    static func addRemotes(_ cli: CLI, _ locations: [(name: String, flags: [String])]? = nil) async throws -> String {
        var output = ""
        for (name, flags) in try locations ?? remoteLocations() {
            let result = try await cli.ok(["provider", "add", name] + flags)
            output += result.stdout + result.stderr
        }
        return output
    }

    static func secrets() throws -> [String] {
        [try TestServers.env("A67_TEST_S3_SECRET_KEY"), try TestServers.env("A67_TEST_WEBDAV_PASSWORD"), try TestServers.env("A67_TEST_SFTP_PASSWORD")]
    }

    @Test func objectsLiveOnAllThreeRemoteKinds() async throws {
        let cli = try CLI()
        try await cli.ok(["init"])
        let added = try await Self.addRemotes(cli)
        #expect(added.contains("pinned the host key SHA256:\(try TestServers.env("A67_TEST_SFTP_HOST_KEY_SHA256"))"))
        try await cli.ok(["bucket", "create", "remote", "--replicas", "3"])
        let data = randomBytes(12 << 20)
        try await cli.ok(["put", cli.file("in", data), "remote/k"])
        let out = cli.scratch + "/out"
        try await cli.ok(["get", "remote/k", out])
        let same = cli.read(out) == data
        #expect(same, "the object read back differs")
        let providers = try await cli.json(["provider", "ls", "--json"]) as? [[String: Any]] ?? []
        #expect(providers.map { $0["kind"] as? String } == ["webdav", "s3", "sftp"])
        // Three replicas on three providers: every chunk (3 data, 1 manifest) on each.
        #expect(providers.allSatisfy { ($0["chunks"] as? Int) == 4 }, "\(providers)")
        for name in ["s3", "dav", "ssh"] {
            let report = try await cli.ok(["provider", "test", name])
            #expect(report.stdout.contains("ok"))
            #expect(report.stdout.contains("put 8 MiB"))
        }
        let json = try await cli.json(["provider", "test", "s3", "--json"]) as? [String: Any]
        #expect((json?["putBytesPerSecond"] as? Double ?? 0) > 0)
    }

    @Test func credentialsNeverAppearInPlaintext() async throws {
        let cli = try CLI()
        try await cli.ok(["init"])
        var said = try await Self.addRemotes(cli)
        try await cli.ok(["bucket", "create", "remote", "--replicas", "3"])

        // In a process listing, while a put that holds every provider open is running.
        let put = try ChildProcess(CLI.binary, ["put", "-", "remote/streamed"], environment: cli.environment, input: .pipe,
                                   stderr: .merged)
        #expect(await put.feed(randomBytes(6 << 20)))
        var listing = ""
        for entry in (try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? [] where Int(entry) != nil {
            if let cmdline = FileManager.default.contents(atPath: "/proc/\(entry)/cmdline") {
                listing += String(decoding: cmdline.map { $0 == 0 ? 32 : $0 }, as: UTF8.self) + "\n"
            }
        }
        #expect(listing.contains("remote/streamed"), "the running put was not in the listing")
        let streamed = await put.finish()
        #expect(streamed.status == 0)
        said += streamed.stdoutText

        // In messages: every command's output so far, and a failing add with a wrong secret.
        let wrong = "wrong-secret-" + TestServers.unique("x")
        let wrongFile = cli.file("wrong", Array(wrong.utf8))
        let failed = try await cli.fails(["provider", "add", "bad", "--s3", try TestServers.env("A67_TEST_S3_ENDPOINT"),
                                    "--bucket", try TestServers.env("A67_TEST_S3_BUCKET"), "--path-style",
                                    "--access-key-id", try TestServers.env("A67_TEST_S3_ACCESS_KEY"), "--secret-key-file", wrongFile],
                                   status: 5, message: "provider bad")
        #expect(failed.stderr.contains("access denied"))
        said += failed.stdout + failed.stderr
        for name in ["s3", "dav", "ssh"] {
            let ok = try await cli.ok(["provider", "test", name, "--json"])
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

    @Test func badRemoteArgumentsAreRefusedClearly() async throws {
        let cli = try CLI()
        try await cli.ok(["init"])
        try await cli.fails(["provider", "add", "x", "--s3", "http://127.0.0.1:1", "--bucket", "b1x"], status: 64, message: "--access-key-id")
        try await cli.fails(["provider", "add", "x", "--s3", "ftp://host", "--bucket", "abc", "--access-key-id", "k",
                       "--secret-key-file", cli.file("s", Array("s".utf8))], status: 64, message: "not a URL I can use")
        try await cli.fails(["provider", "add", "x", "--webdav", "http://u:pw@127.0.0.1:1/", "--user", "u",
                       "--password-file", cli.file("p", Array("p".utf8))], status: 64, message: "must not carry a password")
        try await cli.fails(["provider", "add", "x", "--sftp", "sftp://127.0.0.1/x", "--password-file", cli.file("p", Array("p".utf8))],
                      status: 64, message: "names no user")
        try await cli.fails(["provider", "add", "x", "--sftp", "sftp://u@127.0.0.1/x"], status: 64, message: "--key-file")
        try await cli.fails(["provider", "add", "x", "--dir", cli.provider(1), "--webdav", "http://h/"], status: 64, message: "only one")
        try await cli.fails(["provider", "add", "x", "--webdav", "http://127.0.0.1:1/", "--user", "u", "--password-file", "/nonexistent"],
                      status: 64, message: "cannot be read")
        try await cli.fails(["provider", "test", "nope"], status: 2, message: "no provider named nope")
        #expect((try await cli.json(["provider", "ls", "--json"]) as? [Any])?.isEmpty == true)
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
    @Test func webdavPasswordsDoNotCrossTheNetworkInClear() async throws {
        let cli = try CLI()
        try await cli.ok(["init"])
        try await cli.fails(["provider", "add", "x", "--webdav", "http://dav.example.com/a67", "--user", "u",
                       "--password-file", cli.file("p", Array("p".utf8))], status: 64, message: "Use https")
        try await cli.fails(["provider", "add", "x", "--webdav", "dav://me:hunter2@dav.example.com/a67", "--user", "u",
                       "--password-file", cli.file("p", Array("p".utf8))], status: 64, message: "not a URL I can use")
        let shown = try await cli.run(["provider", "add", "x", "--webdav", "dav://me:hunter2@dav.example.com/a67", "--user", "u",
                                 "--password-file", cli.file("p", Array("p".utf8))])
        #expect(!shown.stderr.contains("hunter2"))
    }

    @Test func recoveryFromEachRemoteKindGetsEveryObjectBack() async throws {
        let cli = try CLI()
        try await cli.ok(["init"])
        let locations = try Self.remoteLocations()
        try await Self.addRemotes(cli, locations)
        try await cli.ok(["bucket", "create", "remote", "--replicas", "2"])
        var objects: [String: [UInt8]] = [:]
        for (i, size) in [0, 5000, (5 << 20) * 2 + 11].enumerated() {
            objects["remote/o\(i)"] = randomBytes(size)
            try await cli.ok(["put", cli.file("in\(i)", objects["remote/o\(i)"]!), "remote/o\(i)"])
        }
        for (name, flags) in locations {
            try FileManager.default.removeItem(atPath: cli.home)
            let report = try await cli.json(["recover"] + flags) as! [String: Any]
            #expect(report["objects"] as? Int == 3, "from \(name): \(report)")
            #expect((report["unreachable"] as? [String])?.isEmpty == true, "from \(name): \(report)")
            for (path, bytes) in objects {
                let out = cli.scratch + "/check"
                try await cli.ok(["get", path, out])
                #expect(cli.read(out) == bytes, "\(path) differs after recovering from \(name)")
                try FileManager.default.removeItem(atPath: out)
            }
            // The credentials came back too: every provider answers.
            let probed = try await cli.json(["provider", "ls", "--probe"]) as! [[String: Any]]
            #expect(probed.allSatisfy { $0["probeError"] is NSNull }, "from \(name): \(probed)")
        }
    }
}
