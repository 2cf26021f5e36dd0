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
        var failure: SystemCallError?
        let out = [UInt8](unsafeUninitializedCapacity: count) { buffer, filled in
            filled = 0
            while filled < count {
                let n = Glibc.read(fd, buffer.baseAddress! + filled, count - filled)
                if n > 0 { filled += n; continue }
                if n == 0 { break }
                if errno == EINTR { continue }
                failure = SystemCallError(call: "read", path: path, errno: errno)
                break
            }
        }
        if let failure { throw StoreError(.io, "cannot read \(path): \(String(cString: strerror(failure.errno)))") }
        return out
    }
}

/// A file written through a temporary name and renamed into place on `commit`, so that a failed
/// get never leaves a half-written destination; or standard output, written as it comes.
public final class FileSink: ByteSink, @unchecked Sendable {
    let fd: Int32
    let path: String
    let temporaryPath: String?

    public init(path: String) throws {
        if path == "-" {
            fd = 1
            self.path = "standard output"
            temporaryPath = nil
            return
        }
        let temp = path + ".a67-partial-\(getpid())"
        do {
            fd = try sys("open", temp) { open(temp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644) }
        } catch {
            throw StoreError(.io, "cannot write \(path): \(String(cString: strerror(error.errno)))")
        }
        self.path = path
        temporaryPath = temp
    }

    public func write(_ bytes: ArraySlice<UInt8>) throws {
        try bytes.withUnsafeBytes { raw in
            var done = 0
            while done < raw.count {
                let n = Glibc.write(fd, raw.baseAddress! + done, raw.count - done)
                if n >= 0 { done += n; continue }
                if errno == EINTR { continue }
                throw StoreError(.io, "cannot write \(path): \(String(cString: strerror(errno)))")
            }
        }
    }

    /// Makes the written file appear under its name. Standard output has nothing to do.
    public func commit() throws {
        guard let temporaryPath else { return }
        close(fd)
        do {
            try sys("rename", path) { rename(temporaryPath, path) }
        } catch {
            unlink(temporaryPath)
            throw StoreError(.io, "cannot write \(path): \(error)")
        }
    }

    /// Drops a file that was not committed.
    public func discard() {
        guard let temporaryPath else { return }
        close(fd)
        unlink(temporaryPath)
    }
}
