import ArgumentParser
import ChunkStore
import Foundation
import Replicator

struct Get: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Read an object (or a byte range of it) to a file or standard output.",
        discussion: """
            DEST defaults to the key's last part in the current folder; - writes to standard output; \
            an existing folder receives the file under the key's last part. A file destination is \
            written under a hidden temporary name and renamed when complete, so a failed get never \
            leaves a partial file under DEST's name; devices and pipes are written directly. Every \
            chunk is verified; damaged data is never returned (exit code 4).

            --range FIRST-LAST selects bytes FIRST to LAST inclusive, counted from 0, like HTTP: \
            100-199, 100- (to the end), --range=-500 (the last 500 bytes; write it with '=').
            """)

    @OptionGroup var home: HomeOptions

    @Argument(help: "The object: BUCKET/KEY.")
    var object: String

    @Argument(help: "Where to write it: a file, a folder, or - for standard output.")
    var destination: String?

    @Option(help: "Bytes to read: FIRST-LAST, FIRST- or -SUFFIX.")
    var range: String?

    @Flag(help: "Print the result as JSON (not with standard output as DEST).")
    var json = false

    func validate() throws {
        if json && destination == "-" { throw ValidationError("--json cannot be used when the object itself goes to standard output") }
    }

    func run() async throws {
        try await guarded {
            let path = try ObjectPath(object, keyRequired: true)
            try Names.validateBucket(path.bucket)
            let segments = try Names.keySegments(path.key)
            var target = destination ?? "./" + segments.last!
            var isFolder: ObjCBool = false
            if target != "-", FileManager.default.fileExists(atPath: target, isDirectory: &isFolder), isFolder.boolValue {
                target += "/" + segments.last!
            }
            let repository = try home.unlock()
            let record = try repository.object(bucket: path.bucket, key: path.key)
            let bytes = try range.map { try Self.parseRange($0, size: record.size) }
            let length = bytes.map { $0.upperBound - $0.lowerBound + 1 } ?? record.size
            let bar = ProgressBar(label: "get", total: length)
            defer { bar.finish() }
            let started = Date()
            try await FileSink.writing(to: target) { sink in
                try await repository.get(record, bucket: path.bucket, range: bytes, to: sink, progress: bar.handler)
            }
            let seconds = Date().timeIntervalSince(started)
            if json {
                printJSON(["bucket": path.bucket, "key": path.key, "destination": target, "bytes": length, "seconds": seconds])
            } else if target != "-" {
                note("got \(path.bucket)/\(path.key) -> \(target): \(ByteSize.format(length)), "
                    + String(format: "%.2f s, ", seconds) + ByteSize.rate(length, seconds))
            }
        }
    }

    /// Inclusive byte offsets of FIRST-LAST, FIRST- or -SUFFIX within an object of `size` bytes.
    static func parseRange(_ text: String, size: Int64) throws -> ClosedRange<Int64> {
        let parts = text.split(separator: "-", maxSplits: 1, omittingEmptySubsequences: false)
        func bad(_ why: String) -> StoreError {
            StoreError(.invalidArgument, "invalid --range \"\(text)\": \(why). Write FIRST-LAST (bytes, from 0, inclusive), FIRST- or -SUFFIX")
        }
        guard parts.count == 2 else { throw bad("no '-'") }
        let first = parts[0].isEmpty ? nil : Int64(parts[0])
        let last = parts[1].isEmpty ? nil : Int64(parts[1])
        if !parts[0].isEmpty && first == nil || !parts[1].isEmpty && last == nil { throw bad("not whole numbers") }
        switch (first, last) {
        case let (f?, l?):
            guard f >= 0, l >= f else { throw bad("LAST is before FIRST") }
            guard f < size else { throw bad("FIRST is past the object's end (\(size) bytes)") }
            return f...min(l, size - 1)
        case let (f?, nil):
            guard f >= 0, f < size else { throw bad("FIRST is past the object's end (\(size) bytes)") }
            return f...(size - 1)
        case let (nil, s?):
            guard s > 0, size > 0 else { throw bad("an empty suffix") }
            return max(0, size - s)...(size - 1)
        default:
            throw bad("no numbers")
        }
    }
}
