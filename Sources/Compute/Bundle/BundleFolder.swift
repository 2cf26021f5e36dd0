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
        let bytes: [UInt8]
        do {
            let fd = try LocalFiles.openForReading(path)
            defer { close(fd) }
            bytes = try LocalFiles.read(fd, upTo: (1 << 20) + 1, path: path)
        } catch {
            throw ioError("cannot read \(path)", error)
        }
        guard bytes.count <= 1 << 20 else { throw StoreError(.invalidArgument, "\(path) is larger than 1 MiB") }
        guard let text = String(validating: bytes, as: UTF8.self) else { throw StoreError(.invalidArgument, "\(path) is not UTF-8 text") }
        return try BundleIgnore(parsing: text, file: path)
    }

    static func walk(_ root: String, relative: String, ignore: BundleIgnore, into members: inout [BundleMember]) throws(StoreError) {
        let folder = relative.isEmpty ? root : root + "/" + relative
        let raw: [[UInt8]]
        do { raw = try LocalFiles.names(in: folder) } catch { throw ioError("cannot list \(folder)", error) }
        var names: [String] = []
        for bytes in raw {
            guard let name = String(validating: bytes, as: UTF8.self) else {
                throw StoreError(.invalidArgument, "a name in \(folder) is not UTF-8 (\(String(decoding: bytes, as: UTF8.self))): rename it or add it to .a67ignore")
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
                let target: [UInt8]
                do { target = try LocalFiles.symlinkTarget(full) } catch { throw ioError("cannot read the symlink \(full)", error) }
                guard let text = String(validating: target, as: UTF8.self) else {
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

    static func ioError(_ what: String, _ error: SystemCallError) -> StoreError {
        StoreError(.io, "\(what): \(String(cString: strerror(error.errno)))")
    }
}
