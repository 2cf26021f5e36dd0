/// One entry of an app bundle: a file, a folder or a symlink, with what the archive keeps of it.
public struct BundleMember: Sendable, Hashable, Codable {
    public enum Kind: String, Sendable, Hashable, Codable {
        case file, directory, symlink
    }

    /// Relative to the bundle's root, `/`-separated, without a trailing `/` (`src/main.py`).
    public let path: String
    public let kind: Kind
    /// Permission bits (0o755, 0o644): what `ls -l` shows. Set-user-ID, set-group-ID and sticky bits
    /// are not kept; a symlink's mode is always 0o777.
    public let mode: UInt32
    /// A file's length in bytes; 0 for folders and symlinks.
    public let size: Int64
    /// A symlink's target as written in the link (relative, inside the bundle); nil for others.
    public let linkTarget: String?

    public init(path: String, kind: Kind, mode: UInt32, size: Int64 = 0, linkTarget: String? = nil) {
        self.path = path
        self.kind = kind
        self.mode = kind == .symlink ? 0o777 : mode & 0o777
        self.size = kind == .file ? size : 0
        self.linkTarget = kind == .symlink ? linkTarget : nil
    }
}

/// The members of a bundle in archive order (by path, bytewise): what `a67 app status` shows and
/// what two versions are compared by.
public struct BundleManifest: Sendable, Hashable, Codable {
    public let members: [BundleMember]

    public init(members: [BundleMember]) {
        self.members = members.sorted { Self.precedes($0.path, $1.path) }
    }

    /// The bytes of every file.
    public var fileBytes: Int64 { members.reduce(0) { $0 + $1.size } }

    /// Archive order: bytewise on the UTF-8 path, so a folder comes before what it holds.
    public static func precedes(_ a: String, _ b: String) -> Bool { a.utf8.lexicographicallyPrecedes(b.utf8) }

    /// What differs from `old` to `self`, by path: members added, removed, and changed in kind, mode,
    /// size or link target. (A file rewritten with other bytes of the same length is not seen here;
    /// the bundle's SHA-256 tells versions apart.)
    public func changes(since old: BundleManifest) -> (added: [String], removed: [String], changed: [String]) {
        let before = Dictionary(old.members.map { ($0.path, $0) }, uniquingKeysWith: { a, _ in a })
        let now = Set(members.map(\.path))
        let added = members.filter { before[$0.path] == nil }.map(\.path)
        let changed = members.filter { member in before[member.path].map { $0 != member } ?? false }.map(\.path)
        let removed = old.members.map(\.path).filter { !now.contains($0) }
        return (added, removed, changed)
    }
}
