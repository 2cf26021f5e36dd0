import ChunkStore
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// An app folder as its bundle: the deterministic archive (`TarFormat`) of its members, produced a
/// piece at a time from the files, so that memory holds one piece whatever the folder's size. The
/// same folder gives the same bytes whatever the files' times, owners and the order the system lists
/// them in. The archive's SHA-256 is computed on the way.
///
/// Read it either as a plain stream (`read(upTo:)`, a `ByteSource` for the store's writer) or piece by
/// piece along its cut plan (`nextPiece()`, `BundleCutPlan`), not both. Each file is checked as it is
/// read: a file whose size or type changed since the folder was scanned stops the stream
/// (`StoreError(.conflict)`) rather than giving an archive that disagrees with its manifest.
/// One reader at a time.
public final class BundleStream: ByteSource, @unchecked Sendable {
    public let folder: String
    public let manifest: BundleManifest
    /// The lengths of the pieces to store the archive as, in order (`BundleCutPlan`).
    public let pieceLengths: [Int]
    /// The archive's length in bytes.
    public let size: Int64
    public var knownSize: Int64? { size }

    private let digest = StreamDigest(.sha256)
    private var finished: [UInt8]?
    private var produced: Int64 = 0
    private var nextPieceIndex = 0
    private var readPlainly = false

    // The cursor: the member being written, and what of it is left.
    private var memberIndex = -1
    private var pending: [UInt8] = []
    private var pendingOffset = 0
    private var dataLeft: Int64 = 0
    private var fd: Int32 = -1

    /// Scans `folder` (`BundleFolder.scan`) and gets ready to stream it.
    public convenience init(folder: String) throws(StoreError) {
        self.init(folder: folder, manifest: try BundleFolder.scan(folder))
    }

    /// Streams `manifest`'s members from `folder` (which they were scanned from).
    public init(folder: String, manifest: BundleManifest) {
        self.folder = folder
        self.manifest = manifest
        pieceLengths = BundleCutPlan.pieces(of: manifest.members)
        size = pieceLengths.reduce(0) { $0 + Int64($1) }
    }

    deinit { if fd >= 0 { close(fd) } }

    /// The archive's SHA-256, once it has been read to its end; nil before.
    public var sha256: [UInt8]? { finished }

    /// The next piece of the cut plan (exactly its length), or nil after the last.
    public func nextPiece() throws(StoreError) -> [UInt8]? {
        precondition(!readPlainly, "a BundleStream is read either by pieces or plainly")
        guard nextPieceIndex < pieceLengths.count else { return nil }
        let piece = try produce(pieceLengths[nextPieceIndex])
        nextPieceIndex += 1
        return piece
    }

    /// Up to `count` bytes of the archive, fewer only at its end (empty there).
    public func read(upTo count: Int) throws -> [UInt8] {
        precondition(nextPieceIndex == 0, "a BundleStream is read either by pieces or plainly")
        readPlainly = true
        return try produce(count)
    }

    private func produce(_ count: Int) throws(StoreError) -> [UInt8] {
        let wanted = Int(min(Int64(count), size - produced))
        var bytes: [UInt8] = []
        bytes.reserveCapacity(wanted)
        while bytes.count < wanted { try fill(&bytes, upTo: wanted) }
        digest.update(bytes)
        produced += Int64(bytes.count)
        if produced == size && finished == nil { finished = digest.finish() }
        return bytes
    }

    /// Appends some of the archive's next bytes to `out` (at least one), short of `limit` bytes in all.
    private func fill(_ out: inout [UInt8], upTo limit: Int) throws(StoreError) {
        while true {
            if pendingOffset < pending.count {
                let n = min(limit - out.count, pending.count - pendingOffset)
                out += pending[pendingOffset..<(pendingOffset + n)]
                pendingOffset += n
                return
            }
            if dataLeft > 0 {
                out += try readData(upTo: limit - out.count)
                return
            }
            try advance()
        }
    }

    /// Moves to the next part: a finished file's padding, then the next member's header, or the trailer.
    private func advance() throws(StoreError) {
        if fd >= 0 {
            let member = manifest.members[memberIndex]
            let path = folder + "/" + member.path
            let extra: [UInt8]
            do { extra = try LocalFiles.read(fd, upTo: 1, path: path) } catch { throw BundleFolder.ioError("cannot read \(path)", error) }
            close(fd)
            fd = -1
            if !extra.isEmpty { throw changed(member, "it grew while it was being packed") }
            pending = [UInt8](repeating: 0, count: TarFormat.padding(member.size))
            pendingOffset = 0
            if !pending.isEmpty { return }
        }
        memberIndex += 1
        pendingOffset = 0
        guard memberIndex < manifest.members.count else {
            precondition(memberIndex == manifest.members.count, "read past the archive's end")
            pending = [UInt8](repeating: 0, count: TarFormat.trailerLength)
            return
        }
        let member = manifest.members[memberIndex]
        pending = TarFormat.header(for: member)
        if member.kind == .file {
            let path = folder + "/" + member.path
            fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC)
            guard fd >= 0 else {
                throw errno == ENOENT || errno == ELOOP ? changed(member, "it is gone or is no longer a file")
                    : BundleFolder.ioError("cannot read \(path)")
            }
            var st = stat()
            guard fstat(fd, &st) == 0, (st.st_mode & S_IFMT) == S_IFREG, Int64(st.st_size) == member.size else {
                throw changed(member, "its size or type changed since the folder was scanned")
            }
            dataLeft = member.size
        }
    }

    /// Up to `count` bytes of the current file's data (at least one).
    private func readData(upTo count: Int) throws(StoreError) -> [UInt8] {
        let member = manifest.members[memberIndex]
        let bytes: [UInt8]
        do {
            bytes = try LocalFiles.read(fd, upTo: Int(min(Int64(count), dataLeft)), path: folder + "/" + member.path)
        } catch {
            throw BundleFolder.ioError("cannot read \(folder)/\(member.path)", error)
        }
        guard !bytes.isEmpty else { throw changed(member, "it shrank while it was being packed") }
        dataLeft -= Int64(bytes.count)
        return bytes
    }

    private func changed(_ member: BundleMember, _ why: String) -> StoreError {
        StoreError(.conflict, "\(folder)/\(member.path) changed while the bundle was made (\(why)): pack it again once it is no longer being written")
    }
}

/// The store's writer stores a bundle along its cut plan, one chunk a piece.
extension BundleStream: PieceSource {}
