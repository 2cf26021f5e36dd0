import CCurl

/// Versions of the C libraries this build links, for `a67 version`. libcurl arrives for real with
/// the remote backends; ChunkStore owns its shim.
public enum Libraries {
    public static var openssl: String { Crypto.libraryVersion }
    public static var zstd: String { Zstd.libraryVersion }
    public static var curl: String { String(cString: curl_version()) }
}
