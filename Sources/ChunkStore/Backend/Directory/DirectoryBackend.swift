#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A provider that is a local directory (a disk, a mounted share).
///
/// An object `data/ab/abcd…` is the file `ROOT/data/ab/abcd…`. A put writes a temporary file in
/// `ROOT/.a67-tmp/`, fdatasyncs it, renames it into place and fsyncs the folder, so a crash leaves
/// the old object or the new one, never a partial file. The root itself is never created here: a
/// missing root (an unmounted disk) is an error, not a reason to fill the parent filesystem.
public struct DirectoryBackend: Backend, LeftoverSweeping {
    public let root: String
    let io: BlockingIOPool
    static let temporaryFolder = ".a67-tmp"

    public init(root: String, io: BlockingIOPool = .shared) {
        self.root = root.count > 1 && root.hasSuffix("/") ? String(root.dropLast()) : root
        self.io = io
    }

    public var location: String { "directory \(root)" }

    public func put(_ name: String, data: [UInt8]) async throws {
        try Self.validate(name)
        try await io.run { try self.putNow(name, data: data) }
    }

    public func get(_ name: String, range: Range<Int>?) async throws -> [UInt8] {
        try Self.validate(name)
        return try await io.run { try self.getNow(name, range: range) }
    }

    public func head(_ name: String) async throws -> ObjectInfo {
        try Self.validate(name)
        return try await io.run {
            var st = stat()
            if stat(self.path(name), &st) != 0 {
                throw self.classify(SystemCallError(call: "stat", path: name, errno: errno), name: name)
            }
            return ObjectInfo(name: name, size: Int(st.st_size))
        }
    }

    public func delete(_ name: String) async throws {
        try Self.validate(name)
        try await io.run {
            if unlink(self.path(name)) != 0 && errno != ENOENT {
                throw self.classify(SystemCallError(call: "unlink", path: name, errno: errno), name: name)
            }
        }
    }

    public func list(prefix: String, after: String?, limit: Int) async throws -> ListPage {
        precondition(limit > 0)
        return try await io.run {
            try self.requireRoot()
            // Walk only the deepest folder the prefix names.
            let folder = prefix.lastIndex(of: "/").map { String(prefix[..<$0]) } ?? ""
            var names: [ObjectInfo] = []
            try self.walk(relative: folder) { info in
                if info.name.hasPrefix(prefix), after.map({ info.name > $0 }) ?? true { names.append(info) }
            }
            names.sort { $0.name.utf8.lexicographicallyPrecedes($1.name.utf8) }
            if names.count > limit {
                let page = Array(names[0..<limit])
                return ListPage(objects: page, nextAfter: page.last!.name)
            }
            return ListPage(objects: names, nextAfter: nil)
        }
    }

    public func usage() async throws -> BackendUsage {
        try await io.run {
            try self.requireRoot()
            var used: Int64 = 0
            var count = 0
            try self.walk(relative: "") { info in
                used += Int64(info.size)
                count += 1
            }
            return BackendUsage(usedBytes: used, objectCount: count, freeBytes: LocalFiles.space(of: self.root)?.free)
        }
    }

    // MARK: - Blocking work, on the I/O pool

    private func path(_ name: String) -> String { root + "/" + name }

    private func putNow(_ name: String, data: [UInt8]) throws {
        let temporaryDir = root + "/" + Self.temporaryFolder
        let temporary = temporaryDir + "/" + Hex.encode(Crypto.randomBytes(8))
        var fd = open(temporary, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o600)
        if fd < 0 && errno == ENOENT {
            try makeFolders(Self.temporaryFolder, name: name)
            fd = open(temporary, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o600)
        }
        if fd < 0 { throw classify(SystemCallError(call: "open", path: temporary, errno: errno), name: name) }
        var keep = false
        defer { if !keep { unlink(temporary) } }
        // The descriptor is closed exactly once on every path, and a failed close fails the put.
        var failure: SystemCallError?
        do throws(SystemCallError) {
            try writeAll(fd, data[...], path: temporary)
            if fdatasync(fd) != 0 { throw SystemCallError(call: "fdatasync", path: temporary, errno: errno) }
        } catch {
            failure = error
        }
        if close(fd) != 0 && failure == nil { failure = SystemCallError(call: "close", path: temporary, errno: errno) }
        if let failure { throw classify(failure, name: name) }
        let target = path(name)
        let folder = name.lastIndex(of: "/").map { String(name[..<$0]) } ?? ""
        if rename(temporary, target) != 0 {
            guard errno == ENOENT else { throw classify(SystemCallError(call: "rename", path: target, errno: errno), name: name) }
            try makeFolders(folder, name: name)
            if rename(temporary, target) != 0 { throw classify(SystemCallError(call: "rename", path: target, errno: errno), name: name) }
        }
        keep = true
        do throws(SystemCallError) {
            try syncFolder(folder.isEmpty ? root : root + "/" + folder)
        } catch {
            // The new object is in place but its folder entry may not survive a crash: report the put
            // as failed so the caller does not count on it (the object itself is complete).
            throw classify(error, name: name)
        }
    }

    private func getNow(_ name: String, range: Range<Int>?) throws -> [UInt8] {
        let fd = open(path(name), O_RDONLY | O_CLOEXEC)
        if fd < 0 { throw classify(SystemCallError(call: "open", path: name, errno: errno), name: name) }
        defer { close(fd) }
        var st = stat()
        guard fstat(fd, &st) == 0 else { throw classify(SystemCallError(call: "fstat", path: name, errno: errno), name: name) }
        let size = Int(st.st_size)
        let lower = min(range?.lowerBound ?? 0, size)
        let upper = min(range?.upperBound ?? size, size)
        do throws(SystemCallError) {
            // A file that shrinks under us returns fewer bytes; the reader's verification catches it.
            return try readFully(fd, count: max(0, upper - lower), offset: lower, path: name)
        } catch {
            throw classify(error, name: name)
        }
    }

    /// Creates the folders of `relative` below the root (never the root itself).
    private func makeFolders(_ relative: String, name: String) throws {
        try requireRoot()
        var current = root
        for part in relative.split(separator: "/") {
            let parent = current
            current += "/" + part
            if mkdir(current, 0o700) == 0 {
                do throws(SystemCallError) { try syncFolder(parent) } catch { throw classify(error, name: name) }
            } else if errno != EEXIST {
                throw classify(SystemCallError(call: "mkdir", path: current, errno: errno), name: name)
            }
        }
    }

    public func sweepLeftovers(olderThan seconds: Double) async throws -> (count: Int, bytes: Int64) {
        try await io.run {
            try requireRoot()
            let folder = root + "/" + Self.temporaryFolder
            guard let names = try? LocalFiles.names(in: folder) else { return (0, 0) }
            var now = timespec()
            clock_gettime(CLOCK_REALTIME, &now)
            var swept = (count: 0, bytes: Int64(0))
            for raw in names {
                let path = folder + "/" + String(decoding: raw, as: UTF8.self)
                var st = stat()
                guard lstat(path, &st) == 0, (st.st_mode & S_IFMT) == S_IFREG else { continue }
                #if canImport(Glibc)
                let modified = st.st_mtim.tv_sec
                #else
                let modified = st.st_mtimespec.tv_sec
                #endif
                guard Double(now.tv_sec - modified) >= seconds, unlink(path) == 0 else { continue }
                swept.count += 1
                swept.bytes += Int64(st.st_size)
            }
            return swept
        }
    }

    /// Creates the provider's folder itself, never a missing parent: that is likely an unmounted disk.
    public func prepare() async throws {
        try await io.run {
            if mkdir(self.root, 0o700) != 0, case let failure = errno, failure != EEXIST {
                throw StoreError(.providerFailure, "cannot create provider directory \(self.root): \(String(cString: strerror(failure)))"
                    + (failure == ENOENT ? " (its parent folder is missing: is the disk mounted? If the path is right, create the parent first)" : ""))
            }
        }
    }

    /// The root with symbolic links, `.` and `..` resolved: one folder under two names (a trailing
    /// slash, a symlink) would put two replicas on one disk.
    public func resolvedRoot() async throws -> String {
        try await io.run {
            guard let resolved = realpath(self.root, nil) else {
                throw StoreError(.providerFailure, "cannot resolve provider directory \(self.root)")
            }
            defer { free(resolved) }
            return String(cString: resolved)
        }
    }

    private func requireRoot() throws {
        var st = stat()
        guard stat(root, &st) == 0 else {
            throw BackendError.permanent("provider directory \(root) is missing (\(String(cString: strerror(errno)))): mount or recreate it")
        }
        guard (st.st_mode & S_IFMT) == S_IFDIR else {
            throw BackendError.permanent("provider path \(root) is not a directory")
        }
    }

    private func walk(relative: String, _ visit: (ObjectInfo) -> Void) throws {
        let folder = relative.isEmpty ? root : root + "/" + relative
        let names: [[UInt8]]
        do {
            names = try LocalFiles.names(in: folder)
        } catch {
            if error.errno == ENOENT || error.errno == ENOTDIR { return }
            throw classify(error, name: relative)
        }
        for raw in names {
            let entryName = String(decoding: raw, as: UTF8.self)
            if relative.isEmpty && entryName == Self.temporaryFolder { continue }
            let name = relative.isEmpty ? entryName : relative + "/" + entryName
            var st = stat()
            guard lstat(root + "/" + name, &st) == 0 else { continue }
            switch st.st_mode & S_IFMT {
            case S_IFDIR: try walk(relative: name, visit)
            case S_IFREG: visit(ObjectInfo(name: name, size: Int(st.st_size)))
            default: continue
            }
        }
    }

    private func classify(_ error: SystemCallError, name: String) -> BackendError {
        switch error.errno {
        case ENOENT:
            var st = stat()
            if stat(root, &st) != 0 {
                return .permanent("provider directory \(root) is missing: mount or recreate it")
            }
            return .notFound(name)
        case ENOSPC, EDQUOT: return .full("\(location): \(error)")
        case EAGAIN, EINTR, ETIMEDOUT: return .transient("\(location): \(error)")
        default: return .permanent("\(location): \(error)")
        }
    }

    /// Object names: lowercase letters, digits, `-`, `_`, `.`, and `/` between non-empty parts that
    /// are not `.` or `..`.
    static func validate(_ name: String) throws {
        let ok = !name.isEmpty && name.utf8.count <= 512 && name.utf8.allSatisfy { c in
            (c >= 0x61 && c <= 0x7a) || (c >= 0x30 && c <= 0x39) || c == 0x2d || c == 0x5f || c == 0x2e || c == 0x2f
        } && name.split(separator: "/", omittingEmptySubsequences: false).allSatisfy { $0 != "" && $0 != "." && $0 != ".." }
        guard ok else { throw BackendError.permanent("invalid object name \"\(name)\"") }
    }
}
