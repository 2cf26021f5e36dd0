import ChunkStore

/// The shared conformance suite: every backend's tests call `run` on a fresh, empty backend.
/// It throws a `Failure` naming the first broken guarantee. (It is not tied to a test framework,
/// so `a67 provider test` can later run it against a user's own provider.)
public enum BackendConformance {
    public struct Failure: Error, CustomStringConvertible {
        public let description: String
    }

    /// What an interrupted put of the backend leaves behind, for the leftover checks (what garbage
    /// collection's orphan sweep relies on).
    public enum Leftovers: Sendable {
        /// Nothing: its puts are atomic on the provider (S3, memory). It lists no leftovers and
        /// sweeps none.
        case none
        /// Uploads cut short beside their final names, `.LEAF.a67-partial-…` (WebDAV, SFTP): hidden
        /// from `list`, found by `LeftoverListing`, deleted by name. The suite makes them with `put`.
        case besideFinal
        /// Temporary files in a folder of their own (the directory backend's `.a67-tmp/`), removed by
        /// `LeftoverSweeping` once old enough. `plant(name, bytes, age)` writes one there, last
        /// modified `age` seconds ago, as a crashed put would have left it.
        case temporaryFolder(plant: @Sendable (_ name: String, _ bytes: [UInt8], _ age: Double) throws -> Void)
    }

    static func check(_ condition: Bool, _ what: @autoclosure () -> String) throws {
        if !condition { throw Failure(description: "backend conformance: \(what())") }
    }

    public static func run(_ backend: any Backend, leftovers: Leftovers = .none) async throws {
        try await roundTrip(backend)
        try await ranges(backend)
        try await missing(backend)
        try await overwriteAndDelete(backend)
        try await listing(backend)
        try await concurrentPuts(backend)
        try await usage(backend)
        try await strays(backend, leftovers: leftovers)
    }

    static func roundTrip(_ b: any Backend) async throws {
        let big = (0..<(5 * 1024 * 1024 + 36)).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ 7) }
        try await b.put("data/aa/big", data: big)
        try check(try await b.get("data/aa/big") == big, "a 5 MiB object does not read back identical")
        try check(try await b.head("data/aa/big") == ObjectInfo(name: "data/aa/big", size: big.count), "head reports the wrong size")
        try await b.put("empty", data: [])
        try check(try await b.get("empty") == [], "an empty object does not read back empty")
        try check(try await b.head("empty") == ObjectInfo(name: "empty", size: 0), "head of an empty object is wrong")
        try check(try await b.get("empty", range: 0..<0) == [], "an empty range of an empty object is not empty")
        try await b.delete("data/aa/big")
        try await b.delete("empty")
    }

    static func ranges(_ b: any Backend) async throws {
        let data = Array(0..<200).map(UInt8.init)
        try await b.put("range/x", data: data)
        try check(try await b.get("range/x", range: 10..<20) == Array(data[10..<20]), "a range read returns the wrong bytes")
        try check(try await b.get("range/x", range: 190..<400) == Array(data[190..<200]), "a range past the end is not clamped")
        try check(try await b.get("range/x", range: 300..<400) == [], "a range starting past the end is not empty")
        try await b.delete("range/x")
    }

    static func missing(_ b: any Backend) async throws {
        for attempt in ["get", "head"] {
            do {
                if attempt == "get" { _ = try await b.get("no/such/object") } else { _ = try await b.head("no/such/object") }
                try check(false, "\(attempt) of a missing object did not throw")
            } catch let error as BackendError {
                try check(error == .notFound("no/such/object"), "\(attempt) of a missing object threw \(error), not notFound")
            }
        }
        try await b.delete("no/such/object")  // idempotent
    }

    static func overwriteAndDelete(_ b: any Backend) async throws {
        try await b.put("over/x", data: [1, 2, 3])
        try await b.put("over/x", data: [4, 5])
        try check(try await b.get("over/x") == [4, 5], "an overwrite is not read back")
        try await b.delete("over/x")
        do {
            _ = try await b.get("over/x")
            try check(false, "a deleted object can still be read")
        } catch BackendError.notFound {}
    }

    static func listing(_ b: any Backend) async throws {
        let names = (0..<25).map { String(format: "list/%02x/obj-%03d", $0 % 3, $0) } + ["list-other", "lis"]
        for name in names { try await b.put(name, data: Array(name.utf8)) }
        let expected = names.filter { $0.hasPrefix("list/") }.sorted { $0.utf8.lexicographicallyPrecedes($1.utf8) }
        var seen: [ObjectInfo] = []
        var after: String?
        var pages = 0
        repeat {
            let page = try await b.list(prefix: "list/", after: after, limit: 7)
            try check(page.objects.count <= 7, "a page holds more than the limit")
            seen += page.objects
            after = page.nextAfter
            pages += 1
        } while after != nil && pages < 100
        try check(seen.map(\.name) == expected, "paged listing returned \(seen.map(\.name)) instead of \(expected)")
        try check(seen.allSatisfy { $0.size == $0.name.utf8.count }, "listing reports wrong sizes")
        let one = try await b.list(prefix: "list/01/", after: nil, limit: 100)
        try check(one.objects.map(\.name) == expected.filter { $0.hasPrefix("list/01/") }, "listing a sub-prefix is wrong")
        try check(one.nextAfter == nil, "a last page has a next marker")
        for name in names { try await b.delete(name) }
        try check(try await b.list(prefix: "list", after: nil, limit: 100).objects.isEmpty, "deleted objects still listed")
    }

    static func concurrentPuts(_ b: any Backend) async throws {
        try await withThrowingTaskGroup(of: Void.self) { group in
            for i in 0..<16 {
                group.addTask { try await b.put("conc/\(i % 4)", data: [UInt8](repeating: UInt8(i), count: 100_000)) }
            }
            try await group.waitForAll()
        }
        for i in 0..<4 {
            let data = try await b.get("conc/\(i)")
            try check(data.count == 100_000 && Set(data).count == 1, "concurrent puts to one name left a mixed object")
            try await b.delete("conc/\(i)")
        }
    }

    /// What gc's orphan sweep does on a provider: list every chunk file under data/ page by page (stray
    /// ones among them), find the leftovers of interrupted puts, and delete them; what it must not
    /// touch stays.
    static func strays(_ b: any Backend, leftovers kind: Leftovers) async throws {
        // Stray chunk files over a few folders, listed in small pages.
        let ids = (0..<12).map { i in ChunkID(bytes: [UInt8(i % 3 * 0x40 + 0x11)] + [UInt8](repeating: UInt8(i), count: 31)) }
        let names = ids.map(\.objectName).sorted { $0.utf8.lexicographicallyPrecedes($1.utf8) }
        for name in names { try await b.put(name, data: Array(name.utf8.prefix(10))) }
        let listed = try await b.listAll(prefix: "data/", pageSize: 5)
        try check(listed.map(\.name) == names, "paging through stray chunk files listed \(listed.map(\.name)), not \(names)")
        try check(listed.compactMap { ChunkID(objectName: $0.name) } == ids.sorted { $0.objectName.utf8.lexicographicallyPrecedes($1.objectName.utf8) },
                  "listed chunk files do not name their chunks")

        let hidden = b as? LeftoverListing
        let sweeping = b as? LeftoverSweeping
        switch kind {
        case .none:
            try check(try await hidden?.leftovers(under: "") ?? [] == [], "a backend with atomic puts lists leftovers")
            if let swept = try await sweeping?.sweepLeftovers(olderThan: 0) {
                try check(swept.count == 0 && swept.bytes == 0, "a backend with atomic puts swept \(swept)")
            }
        case .besideFinal:
            guard let hidden else { throw Failure(description: "backend conformance: \(b.location) leaves uploads beside their names but cannot list them") }
            let held = names[0]
            let folder = String(held[...held.lastIndex(of: "/")!])
            let leaf = String(held[held.index(after: held.lastIndex(of: "/")!)...])
            let never = String(repeating: "1", count: 64), gone = String(repeating: "0", count: 64)
            // Cut short beside a chunk that exists; of a chunk never stored; an old copy an overwrite moved
            // aside beside its object; and one with nothing beside it (the only copy left by an overwrite
            // cut between its renames: never a leftover).
            let cut = folder + "." + leaf + ".a67-partial-cut1"
            let fresh = folder + "." + never + ".a67-partial-cut2"
            let aside = folder + "." + leaf + ".a67-partial-old-cut3"
            let alone = folder + "." + gone + ".a67-partial-old-cut4"
            for name in [cut, fresh, aside, alone] { try await b.put(name, data: [1, 2, 3]) }
            try check(try await b.listAll(prefix: "data/", pageSize: 5).map(\.name) == names, "list shows uploads in progress")
            let found = Set(try await hidden.leftovers(under: ""))
            try check(found == [cut, fresh, aside], "leftovers listed \(found.sorted()), not \([cut, fresh, aside])")
            for name in found { try await b.delete(name) }
            try check(try await hidden.leftovers(under: "") == [], "deleted leftovers are still listed")
            try check(try await b.get(held) == Array(held.utf8.prefix(10)), "deleting the leftovers beside a chunk file touched it")
            try await b.delete(alone)
        case .temporaryFolder(let plant):
            guard let sweeping else { throw Failure(description: "backend conformance: \(b.location) leaves temporary files but cannot sweep them") }
            try plant("crashed-old", [UInt8](repeating: 1, count: 700), 7200)
            try plant("crashed-recent", [UInt8](repeating: 2, count: 300), 0)
            try check(try await b.listAll(prefix: "").map(\.name) == names, "list shows temporary files")
            let early = try await sweeping.sweepLeftovers(olderThan: 3600)
            try check(early.count == 1 && early.bytes == 700, "sweeping files older than an hour removed \(early), not the old one alone")
            let late = try await sweeping.sweepLeftovers(olderThan: 0)
            try check(late.count == 1 && late.bytes == 300, "sweeping with no grace removed \(late), not the recent one")
            let again = try await sweeping.sweepLeftovers(olderThan: 0)
            try check(again.count == 0, "a second sweep removed \(again)")
        }

        for name in names { try await b.delete(name) }
        try check(try await b.listAll(prefix: "data/", pageSize: 5).isEmpty, "deleted stray chunk files are still listed")
    }

    static func usage(_ b: any Backend) async throws {
        let before = try await b.usage()
        try await b.put("usage/x", data: [UInt8](repeating: 1, count: 1000))
        let after = try await b.usage()
        try check(after.usedBytes - before.usedBytes == 1000 && after.objectCount == before.objectCount + 1,
                  "usage does not count a new 1000-byte object")
        try await b.delete("usage/x")
    }
}

import Foundation
