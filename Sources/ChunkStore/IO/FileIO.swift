#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Writes all of `bytes` to `fd`, retrying short writes and EINTR.
func writeAll(_ fd: Int32, _ bytes: UnsafeRawBufferPointer, path: String) throws(SystemCallError) {
    var done = 0
    while done < bytes.count {
        let n = write(fd, bytes.baseAddress! + done, bytes.count - done)
        if n > 0 { done += n; continue }
        if n < 0 && errno == EINTR { continue }
        throw SystemCallError(call: "write", path: path, errno: n < 0 ? errno : EIO)
    }
}

/// Writes all of `bytes` to `fd`.
func writeAll(_ fd: Int32, _ bytes: ArraySlice<UInt8>, path: String) throws(SystemCallError) {
    var failure: SystemCallError?
    bytes.withUnsafeBytes { raw in
        do throws(SystemCallError) { try writeAll(fd, raw, path: path) } catch { failure = error }
    }
    if let failure { throw failure }
}

/// Reads up to `count` bytes from `fd` (at `offset` when given, else from its position) into a new
/// array, stopping early only at the end of the file.
func readFully(_ fd: Int32, count: Int, offset: Int? = nil, path: String) throws(SystemCallError) -> [UInt8] {
    var failure: SystemCallError?
    let bytes = [UInt8](unsafeUninitializedCapacity: count) { buffer, filled in
        filled = 0
        while filled < count {
            let n = offset.map { pread(fd, buffer.baseAddress! + filled, count - filled, off_t($0 + filled)) }
                ?? read(fd, buffer.baseAddress! + filled, count - filled)
            if n > 0 { filled += n; continue }
            if n == 0 { break }
            if errno == EINTR { continue }
            failure = SystemCallError(call: "read", path: path, errno: errno)
            break
        }
    }
    if let failure { throw failure }
    return bytes
}

/// fsyncs a folder, so that a rename or a new entry in it survives a crash.
func syncFolder(_ folder: String) throws(SystemCallError) {
    let fd = open(folder, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
    if fd < 0 { throw SystemCallError(call: "open", path: folder, errno: errno) }
    defer { close(fd) }
    if fsync(fd) != 0 { throw SystemCallError(call: "fsync", path: folder, errno: errno) }
}

/// The folder holding `path`: "a/b" for "a/b/c", "/" for "/c", "." for "c".
func parentFolder(of path: String) -> String {
    guard let slash = path.lastIndex(of: "/") else { return "." }
    return slash == path.startIndex ? "/" : String(path[..<slash])
}

/// A new file with an unguessable name next to `path`, opened exclusively (never through a symlink).
func createTemporary(near path: String, mode: mode_t) throws(SystemCallError) -> (fd: Int32, path: String) {
    let name = path.lastIndex(of: "/").map { String(path[path.index(after: $0)...]) } ?? path
    let folder = parentFolder(of: path)
    let temporary = (folder == "/" ? "" : folder) + "/." + name + ".a67-partial-" + Hex.encode(Crypto.randomBytes(6))
    let fd = open(temporary, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, mode)
    if fd < 0 { throw SystemCallError(call: "open", path: temporary, errno: errno) }
    return (fd, temporary)
}

/// Puts a written temporary file in place as `path`: fsync, close (checked), rename. The descriptor
/// is closed on every path, and the temporary file is removed when any step fails. The caller syncs
/// the folder.
func finishTemporary(_ fd: Int32, _ temporary: String, as path: String) throws(SystemCallError) {
    var failure: SystemCallError?
    if fsync(fd) != 0 { failure = SystemCallError(call: "fsync", path: temporary, errno: errno) }
    if close(fd) != 0 && failure == nil { failure = SystemCallError(call: "close", path: temporary, errno: errno) }
    if failure == nil && rename(temporary, path) != 0 { failure = SystemCallError(call: "rename", path: path, errno: errno) }
    if let failure {
        unlink(temporary)
        throw failure
    }
}

/// Writes `bytes` as the file `path` atomically and durably: a temporary file in the same folder,
/// fsync, close (checked), rename, fsync of the folder.
func writeFileAtomically(_ bytes: [UInt8], to path: String, mode: mode_t) throws(SystemCallError) {
    let (fd, temporary) = try createTemporary(near: path, mode: mode)
    do throws(SystemCallError) {
        try writeAll(fd, bytes[...], path: temporary)
    } catch {
        close(fd)
        unlink(temporary)
        throw error
    }
    try finishTemporary(fd, temporary, as: path)
    try syncFolder(parentFolder(of: path))
}

/// Local files the repository keeps (the keyring, the catalog, a passphrase file): written atomically
/// and durably, read with a bound.
public enum LocalFile {
    public static func write(_ bytes: [UInt8], to path: String, mode: UInt32 = 0o600) throws {
        do throws(SystemCallError) {
            try writeFileAtomically(bytes, to: path, mode: mode_t(mode))
        } catch {
            throw StoreError(.io, "cannot write \(path): \(error.reason)")
        }
    }

    /// Renames `source` to `path` in the same folder, durably (the folder is synced).
    public static func move(_ source: String, to path: String) throws {
        do throws(SystemCallError) {
            if rename(source, path) != 0 { throw SystemCallError(call: "rename", path: path, errno: errno) }
            try syncFolder(parentFolder(of: path))
        } catch {
            throw StoreError(.io, "cannot rename \(source) to \(path): \(error.reason)")
        }
    }

    /// The first bytes of `path`: at most `limit`, ending early at the end of the file or, with
    /// `delimiter`, after the read that brought the first `delimiter` (so a pipe whose writer keeps it
    /// open after one line does not block). Never reads more than `limit` bytes, whatever `path` is
    /// (/dev/zero, a growing file); a folder fails with EISDIR.
    public static func read(_ path: String, atMost limit: Int, stoppingAfter delimiter: UInt8? = nil) throws(SystemCallError) -> [UInt8] {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        if fd < 0 { throw SystemCallError(call: "open", path: path, errno: errno) }
        defer { close(fd) }
        var bytes: [UInt8] = []
        var block = [UInt8](repeating: 0, count: min(limit, 64 * 1024))
        while bytes.count < limit {
            let wanted = min(block.count, limit - bytes.count)
            let n = block.withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress!, wanted) }
            if n < 0 && errno == EINTR { continue }
            if n < 0 { throw SystemCallError(call: "read", path: path, errno: errno) }
            if n == 0 { break }
            bytes += block[..<n]
            if let delimiter, block[..<n].contains(delimiter) { break }
        }
        return bytes
    }
}

extension SystemCallError {
    /// The message part: "No such file or directory".
    public var reason: String { String(cString: strerror(errno)) }

    /// What to do about a permission or read-only failure, to follow `reason` (empty for others).
    public var remedy: String {
        switch errno {
        case EROFS:
            return " (its file system is mounted read-only: remount it read-write, or set A67_HOME to a writable copy)"
        case EACCES, EPERM:
            return " (a67 runs as uid \(getuid()), which may not write or read it: fix its owner or mode, "
                + "clear an immutable attribute (lsattr, chattr -i), or run a67 as its owner)"
        default:
            return ""
        }
    }
}

/// Writes `text` to standard error with write(2), retrying short writes and EINTR. Unlike
/// FileHandle's write, a failure (standard error closed, a pipe whose reader went away) loses the
/// message instead of stopping the process.
public func writeStandardError(_ text: String) {
    var bytes = Array(text.utf8)[...]
    while !bytes.isEmpty {
        let written = bytes.withUnsafeBytes { write(2, $0.baseAddress, $0.count) }
        if written > 0 {
            bytes = bytes.dropFirst(written)
        } else if written < 0 && errno == EINTR {
            continue
        } else {
            return
        }
    }
}
