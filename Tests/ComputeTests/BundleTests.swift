import ChunkStore
@testable import Compute
import Foundation
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// A folder under the temporary directory, removed when the test ends.
final class TemporaryFolder {
    let path: String

    init() {
        path = NSTemporaryDirectory() + "a67-bundle-" + Hex.encode(Crypto.randomBytes(6))
        try! FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    }

    deinit { try? FileManager.default.removeItem(atPath: path) }

    func write(_ relative: String, _ bytes: [UInt8], mode: Int = 0o644) {
        let full = path + "/" + relative
        try! FileManager.default.createDirectory(atPath: (full as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
        _ = FileManager.default.createFile(atPath: full, contents: Data(bytes))
        chmod(full, mode_t(mode))
    }

    func write(_ relative: String, _ text: String, mode: Int = 0o644) { write(relative, Array(text.utf8), mode: mode) }

    func folder(_ relative: String, mode: Int = 0o755) {
        let full = path + "/" + relative
        try! FileManager.default.createDirectory(atPath: full, withIntermediateDirectories: true)
        chmod(full, mode_t(mode))
    }

    func link(_ relative: String, to target: String) { symlink(target, path + "/" + relative) }

    func read(_ relative: String) -> [UInt8] { Array(FileManager.default.contents(atPath: path + "/" + relative) ?? Data()) }

    /// What is in the folder beside `name` (to check that nothing was left behind).
    var entries: [String] { (try? FileManager.default.contentsOfDirectory(atPath: path))?.sorted() ?? [] }
}

/// Deterministic bytes for test files.
struct Noise {
    var state: UInt64
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
    mutating func bytes(_ count: Int) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(count + 8)
        while out.count < count { withUnsafeBytes(of: next()) { out += $0 } }
        return Array(out.prefix(count))
    }
}

/// The whole archive of a folder, read plainly, and its SHA-256.
func pack(_ folder: String) throws -> (bytes: [UInt8], sha256: [UInt8], stream: BundleStream) {
    let stream = try BundleStream(folder: folder)
    var bytes: [UInt8] = []
    while true {
        let part = try stream.read(upTo: 100_000)
        if part.isEmpty { break }
        bytes += part
    }
    return (bytes, try #require(stream.sha256), stream)
}

/// The SHA-256 of each piece of a folder's archive, cut along its plan.
func pieceDigests(_ folder: String) throws -> [[UInt8]] {
    let stream = try BundleStream(folder: folder)
    var digests: [[UInt8]] = []
    while let piece = try stream.nextPiece() { digests.append(Crypto.sha256(piece)) }
    return digests
}

/// An archive made by hand, for the unpacker's refusals: each member's headers, data and padding, then the end.
func archive(_ entries: [(BundleMember, [UInt8])], trailer: Bool = true) -> [UInt8] {
    var out: [UInt8] = []
    for (member, data) in entries {
        out += TarFormat.header(for: member) + data + [UInt8](repeating: 0, count: TarFormat.padding(Int64(data.count)))
    }
    return trailer ? out + [UInt8](repeating: 0, count: TarFormat.trailerLength) : out
}

/// Unpacks `bytes` into `destination`, written in `step`-byte pieces.
@discardableResult
func unpack(_ bytes: [UInt8], into destination: String, sha256: [UInt8]? = nil, step: Int = 7_000) throws -> BundleManifest {
    let unpacker = try BundleUnpacker(into: destination, expectedSHA256: sha256 ?? Crypto.sha256(bytes))
    var offset = 0
    while offset < bytes.count {
        try unpacker.write(bytes[offset..<min(offset + step, bytes.count)])
        offset += step
    }
    return try unpacker.finish()
}

@Suite struct BundleTests {
    /// A small app folder with a script, a data folder and a link.
    func sampleApp(_ t: TemporaryFolder) {
        t.write("a67app.toml", "name = \"web\"\ncommand = [\"python3\", \"server.py\"]\n")
        t.write("server.py", "print('hi')\n", mode: 0o755)
        t.folder("static", mode: 0o750)
        t.write("static/index.html", "<p>hi</p>\n", mode: 0o640)
        t.write("static/empty.txt", [])
        t.link("static/home.html", to: "index.html")
        t.link("current", to: "static")
    }

    @Test func theSameFolderGivesTheSameBytesAndDigest() throws {
        let t = TemporaryFolder()
        sampleApp(t)
        let (first, digest, stream) = try pack(t.path)
        let (second, again, _) = try pack(t.path)
        #expect(first == second)
        #expect(digest == again)
        #expect(digest == Crypto.sha256(first))
        #expect(Int64(first.count) == stream.size)
        #expect(stream.manifest.members.map(\.path) == ["a67app.toml", "current", "server.py", "static", "static/empty.txt", "static/home.html", "static/index.html"])
    }

    @Test func timesOwnersAndCreationOrderDoNotChangeTheBytes() throws {
        let a = TemporaryFolder(), b = TemporaryFolder()
        sampleApp(a)
        // The same content made in another order, with other times and (as root) other owners.
        b.link("current", to: "static")
        b.folder("static", mode: 0o750)
        b.write("static/empty.txt", [])
        b.link("static/home.html", to: "index.html")
        b.write("static/index.html", "<p>hi</p>\n", mode: 0o640)
        b.write("server.py", "print('hi')\n", mode: 0o755)
        b.write("a67app.toml", "name = \"web\"\ncommand = [\"python3\", \"server.py\"]\n")
        for name in ["server.py", "static/index.html", "static", "a67app.toml"] {
            try FileManager.default.setAttributes([.modificationDate: Date(timeIntervalSince1970: 86_400 * 400)], ofItemAtPath: b.path + "/" + name)
            if getuid() == 0 { chown(b.path + "/" + name, 1234, 5678) }
        }
        #expect(try pack(a.path).bytes == pack(b.path).bytes)
    }

    @Test func theArchiveIsUstarWithFixedFields() throws {
        let t = TemporaryFolder()
        sampleApp(t)
        let bytes = try pack(t.path).bytes
        // First member: a67app.toml, a file of mode 0644, mtime 0, uid/gid 0, empty owner names.
        let h = Array(bytes[0..<512])
        #expect(String(decoding: h[0..<11], as: UTF8.self) == "a67app.toml")
        #expect(String(decoding: h[100..<107], as: UTF8.self) == "0000644")
        #expect(String(decoding: h[108..<115], as: UTF8.self) == "0000000")
        #expect(String(decoding: h[136..<147], as: UTF8.self) == "00000000000")
        #expect(h[156] == UInt8(ascii: "0"))
        #expect(Array(h[257..<265]) == Array("ustar\u{0}00".utf8))
        #expect(h[265..<329].allSatisfy { $0 == 0 })
        // Ends with exactly two zero blocks.
        #expect(bytes.count % 512 == 0)
        #expect(bytes.suffix(1024).allSatisfy { $0 == 0 })
    }

    @Test func modesAndKindsAreKept() throws {
        let t = TemporaryFolder()
        sampleApp(t)
        let members = Dictionary(uniqueKeysWithValues: try BundleFolder.scan(t.path).members.map { ($0.path, $0) })
        #expect(members["server.py"] == BundleMember(path: "server.py", kind: .file, mode: 0o755, size: 12))
        #expect(members["static"] == BundleMember(path: "static", kind: .directory, mode: 0o750))
        #expect(members["static/index.html"]?.mode == 0o640)
        #expect(members["a67app.toml"]?.mode == 0o644)
        #expect(members["current"] == BundleMember(path: "current", kind: .symlink, mode: 0o777, linkTarget: "static"))
    }

    @Test func packThenUnpackGivesTheSameFilesAndModes() throws {
        let t = TemporaryFolder()
        sampleApp(t)
        let long = String(repeating: "deep/", count: 25) + "name-that-is-long.txt"
        t.write(long, "far down", mode: 0o600)
        var noise = Noise(state: 1)
        t.write("big.bin", noise.bytes(6 << 20 + 123))
        let (bytes, digest, stream) = try pack(t.path)
        let out = TemporaryFolder()
        let destination = out.path + "/v1"
        let manifest = try unpack(bytes, into: destination, sha256: digest)
        #expect(manifest == stream.manifest)
        #expect(try BundleFolder.scan(destination) == stream.manifest)
        for member in stream.manifest.members where member.kind == .file {
            #expect(FileManager.default.contents(atPath: destination + "/" + member.path) == FileManager.default.contents(atPath: t.path + "/" + member.path))
        }
        #expect(try FileManager.default.destinationOfSymbolicLink(atPath: destination + "/current") == "static")
        #expect(out.entries == ["v1"])
        // And it packs back to the same bytes.
        #expect(try pack(destination).bytes == bytes)
    }

    @Test func systemTarReadsTheArchive() throws {
        guard FileManager.default.isExecutableFile(atPath: "/usr/bin/tar") else { return }
        let t = TemporaryFolder()
        sampleApp(t)
        t.write(String(repeating: "x", count: 150) + ".txt", "long name")
        let archiveFile = TemporaryFolder()
        _ = FileManager.default.createFile(atPath: archiveFile.path + "/b.tar", contents: Data(try pack(t.path).bytes))
        let tar = Process()
        tar.executableURL = URL(fileURLWithPath: "/usr/bin/tar")
        tar.arguments = ["-tf", archiveFile.path + "/b.tar"]
        let pipe = Pipe()
        tar.standardOutput = pipe
        try tar.run()
        let listing = String(decoding: pipe.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        tar.waitUntilExit()
        #expect(tar.terminationStatus == 0)
        #expect(listing.split(separator: "\n").map(String.init) == [
            "a67app.toml", "current", "server.py", "static/", "static/empty.txt", "static/home.html", "static/index.html",
            String(repeating: "x", count: 150) + ".txt",
        ])
    }

    // MARK: .a67ignore

    @Test(arguments: [
        ("*.log", "app.log", false, true),
        ("*.log", "logs/deep/app.log", false, true),
        ("*.log", "app.log.txt", false, false),
        ("/build", "build", true, true),
        ("/build", "src/build", true, false),
        ("build/", "src/build", true, true),
        ("build/", "build", false, false),
        ("src/gen", "src/gen", true, true),
        ("src/gen", "other/src/gen", true, false),
        ("**/cache", "a/b/cache", true, true),
        ("**/cache", "cache", true, true),
        ("a/**/z", "a/z", false, true),
        ("a/**/z", "a/b/c/z", false, true),
        ("a/**", "a", true, false),
        ("a/**", "a/x/y", false, true),
        ("te?t.txt", "test.txt", false, true),
        ("te?t.txt", "te/t.txt", false, false),
        ("caf?.txt", "café.txt", false, true),
        ("*", "anything", false, true),
        ("\\#notes", "#notes", false, true),
        ("# a comment", "# a comment", false, false),
        ("*.toml", "a67app.toml", false, false),
        ("*.toml", "sub/a67app.toml", false, true),
    ] as [(String, String, Bool, Bool)])
    func ignorePatterns(pattern: String, path: String, isDirectory: Bool, excluded: Bool) throws {
        #expect(try BundleIgnore(parsing: pattern).excludes(path, isDirectory: isDirectory) == excluded)
    }

    @Test func theLastMatchingPatternDecidesAndNegationBringsBack() throws {
        let ignore = try BundleIgnore(parsing: "# logs\n\n*.log\n!keep.log\nsecret*  \n")
        #expect(ignore.excludes("x.log", isDirectory: false))
        #expect(!ignore.excludes("keep.log", isDirectory: false))
        #expect(!ignore.excludes("d/keep.log", isDirectory: false))
        #expect(ignore.excludes("secret.txt", isDirectory: false))
        #expect(!ignore.excludes("x.txt", isDirectory: false))
    }

    @Test(arguments: [
        ("ok\n[abc].txt\n", "line 2", "character classes"),
        ("a**b\n", "line 1", "whole segment"),
        ("!\n", "line 1", "empty"),
        ("a//b\n", "line 1", "empty segment"),
    ])
    func ignoreSyntaxErrorsNameTheLine(text: String, line: String, why: String) {
        let error = #expect(throws: StoreError.self) { try BundleIgnore(parsing: text) }
        #expect(error?.code == .invalidArgument)
        #expect(error?.message.contains(line) == true && error?.message.contains(why) == true, "\(String(describing: error))")
    }

    @Test func scanningHonoursIgnoreAndAlwaysKeepsTheManifest() throws {
        let t = TemporaryFolder()
        sampleApp(t)
        t.write(".a67ignore", "*.toml\nnode_modules/\n*.log\n!important.log\n/static/empty.txt\n")
        t.write("node_modules/x/y.js", "x")
        t.write("debug.log", "d")
        t.write("important.log", "i")
        t.write("sub/a67app.toml", "ignored: only the root's manifest is kept")
        // Not looked into: a FIFO inside a left-out folder is no error.
        mkfifo(t.path + "/node_modules/pipe", 0o644)
        let paths = try BundleFolder.scan(t.path).members.map(\.path)
        #expect(paths == [".a67ignore", "a67app.toml", "current", "important.log", "server.py", "static", "static/home.html", "static/index.html", "sub"])
    }

    // MARK: refusals when packing

    @Test func otherFileTypesAreRefusedByName() throws {
        let t = TemporaryFolder()
        sampleApp(t)
        mkfifo(t.path + "/static/pipe", 0o644)
        let error = #expect(throws: StoreError.self) { try BundleFolder.scan(t.path) }
        #expect(error?.code == .invalidArgument)
        #expect(error?.message.contains("static/pipe is a FIFO") == true, "\(String(describing: error))")
    }

    @Test(arguments: [
        (["l": "/etc/passwd"], "l", "is absolute"),
        (["l": "../outside"], "l", "leads out"),
        (["static/l": "../../x"], "static/l", "leads out"),
        (["d": ".", "e": "d/.."], "e", "leads out"),
        (["d": "/tmp", "e": "d/x"], "d", "is absolute"),
        (["p": "q", "q": "p"], "p", "too many links"),
    ])
    func symlinksLeavingTheFolderAreRefusedByName(links: [String: String], named: String, why: String) throws {
        let t = TemporaryFolder()
        sampleApp(t)
        for (path, target) in links { t.link(path, to: target) }
        let error = #expect(throws: StoreError.self) { try BundleFolder.scan(t.path) }
        #expect(error?.code == .invalidArgument)
        #expect(error?.message.contains("symlink \(named) ->") == true && error?.message.contains(why) == true, "\(String(describing: error))")
    }

    @Test func aFileThatChangesWhilePackingStopsTheStream() throws {
        let t = TemporaryFolder()
        sampleApp(t)
        let stream = try BundleStream(folder: t.path)
        t.write("server.py", "print('hello, a longer file')\n", mode: 0o755)
        let error = #expect(throws: StoreError.self) { while try stream.nextPiece() != nil {} }
        #expect(error?.code == .conflict)
    }

    // MARK: refusals when unpacking

    /// One case of the table below, named in the test log by `what` (not by its bytes).
    struct Archive: Sendable, CustomTestStringConvertible {
        let what: String
        let bytes: [UInt8]
        let code: StoreError.Code
        let why: String
        init(_ row: (String, [UInt8], StoreError.Code, String)) { (what, bytes, code, why) = row }
        var testDescription: String { what }
    }

    static let file = BundleMember(path: "f.txt", kind: .file, mode: 0o644, size: 5)

    @Test(arguments: [
        ("absolute path", archive([(BundleMember(path: "/etc/evil", kind: .file, mode: 0o644, size: 1), [1])]), StoreError.Code.integrity, "absolute"),
        ("dot-dot", archive([(BundleMember(path: "../evil", kind: .file, mode: 0o644, size: 1), [1])]), .integrity, "goes up"),
        ("through a symlink", archive([(BundleMember(path: "l", kind: .symlink, mode: 0, linkTarget: "."), []),
                                       (BundleMember(path: "l/x", kind: .file, mode: 0o644, size: 1), [1])]), .integrity, "not a folder entry"),
        ("missing folder", archive([(BundleMember(path: "d/x", kind: .file, mode: 0o644, size: 1), [1])]), .integrity, "not a folder entry"),
        ("escaping symlink", archive([(BundleMember(path: "l", kind: .symlink, mode: 0, linkTarget: "../../etc"), [])]), .invalidArgument, "leads out"),
        ("absolute symlink", archive([(BundleMember(path: "l", kind: .symlink, mode: 0, linkTarget: "/etc"), [])]), .invalidArgument, "absolute"),
        ("duplicate", archive([(BundleTests.file, Array("hello".utf8)), (BundleTests.file, Array("other".utf8))]), .integrity, "twice"),
        ("cut short", Array(archive([(BundleTests.file, Array("hello".utf8))]).prefix(515)), .integrity, "ends in the middle of f.txt"),
        ("no end marker", archive([(BundleTests.file, Array("hello".utf8))], trailer: false), .integrity, "without its end marker"),
        ("data after the end", archive([(BundleTests.file, Array("hello".utf8))]) + [UInt8](repeating: 1, count: 512), .integrity, "after its end"),
        ("damaged header", { var a = archive([(BundleTests.file, Array("hello".utf8))]); a[3] ^= 1; return a }(), .integrity, "checksum"),
        ("size larger than the data", archive([(BundleMember(path: "f.txt", kind: .file, mode: 0o644, size: 600), Array("hello".utf8))]), .integrity, "cut short"),
        ("hard link", { var a = archive([(BundleTests.file, Array("hello".utf8))]); a[156] = UInt8(ascii: "1"); fixChecksum(&a); return a }(), .integrity, "hard link"),
    ].map(Archive.init))
    func unsafeOrBrokenArchivesAreRefusedAndLeaveNothing(_ archive: Archive) throws {
        let (what, bytes, code, why) = (archive.what, archive.bytes, archive.code, archive.why)
        let out = TemporaryFolder()
        let error = #expect(throws: StoreError.self) { try unpack(bytes, into: out.path + "/v1", step: 100) }
        #expect(error?.code == code, "\(what)")
        #expect(error?.message.contains(why) == true, "\(what): \(String(describing: error))")
        #expect(out.entries == [], "\(what): something was left behind")
    }

    @Test func aDigestThatDoesNotMatchIsRefusedAndLeavesNothing() throws {
        let t = TemporaryFolder()
        sampleApp(t)
        let (bytes, digest, _) = try pack(t.path)
        let out = TemporaryFolder()
        var wrong = digest
        wrong[0] ^= 1
        let error = #expect(throws: StoreError.self) { try unpack(bytes, into: out.path + "/v1", sha256: wrong) }
        #expect(error?.code == .integrity)
        #expect(out.entries == [])
    }

    @Test func aDiscardedUnpackLeavesNothing() throws {
        let t = TemporaryFolder()
        sampleApp(t)
        let (bytes, digest, _) = try pack(t.path)
        let out = TemporaryFolder()
        let unpacker = try BundleUnpacker(into: out.path + "/v1", expectedSHA256: digest)
        try unpacker.write(bytes.prefix(bytes.count / 2))
        #expect(out.entries.count == 1)
        unpacker.discard()
        #expect(out.entries == [])
    }

    @Test func anExistingDestinationIsRefused() throws {
        let out = TemporaryFolder()
        out.folder("v1")
        let error = #expect(throws: StoreError.self) { try BundleUnpacker(into: out.path + "/v1", expectedSHA256: []) }
        #expect(error?.code == .alreadyExists)
    }

    @Test func manifestsTellWhatChanged() {
        let old = BundleManifest(members: [
            BundleMember(path: "a", kind: .file, mode: 0o644, size: 1), BundleMember(path: "b", kind: .file, mode: 0o644, size: 2),
            BundleMember(path: "c", kind: .file, mode: 0o644, size: 3),
        ])
        let new = BundleManifest(members: [
            BundleMember(path: "a", kind: .file, mode: 0o644, size: 1), BundleMember(path: "b", kind: .file, mode: 0o755, size: 2),
            BundleMember(path: "d", kind: .file, mode: 0o644, size: 4),
        ])
        let changes = new.changes(since: old)
        #expect(changes.added == ["d"])
        #expect(changes.removed == ["c"])
        #expect(changes.changed == ["b"])
    }
}

/// Rewrites the checksum of the first header of `archive` after a test changed a field.
func fixChecksum(_ archive: inout [UInt8]) {
    let digits = Array(String(TarFormat.checksum(archive[0..<512]), radix: 8).utf8)
    let field = [UInt8](repeating: UInt8(ascii: "0"), count: 6 - digits.count) + digits + [0, 32]
    archive.replaceSubrange(148..<156, with: field)
}

@Suite struct BundleCutPlanTests {
    @Test func piecesAreAtMostAChunkAndCoverTheArchive() {
        var noise = Noise(state: 7)
        for round in 0..<50 {
            let units = (0..<Int(noise.next() % 400 + 1)).map { _ in
                BundleCutPlan.Unit(length: 512 * Int(noise.next() % (round.isMultiple(of: 2) ? 300 : 10_240) + 1), strength: noise.next())
            }
            let pieces = BundleCutPlan.pieces(of: units)
            #expect(pieces.allSatisfy { $0 > 0 && $0 <= ChunkSealer.maxChunkSize })
            #expect(pieces.reduce(0, +) == units.reduce(0) { $0 + $1.length })
            // Every cut falls between units.
            var ends = Set<Int>(), at = 0
            for unit in units { at += unit.length; ends.insert(at) }
            var cut = 0
            for piece in pieces { cut += piece; #expect(ends.contains(cut)) }
        }
    }

    @Test func largeFilesAreCutAtChunkMultiplesFromTheirDataStart() {
        let big = BundleMember(path: "big.bin", kind: .file, mode: 0o644, size: Int64(2 * ChunkSealer.maxChunkSize + 1000))
        let small = BundleMember(path: "a.txt", kind: .file, mode: 0o644, size: 100)
        let units = BundleCutPlan.units(of: [small, big])
        #expect(units.map(\.length) == [1024, 512, ChunkSealer.maxChunkSize, ChunkSealer.maxChunkSize, 1024, 1024])
        let pieces = BundleCutPlan.pieces(of: units)
        // The two whole chunks of data are pieces of their own.
        #expect(pieces.filter { $0 == ChunkSealer.maxChunkSize }.count == 2)
        #expect(pieces.reduce(0, +) == 1024 + 512 + 2 * ChunkSealer.maxChunkSize + 2048)
    }

    /// A ~22 MiB app: 160 small files (first in the archive, so that a change to one shifts what follows) 
    /// (1-48 KiB), 40 medium ones (64-320 KiB), one of 7 MiB, one of 3 MiB.
    func largeApp(_ t: TemporaryFolder) -> [String] {
        var noise = Noise(state: 42)
        t.write("a67app.toml", "name = \"big\"\ncommand = [\"./run\"]\n")
        var small: [String] = []
        for i in 0..<160 {
            let path = "app/mod\(i % 8)/file\(i).py"
            t.write(path, noise.bytes(Int(noise.next() % (47 * 1024)) + 1024))
            small.append(path)
        }
        for i in 0..<40 { t.write("assets/asset\(i).bin", noise.bytes(Int(noise.next() % (256 * 1024)) + 64 * 1024)) }
        t.write("lib/engine.so", noise.bytes(7 << 20), mode: 0o755)
        t.write("data/model.bin", noise.bytes(3 << 20))
        return small
    }

    /// How many pieces of the folder's archive now are not among `before`: what a deploy would upload.
    func newPieces(_ folder: String, since before: [[UInt8]]) throws -> Int {
        let known = Set(before)
        return try pieceDigests(folder).filter { !known.contains($0) }.count
    }

    /// The same count when the archive is cut every 5 MiB, as the store cuts other objects.
    func fixedPieceDigests(_ folder: String) throws -> [[UInt8]] {
        let stream = try BundleStream(folder: folder)
        var digests: [[UInt8]] = []
        while true {
            let piece = try stream.read(upTo: ChunkSealer.maxChunkSize)
            if piece.isEmpty { break }
            digests.append(Crypto.sha256(piece))
        }
        return digests
    }

    @Test func aOneFileChangeToA20MiBAppNeedsAboutOneNewPiece() throws {
        let t = TemporaryFolder()
        let small = largeApp(t)
        let v1 = try pieceDigests(t.path)
        let v1Fixed = Set(try fixedPieceDigests(t.path))
        let size = try BundleStream(folder: t.path).size
        #expect(size > 20 << 20)
        #expect(v1.count >= 5)

        // Each kind of change, tried on 8 different files; the folder is put back after each.
        var counts: [String: [Int]] = [:]
        var fixedGrowth: [Int] = []
        for path in small.enumerated().filter({ $0.offset % 20 == 3 }).map(\.element) {
            let original = t.read(path)
            func measure(_ kind: String, _ change: () -> Void) throws {
                change()
                counts[kind, default: []].append(try newPieces(t.path, since: v1))
                if kind == "grows by 1000 bytes" { fixedGrowth.append(try fixedPieceDigests(t.path).filter { !v1Fixed.contains($0) }.count) }
                t.write(path, original)
                unlink(t.path + "/" + path + ".new")
            }
            var edited = original
            edited[edited.count / 2] ^= 0xFF
            try measure("same size, other bytes") { t.write(path, edited) }
            try measure("grows by 1 byte") { t.write(path, original + [1]) }
            try measure("grows by 1000 bytes") { t.write(path, original + [UInt8](repeating: 7, count: 1000)) }
            try measure("shrinks by 700 bytes") { t.write(path, Array(original.dropLast(700))) }
            try measure("mode changes") { chmod(t.path + "/" + path, 0o755) }
            try measure("a file is added") { t.write(path + ".new", Array("new".utf8)) }
            try measure("a file is removed") { unlink(t.path + "/" + path) }
        }
        for (kind, values) in counts.sorted(by: { $0.key < $1.key }) {
            // The piece holding the file changes. An edit that keeps the file's length changes no span:
            // that piece alone. One that changes the length may also split or join a neighbour, where a
            // span crosses the 5 MiB line. Adding or removing a file adds or removes a boundary, which
            // may re-divide the two pieces beside it into three.
            let most = kind.hasPrefix("a file is") ? 3 : kind == "same size, other bytes" || kind == "mode changes" ? 1 : 2
            #expect(values.allSatisfy { (1...most).contains($0) }, "\(kind): new pieces \(values)")
        }
        let all = counts.values.flatMap { $0 }
        #expect(Double(all.reduce(0, +)) / Double(all.count) < 1.3, "new pieces: \(counts)")
        // What the plan avoids: cut every 5 MiB, a file that grows shifts everything after it.
        #expect(fixedGrowth.allSatisfy { $0 >= 3 }, "fixed cutting: \(fixedGrowth)")
    }
}
