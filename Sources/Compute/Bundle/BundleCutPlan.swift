import ChunkStore

/// Where a bundle's archive is cut into chunks, so that a new version of an app re-uses the chunks of
/// the old one except around what changed.
///
/// Cutting the archive every 5 MiB (as the store cuts other objects) would not: a file that grows by
/// one byte shifts every later byte, and every later chunk changes. Instead the archive is seen as a
/// sequence of **units**: each member (its headers, data and padding) is one unit, except a member
/// larger than a chunk, which is split into its headers, then its data in whole chunks counted from the
/// data's own start, then the rest of its data with the padding. Cuts fall only between units.
///
/// Each boundary between units has a **strength**: a hash of the path of the unit before it (and the
/// part number within a split member), so a boundary's strength does not depend on anything else in
/// the archive. A boundary is a **cut** when its **span** is larger than a chunk, its span being the
/// bytes between the nearest stronger boundaries on either side (or the archive's ends). This is a
/// recursive split at the strongest boundary of every stretch longer than a chunk, written so that each
/// decision can be made locally:
/// - Every piece is at most a chunk long (the strongest boundary inside a longer stretch would have a
///   span larger than a chunk, so it would be a cut).
/// - A change inside one member changes the span only of the boundaries whose span holds it, and none
///   of their strengths: the piece that holds the member changes, and a neighbour only when a span
///   crosses the 5 MiB line. Adding or removing a member adds or removes one boundary, which changes
///   the spans of the boundaries it sits between, again only around it.
/// - Large files are cut at multiples of 5 MiB from the start of their data, so their chunks are the
///   same whatever precedes them (and the same as when the file is stored alone with `a67 put`,
///   except the last chunk, which holds the tar padding).
///
/// Pieces average about half a chunk (about 2.5 MiB), more where large files fill whole chunks.
public enum BundleCutPlan {
    /// A run of archive bytes that is never cut, and the key its following boundary's strength is.
    public struct Unit: Sendable, Equatable {
        public let length: Int
        public let strength: UInt64

        public init(length: Int, strength: UInt64) {
            self.length = length
            self.strength = strength
        }
    }

    /// The strength of the boundary after a unit: the first 8 bytes (big-endian) of
    /// SHA-256("automator67/v1/bundle-cut" NUL path NUL part), part counting the units of one member from 0.
    public static func strength(path: String, part: Int) -> UInt64 {
        let digest = Crypto.sha256(Array("automator67/v1/bundle-cut\0\(path)\0\(part)".utf8))
        return digest.prefix(8).reduce(0) { $0 << 8 | UInt64($1) }
    }

    /// The units of an archive of `members` (in archive order) with its trailer.
    public static func units(of members: [BundleMember], maxPiece: Int = ChunkSealer.maxChunkSize) -> [Unit] {
        var units: [Unit] = []
        for member in members {
            let header = TarFormat.header(for: member).count
            let padded = member.size + Int64(TarFormat.padding(member.size))
            if Int64(header) + padded <= Int64(maxPiece) {
                units.append(Unit(length: header + Int(padded), strength: strength(path: member.path, part: 0)))
                continue
            }
            units.append(Unit(length: header, strength: strength(path: member.path, part: 0)))
            var left = padded, part = 1
            while left > 0 {
                // Whole chunks of data, then the last bytes of data with the padding (at most a chunk:
                // maxPiece is a multiple of the block size).
                let length = left - Int64(TarFormat.padding(member.size)) >= Int64(maxPiece) ? maxPiece : Int(left)
                units.append(Unit(length: length, strength: strength(path: member.path, part: part)))
                left -= Int64(length)
                part += 1
            }
        }
        units.append(Unit(length: TarFormat.trailerLength, strength: 0))
        return units
    }

    /// The lengths of the pieces to cut `units` into: each at most `maxPiece` (every unit must be at
    /// most `maxPiece`), summing to the units' total.
    public static func pieces(of units: [Unit], maxPiece: Int = ChunkSealer.maxChunkSize) -> [Int] {
        precondition(units.allSatisfy { $0.length <= maxPiece }, "a unit is longer than a piece")
        let n = units.count
        guard n > 1 else { return units.map(\.length).filter { $0 > 0 } }
        // position[k]: the offset of the boundary after unit k - 1 (position[0] = 0, position[n] = end).
        var position = [Int](repeating: 0, count: n + 1)
        for k in 0..<n { position[k + 1] = position[k] + units[k].length }
        // Interior boundaries are after units 0..<n-1; ties in strength go to the later boundary.
        func stronger(_ a: Int, _ b: Int) -> Bool { (units[a].strength, a) > (units[b].strength, b) }
        var left = [Int](repeating: -1, count: n - 1), right = [Int](repeating: n - 1, count: n - 1)
        var stack: [Int] = []
        for b in 0..<(n - 1) {
            while let top = stack.last, !stronger(top, b) {
                right[top] = b
                stack.removeLast()
            }
            left[b] = stack.last ?? -1
            stack.append(b)
        }
        var cuts = [0]
        for b in 0..<(n - 1) where position[right[b] + 1] - position[left[b] + 1] > maxPiece {
            cuts.append(position[b + 1])
        }
        cuts.append(position[n])
        return zip(cuts, cuts.dropFirst()).map { $1 - $0 }
    }

    /// The piece lengths of an archive of `members`.
    public static func pieces(of members: [BundleMember], maxPiece: Int = ChunkSealer.maxChunkSize) -> [Int] {
        pieces(of: units(of: members, maxPiece: maxPiece), maxPiece: maxPiece)
    }
}
