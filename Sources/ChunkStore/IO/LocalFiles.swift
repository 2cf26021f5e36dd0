#if canImport(Glibc)
import Glibc
#endif

/// System calls on local files for the modules that do not own the C library (the compute half's
/// bundles), in Swift values: every buffer stays here, each call retries EINTR and its error names the
/// call and the path.
public enum LocalFiles {
    /// The size of the file system holding `path` and the bytes an unprivileged writer may still use
    /// there (statvfs); nil when it cannot be asked.
    public static func space(of path: String) -> (total: Int64, free: Int64)? {
        var info = statvfs()
        guard statvfs(path, &info) == 0 else { return nil }
        return (Int64(info.f_blocks) * Int64(info.f_frsize), Int64(info.f_bavail) * Int64(info.f_frsize))
    }

    /// Opens `path` for reading, not following a symlink at its last component.
    public static func openForReading(_ path: String) throws(SystemCallError) -> Int32 {
        while true {
            let fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW)
            if fd >= 0 { return fd }
            if errno != EINTR { throw SystemCallError(call: "open", path: path, errno: errno) }
        }
    }

    /// Up to `count` bytes from `fd`'s position; fewer only at the end of the file (none there).
    public static func read(_ fd: Int32, upTo count: Int, path: String) throws(SystemCallError) -> [UInt8] {
        try readFully(fd, count: count, path: path)
    }

    /// Writes all of `bytes` to `fd`.
    public static func write(_ fd: Int32, _ bytes: ArraySlice<UInt8>, path: String) throws(SystemCallError) {
        try writeAll(fd, bytes, path: path)
    }

    /// fsyncs a folder, so that its entries (a rename into it, a new file) survive a crash.
    public static func syncFolder(_ folder: String) throws(SystemCallError) {
        try ChunkStore.syncFolder(folder)
    }

    /// The names in `folder` as raw bytes (a name need not be UTF-8), without `.` and `..`, in the
    /// order the filesystem gives them.
    public static func names(in folder: String) throws(SystemCallError) -> [[UInt8]] {
        guard let dir = opendir(folder) else { throw SystemCallError(call: "opendir", path: folder, errno: errno) }
        defer { closedir(dir) }
        var names: [[UInt8]] = []
        while true {
            errno = 0
            guard let entry = readdir(dir) else {
                if errno != 0 { throw SystemCallError(call: "readdir", path: folder, errno: errno) }
                return names
            }
            let raw = withUnsafeBytes(of: entry.pointee.d_name) { Array($0.prefix { $0 != 0 }) }
            if raw == [0x2E] || raw == [0x2E, 0x2E] { continue }
            names.append(raw)
        }
    }

    /// What the symlink at `path` points to, as raw bytes.
    public static func symlinkTarget(_ path: String) throws(SystemCallError) -> [UInt8] {
        var target = [UInt8](repeating: 0, count: Int(PATH_MAX) + 1)
        let n = target.withUnsafeMutableBytes { readlink(path, $0.baseAddress!.assumingMemoryBound(to: CChar.self), $0.count) }
        guard n >= 0 else { throw SystemCallError(call: "readlink", path: path, errno: errno) }
        return Array(target[..<n])
    }
}
