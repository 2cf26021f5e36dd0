/// Validation of bucket names and object keys, shared by the CLI, the blob API and the mount.
public enum Names {
    /// S3's rules: 3 to 63 characters of lowercase letters, digits, `.` and `-`, starting and ending
    /// with a letter or digit, no `..`, not shaped like an IP address.
    public static func validateBucket(_ name: String) throws {
        let bytes = Array(name.utf8)
        func fail(_ why: String) -> StoreError {
            StoreError(.invalidArgument, "invalid bucket name \"\(name)\": \(why). Bucket names are 3 to 63 characters of lowercase letters, digits, '.' and '-', starting and ending with a letter or digit")
        }
        guard (3...63).contains(bytes.count) else { throw fail("it has \(bytes.count) characters") }
        let alnum: (UInt8) -> Bool = { ($0 >= 0x61 && $0 <= 0x7a) || ($0 >= 0x30 && $0 <= 0x39) }
        guard bytes.allSatisfy({ alnum($0) || $0 == 0x2e || $0 == 0x2d }) else { throw fail("it has a character other than a-z, 0-9, '.' and '-'") }
        guard alnum(bytes.first!), alnum(bytes.last!) else { throw fail("it must start and end with a letter or digit") }
        guard !name.contains("..") else { throw fail("it contains \"..\"") }
        let parts = name.split(separator: ".")
        if parts.count == 4, parts.allSatisfy({ UInt8($0) != nil }) { throw fail("it is shaped like an IP address") }
    }

    public static let maxKeyBytes = 1024
    public static let maxSegmentBytes = 255

    /// Splits an object key into its path segments: `a/b/c.txt` is the file `c.txt` in the folder
    /// `a/b`, the same entry as the path `/a/b/c.txt` in a mount. Refuses what cannot be a path.
    public static func keySegments(_ key: String) throws -> [String] {
        func fail(_ why: String) -> StoreError {
            StoreError(.invalidArgument, "invalid key \"\(key.replacingOccurrences(of: "\0", with: "\\0"))\": \(why)")
        }
        guard !key.isEmpty else { throw fail("it is empty") }
        guard key.utf8.count <= maxKeyBytes else { throw fail("it is \(key.utf8.count) bytes long; keys are at most \(maxKeyBytes) bytes") }
        guard !key.utf8.contains(0) else { throw fail("it contains a NUL byte") }
        guard !key.hasPrefix("/") else { throw fail("it starts with '/'; write keys without a leading slash") }
        guard !key.hasSuffix("/") else { throw fail("it ends with '/'; a key names a file, not a folder") }
        let segments = key.split(separator: "/", omittingEmptySubsequences: false).map(String.init)
        for segment in segments {
            if segment.isEmpty { throw fail("it contains an empty segment (\"//\")") }
            if segment == "." || segment == ".." { throw fail("it contains a \"\(segment)\" segment") }
            if segment.utf8.count > maxSegmentBytes { throw fail("a segment is longer than \(maxSegmentBytes) bytes") }
        }
        return segments
    }

    /// Provider names: 1 to 32 characters of letters, digits, `-` and `_`.
    public static func validateProvider(_ name: String, what: String = "provider name") throws {
        let ok = (1...32).contains(name.utf8.count) && name.utf8.allSatisfy { c in
            (c >= 0x61 && c <= 0x7a) || (c >= 0x41 && c <= 0x5a) || (c >= 0x30 && c <= 0x39) || c == 0x2d || c == 0x5f
        }
        guard ok else {
            throw StoreError(.invalidArgument, "invalid \(what) \"\(name)\": use 1 to 32 letters, digits, '-' or '_'")
        }
    }
}
