/// Versions of the C libraries ChunkStore links, for `a67 version` (libcurl's is CurlTransport's).
public enum Libraries {
    public static var openssl: String { Crypto.libraryVersion }
    public static var zstd: String { Zstd.libraryVersion }
}
