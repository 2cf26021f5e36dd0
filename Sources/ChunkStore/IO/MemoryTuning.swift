import CGlibc

public enum MemoryTuning {
    /// Makes glibc's malloc keep freed chunk-sized buffers (5 MiB) for reuse instead of handing each
    /// back to the kernel. By default every such buffer is a fresh mmap whose pages the kernel must
    /// fault in and zero: measured here, that cost about 0.6 s of CPU per GiB moved and doubled peak
    /// RSS (to 210-250 MB for a 1 GiB put; 115-140 MB tuned). Memory stays bounded by the pipelines'
    /// chunk windows. Call once at start-up, before other threads allocate.
    public static func configureForChunkBuffers() {
        _ = mallopt(M_MMAP_THRESHOLD, 64 << 20)
        _ = mallopt(M_TRIM_THRESHOLD, 128 << 20)
        _ = mallopt(M_ARENA_MAX, 2)
    }

    /// For long-running processes (the mount): freed memory above `bytes` goes back to the kernel.
    public static func limitRetainedMemory(_ bytes: Int) {
        _ = mallopt(M_TRIM_THRESHOLD, Int32(clamping: bytes))
    }
}
