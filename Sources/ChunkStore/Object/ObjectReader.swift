/// Reads an object, or a byte range of it, fetching only the chunks the range touches, verifying
/// each, and keeping up to `prefetch` chunks ahead in flight while earlier ones are written out.
public struct ObjectReader: Sendable {
    public let sealer: ChunkSealer
    public let pool: any ChunkPool
    public let catalog: Catalog
    public let prefetch: Int

    public init(sealer: ChunkSealer, pool: any ChunkPool, catalog: Catalog, prefetch: Int = 4) {
        self.sealer = sealer
        self.pool = pool
        self.catalog = catalog
        self.prefetch = max(1, prefetch)
    }

    /// Writes `range` (inclusive byte offsets, clamped to the object) of `object` to `sink`. Only
    /// verified bytes are ever written; on an integrity failure the error names the object and chunk.
    public func read(_ object: ObjectRecord, bucket: String, range: ClosedRange<Int64>? = nil, to sink: ByteSink,
                     io: BlockingIOPool = .shared, progress: ProgressHandler? = nil) async throws {
        try await read(object, bucket: bucket, range: range, write: { bytes in try await io.run { try sink.write(bytes) } },
                       progress: progress)
    }

    /// `read` handing verified bytes, in order, to `write` (called from this task, one call at a time).
    public func read(_ object: ObjectRecord, bucket: String, range: ClosedRange<Int64>? = nil,
                     write: (ArraySlice<UInt8>) async throws -> Void, progress: ProgressHandler? = nil) async throws {
        let size = object.manifest.size
        var first: Int64 = 0
        var last = size - 1
        if let range {
            guard range.lowerBound < size else {
                throw StoreError(.invalidArgument, "range \(range.lowerBound)-\(range.upperBound) starts past the end of \(bucket)/\(object.key) (\(size) bytes)")
            }
            first = range.lowerBound
            last = min(range.upperBound, size - 1)
        }
        guard size > 0, first <= last else { return }

        // The chunks the range touches, with the slice of each that it needs.
        var plan: [(index: Int, entry: Manifest.Entry, slice: Range<Int>)] = []
        var offset: Int64 = 0
        for (index, entry) in object.manifest.entries.enumerated() {
            let start = offset, end = offset + Int64(entry.length)
            offset = end
            if end <= first { continue }
            if start > last { break }
            let lower = Int(max(first, start) - start), upper = Int(min(last + 1, end) - start)
            plan.append((index, entry, lower..<upper))
        }

        let sealer = self.sealer, pool = self.pool, catalog = self.catalog
        let objectName = "\(bucket)/\(object.key)"
        var inFlight: [Task<[UInt8], Error>] = []
        defer { for task in inFlight { task.cancel() } }
        var next = 0
        while next < plan.count || !inFlight.isEmpty {
            while next < plan.count && inFlight.count < prefetch {
                let step = plan[next]
                inFlight.append(Task {
                    let locations = try await catalog.chunks.locations(step.entry.id) ?? []
                    guard !locations.isEmpty else {
                        throw StoreError(.integrity, "object \(objectName): chunk \(step.index) (\(step.entry.id.short)) has no recorded location")
                    }
                    do {
                        return try await pool.fetch(step.entry.id, from: locations) { sealed in
                            try sealer.open(sealed, id: step.entry.id, expectedLength: step.entry.length)
                        }
                    } catch let error as StoreError where error.code == .integrity {
                        throw StoreError(.integrity, "object \(objectName): chunk \(step.index) (\(step.entry.id.short)) failed verification on every replica (\(error.message)); no unverified bytes were returned")
                    }
                })
                next += 1
            }
            let plaintext = try await inFlight.removeFirst().value
            let slice = plan[next - inFlight.count - 1].slice
            try await write(plaintext[slice])
            progress?(Int64(slice.count))
        }
    }
}
