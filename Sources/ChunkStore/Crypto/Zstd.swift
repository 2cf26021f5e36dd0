import CZstd
import Synchronization

/// zstd one-shot compression with contexts reused from a small pool (a context holds megabytes of
/// tables; making one per chunk would cost more than compressing small chunks).
public enum Zstd {
    public static let levels = 1...19
    public static let defaultLevel = 3

    private final class Context: @unchecked Sendable {
        let cctx: OpaquePointer
        init() { cctx = ZSTD_createCCtx() }
        deinit { ZSTD_freeCCtx(cctx) }
    }
    private final class DContext: @unchecked Sendable {
        let dctx: OpaquePointer
        init() { dctx = ZSTD_createDCtx() }
        deinit { ZSTD_freeDCtx(dctx) }
    }
    private static let compressors = Mutex<[Context]>([])
    private static let decompressors = Mutex<[DContext]>([])

    public static func compressBound(_ count: Int) -> Int { Int(ZSTD_compressBound(count)) }

    /// Compresses `source` into `destination` (capacity `capacity`); returns the compressed size,
    /// or nil when it would not fit (the caller then stores the bytes uncompressed).
    static func compress(_ source: UnsafeRawBufferPointer, into destination: UnsafeMutableRawPointer, capacity: Int,
                         level: Int) -> Int? {
        withCompressor(level: level) { cctx in
            let written = ZSTD_compress2(cctx, destination, capacity, source.baseAddress, source.count)
            return ZSTD_isError(written) != 0 ? nil : written
        }
    }

    /// Lends a pooled compression context set to `level`; one whose call failed is reset before reuse.
    private static func withCompressor<T>(level: Int, _ body: (OpaquePointer) -> T?) -> T? {
        let context = compressors.withLock { $0.popLast() } ?? Context()
        defer { compressors.withLock { if $0.count < 8 { $0.append(context) } } }
        ZSTD_CCtx_setParameter(context.cctx, ZSTD_c_compressionLevel, Int32(level))
        let result = body(context.cctx)
        if result == nil { ZSTD_CCtx_reset(context.cctx, ZSTD_reset_session_and_parameters) }
        return result
    }

    /// Whether `source` looks worth compressing: three 64 KiB samples (start, middle, end) are
    /// compressed at level 1, and unless they shrink by at least 2% the chunk is treated as
    /// incompressible (random, already compressed or encrypted). Costs about 4% of compressing the
    /// whole chunk, and spares zstd's full pass over data that would not shrink.
    static func looksCompressible(_ source: UnsafeRawBufferPointer) -> Bool {
        let sample = 64 * 1024
        guard source.count > 4 * sample else { return true }
        var scratch = [UInt8](repeating: 0, count: Int(ZSTD_compressBound(sample)))
        let compressed = withCompressor(level: 1) { cctx -> Int? in
            var output = 0
            for start in [0, source.count / 2 - sample / 2, source.count - sample] {
                let written = scratch.withUnsafeMutableBytes { out in
                    ZSTD_compress2(cctx, out.baseAddress, out.count, source.baseAddress! + start, sample)
                }
                if ZSTD_isError(written) != 0 { return nil }
                output += written
            }
            return output
        }
        guard let compressed else { return true }
        return compressed * 100 < 3 * sample * 98
    }

    /// Decompresses one frame into a new array of at most `limit` bytes.
    static func decompress(_ source: UnsafeRawBufferPointer, limit: Int) throws -> [UInt8] {
        let declared = ZSTD_getFrameContentSize(source.baseAddress, source.count)
        guard declared != a67_zstd_content_size_error(), declared != a67_zstd_content_size_unknown(),
              declared <= UInt64(limit) else {
            throw StoreError(.integrity, "compressed chunk body is not a zstd frame of at most \(limit) bytes")
        }
        let context = decompressors.withLock { $0.popLast() } ?? DContext()
        defer { decompressors.withLock { if $0.count < 8 { $0.append(context) } } }
        let size = Int(declared)
        var failure: String?
        let out = [UInt8](unsafeUninitializedCapacity: size) { buffer, count in
            let r = ZSTD_decompressDCtx(context.dctx, buffer.baseAddress, size, source.baseAddress, source.count)
            if ZSTD_isError(r) != 0 || r != size {
                failure = ZSTD_isError(r) != 0 ? String(cString: ZSTD_getErrorName(r)) : "short frame"
                count = 0
            } else {
                count = size
            }
        }
        if let failure { throw StoreError(.integrity, "zstd could not decompress a chunk: \(failure)") }
        return out
    }

    public static var libraryVersion: String { String(cString: ZSTD_versionString()) }
}
