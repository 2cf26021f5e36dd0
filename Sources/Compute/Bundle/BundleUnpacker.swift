import ChunkStore
import Foundation
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Unpacks a bundle into a new folder (what the agent does into releases/APP/VERSION), checking
/// everything on the way, so that the folder appears complete and verified or not at all.
///
/// The archive is written to it piece by piece (a `ByteSink`, as the store's reader writes an object),
/// into a hidden temporary folder beside the destination (`.NAME.a67-unpack-RANDOM`). Refused, each with
/// the entry named: a header that is not ustar or fails its checksum, an entry type other than file,
/// folder or symlink, an absolute path or one with `.` or `..` segments, an entry whose folder is not an
/// earlier folder entry of the archive (so nothing is ever written through a symlink), a duplicate
/// path, a folder or symlink with a size, a symlink that is absolute or leads out of the bundle,
/// an archive longer than `expectedSize`, one that ends early or goes on after its end, and
/// finally an SHA-256 other than the expected one. Files are written with `O_EXCL | O_NOFOLLOW` and
/// synced; symlinks are made last. Only when `finish()` has checked it all is the temporary folder
/// renamed to the destination. Any failure, or an unpacker dropped unfinished, removes the temporary
/// folder. One writer at a time.
public final class BundleUnpacker: ByteSink, @unchecked Sendable {
    public let destination: String
    public let expectedSHA256: [UInt8]
    public let expectedSize: Int64?
    /// The temporary folder the archive is unpacked into.
    let staging: String

    private enum State {
        case header
        case pax(left: Int)
        case data(left: Int64)
        case padding(left: Int)
        case end
    }

    private let digest = StreamDigest(.sha256)
    private var state = State.header
    private var block: [UInt8] = []
    private var paxBuffer: [UInt8] = []
    private var pax: [String: String]?
    private var zeroBlocks = 0
    private var position: Int64 = 0
    private var entryStart: Int64 = 0
    private var members: [BundleMember] = []
    private var seen: Set<String> = []
    private var folders: Set<String> = []
    private var current: BundleMember?
    private var fd: Int32 = -1
    private var failed: StoreError?
    private var done = false

    /// Gets ready to unpack into `destination`, which must not exist yet (its parent must).
    public init(into destination: String, expectedSHA256: [UInt8], expectedSize: Int64? = nil) throws(StoreError) {
        var st = stat()
        guard lstat(destination, &st) != 0 else {
            throw StoreError(.alreadyExists, "\(destination) already exists: a bundle is unpacked into a new folder")
        }
        self.destination = destination
        self.expectedSHA256 = expectedSHA256
        self.expectedSize = expectedSize
        let slash = destination.lastIndex(of: "/")
        let parent = slash.map { String(destination[..<$0]) } ?? "."
        let name = slash.map { String(destination[destination.index(after: $0)...]) } ?? destination
        staging = (parent.isEmpty ? "" : parent + "/") + "." + name + ".a67-unpack-" + Hex.encode(Crypto.randomBytes(6))
        guard mkdir(staging, 0o700) == 0 else { throw BundleFolder.ioError("cannot create \(staging)") }
    }

    deinit {
        if fd >= 0 { close(fd) }
        if !done { try? FileManager.default.removeItem(atPath: staging) }
    }

    /// Unpacks the next bytes of the archive.
    public func write(_ bytes: ArraySlice<UInt8>) throws {
        if let failed { throw failed }
        precondition(!done, "a BundleUnpacker was written to after it finished")
        do throws(StoreError) {
            try consume(bytes)
        } catch {
            abort(error)
            throw error
        }
    }

    /// Checks that the archive ended properly and has the expected SHA-256, makes the symlinks, sets
    /// folder modes, and renames the unpacked folder to the destination. Returns what it holds.
    @discardableResult
    public func finish() throws(StoreError) -> BundleManifest {
        if let failed { throw failed }
        precondition(!done, "a BundleUnpacker was finished twice")
        do throws(StoreError) {
            try complete()
            done = true
            return BundleManifest(members: members)
        } catch {
            abort(error)
            throw error
        }
    }

    /// The `ByteSink` name for `finish()`.
    public func commit() throws { try finish() }

    /// Gives up: removes what was unpacked so far (as when the fetch of the bundle failed). Nothing
    /// to do after `finish()`.
    public func discard() {
        guard !done else { return }
        abort(StoreError(.io, "the unpack into \(destination) was abandoned"))
    }

    private func abort(_ error: StoreError) {
        failed = error
        if fd >= 0 {
            close(fd)
            fd = -1
        }
        try? FileManager.default.removeItem(atPath: staging)
        done = true
    }

    private func bad(_ why: String) -> StoreError { StoreError(.integrity, "bundle for \(destination) is malformed at byte \(entryStart): \(why)") }

    private func consume(_ bytes: ArraySlice<UInt8>) throws(StoreError) {
        if let expectedSize, position + Int64(bytes.count) > expectedSize {
            throw StoreError(.integrity, "bundle for \(destination) is longer than the \(expectedSize) bytes its deployment names")
        }
        digest.update(bytes)
        var rest = bytes
        while !rest.isEmpty {
            switch state {
            case .header:
                let n = min(TarFormat.block - block.count, rest.count)
                block += rest.prefix(n)
                rest = rest.dropFirst(n)
                position += Int64(n)
                if block.count == TarFormat.block {
                    try header(block)
                    block.removeAll(keepingCapacity: true)
                }
            case .pax(let left):
                let n = min(left, rest.count)
                paxBuffer += rest.prefix(n)
                rest = rest.dropFirst(n)
                position += Int64(n)
                if n == left {
                    pax = try TarFormat.parsePax(paxBuffer, position: entryStart)
                    state = padding(after: Int64(paxBuffer.count))
                    paxBuffer = []
                } else {
                    state = .pax(left: left - n)
                }
            case .data(let left):
                let n = Int(min(left, Int64(rest.count)))
                try writeData(rest.prefix(n))
                rest = rest.dropFirst(n)
                position += Int64(n)
                if Int64(n) == left { try endFile() } else { state = .data(left: left - Int64(n)) }
            case .padding(let left):
                let n = min(left, rest.count)
                guard rest.prefix(n).allSatisfy({ $0 == 0 }) else { throw bad("the padding after an entry is not zero") }
                rest = rest.dropFirst(n)
                position += Int64(n)
                state = n == left ? .header : .padding(left: left - n)
            case .end:
                throw StoreError(.integrity, "bundle for \(destination) goes on after its end marker (at byte \(position))")
            }
        }
    }

    private func padding(after length: Int64) -> State {
        let pad = TarFormat.padding(length)
        return pad == 0 ? .header : .padding(left: pad)
    }

    private func header(_ block: [UInt8]) throws(StoreError) {
        let start = position - Int64(TarFormat.block)
        if block.allSatisfy({ $0 == 0 }) {
            guard pax == nil else { throw bad("a pax header is followed by the end marker") }
            zeroBlocks += 1
            if zeroBlocks == 2 { state = .end }
            return
        }
        guard zeroBlocks == 0 else { throw bad("a header follows a zero block") }
        entryStart = start
        let h = try TarFormat.parse(block[...], position: start)
        if h.type == UInt8(ascii: "x") {
            guard pax == nil else { throw bad("two pax headers in a row") }
            guard h.size <= TarFormat.maxPaxLength else { throw bad("a pax header of \(h.size) bytes (at most \(TarFormat.maxPaxLength))") }
            state = h.size == 0 ? .header : .pax(left: Int(h.size))
            if h.size == 0 { pax = [:] }
            return
        }
        let records = pax ?? [:]
        pax = nil
        var name = records["path"] ?? h.name
        let link = records["linkpath"] ?? h.link
        var size = h.size
        if let text = records["size"] {
            guard let value = Int64(text), value >= 0 else { throw bad("the pax size \(text) is not a number") }
            size = value
        }
        let kind: BundleMember.Kind
        switch h.type {
        case UInt8(ascii: "0"), 0: kind = .file
        case UInt8(ascii: "5"): kind = .directory
        case UInt8(ascii: "2"): kind = .symlink
        default:
            let what = switch h.type {
            case UInt8(ascii: "1"): "a hard link"
            case UInt8(ascii: "3"), UInt8(ascii: "4"): "a device"
            case UInt8(ascii: "6"): "a FIFO"
            default: "of type '\(String(decoding: [h.type], as: UTF8.self))'"
            }
            throw bad("entry \(name) is \(what): a bundle holds only files, folders and symlinks")
        }
        if kind == .directory && name.hasSuffix("/") { name.removeLast() }
        try checkPath(name)
        guard kind == .file || size == 0 else { throw bad("the \(kind.rawValue) \(name) has a size (\(size) bytes)") }
        let member = BundleMember(path: name, kind: kind, mode: h.mode, size: size, linkTarget: link)
        members.append(member)
        seen.insert(name)
        let target = staging + "/" + name
        switch kind {
        case .directory:
            guard mkdir(target, 0o700) == 0 else { throw BundleFolder.ioError("cannot create \(target)") }
            folders.insert(name)
            state = .header
        case .symlink:
            guard !link.isEmpty else { throw bad("the symlink \(name) has no target") }
            state = .header
        case .file:
            fd = open(target, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0o600)
            guard fd >= 0 else { throw BundleFolder.ioError("cannot create \(target)") }
            current = member
            if size == 0 { try endFile() } else { state = .data(left: size) }
        }
    }

    /// Refuses a path that is absolute, has empty, `.` or `..` segments, repeats an earlier entry, or
    /// lies in a folder that no earlier folder entry made.
    private func checkPath(_ name: String) throws(StoreError) {
        func unsafe(_ why: String) -> StoreError {
            StoreError(.integrity, "bundle for \(destination) has an entry \(name) that \(why); refusing to unpack it")
        }
        guard !name.hasPrefix("/") else { throw unsafe("is an absolute path") }
        guard name.utf8.count <= Int(PATH_MAX) else { throw unsafe("is longer than \(PATH_MAX) bytes") }
        let segments = name.split(separator: "/", omittingEmptySubsequences: false)
        guard !segments.contains("..") else { throw unsafe("goes up with ..") }
        guard !segments.contains(where: { $0.isEmpty || $0 == "." }) else { throw unsafe("has an empty or . segment") }
        guard !seen.contains(name) else {
            throw StoreError(.integrity, "bundle for \(destination) has the entry \(name) twice; refusing to unpack it")
        }
        let parent = segments.dropLast().joined(separator: "/")
        guard parent.isEmpty || folders.contains(parent) else {
            throw unsafe("is in \(parent), which is not a folder entry before it (a symlink, or missing)")
        }
    }

    private func writeData(_ bytes: ArraySlice<UInt8>) throws(StoreError) {
        let path = staging + "/" + (current?.path ?? "")
        do { try LocalFiles.write(fd, bytes, path: path) } catch { throw BundleFolder.ioError("cannot write \(path)", error) }
    }

    private func endFile() throws(StoreError) {
        guard let member = current else { return }
        let path = staging + "/" + member.path
        guard fchmod(fd, mode_t(member.mode)) == 0, fsync(fd) == 0 else { throw BundleFolder.ioError("cannot write \(path)") }
        let closed = close(fd)
        fd = -1
        guard closed == 0 else { throw BundleFolder.ioError("cannot write \(path)") }
        current = nil
        state = padding(after: member.size)
    }

    private func complete() throws(StoreError) {
        switch state {
        case .end: break
        case .data(let left):
            throw StoreError(.integrity, "bundle for \(destination) ends in the middle of \(current?.path ?? "a file") (\(left) of its \(current?.size ?? 0) bytes missing): it was cut short")
        default:
            throw StoreError(.integrity, "bundle for \(destination) ends at byte \(position) without its end marker: it was cut short")
        }
        let actual = digest.finish()
        guard actual == expectedSHA256 else {
            throw StoreError(.integrity, "bundle for \(destination) has SHA-256 \(Hex.encode(actual)), not the \(Hex.encode(expectedSHA256)) its deployment names: it is not the version asked for, or it was altered")
        }
        try BundleLinks.check(members)
        for member in members where member.kind == .symlink {
            let path = staging + "/" + member.path
            guard symlink(member.linkTarget ?? "", path) == 0 else { throw BundleFolder.ioError("cannot create the symlink \(path)") }
        }
        // Deepest first, so that a read-only folder is made so after what is inside it; each synced, so
        // that its entries survive a crash once the rename below has.
        for member in members.reversed() where member.kind == .directory {
            let path = staging + "/" + member.path
            try syncFolder(path)
            guard chmod(path, mode_t(member.mode)) == 0 else { throw BundleFolder.ioError("cannot set the mode of \(path)") }
        }
        // The bundle's root, which the archive has no entry for, opens like a folder the app made
        // (0755): instances may run under another uid than the unpacker's.
        guard chmod(staging, 0o755) == 0 else { throw BundleFolder.ioError("cannot set the mode of \(staging)") }
        try syncFolder(staging)
        var st = stat()
        guard lstat(destination, &st) != 0 else {
            throw StoreError(.alreadyExists, "\(destination) appeared while the bundle was unpacked: another unpack of the same version?")
        }
        guard rename(staging, destination) == 0 else { throw BundleFolder.ioError("cannot rename \(staging) to \(destination)") }
        let parent = destination.lastIndex(of: "/").map { String(destination[..<$0]) } ?? "."
        try syncFolder(parent.isEmpty ? "/" : parent)
    }

    private func syncFolder(_ path: String) throws(StoreError) {
        do { try LocalFiles.syncFolder(path) } catch { throw BundleFolder.ioError("cannot sync \(path)", error) }
    }
}
