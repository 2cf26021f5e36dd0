import CGlibc
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Where an object's bytes come from: read in whole chunks, one caller at a time.
public protocol ByteSource: AnyObject, Sendable {
    /// Total size when known in advance (a regular file), for progress; nil for pipes.
    var knownSize: Int64? { get }
    /// Reads up to `count` bytes, returning fewer only at the end of the stream (empty at the end).
    func read(upTo count: Int) throws -> [UInt8]
}

/// A source that chooses where its object is cut into chunks, instead of the writer's every 5 MiB:
/// an app bundle cut between its files, so that a new version shares the chunks of the old one
/// except around what changed. The store's writer (`ObjectWriter.write(from:)`) reads such a source
/// only by `nextPiece()`, storing each piece as one chunk.
public protocol PieceSource: ByteSource {
    /// The next chunk's exact bytes (1 byte to `ChunkSealer.maxChunkSize`), or nil after the last.
    /// The writer refuses an empty or longer piece (`StoreError(.invalidArgument)`).
    func nextPiece() throws -> [UInt8]?
}

/// Where an object's bytes go: written in order, one caller at a time.
public protocol ByteSink: AnyObject, Sendable {
    func write(_ bytes: ArraySlice<UInt8>) throws
}

/// A file descriptor read to the end (a file, or standard input).
public final class FileSource: ByteSource, @unchecked Sendable {
    let fd: Int32
    let path: String
    let owns: Bool
    public let knownSize: Int64?

    /// Opens `path`; "-" is standard input.
    public init(path: String) throws {
        if path == "-" {
            fd = 0
            owns = false
            self.path = "standard input"
        } else {
            do {
                fd = try sys("open", path) { open(path, O_RDONLY | O_CLOEXEC) }
            } catch {
                let what = error.errno == ENOENT ? StoreError.Code.notFound : .io
                throw StoreError(what, "cannot read \(path): \(String(cString: strerror(error.errno)))")
            }
            owns = true
            self.path = path
        }
        var st = stat()
        if fstat(fd, &st) == 0, (st.st_mode & S_IFMT) == S_IFDIR {
            if owns { close(fd) }
            throw StoreError(.invalidArgument, "\(path) is a directory; a67 put takes a file or - for standard input")
        }
        knownSize = fstat(fd, &st) == 0 && (st.st_mode & S_IFMT) == S_IFREG ? Int64(st.st_size) : nil
    }

    deinit { if owns { close(fd) } }

    public func read(upTo count: Int) throws -> [UInt8] {
        do throws(SystemCallError) {
            return try readFully(fd, count: count, path: path)
        } catch {
            throw StoreError(.io, "cannot read \(path): \(error.reason)")
        }
    }
}

/// Where a get writes. A regular file (or a new one) is written under a temporary name next to it
/// (`.NAME.a67-partial-RANDOM`, created exclusively, never through a symlink), synced and renamed into
/// place on `commit`, so a failed get never leaves a half-written destination (a kill -9 can leave
/// the hidden temporary file). Standard output (`-`) and existing non-regular files (a terminal, a
/// pipe, /dev/null) are written directly, never replaced.
public final class FileSink: ByteSink, @unchecked Sendable {
    private let fd: Int32
    private let path: String
    private let temporaryPath: String?
    private let ownsDescriptor: Bool
    private var finished = false
    private var written: Int64 = 0

    public init(path: String) throws {
        if path == "-" {
            fd = 1
            self.path = "standard output"
            temporaryPath = nil
            ownsDescriptor = false
            return
        }
        var st = stat()
        if stat(path, &st) == 0 && (st.st_mode & S_IFMT) != S_IFREG {
            guard (st.st_mode & S_IFMT) != S_IFDIR else {
                throw StoreError(.invalidArgument, "\(path) is a folder; name a file to write")
            }
            fd = Glibc.open(path, O_WRONLY | O_CLOEXEC)
            guard fd >= 0 else { throw StoreError(.io, "cannot write \(path): \(String(cString: strerror(errno)))") }
            self.path = path
            temporaryPath = nil
            ownsDescriptor = true
            return
        }
        // Write next to the file a symlink points at, so the rename replaces the file, not the link.
        var target = path
        if let resolved = realpath(path, nil) {
            target = String(cString: resolved)
            free(resolved)
        }
        do throws(SystemCallError) {
            (fd, temporaryPath) = try createTemporary(near: target, mode: 0o644)
        } catch {
            throw StoreError(.io, "cannot write \(path): \(error.reason)")
        }
        self.path = target
        ownsDescriptor = true
    }

    public func write(_ bytes: ArraySlice<UInt8>) throws {
        do throws(SystemCallError) {
            try writeAll(fd, bytes, path: path)
        } catch {
            throw StoreError(.io, "cannot write \(path): \(error.reason)")
        }
        if temporaryPath != nil {
            // Start writing this range to disk now, so that commit's fsync does not wait for the whole file.
            _ = a67_start_writeback(fd, written, Int64(bytes.count))
        }
        written += Int64(bytes.count)
    }

    /// Makes a written file appear under its name, durably. Nothing to do for direct destinations.
    public func commit() throws {
        guard !finished else { return }
        finished = true
        guard let temporaryPath else {
            if ownsDescriptor { close(fd) }
            return
        }
        do throws(SystemCallError) {
            try finishTemporary(fd, temporaryPath, as: path)
        } catch {
            throw StoreError(.io, "cannot write \(path): \(error.reason)")
        }
        // The file is complete and in place; a folder that cannot be synced does not undo that.
        try? syncFolder(parentFolder(of: path))
    }

    /// Drops what was written to a temporary file. Direct destinations keep what they received.
    public func discard() {
        guard !finished else { return }
        finished = true
        if ownsDescriptor { close(fd) }
        if let temporaryPath { unlink(temporaryPath) }
    }

    deinit { discard() }

    /// Opens `path`, runs `body`, commits when it succeeds and discards when it throws.
    public static func writing<T>(to path: String, _ body: (FileSink) async throws -> T) async throws -> T {
        let sink = try FileSink(path: path)
        do {
            let result = try await body(sink)
            try sink.commit()
            return result
        } catch {
            sink.discard()
            throw error
        }
    }
}
