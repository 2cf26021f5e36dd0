import ChunkStore
/// Where a bundle's symlinks lead, worked out on paths alone (through the bundle's other symlinks),
/// so that packing and unpacking agree on which links stay inside the bundle.
enum BundleLinks {
    /// Like the kernel's limit on links followed in one lookup.
    static let maxHops = 40

    /// Refuses any symlink among `members` whose target is absolute, or leads out of the bundle
    /// (through `..` or other symlinks), or loops.
    static func check(_ members: [BundleMember]) throws(StoreError) {
        let links = Dictionary(members.compactMap { m in m.linkTarget.map { (m.path, $0) } }, uniquingKeysWith: { a, _ in a })
        for (path, target) in links.sorted(by: { BundleManifest.precedes($0.key, $1.key) }) {
            if let why = escape(of: path, target: target, links: links) {
                throw StoreError(.invalidArgument, "the symlink \(path) -> \(target) \(why): a bundle keeps only relative links to what is inside it; make it relative or add it to .a67ignore")
            }
        }
    }

    /// Why the link at `path` to `target` does not stay inside the bundle, or nil when it does.
    static func escape(of path: String, target: String, links: [String: String]) -> String? {
        if target.hasPrefix("/") { return "is absolute" }
        if target.isEmpty { return "is empty" }
        var resolved: [Substring] = path.split(separator: "/").dropLast()
        var pending = Array(target.split(separator: "/").reversed())
        var hops = 0
        while let part = pending.popLast() {
            switch part {
            case ".": continue
            case "..":
                if resolved.isEmpty { return "leads out of the folder" }
                resolved.removeLast()
            default:
                resolved.append(part)
                guard let next = links[resolved.joined(separator: "/")] else { continue }
                hops += 1
                if hops > maxHops { return "goes through too many links (a loop?)" }
                if next.hasPrefix("/") { return "goes through the absolute link \(resolved.joined(separator: "/"))" }
                resolved.removeLast()
                pending += next.split(separator: "/").reversed()
            }
        }
        return nil
    }
}
