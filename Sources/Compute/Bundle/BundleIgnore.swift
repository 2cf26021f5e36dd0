import ChunkStore
/// The patterns of a folder's `.a67ignore`: which paths stay out of the app's bundle.
///
/// The subset of gitignore it takes, one pattern a line:
/// - Blank lines, and lines starting with `#`, are skipped; trailing spaces are trimmed. `\#` and `\!`
///   start a pattern with a literal `#` or `!`.
/// - `*` matches any run of characters but `/`, `?` one character but `/`.
/// - `**` as a whole segment matches any number of folders: `**/x` (x at any depth), `a/**/b`
///   (b anywhere under a), `a/**` (everything inside a, not a itself).
/// - A pattern ending in `/` matches folders only.
/// - A pattern with a `/` at its start or in its middle is anchored at the bundle's root (`/build`,
///   `src/gen`); one without matches a name at any depth (`*.log`, `node_modules`).
/// - `!pattern` brings back what an earlier pattern left out. The last pattern that matches a path
///   decides. As in git, nothing inside a left-out folder comes back: packing does not look inside it.
/// - Not taken (refused with the line named): character classes `[...]`, and `**` inside a segment.
///
/// Whatever the patterns say, the root's `a67app.toml` is always in the bundle.
public struct BundleIgnore: Sendable, Equatable {
    /// The file the patterns are read from, at the folder's root.
    public static let fileName = ".a67ignore"
    /// The app manifest, kept in every bundle.
    public static let manifestName = "a67app.toml"

    struct Rule: Sendable, Equatable {
        /// The pattern's segments; an unanchored pattern starts with `**`.
        let segments: [[Unicode.Scalar]]
        let negated: Bool
        let directoryOnly: Bool
    }

    let rules: [Rule]

    /// No patterns: everything is in the bundle.
    public static let none = BundleIgnore(rules: [])

    init(rules: [Rule]) { self.rules = rules }

    /// Parses the text of an `.a67ignore`; `file` names it in errors.
    public init(parsing text: String, file: String = BundleIgnore.fileName) throws(StoreError) {
        var rules: [Rule] = []
        for (index, raw) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            var line = Substring(raw.hasSuffix("\r") ? raw.dropLast() : raw)
            while line.hasSuffix(" ") && !line.hasSuffix("\\ ") { line = line.dropLast() }
            if line.isEmpty || line.hasPrefix("#") { continue }
            func bad(_ why: String) -> StoreError {
                StoreError(.invalidArgument, "\(file) line \(index + 1) (\(line)): \(why)")
            }
            var negated = false
            if line.hasPrefix("!") {
                negated = true
                line = line.dropFirst()
            } else if line.hasPrefix("\\#") || line.hasPrefix("\\!") {
                line = line.dropFirst()
            }
            var directoryOnly = false
            if line.hasSuffix("/") {
                directoryOnly = true
                line = line.dropLast()
            }
            let anchored = line.contains("/")
            if line.hasPrefix("/") { line = line.dropFirst() }
            guard !line.isEmpty else { throw bad("the pattern is empty") }
            if line.contains("[") { throw bad("character classes ([...]) are not supported; use * or ? instead") }
            var segments = line.split(separator: "/", omittingEmptySubsequences: false).map(String.init)
            for segment in segments {
                if segment.isEmpty { throw bad("the pattern has an empty segment (//)") }
                if segment.contains("**") && segment != "**" { throw bad("** must be a whole segment, as in **/name or dir/**") }
            }
            if !anchored { segments.insert("**", at: 0) }
            rules.append(Rule(segments: segments.map { Array($0.unicodeScalars) }, negated: negated, directoryOnly: directoryOnly))
        }
        self.rules = rules
    }

    /// Whether the path (relative to the root, `/`-separated) stays out of the bundle.
    public func excludes(_ path: String, isDirectory: Bool) -> Bool {
        if path == Self.manifestName { return false }
        let segments = path.split(separator: "/").map { Array($0.unicodeScalars) }
        var excluded = false
        for rule in rules where !(rule.directoryOnly && !isDirectory) {
            if Self.match(rule.segments[...], segments[...]) { excluded = !rule.negated }
        }
        return excluded
    }

    /// Matches pattern segments against path segments; `**` takes any number of segments, one or more
    /// when it ends the pattern (so `a/**` is what is inside a, not a).
    static func match(_ pattern: ArraySlice<[Unicode.Scalar]>, _ path: ArraySlice<[Unicode.Scalar]>) -> Bool {
        guard let first = pattern.first else { return path.isEmpty }
        if first == ["*", "*"] {
            let rest = pattern.dropFirst()
            let least = rest.isEmpty ? 1 : 0
            guard path.count >= least else { return false }
            for skip in least...path.count where match(rest, path.dropFirst(skip)) { return true }
            return false
        }
        guard let name = path.first, matchSegment(first[...], name[...]) else { return false }
        return match(pattern.dropFirst(), path.dropFirst())
    }

    /// `*` and `?` within one segment; `\\x` is a literal x.
    static func matchSegment(_ pattern: ArraySlice<Unicode.Scalar>, _ name: ArraySlice<Unicode.Scalar>) -> Bool {
        var p = pattern.startIndex, n = name.startIndex
        var star: Int?, resume = name.startIndex
        let asterisk: Unicode.Scalar = "*", question: Unicode.Scalar = "?", backslash: Unicode.Scalar = "\\"
        while n < name.endIndex {
            if p < pattern.endIndex && pattern[p] == asterisk {
                star = p
                resume = n
                p += 1
            } else if p < pattern.endIndex && pattern[p] == backslash && p + 1 < pattern.endIndex && pattern[p + 1] == name[n] {
                p += 2
                n += 1
            } else if p < pattern.endIndex && (pattern[p] == question || pattern[p] == name[n]) && pattern[p] != backslash {
                p += 1
                n += 1
            } else if let s = star {
                p = s + 1
                resume += 1
                n = resume
            } else {
                return false
            }
        }
        while p < pattern.endIndex && pattern[p] == asterisk { p += 1 }
        return p == pattern.endIndex
    }
}
