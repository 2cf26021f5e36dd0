import ChunkStore
import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// An instance's output, bounded: stdout and stderr append to `path` (the process writes the file
/// itself, so the log survives the agent's restart); when it grows past `limit` the agent copies it
/// to `path.1` (replacing the older one) and truncates it, so one log holds at most about twice the
/// limit. The agent adds its own lines ("a67: ...") about starts and exits.
public struct InstanceLog: Sendable, Equatable {
    public let path: String
    public let limit: Int

    public init(path: String, limit: Int) {
        self.path = path
        self.limit = limit
    }

    public var olderPath: String { path + ".1" }

    /// Moves the log aside when it is over the limit ("copy and truncate": the instance keeps its
    /// descriptor, and with O_APPEND writes at the new end). Only the last `limit` bytes are kept in
    /// the older file, so a burst between two looks does not make it bigger. Lines written between the
    /// copy and the truncation are lost; there are few. Returns whether it rotated.
    @discardableResult
    public func rotateIfNeeded() -> Bool {
        guard let size = Self.size(of: path), size > limit else { return false }
        let files = FileManager.default
        try? files.removeItem(atPath: olderPath)
        guard let source = FileHandle(forReadingAtPath: path) else { return false }
        defer { try? source.close() }
        try? source.seek(toOffset: UInt64(size - limit))
        guard files.createFile(atPath: olderPath, contents: nil), let target = FileHandle(forWritingAtPath: olderPath) else { return false }
        defer { try? target.close() }
        // 64 KiB at a time: the agent holds no log in memory. The older file starts at a line.
        var first = true
        while let block = try? source.read(upToCount: 64 << 10), !block.isEmpty {
            if first, let newline = block.firstIndex(of: 0x0A) {
                try? target.write(contentsOf: block[(newline + 1)...])
            } else {
                try? target.write(contentsOf: block)
            }
            first = false
        }
        guard let truncating = FileHandle(forWritingAtPath: path) else { return false }
        try? truncating.truncate(atOffset: 0)
        try? truncating.close()
        return true
    }

    /// Appends one line of the agent's own ("a67: started pid 42 on port 20001").
    /// O_APPEND: the line lands whole at the end, between the instance's own writes, never over them.
    public func note(_ line: String) {
        let fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0o640)
        guard fd >= 0 else { return }
        defer { close(fd) }
        try? LocalFiles.write(fd, Array(("a67: " + line + "\n").utf8)[...], path: path)
    }

    /// The last `count` lines of the log (the older file's too, when the current one has fewer), as
    /// bytes: an app's output need not be UTF-8. Reads at most `limit` bytes of each file.
    public func tail(_ count: Int) -> [UInt8] {
        guard count > 0 else { return [] }
        let current = Self.lastBytes(of: path, upTo: limit)
        var lines = Self.lastLines(current, count: count)
        if Self.lineCount(lines) < count {
            let older = Self.lastBytes(of: olderPath, upTo: limit)
            lines = Self.lastLines(older + current, count: count)
        }
        return Array(lines)
    }

    /// The last `count` lines of `bytes` (a final line without a newline counts).
    public static func lastLines(_ bytes: [UInt8], count: Int) -> ArraySlice<UInt8> {
        guard count > 0 else { return [] }
        var end = bytes.endIndex
        if end > 0 && bytes[end - 1] == 0x0A { end -= 1 }
        var found = 0
        var index = end
        while index > 0 {
            if bytes[index - 1] == 0x0A {
                found += 1
                if found == count { break }
            }
            index -= 1
        }
        return bytes[index...]
    }

    static func lineCount(_ bytes: ArraySlice<UInt8>) -> Int {
        let newlines = bytes.reduce(0) { $0 + ($1 == 0x0A ? 1 : 0) }
        return newlines + (bytes.last.map { $0 == 0x0A ? 0 : 1 } ?? 0)
    }

    static func size(of path: String) -> Int? {
        (try? FileManager.default.attributesOfItem(atPath: path)[.size] as? NSNumber)?.intValue
    }

    static func lastBytes(of path: String, upTo limit: Int) -> [UInt8] {
        guard let handle = FileHandle(forReadingAtPath: path) else { return [] }
        defer { try? handle.close() }
        guard let end = try? handle.seekToEnd() else { return [] }
        try? handle.seek(toOffset: end > UInt64(limit) ? end - UInt64(limit) : 0)
        return (try? handle.readToEnd()).map { Array($0) } ?? []
    }
}
