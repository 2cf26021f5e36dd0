import BackendTesting
import ChunkStore
import Foundation
import Testing

struct CLITests {
    static let chunk = 5 * 1024 * 1024

    @Test func putGetListRemoveRoundTrip() async throws {
        let cli = try CLI()
        try await cli.setUp()
        let data = textBytes(2 * Self.chunk + 999) + randomBytes(Self.chunk)
        let source = cli.file("in.bin", data)
        try await cli.ok(["put", source, "test-bucket/dir/sub/in.bin"])
        try await cli.ok(["put", "-", "test-bucket/stdin.txt"], input: Array("from stdin\n".utf8))
        try await cli.ok(["get", "test-bucket/dir/sub/in.bin", cli.scratch + "/out.bin"])
        #expect(cli.read(cli.scratch + "/out.bin") == data)
        #expect(try await cli.ok(["get", "test-bucket/stdin.txt", "-"]).stdout == "from stdin\n")
        #expect(try await cli.ok(["get", "test-bucket/dir/sub/in.bin", "-", "--range", "5242870-5242889"]).stdoutBytes
                == Array(data[5_242_870...5_242_889]))
        #expect(try await cli.ok(["get", "test-bucket/stdin.txt", "-", "--range=-6"]).stdout == "stdin\n")
        #expect(try await cli.ok(["get", "test-bucket/stdin.txt", "-", "--range", "5-"]).stdout == "stdin\n")
        #expect(try await cli.ok(["get", "test-bucket/stdin.txt", "-", "--range=-100"]).stdout == "from stdin\n", "a suffix longer than the object is all of it")
        // A folder destination receives the key's last part.
        try FileManager.default.createDirectory(atPath: cli.scratch + "/into", withIntermediateDirectories: true)
        try await cli.ok(["get", "test-bucket/stdin.txt", cli.scratch + "/into"])
        #expect(cli.read(cli.scratch + "/into/stdin.txt") == Array("from stdin\n".utf8))

        let top = try await cli.json(["ls", "test-bucket"]) as! [[String: Any]]
        #expect(top.map { $0["key"] as! String } == ["dir/", "stdin.txt"])
        let all = try await cli.json(["ls", "test-bucket", "--recursive"]) as! [[String: Any]]
        #expect(all.map { $0["key"] as! String } == ["dir/sub/in.bin", "stdin.txt"])
        #expect(all[0]["size"] as? Int == data.count)
        #expect(try await cli.ok(["ls", "test-bucket/dir/"]).stdout.contains("dir/sub/"))

        try await cli.ok(["rm", "test-bucket/dir/sub/in.bin"])
        #expect((try await cli.json(["ls", "test-bucket", "-r"]) as! [[String: Any]]).count == 1)
        try await cli.fails(["get", "test-bucket/dir/sub/in.bin", "-"], status: 2, message: "no object test-bucket/dir/sub/in.bin")
    }

    @Test func statReportsDedupeAndCompression() async throws {
        let cli = try CLI()
        try await cli.setUp()
        let text = cli.file("text", textBytes(3 * Self.chunk))
        let first = try await cli.json(["put", text, "test-bucket/a"]) as! [String: Any]
        let second = try await cli.json(["put", text, "test-bucket/copy/of/a"]) as! [String: Any]
        #expect(first["newChunks"] as? Int == 3, "three data chunks")
        #expect(second["newChunks"] as? Int == 0)
        #expect(second["newStoredBytes"] as? Int == 0)
        let stat = try await cli.json(["stat"]) as! [String: Any]
        #expect(stat["objects"] as? Int == 2)
        #expect(stat["logicalBytes"] as? Int == 6 * Self.chunk)
        #expect(stat["uniqueBytes"] as? Int == 3 * Self.chunk)
        #expect(abs((stat["dedupeRatio"] as! Double) - 2.0) < 1e-9)
        #expect((stat["compressionRatio"] as! Double) > 5, "ordinary text must compress")
        #expect(try await cli.ok(["stat"]).stdout.contains("dedupe ratio"))
    }

    @Test func initTwiceAndWrongPassphraseTouchNothing() async throws {
        let cli = try CLI()
        try await cli.setUp()
        try await cli.ok(["put", "-", "test-bucket/k"], input: [1, 2, 3])
        try await cli.fails(["init"], status: 6, message: "already exists")
        let catalog = cli.read(cli.home + "/catalog.db")
        let wal = cli.read(cli.home + "/catalog.db-wal")
        let keyring = cli.read(cli.home + "/keyring")
        for command in [["put", "-", "test-bucket/k2"], ["get", "test-bucket/k", "-"], ["rm", "test-bucket/k"],
                        ["bucket", "create", "other"], ["provider", "add", "p9", "--dir", cli.scratch + "/p9"]] {
            try await cli.fails(command, status: 3, message: "wrong passphrase", input: [9],
                          environment: ["A67_PASSPHRASE": "not the passphrase"])
        }
        #expect(cli.read(cli.home + "/catalog.db") == catalog, "a wrong passphrase must not change the catalog")
        #expect(cli.read(cli.home + "/catalog.db-wal") == wal, "nor its write-ahead log")
        #expect(cli.read(cli.home + "/keyring") == keyring)
        #expect(!FileManager.default.fileExists(atPath: cli.scratch + "/p9"))
        let passFile = cli.file("pass", Array("test passphrase\n".utf8))
        #expect(try await cli.run(["get", "test-bucket/k", "-"], environment: ["A67_PASSPHRASE_FILE": passFile, "A67_PASSPHRASE": "x"])
                    .stdoutBytes == [1, 2, 3], "the passphrase file comes first")
    }

    @Test func passphraseFilesOfEveryShapeAreReadWithABound() async throws {
        let cli = try CLI()
        try await cli.setUp(providers: 1)
        cli.environment.removeValue(forKey: "A67_PASSPHRASE")
        func withFile(_ path: String) -> [String: String] { ["A67_PASSPHRASE_FILE": path] }
        // Every way a file can end the line: LF, CRLF, no line end at all, more lines after it.
        for (name, content) in [("lf", "test passphrase\n"), ("crlf", "test passphrase\r\n"), ("bare", "test passphrase"),
                                ("lines", "test passphrase\r\nsecond line\n")] {
            let result = try await cli.run(["bucket", "create", "from-\(name)"], environment: withFile(cli.file(name, Array(content.utf8))))
            #expect(result.status == 0, "a passphrase file ending \(name): \(result.stderr)")
        }
        try await cli.fails(["bucket", "create", "from-folder"], status: 3, message: "A67_PASSPHRASE_FILE names a folder (\(cli.scratch)), not a file",
                      environment: withFile(cli.scratch))
        try await cli.fails(["bucket", "create", "too-long"], status: 3, message: "has no line end in its first 64 KiB",
                      environment: withFile(cli.file("long", Array(repeating: UInt8(ascii: "a"), count: 64 * 1024 + 1) + [10])))
        // A line of exactly 64 KiB is the longest passphrase (wrong here, but read).
        try await cli.fails(["bucket", "create", "just-fits"], status: 3, message: "wrong passphrase",
                      environment: withFile(cli.file("max", Array(repeating: UInt8(ascii: "a"), count: 64 * 1024) + [13, 10])))

        // A file that never ends fails at once, in bounded memory (reading it all grew the process to 24 GB).
        cli.environment["A67_PASSPHRASE_FILE"] = "/dev/zero"
        let endless = try cli.start(["bucket", "create", "from-zero"])
        let ended = await cli.waitUntil(seconds: 20) { !endless.isRunning }
        if !ended { endless.killHard() }
        let zero = await endless.finish()
        #expect(ended, "a67 must give up on /dev/zero at once")
        #expect(zero.status == 3)
        #expect(zero.stderr.contains("(/dev/zero) has no line end in its first 64 KiB"), "stderr: \(zero.stderr)")

        // A pipe is read up to its line end, even while the writer keeps it open (as a67 mount's is).
        cli.environment["A67_PASSPHRASE_FILE"] = "/dev/stdin"
        let piped = try cli.start(["bucket", "create", "from-pipe"])
        await piped.feed(Array("test passphrase\n".utf8))
        let answered = await cli.waitUntil(seconds: 20) { !piped.isRunning }
        let pipeResult = await piped.finish()
        #expect(answered, "a67 must not wait for the pipe to close once it has the line")
        #expect(pipeResult.status == 0, "stderr: \(pipeResult.stderr)")
        cli.environment["A67_PASSPHRASE"] = "test passphrase"
        cli.environment.removeValue(forKey: "A67_PASSPHRASE_FILE")
        let buckets = (try await cli.json(["bucket", "ls"]) as! [[String: Any]]).map { $0["name"] as! String }
        #expect(Set(buckets) == ["test-bucket", "from-lf", "from-crlf", "from-bare", "from-lines", "from-pipe"])
    }

    /// Human output never carries a name's control characters to the terminal: an S3 user chooses keys.
    @Test func controlCharactersInNamesAreEscapedInHumanOutput() async throws {
        let cli = try CLI()
        try await cli.setUp(providers: 1)
        let keys = ["esc\u{1B}[31mred", "fake\nline", "cr\rover", "bell\u{07}", "bidi\u{202E}gpj.exe", "c1\u{9B}31m", "del\u{7F}x",
                    "tab\tkey"]
        let shown = ["esc\\x1b[31mred", "fake\\nline", "cr\\rover", "bell\\x07", "bidi\\u{202e}gpj.exe", "c1\\x9b31m", "del\\x7fx",
                     "tab\\tkey"]
        /// No byte a terminal acts on: C0 but the line ends, DEL, C1 (UTF-8 C2 80..9F), bidi controls (E2 80 AA..AE, E2 81 A6..A9).
        func clean(_ bytes: [UInt8]) -> Bool {
            let text = String(decoding: bytes, as: UTF8.self)
            return !text.unicodeScalars.contains { s in
                (s.value < 0x20 && s != "\n") || (0x7F...0x9F).contains(s.value) || (0x202A...0x202E).contains(s.value)
                    || (0x2066...0x2069).contains(s.value)
            }
        }
        for (key, escaped) in zip(keys, shown) {
            let put = try await cli.ok(["put", "-", "test-bucket/" + key], input: [1])
            #expect(clean(put.stdoutBytes) && put.stdout.contains("test-bucket/" + escaped), "put said: \(put.stdout)")
        }
        let listing = try await cli.ok(["ls", "test-bucket"])
        #expect(clean(listing.stdoutBytes), "ls printed a raw control character: \(Array(listing.stdout.utf8))")
        #expect(listing.stdout.split(separator: "\n").count == keys.count, "one line per key, none faked")
        for escaped in shown { #expect(listing.stdout.contains(escaped), "ls must show \(escaped)") }
        // --json escapes them its own way, and gives back the exact keys.
        let json = try await cli.json(["ls", "test-bucket"]) as! [[String: Any]]
        #expect(Set(json.map { $0["key"] as! String }) == Set(keys))
        #expect(clean((try await cli.ok(["ls", "test-bucket", "--json"])).stdoutBytes))
        // Errors that quote a name, and the trash.
        let missing = try await cli.fails(["get", "test-bucket/no\nsuch\u{1B}]0;title\u{07}", "-"], status: 2, message: "no\\nsuch\\x1b]0;title\\x07")
        #expect(clean(Array(missing.stderr.utf8)) && missing.stderr.split(separator: "\n").count == 1, "stderr: \(missing.stderr)")
        for key in keys { try await cli.ok(["rm", "test-bucket/" + key]) }
        let trash = try await cli.ok(["undelete", "--list"])
        #expect(clean(trash.stdoutBytes), "the trash listing printed a raw control character")
        #expect(trash.stdout.split(separator: "\n").count == keys.count + 1, "a header and one line per key")
        for escaped in shown { #expect(trash.stdout.contains("test-bucket/" + escaped)) }
        let restored = try await cli.ok(["undelete", "test-bucket/" + keys[0]])
        #expect(clean(restored.stdoutBytes) && restored.stdout.contains(shown[0]))
    }

    @Test func aHomeThatIsAFileATruncatedKeyringAndAReadOnlyHomeAreNamed() async throws {
        let cli = try CLI()
        // $A67_HOME is a file.
        overwrite(cli.home, [1])
        for command in [["ls", "test-bucket"], ["stat"], ["init"], ["put", "-", "test-bucket/k"], ["recover", "--dir", cli.provider(1)]] {
            try await cli.fails(command, status: 7, message: "\(cli.home) is a file, not a folder", input: [1])
        }
        try FileManager.default.removeItem(atPath: cli.home)
        try await cli.setUp(providers: 1)
        try await cli.ok(["put", "-", "test-bucket/k"], input: [1, 2, 3])

        // A truncated keyring, its magic intact; then one too long.
        let keyringPath = cli.home + "/keyring"
        let keyring = try #require(cli.read(keyringPath))
        overwrite(keyringPath, Array(keyring.prefix(50)))
        for command in [["get", "test-bucket/k", "-"], ["ls", "test-bucket"]] {
            let failed = try await cli.fails(command, status: 8, message: "\(keyringPath) is truncated: it ends at byte 50, and a keyring is 108 bytes")
            #expect(failed.stderr.contains("from any provider of this repository") && failed.stderr.contains(cli.provider(1) + "/keyring"),
                    "how to restore it: \(failed.stderr)")
        }
        overwrite(keyringPath, keyring + [0])
        try await cli.fails(["stat"], status: 8, message: "\(keyringPath) is damaged: it is longer than a keyring's 108 bytes")
        overwrite(keyringPath, Array("not a keyring at all".utf8))
        try await cli.fails(["stat"], status: 8, message: "is not an Automator67 keyring: it does not start with \"A67K\"")
        // What the message advises works: recover in place puts the keyring back and keeps the damaged one beside.
        try await cli.ok(["recover", "--dir", cli.provider(1)])
        #expect(cli.read(keyringPath) == keyring)
        #expect(cli.read(keyringPath + ".damaged") == Array("not a keyring at all".utf8))
        try await cli.ok(["stat"])

        // A read-only $A67_HOME (root ignores mode bits: a read-only bind mount).
        try await Mounts.with(["--bind", cli.home, cli.home], unmounting: cli.home) {
            try await shell("/bin/mount", ["-o", "remount,bind,ro", cli.home])
            for command in [["ls", "test-bucket"], ["stat"], ["get", "test-bucket/k", "-"], ["put", "-", "test-bucket/k2"]] {
                let failed = try await cli.fails(command, status: 1, message: "its folder \(cli.home) is not writable: Read-only file system",
                                                 input: [1])
                #expect(failed.stderr.contains("remount it read-write") && failed.stderr.contains("$A67_HOME must be writable"),
                        "what to do: \(failed.stderr)")
            }
        }
        #expect(try await cli.ok(["get", "test-bucket/k", "-"]).stdoutBytes == [1, 2, 3])
    }

    @Test func noPassphraseAtAllIsAClearError() async throws {
        let cli = try CLI()
        cli.environment.removeValue(forKey: "A67_PASSPHRASE")
        // Detached: with no terminal to ask on, whether or not the tests run on one.
        try await cli.fails(["init"], status: 3, message: "no passphrase: set A67_PASSPHRASE_FILE", detached: true)
        #expect(!FileManager.default.fileExists(atPath: cli.home + "/keyring"))
    }

    @Test func badInputGetsClearErrorsAndExitCodes() async throws {
        let cli = try CLI()
        try await cli.fails(["ls", "test-bucket"], status: 7, message: "no repository")
        try await cli.setUp()
        try await cli.fails(["put", cli.scratch + "/missing", "test-bucket/k"], status: 2, message: "cannot read")
        try await cli.fails(["put", cli.scratch, "test-bucket/k"], status: 64, message: "is a directory")
        try await cli.fails(["put", "-", "no-such-bucket/k"], status: 2, message: "no bucket named no-such-bucket", input: [1])
        try await cli.fails(["put", "-", "Bad_Bucket/k"], status: 64, message: "invalid bucket name", input: [1])
        try await cli.fails(["bucket", "create", "x"], status: 64, message: "invalid bucket name")
        for key in ["../etc/passwd", "a/../b", "a//b", "trailing/"] {
            try await cli.fails(["put", "-", "test-bucket/" + key], status: 64, message: "invalid key", input: [1])
        }
        try await cli.fails(["put", "-", "test-bucket"], status: 64, message: "names no key", input: [1])
        try await cli.fails(["put", "-", "test-bucket/" + String(repeating: "k", count: 1100)], status: 64, message: "at most 1024 bytes", input: [1])
        try await cli.fails(["get", "test-bucket/nothing", "-"], status: 2, message: "no object")
        try await cli.ok(["put", "-", "test-bucket/small"], input: Array("0123456789".utf8))
        for range in ["5-2", "10-20", "x-1", "-", "3"] {
            try await cli.fails(["get", "test-bucket/small", "-", "--range", range], status: 64, message: "invalid --range")
        }
        try await cli.fails(["bucket", "create", "test-bucket"], status: 6, message: "already exists")
        try await cli.fails(["bucket", "rm", "test-bucket"], status: 6, message: "not empty")
        try await cli.fails(["bucket", "rm", "nope-bucket"], status: 2, message: "no bucket")
        try await cli.fails(["provider", "add", "p1", "--dir", cli.scratch + "/elsewhere"], status: 6, message: "already exists")
        try await cli.fails(["provider", "add", "bad name", "--dir", cli.scratch + "/x"], status: 64, message: "invalid provider name")
        try await cli.fails(["provider", "add", "q", "--dir", cli.scratch + "/q", "--quota", "lots"], status: 64, message: "as a size")
        try await cli.fails(["init", "--zstd-level", "40"], status: 64, message: "out of range")
        #expect((try await cli.json(["rm", "test-bucket/small"]) as! [String: Any])["removed"] as? Bool == true)
        #expect((try await cli.json(["bucket", "rm", "test-bucket"]) as! [String: Any])["removed"] as? Bool == true)
        #expect(try await cli.ok(["bucket", "ls"]).stdout.contains("no buckets"))
    }

    @Test func aProviderOfAnotherRepositoryIsRefused() async throws {
        let first = try CLI()
        try await first.setUp(providers: 1)
        let second = try CLI()
        try await second.ok(["init"])
        try await second.fails(["provider", "add", "stolen", "--dir", first.provider(1)], status: 6, message: "another Automator67 repository")
    }

    @Test func corruptedTruncatedAndSwappedChunkFilesAreCaught() async throws {
        let cli = try CLI()
        try await cli.setUp(providers: 1)
        let data = randomBytes(2 * Self.chunk)
        try await cli.ok(["put", cli.file("in", data), "test-bucket/photos/a.jpg"])
        let files = cli.chunkFiles(1)
        #expect(files.count == 3, "two data chunks and a manifest")
        let dest = cli.scratch + "/out"
        for damage in ["flip", "truncate", "swap"] {
            let originals = files.map { cli.read($0)! }
            switch damage {
            case "flip":
                for file in files {
                    var b = cli.read(file)!
                    b[b.count / 2] ^= 0x40
                    overwrite(file, b)
                }
            case "truncate":
                for file in files { overwrite(file, Array(cli.read(file)!.prefix(1000))) }
            default:
                // Each data chunk's file holds the other's bytes.
                let big = files.filter { cli.read($0)!.count > 1_000_000 }
                overwrite(big[0], originals[files.firstIndex(of: big[1])!])
                overwrite(big[1], originals[files.firstIndex(of: big[0])!])
            }
            let result = try await cli.fails(["get", "test-bucket/photos/a.jpg", dest], status: 4, message: "test-bucket/photos/a.jpg")
            #expect(result.stderr.contains("failed verification"), "\(damage): \(result.stderr)")
            #expect(!FileManager.default.fileExists(atPath: dest), "\(damage): a failed get must not leave a file")
            let piped = try await cli.run(["get", "test-bucket/photos/a.jpg", "-"])
            #expect(piped.status == 4)
            #expect(piped.stdoutBytes.isEmpty || data.starts(with: piped.stdoutBytes), "\(damage): never wrong bytes")
            for (file, bytes) in zip(files, originals) { overwrite(file, bytes) }
            try await cli.ok(["get", "test-bucket/photos/a.jpg", dest])
            #expect(cli.read(dest) == data)
            try FileManager.default.removeItem(atPath: dest)
        }
    }

    @Test func aFullOrUnwritableProviderFailsThePutAndLeavesNothingVisible() async throws {
        let cli = try CLI()
        try await cli.setUp(providers: 1)
        // Unwritable: the provider's folder replaced by a file.
        try FileManager.default.removeItem(atPath: cli.provider(1))
        overwrite(cli.provider(1), [0])
        let data = cli.file("in", randomBytes(3 * Self.chunk))
        try await cli.fails(["put", data, "test-bucket/k"], status: 5, message: "p1 (directory")
        #expect((try await cli.json(["ls", "test-bucket", "-r"]) as! [Any]).isEmpty)
        #expect((try await cli.json(["stat"]) as! [String: Any])["providerBytes"] as? Int == 0, "no chunk recorded as stored")
        #expect(try cli.everyRecordedChunkExists())

        // Full: a 2 MiB tmpfs.
        let small = try CLI()
        try await small.ok(["init"])
        let mountPoint = small.scratch + "/small"
        try await Mounts.withTmpfs(at: mountPoint, size: "2m") {
            try await small.ok(["provider", "add", "tiny", "--dir", mountPoint])
            try await small.ok(["bucket", "create", "test-bucket", "--replicas", "1"])
            try await small.fails(["put", small.file("in", randomBytes(3 * Self.chunk)), "test-bucket/k"], status: 5, message: "out of space")
            #expect((try await small.json(["ls", "test-bucket", "-r"]) as! [Any]).isEmpty)
            let stat = try await small.json(["stat"]) as! [String: Any]
            #expect(stat["objects"] as? Int == 0)
            #expect(try small.everyRecordedChunkExists(), "no catalog row may point at a chunk that is not stored")
            try await small.ok(["put", "-", "test-bucket/small"], input: Array("fits".utf8))
            #expect(try await small.ok(["get", "test-bucket/small", "-"]).stdout == "fits")
        }
    }

    @Test(arguments: [SIGKILL, SIGINT])
    func interruptedPutLeavesNoObjectAndRerunWorks(signal: Int32) async throws {
        let cli = try CLI()
        try await cli.setUp(providers: 1)
        let data = randomBytes(8 * Self.chunk)
        let put = try ChildProcess(CLI.binary, ["put", "-", "test-bucket/big"], environment: cli.environment, input: .pipe,
                                   stdout: .discard, stderr: .discard)
        // Feed half, wait until the catalog records stored chunks, then interrupt mid-put.
        #expect(await put.feed(Array(data.prefix(4 * Self.chunk))))
        let catalog = try Catalog(path: cli.home + "/catalog.db")
        let deadline = Date().addingTimeInterval(60)
        while try catalog.chunks.allLocations().count < 2 && Date() < deadline { try await Task.sleep(for: .milliseconds(20)) }
        #expect(try catalog.chunks.allLocations().count >= 2, "the put never recorded a chunk")
        put.signal(signal)
        let ended = await put.finish()
        #expect(ended.reason == .uncaughtSignal || ended.status != 0)
        #expect((try await cli.json(["ls", "test-bucket", "-r"]) as! [Any]).isEmpty, "no partial object may be visible")
        #expect(try cli.everyRecordedChunkExists())
        let rerun = try await cli.json(["put", cli.file("in", data), "test-bucket/big"]) as! [String: Any]
        let stored = rerun["newChunks"] as! Int
        #expect(stored < 8, "the rerun must reuse chunks the interrupted put recorded (stored \(stored) of 8 again)")
        try await cli.ok(["get", "test-bucket/big", cli.scratch + "/out"])
        #expect(cli.read(cli.scratch + "/out") == data)
    }

    @Test func embeddedDefaultRunsAndRerunsAndHelpDocumentsExitCodes() async throws {
        let cli = try CLI()
        let first = try await cli.ok(["up"])
        #expect(first.stdout.contains("identical"))
        #expect(first.stdout.contains("dedupe ratio"))
        let again = try await cli.json(["up"]) as! [String: Any]
        #expect(again["created"] as? Bool == false)
        #expect((again["providersAdded"] as? [String])?.isEmpty == true)
        #expect((again["stat"] as? [String: Any])?["providers"] as? Int == 3)
        let providers = try await cli.json(["provider", "ls"]) as! [[String: Any]]
        #expect(providers.count == 3)
        // Two replicas of every chunk, never both on one provider: at least two providers hold chunks.
        #expect(providers.filter { ($0["chunks"] as? Int ?? 0) > 0 }.count >= 2)
        let help = try await cli.ok(["--help"]).stdout
        #expect(help.contains("Exit codes"))
        #expect(help.contains("integrity failure"))
        // The exit-code tables in the README and docs/ARCHITECTURE.md say what --help says.
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        let readme = try String(contentsOfFile: root.appendingPathComponent("README.md").path, encoding: .utf8)
        let architecture = try String(contentsOfFile: root.appendingPathComponent("docs/ARCHITECTURE.md").path, encoding: .utf8)
        let rows = help.split(separator: "\n").compactMap { line -> (String, String)? in
            let parts = line.split(separator: " ", maxSplits: 1)
            guard line.hasPrefix("  "), parts.count == 2, Int(parts[0]) != nil else { return nil }
            return (String(parts[0]), parts[1].trimmingCharacters(in: .whitespaces))
        }
        #expect(rows.count == 10)
        for (status, meaning) in rows {
            #expect(readme.contains("| \(status) | \(meaning) |"), "README lacks exit code \(status)")
            #expect(architecture.contains("| \(status) | \(meaning) |"), "docs/ARCHITECTURE.md lacks exit code \(status)")
        }
        for sub in [["put"], ["get"], ["ls"], ["provider", "add"], ["bucket", "create"], ["stat"], ["up"]] {
            #expect(try await cli.ok(sub + ["--help"]).stdout.contains("USAGE"), "\(sub) --help")
        }
    }

    @Test func progressIsShownOnATerminalOnly() async throws {
        let cli = try CLI()
        try await cli.setUp(providers: 1)
        let big = cli.file("big", randomBytes(6 * Self.chunk))
        // Not a terminal: no progress line.
        #expect(!(try await cli.ok(["put", big, "test-bucket/a"]).stderr.contains("MB/s")))
        // Under a pseudo-terminal (script(1)): a progress line with rate and ETA.
        // The passphrase travels in the environment, never in a command line that ps could show.
        let command = "'\(CLI.binary)' put '\(big)' test-bucket/b --zstd-level 19"
        let output = try await shellOutput("/usr/bin/script", ["-qec", command, "/dev/null"], environment: cli.environment)
        #expect(output.contains("ETA"), "progress output was: \(output)")
    }
}

/// Runs `tool ARGUMENTS` and throws unless it exits 0.
func shell(_ tool: String, _ arguments: [String]) async throws {
    let result = try await ChildProcess.run(tool, arguments, stdout: .inherit, stderr: .inherit)
    guard result.status == 0 else {
        throw NSError(domain: "shell", code: Int(result.status),
                      userInfo: [NSLocalizedDescriptionKey: "\(tool) \(arguments.joined(separator: " ")) failed"])
    }
}

func shellOutput(_ tool: String, _ arguments: [String], environment: [String: String]? = nil, input: [UInt8]? = nil) async throws -> String {
    try await ChildProcess.run(tool, arguments, environment: environment, input: input, stderr: .inherit).stdoutText
}

struct GetDestinationTests {
    @Test func devicesPipesAndSymlinksAreWrittenNotReplaced() async throws {
        let cli = try CLI()
        try await cli.setUp(providers: 1)
        let data = textBytes(100_000)
        try await cli.ok(["put", "-", "test-bucket/a.txt"], input: data)
        // A device: written to, never replaced (this once turned /dev/null into a file).
        try await cli.ok(["get", "test-bucket/a.txt", "/dev/null"])
        var st = stat()
        #expect(stat("/dev/null", &st) == 0 && (st.st_mode & S_IFMT) == S_IFCHR, "/dev/null must stay a device")
        // A FIFO: its reader receives the bytes.
        let fifo = cli.scratch + "/fifo"
        #expect(mkfifo(fifo, 0o600) == 0)
        let reader = Task {
            await onOwnThread {
                var received: [UInt8] = []
                let fd = open(fifo, O_RDONLY)  // blocks until a67 opens the other end
                var buffer = [UInt8](repeating: 0, count: 65536)
                while true {
                    let n = read(fd, &buffer, buffer.count)
                    if n <= 0 { break }
                    received += buffer[0..<n]
                }
                close(fd)
                return received
            }
        }
        try await cli.ok(["get", "test-bucket/a.txt", fifo])
        #expect(await reader.value == data)
        #expect(lstat(fifo, &st) == 0 && (st.st_mode & S_IFMT) == S_IFIFO)
        // A symlink: the file it points at gets the bytes; the link stays a link.
        let target = cli.file("target.txt", [1, 2, 3])
        let link = cli.scratch + "/link.txt"
        try FileManager.default.createSymbolicLink(atPath: link, withDestinationPath: target)
        try await cli.ok(["get", "test-bucket/a.txt", link])
        #expect(cli.read(target) == data)
        #expect(lstat(link, &st) == 0 && (st.st_mode & S_IFMT) == S_IFLNK)
        // Nothing is left behind.
        #expect(try FileManager.default.contentsOfDirectory(atPath: cli.scratch).filter { $0.contains("a67-partial") }.isEmpty)
    }

    @Test func aFailedGetLeavesNoFileAndNoTemporary() async throws {
        let cli = try CLI()
        try await cli.setUp(providers: 1)
        try await cli.ok(["put", cli.file("in", randomBytes(3 << 20)), "test-bucket/k"])
        for file in cli.chunkFiles(1) { overwrite(file, Array(cli.read(file)!.prefix(64))) }
        let dest = cli.scratch + "/out/dest.bin"
        try FileManager.default.createDirectory(atPath: cli.scratch + "/out", withIntermediateDirectories: true)
        try await cli.fails(["get", "test-bucket/k", dest], status: 4)
        #expect(try FileManager.default.contentsOfDirectory(atPath: cli.scratch + "/out").isEmpty)
    }
}

struct RepositorySetupTests {
    @Test func theSameFolderCannotBeTwoProviders() async throws {
        let cli = try CLI()
        try await cli.ok(["init"])
        try await cli.ok(["provider", "add", "one", "--dir", cli.provider(1)])
        try await cli.fails(["provider", "add", "two", "--dir", cli.provider(1) + "/"], status: 6, message: "already provider one")
        try await cli.fails(["provider", "add", "three", "--dir", cli.provider(1) + "/../p1"], status: 6, message: "already provider one")
        let link = cli.scratch + "/link"
        try FileManager.default.createSymbolicLink(atPath: link, withDestinationPath: cli.provider(1))
        try await cli.fails(["provider", "add", "four", "--dir", link], status: 6, message: "already provider one")
        // A missing parent (an unmounted disk) is not created.
        try await cli.fails(["provider", "add", "five", "--dir", cli.scratch + "/not-mounted/a67"], status: 5, message: "is the disk mounted?")
        #expect(!FileManager.default.fileExists(atPath: cli.scratch + "/not-mounted"))
        #expect((try await cli.json(["provider", "ls"]) as! [Any]).count == 1)
    }

    @Test func noRepositoryIsReportedBeforeAnyPassphraseIsNeeded() async throws {
        let cli = try CLI()
        cli.environment.removeValue(forKey: "A67_PASSPHRASE")
        try await cli.fails(["put", "-", "test-bucket/k"], status: 7, message: "no repository", input: [1], detached: true)
        try await cli.fails(["stat"], status: 7, message: "no repository", detached: true)
    }

    @Test func anInterruptedInitCanBeRunAgain() async throws {
        let cli = try CLI()
        try await cli.ok(["init"])
        // What a kill before init's last step leaves: the catalog under its temporary name, the keyring written.
        try FileManager.default.moveItem(atPath: cli.home + "/catalog.db", toPath: cli.home + "/catalog.db.init")
        try await cli.fails(["stat"], status: 7, message: "a67 init in \(cli.home) was interrupted before it finished")
        try await cli.ok(["init"])
        try await cli.ok(["provider", "add", "p1", "--dir", cli.provider(1)])
        #expect((try await cli.json(["provider", "ls"]) as! [Any]).count == 1)
        #expect(!FileManager.default.fileExists(atPath: cli.home + "/catalog.db.init"))
        // Killed earlier, before the keyring: the same.
        let early = try CLI()
        try await early.ok(["init"])
        try FileManager.default.moveItem(atPath: early.home + "/catalog.db", toPath: early.home + "/catalog.db.init")
        try FileManager.default.removeItem(atPath: early.home + "/keyring")
        try await early.fails(["ls", "test-bucket"], status: 7, message: "was interrupted")
        try await early.ok(["init"])
        try await early.ok(["bucket", "create", "after-init"])
    }

    @Test func aLostKeyringIsNamedAndInitNeverReplacesTheCatalog() async throws {
        let cli = try CLI()
        try await cli.setUp(providers: 2)
        try await cli.ok(["put", "-", "test-bucket/k"], input: [1, 2, 3])
        let keyringPath = cli.home + "/keyring"
        let keyring = try #require(cli.read(keyringPath))
        try FileManager.default.removeItem(atPath: keyringPath)
        let catalog = cli.read(cli.home + "/catalog.db")
        let wal = cli.read(cli.home + "/catalog.db-wal") ?? []  // absent or empty: the same log
        for command in [["ls", "test-bucket"], ["put", "-", "test-bucket/k2"], ["stat"], ["get", "test-bucket/k", "-"]] {
            let failed = try await cli.fails(command, status: 8, message: "\(keyringPath) is missing", input: [9])
            for fix in ["is still there", "copy it to \(keyringPath) from a backup or from any provider", cli.provider(1) + "/keyring",
                        cli.provider(2) + "/keyring", "a67 recover --dir \(cli.provider(1))"] {
                #expect(failed.stderr.contains(fix), "a67 \(command[0]) must say \(fix): \(failed.stderr)")
            }
        }
        try await cli.fails(["init"], status: 8, message: "a67 init never replaces a catalog")
        try await cli.fails(["up"], status: 8, message: "a67 init never replaces a catalog")
        let untouched = cli.read(cli.home + "/catalog.db") == catalog && (cli.read(cli.home + "/catalog.db-wal") ?? []) == wal
        #expect(untouched, "the catalog and its write-ahead log must be untouched")
        #expect(!FileManager.default.fileExists(atPath: keyringPath))

        // Copied back from a provider: everything is there.
        #expect(cli.read(cli.provider(1) + "/keyring") == keyring)
        overwrite(keyringPath, keyring)
        #expect(try await cli.ok(["get", "test-bucket/k", "-"]).stdoutBytes == [1, 2, 3])

        // Or a67 recover from a provider: the keyring comes back, the catalog (newer than any snapshot) stays.
        try FileManager.default.removeItem(atPath: keyringPath)
        let other = try CLI()
        try await other.setUp(providers: 1)
        try await cli.fails(["recover", "--dir", other.provider(1)], status: 6, message: "belongs to another repository")
        try await cli.fails(["recover", "--dir", cli.provider(2)], status: 3, message: "wrong passphrase",
                      environment: ["A67_PASSPHRASE": "not it"])
        #expect(!FileManager.default.fileExists(atPath: keyringPath))
        let recovered = try await cli.ok(["recover", "--dir", cli.provider(2)])
        #expect(recovered.stdout.contains("restored the keyring"))
        #expect(cli.read(keyringPath) == keyring)
        #expect((try await cli.json(["ls", "test-bucket"]) as! [[String: Any]]).map { $0["key"] as! String } == ["k"])
        #expect(try await cli.ok(["get", "test-bucket/k", "-"]).stdoutBytes == [1, 2, 3])
    }

    @Test func aKeyringWithoutItsCatalogIsNamed() async throws {
        let cli = try CLI()
        try await cli.setUp(providers: 1)
        try FileManager.default.removeItem(atPath: cli.home + "/catalog.db")
        try await cli.fails(["ls", "test-bucket"], status: 7, message: "holds a keyring but no catalog")
        try await cli.fails(["init"], status: 7, message: "a67 recover into an empty folder")
    }

    @Test func thePromptAsksTwiceAndRefusesAMismatch() async throws {
        let cli = try CLI()
        var environment = cli.environment
        environment.removeValue(forKey: "A67_PASSPHRASE")
        let command = "'\(CLI.binary)' init"
        let output = try await shellOutput("/usr/bin/script", ["-qec", command, "/dev/null"], environment: environment,
                                     input: Array("first\nsecond\n".utf8))
        #expect(output.contains("Passphrase again"), "output: \(output)")
        #expect(output.contains("the two passphrases differ"), "output: \(output)")
        #expect(!FileManager.default.fileExists(atPath: cli.home + "/keyring"))
        let created = try await shellOutput("/usr/bin/script", ["-qec", command, "/dev/null"], environment: environment,
                                      input: Array("same one\nsame one\n".utf8))
        #expect(created.contains("created repository"), "output: \(created)")
        cli.environment["A67_PASSPHRASE"] = "same one"
        try await cli.ok(["bucket", "create", "typed-at-the-prompt"])
    }

    @Test func missingThingsAndTooFewProviders() async throws {
        let cli = try CLI()
        try await cli.setUp(providers: 1)
        try await cli.fails(["rm", "test-bucket/nothing"], status: 2, message: "no object")
        try await cli.fails(["ls", "no-such-bucket"], status: 2, message: "no bucket named")
        #expect((try await cli.json(["ls", "test-bucket/no/such/prefix"]) as! [Any]).isEmpty)
        let created = try await cli.run(["bucket", "create", "wants-three", "--replicas", "3"])
        #expect(created.status == 0)
        #expect(created.stderr.contains("warning: wants-three wants 3 replicas but the repository has 1 provider"))
    }
}
