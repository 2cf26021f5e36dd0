import ChunkStore

// The manifest's tables and values as its decoding sees them: each hands out what it holds checked for
// type and range, and turns every problem into one error that names the file, the line and the key and
// says what to write instead (`a67app.toml:7: [health] interval "fast" is not a duration: write like
// 2s, 500ms or 1m`). The errors are `StoreError(.invalidArgument)`: the CLI prints the message and exits
// with its usage status (64), and an HTTP API that maps StoreError codes (as the S3 API does) answers
// 400, with no mapping of their own.

/// One table of a manifest (the top level, `[health]`, `env = { … }`), its keys checked on the way in.
struct ManifestTable {
    let file: String
    /// The table's dotted name (`health`, `constraints.labels`); nil for the top level.
    let name: String?
    /// The line of its header (or inline table); 1 for the top level.
    let line: Int
    let table: TOMLTable

    /// Refuses keys outside `known` (when given) with an error that lists the known ones.
    init(_ table: TOMLTable, file: String, name: String?, line: Int, known: [String]?) throws {
        self.file = file
        self.name = name
        self.line = line
        self.table = table
        guard let known else { return }
        for entry in table.entries where !known.contains(entry.key) {
            let guess = closest(to: entry.key, in: known).map { " (did you mean \($0)?)" } ?? ""
            let place = name.map { "a key of [\($0)]" } ?? "a top-level key"
            throw field(entry).fail("is not \(place)\(guess): the keys are \(known.joined(separator: ", "))")
        }
    }

    subscript(key: String) -> ManifestField? {
        table[key].map { ManifestField(file: file, label: label(key), value: $0) }
    }

    /// Every key and value, for tables whose keys are the user's (env, labels).
    var fields: [(key: String, field: ManifestField)] {
        table.entries.map { ($0.key, field($0)) }
    }

    /// An error about the table itself, at its header's line.
    func fail(_ problem: String) -> StoreError {
        StoreError(.invalidArgument, "\(file):\(line): [\(name ?? "")] \(problem)")
    }

    /// An error for a required key that is not there. It names no line: the key is on none.
    func missing(_ key: String, _ advice: String) -> StoreError {
        StoreError(.invalidArgument, "\(file): \(label(key)) is missing: \(advice)")
    }

    private func field(_ entry: TOMLTable.Entry) -> ManifestField {
        ManifestField(file: file, label: label(entry.key), value: entry.value)
    }

    /// `name`, `[health] interval`: a key as messages name it.
    private func label(_ key: String) -> String {
        name.map { "[\($0)] " + TOMLReader.key(key) } ?? TOMLReader.key(key)
    }
}

/// One value of a manifest with the key it was written under, read as what the manifest expects there.
struct ManifestField {
    let file: String
    /// How messages name it: `name`, `[health] interval`, `command[0]`.
    let label: String
    let value: TOMLValue

    /// An error about this value: `FILE:LINE: LABEL PROBLEM`.
    func fail(_ problem: String) -> StoreError {
        StoreError(.invalidArgument, "\(file):\(value.line): \(label) \(problem)")
    }

    /// "must be EXPECTED; found the integer 2".
    func wrongType(_ expected: String) -> StoreError {
        fail("must be \(expected); found \(value.described)")
    }

    func string(_ expected: String) throws -> String {
        guard case .string(let text) = value.kind else { throw wrongType(expected) }
        return text
    }

    func bool() throws -> Bool {
        guard case .boolean(let flag) = value.kind else { throw wrongType("true or false") }
        return flag
    }

    func integer(in range: ClosedRange<Int>) throws -> Int {
        guard case .integer(let number) = value.kind else { throw wrongType("a whole number from \(range.lowerBound) to \(range.upperBound)") }
        guard let number = Int(exactly: number), range.contains(number) else {
            throw fail("\(number) is out of range: use \(range.lowerBound) to \(range.upperBound)")
        }
        return number
    }

    /// An integer or a float, like `cpu = 1` or `cpu = 0.5`.
    func number(_ expected: String) throws -> Double {
        switch value.kind {
        case .integer(let number): return Double(number)
        case .float(let number) where number.isFinite: return number
        default: throw wrongType(expected)
        }
    }

    /// A duration written as a string (`"2s"`), within `range`.
    func duration(in range: ClosedRange<Duration>) throws -> Duration {
        let text = try string("a duration in quotes, like \"2s\", \"500ms\" or \"1m\"")
        guard let duration = ManifestUnits.duration(text) else {
            throw fail("\(TOMLReader.quoted(text)) is not a duration: write like 2s, 500ms or 1m")
        }
        guard range.contains(duration) else {
            throw fail("\(text) is out of range: use \(ManifestUnits.written(range.lowerBound)) to \(ManifestUnits.written(range.upperBound))")
        }
        return duration
    }

    /// A size written as a string (`"128M"`), within `range` bytes.
    func size(in range: ClosedRange<Int64>) throws -> Int64 {
        let text = try string("a size in quotes, like \"128M\" or \"1G\"")
        guard let bytes = ManifestUnits.size(text) else {
            throw fail("\(TOMLReader.quoted(text)) is not a size: write like 512K, 128M or 1G (powers of 1024)")
        }
        guard range.contains(bytes) else { throw fail("\(text) is out of range: use \(ManifestUnits.written(bytes: range.lowerBound)) to \(ManifestUnits.written(bytes: range.upperBound))") }
        return bytes
    }

    /// The elements of an array, each a field named `LABEL[INDEX]` at its own line.
    func array(_ expected: String) throws -> [ManifestField] {
        guard case .array(let values) = value.kind else { throw wrongType(expected) }
        return values.enumerated().map { index, element in
            ManifestField(file: file, label: "\(label)[\(index)]", value: element)
        }
    }

    /// A table (`[health]` or an inline `{ … }`), its keys checked against `known` when given.
    func table(named name: String, known: [String]?) throws -> ManifestTable {
        guard case .table(let table) = value.kind else { throw wrongType("a table, like [\(name)] or \(TOMLReader.key(name.split(separator: ".").last.map(String.init) ?? name)) = { … }") }
        return try ManifestTable(table, file: file, name: name, line: value.line, known: known)
    }
}

/// The known key nearest to a mistyped one (at most two edits away), for "did you mean".
private func closest(to key: String, in known: [String]) -> String? {
    let typed = Array(key.lowercased())
    let scored = known.map { candidate -> (String, Int) in
        let target = Array(candidate)
        var previous = Array(0...target.count)
        for (i, a) in typed.enumerated() {
            var current = [i + 1]
            for (j, b) in target.enumerated() {
                current.append(min(previous[j + 1] + 1, current[j] + 1, previous[j] + (a == b ? 0 : 1)))
            }
            previous = current
        }
        return (candidate, previous[target.count])
    }
    return scored.filter { $0.1 <= 2 && $0.1 < key.count }.min { $0.1 < $1.1 }?.0
}
