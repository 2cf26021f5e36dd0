import ChunkStore

/// An entry of one remote folder, as WebDAV's PROPFIND and SFTP's directory listing give them.
struct FolderEntry: Sendable {
    let name: String
    let isFolder: Bool
    let size: Int
}

/// The flat, sorted, paged `Backend.list` over stores that only list one folder at a time. Walks
/// folders in byte order and descends only into those that can hold names after `after` and under
/// `prefix`, so a page costs the folders it touches, not the whole tree.
enum TreeListing {
    /// Names holding this marker are uploads in progress, never listed.
    static let partialMarker = ".a67-partial-"

    static func list(prefix: String, after: String?, limit: Int,
                     folder listFolder: (String) async throws -> [FolderEntry]) async throws -> ListPage {
        precondition(limit > 0)
        var found: [ObjectInfo] = []
        try await walk("", prefix: prefix, after: after, want: limit + 1, into: &found, listFolder: listFolder)
        if found.count > limit {
            let page = Array(found.prefix(limit))
            return ListPage(objects: page, nextAfter: page.last!.name)
        }
        return ListPage(objects: found, nextAfter: nil)
    }

    private static func walk(_ folder: String, prefix: String, after: String?, want: Int, into found: inout [ObjectInfo],
                             listFolder: (String) async throws -> [FolderEntry]) async throws {
        let entries = try await listFolder(folder)
            .filter { !$0.name.contains(partialMarker) && !$0.name.isEmpty }
            .map { (key: folder + $0.name + ($0.isFolder ? "/" : ""), entry: $0) }
            .sorted { precedes($0.key, $1.key) }
        for (key, entry) in entries {
            if found.count >= want { return }
            if entry.isFolder {
                guard key.hasPrefix(prefix) || prefix.hasPrefix(key) else { continue }
                // Every name under `key` starts with it: all are at or before `after` when `after`
                // sorts after `key` without starting with it.
                if let after, !precedes(after, key), !after.hasPrefix(key) { continue }
                try await walk(key, prefix: prefix, after: after, want: want, into: &found, listFolder: listFolder)
            } else {
                guard key.hasPrefix(prefix) else { continue }
                if let after, !precedes(after, key) { continue }
                found.append(ObjectInfo(name: key, size: entry.size))
            }
        }
    }

    static func precedes(_ a: String, _ b: String) -> Bool { a.utf8.lexicographicallyPrecedes(b.utf8) }

    /// Interrupted uploads (`.LEAF.a67-partial-…`) in every folder under `prefix` (empty, or a folder
    /// path ending in `/`). An old copy moved aside by an overwrite (`….a67-partial-old-…`) counts only
    /// when LEAF exists beside it: otherwise it may be the only copy.
    static func leftovers(under prefix: String, folder listFolder: (String) async throws -> [FolderEntry]) async throws -> [String] {
        var found: [String] = []
        let entries = try await listFolder(prefix)
        let files = Set(entries.filter { !$0.isFolder }.map(\.name))
        for entry in entries {
            if entry.isFolder {
                found += try await leftovers(under: prefix + entry.name + "/", folder: listFolder)
            } else if entry.name.hasPrefix("."), let marker = entry.name.range(of: partialMarker) {
                let leaf = String(entry.name[entry.name.index(after: entry.name.startIndex)..<marker.lowerBound])
                let movedAside = entry.name[marker.upperBound...].hasPrefix("old-")
                if !movedAside || files.contains(leaf) { found.append(prefix + entry.name) }
            }
        }
        return found
    }
}
