import ChunkStore
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// An app's folder as a bundle would hold it: its members, found by walking it with `.a67ignore`
/// applied. Reads names and metadata only, never file contents.
public enum BundleFolder {
    /// The members of `folder` in archive order. Refuses (with the path named) devices, FIFOs and
    /// sockets, names that are not UTF-8, and symlinks that are absolute or lead out of the folder.
    /// A folder that `.a67ignore` leaves out is not looked into.
    public static func scan(_ folder: String) throws(StoreError) -> BundleManifest {
        var st = stat()
        guard stat(folder, &st) == 0 else { throw ioError("cannot read the app folder \(folder)") }
        guard (st.st_mode & S_IFMT) == S_IFDIR else {
            throw StoreError(.invalidArgument, "\(folder) is not a folder: an app bundle is made from the app's folder")
        }
        let ignore = try readIgnore(folder)
        var members: [BundleMember] = []
        try walk(folder, relative: "", ignore: ignore, into: &members)
        let manifest = BundleManifest(members: members)
        try BundleLinks.check(manifest.members)
        return manifest
    }

    /// The folder's `.a67ignore`, or none.
    static func readIgnore(_ folder: String) throws(StoreError) -> BundleIgnore {
        let path = folder + "/" + BundleIgnore.fileName
        var st = stat()
        guard lstat(path, &st) == 0 else { return .none }
        guard (st.st_mode & S_IFMT) == S_IFREG else {
            throw StoreError(.invalidArgument, "\(path) is not a regular file; it must hold patterns, one a line")
        }
        let fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW)
        guard fd >= 0 else { throw ioError("cannot read \(path)") }
        defer { close(fd) }
        var bytes: [UInt8] = []
        var block = [UInt8](repeating: 0, count: 64 * 1024)
        while true {
            let n = block.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
            if n < 0 && errno == EINTR { continue }
            guard n >= 0 else { throw ioError("cannot read \(path)") }
            if n == 0 { break }
            bytes += block[..<n]
            guard bytes.count <= 1 << 20 else { throw StoreError(.invalidArgument, "\(path) is larger than 1 MiB") }
        }
        guard let text = String(validating: bytes, as: UTF8.self) else { throw StoreError(.invalidArgument, "\(path) is not UTF-8 text") }
        return try BundleIgnore(parsing: text, file: path)
    }

    static func walk(_ root: String, relative: String, ignore: BundleIgnore, into members: inout [BundleMember]) throws(StoreError) {
        let folder = relative.isEmpty ? root : root + "/" + relative
        guard let dir = opendir(folder) else { throw ioError("cannot list \(folder)") }
        defer { closedir(dir) }
        var names: [String] = []
        while true {
            errno = 0
            guard let entry = readdir(dir) else {
                if errno != 0 { throw ioError("cannot list \(folder)") }
                break
            }
            let raw = withUnsafeBytes(of: entry.pointee.d_name) { Array($0.prefix { $0 != 0 }) }
            if raw == [46] || raw == [46, 46] { continue }
            guard let name = String(validating: raw, as: UTF8.self) else {
                throw StoreError(.invalidArgument, "a name in \(folder) is not UTF-8 (\(String(decoding: raw, as: UTF8.self))): rename it or add it to .a67ignore")
            }
            names.append(name)
        }
        for name in names {
            let path = relative.isEmpty ? name : relative + "/" + name
            let full = root + "/" + path
            var st = stat()
            guard lstat(full, &st) == 0 else { throw ioError("cannot read \(full)") }
            let mode = UInt32(st.st_mode) & 0o777
            switch st.st_mode & S_IFMT {
            case S_IFDIR:
                if ignore.excludes(path, isDirectory: true) { continue }
                members.append(BundleMember(path: path, kind: .directory, mode: mode))
                try walk(root, relative: path, ignore: ignore, into: &members)
            case S_IFREG:
                if ignore.excludes(path, isDirectory: false) { continue }
                members.append(BundleMember(path: path, kind: .file, mode: mode, size: Int64(st.st_size)))
            case S_IFLNK:
                if ignore.excludes(path, isDirectory: false) { continue }
                var target = [UInt8](repeating: 0, count: Int(PATH_MAX) + 1)
                let n = target.withUnsafeMutableBytes { readlink(full, $0.baseAddress!.assumingMemoryBound(to: CChar.self), $0.count) }
                guard n >= 0 else { throw ioError("cannot read the symlink \(full)") }
                guard let text = String(validating: target[..<n], as: UTF8.self) else {
                    throw StoreError(.invalidArgument, "the symlink \(full) has a target that is not UTF-8: fix it or add it to .a67ignore")
                }
                members.append(BundleMember(path: path, kind: .symlink, mode: 0o777, linkTarget: text))
            default:
                if ignore.excludes(path, isDirectory: false) { continue }
                let what = switch st.st_mode & S_IFMT {
                case S_IFIFO: "a FIFO"
                case S_IFSOCK: "a socket"
                case S_IFCHR: "a character device"
                case S_IFBLK: "a block device"
                default: "not a file, folder or symlink"
                }
                throw StoreError(.invalidArgument, "\(full) is \(what): a bundle holds only files, folders and symlinks; remove it or add it to .a67ignore")
            }
        }
    }

    static func ioError(_ what: String) -> StoreError {
        StoreError(.io, "\(what): \(String(cString: strerror(errno)))")
    }
}
