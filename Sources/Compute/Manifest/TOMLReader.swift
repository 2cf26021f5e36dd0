import ChunkStore

// A small, strict TOML reader for a67app.toml. Not a package: the one on the allowed list (TOMLKit)
// cannot tell the line a key was written on, and every manifest error must name it.
//
// What it reads (TOML 1.0, plus 1.1's newlines and trailing comma in inline tables):
// - comments (`# …`), blank lines, bare keys (`A-Z a-z 0-9 _ -`), quoted keys, dotted keys
//   (`a.b = 1`), table headers (`[a]`, `[a.b]`);
// - basic strings with escapes (`\b \t \n \f \r \" \\ \uXXXX \UXXXXXXXX`) and literal strings;
// - integers (decimal, `0x`, `0o`, `0b`, underscores between digits), floats (with fraction and/or
//   exponent, `inf`, `nan`), booleans;
// - arrays (over several lines, comments inside, a trailing comma) and inline tables `{ A = "x" }`.
// What it refuses, each with an error naming the line: dates and times, arrays of tables (`[[a]]`),
// multi-line strings (`"""`, `'''`), a key set twice, a table defined twice, and the TOML rules about
// extending tables (an inline table is closed; a table made by dotted keys gets no header).

/// A value read from TOML, with the line (1-based) it starts on: for a key's value, the key's line
/// (TOML puts both on one line); for a table, the line of its header, or of the key that made it.
struct TOMLValue: Sendable, Equatable {
    enum Kind: Sendable, Equatable {
        case string(String)
        case integer(Int64)
        case float(Double)
        case boolean(Bool)
        case array([TOMLValue])
        case table(TOMLTable)
    }

    var kind: Kind
    var line: Int

    /// The value for a message that says what was found: `the string "fast"`, `the integer 2`,
    /// `an array`.
    var described: String {
        switch kind {
        case .string(let text): "the string \(TOMLReader.quoted(text))"
        case .integer(let number): "the integer \(number)"
        case .float(let number): "the float \(number)"
        case .boolean(let flag): "the boolean \(flag)"
        case .array: "an array"
        case .table: "a table"
        }
    }
}

/// A TOML table: its keys in the order they were written, each with its value.
struct TOMLTable: Sendable, Equatable {
    struct Entry: Sendable, Equatable {
        var key: String
        var value: TOMLValue
    }

    var entries: [Entry] = []

    subscript(key: String) -> TOMLValue? {
        entries.first { $0.key == key }?.value
    }
}

/// Reads TOML text into a table; errors are `StoreError(.invalidArgument)` whose message starts with
/// `FILE:LINE:`.
enum TOMLReader {
    static func parse(_ text: String, file: String) throws -> TOMLTable {
        var parser = Parser(text: text, file: file)
        return try parser.document()
    }
}

extension TOMLReader {
    /// `"web"`, with what would confuse a reader escaped (quotes, backslashes, controls).
    static func quoted(_ text: String) -> String {
        var out = "\""
        for scalar in text.unicodeScalars {
            switch scalar {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\t": out += "\\t"
            case "\r": out += "\\r"
            default:
                if scalar.value < 0x20 || scalar.value == 0x7F {
                    out += "\\u" + hex(scalar.value, width: 4)
                } else {
                    out.unicodeScalars.append(scalar)
                }
            }
        }
        return out + "\""
    }

    /// A key as TOML would need it written: bare when it can be, quoted otherwise.
    static func key(_ key: String) -> String {
        !key.isEmpty && key.unicodeScalars.allSatisfy(isBareKeyScalar) ? key : quoted(key)
    }
}

private func isBareKeyScalar(_ scalar: Unicode.Scalar) -> Bool {
    switch scalar {
    case "A"..."Z", "a"..."z", "0"..."9", "_", "-": true
    default: false
    }
}

private func hex(_ value: UInt32, width: Int) -> String {
    let digits = String(value, radix: 16, uppercase: true)
    return String(repeating: "0", count: max(0, width - digits.count)) + digits
}

/// A table while the document is read: it still changes, and TOML's rules about which tables may be
/// extended depend on how each was made.
private final class TableBuilder {
    enum Origin {
        /// The document itself.
        case root
        /// Named as the parent in a header (`a` of `[a.b]`): a header of its own may still define it once.
        case implied
        /// Defined by its own header `[a]`.
        case header
        /// Made by a dotted key (`a.b = 1` makes `a`): more dotted keys may add to it, a header may not.
        case dotted
    }

    enum Slot {
        case value(TOMLValue)
        case table(TableBuilder)

        var line: Int {
            switch self {
            case .value(let value): value.line
            case .table(let table): table.line
            }
        }
    }

    var origin: Origin
    var line: Int
    private(set) var keys: [String] = []
    private(set) var slots: [String: Slot] = [:]

    init(origin: Origin, line: Int) {
        self.origin = origin
        self.line = line
    }

    subscript(key: String) -> Slot? { slots[key] }

    func set(_ key: String, _ slot: Slot) {
        if slots[key] == nil { keys.append(key) }
        slots[key] = slot
    }

    func built() -> TOMLTable {
        TOMLTable(entries: keys.map { key in
            switch slots[key]! {
            case .value(let value): TOMLTable.Entry(key: key, value: value)
            case .table(let table): TOMLTable.Entry(key: key, value: TOMLValue(kind: .table(table.built()), line: table.line))
            }
        })
    }
}

private struct Parser {
    let file: String
    let scalars: [Unicode.Scalar]
    var index = 0
    var line = 1

    init(text: String, file: String) {
        self.file = file
        var scalars = Array(text.unicodeScalars)
        if scalars.first == "\u{FEFF}" { scalars.removeFirst() }
        self.scalars = scalars
    }

    // MARK: The document

    mutating func document() throws -> TOMLTable {
        let root = TableBuilder(origin: .root, line: 1)
        var current = root
        var currentPath: [String] = []
        while let scalar = peek() {
            switch scalar {
            case " ", "\t", "\n", "\r", "#":
                try skipBlank()
            case "[":
                (current, currentPath) = try header(root: root)
            default:
                let keyLine = line
                let key = try keyPath()
                try expect("=", "after the key \(shownPath(key)): write KEY = VALUE")
                skipSpaces()
                let value = try value()
                try assign(value, to: key, in: current, at: currentPath, line: keyLine)
                try endOfLine(after: "the value of \(shownPath(key))")
            }
        }
        return root.built()
    }

    /// `[a.b]`: finds or makes the table, and returns it (and its path) as the one the following keys
    /// go into.
    mutating func header(root: TableBuilder) throws -> (TableBuilder, [String]) {
        let headerLine = line
        advance()  // [
        if peek() == "[" {
            throw error("arrays of tables ([[…]]) are not supported here: use a table or an inline table")
        }
        skipSpaces()
        let path = try keyPath()
        try expect("]", "to close the table header [\(shownPath(path))]")
        try endOfLine(after: "the table header [\(shownPath(path))]")
        var table = root
        for (depth, key) in path.enumerated() {
            let shown = shownPath(Array(path[...depth]))
            let isLast = depth == path.count - 1
            switch table[key] {
            case nil:
                let made = TableBuilder(origin: isLast ? .header : .implied, line: headerLine)
                table.set(key, .table(made))
                table = made
            case .table(let existing):
                if isLast {
                    switch existing.origin {
                    case .implied:
                        existing.origin = .header
                        existing.line = headerLine
                    case .header, .root:
                        throw error("table [\(shown)] is already defined on line \(existing.line): define each table once", line: headerLine)
                    case .dotted:
                        throw error("table [\(shown)] is already defined by dotted keys on line \(existing.line): define each table once", line: headerLine)
                    }
                }
                table = existing
            case .value(let value):
                throw error("[\(shownPath(path))] cannot be a table: \(shown) is already set on line \(value.line)"
                    + (isInlineTable(value) ? " as an inline table, which cannot be extended" : ""), line: headerLine)
            }
        }
        return (table, path)
    }

    /// Sets a (maybe dotted) key in `table` (at `tablePath` in the document, for messages), making the
    /// tables a dotted key names.
    func assign(_ value: TOMLValue, to path: [String], in table: TableBuilder, at tablePath: [String] = [], line keyLine: Int) throws {
        var table = table
        for (depth, key) in path.dropLast().enumerated() {
            let shown = shownPath(Array(path[...depth]))
            switch table[key] {
            case nil:
                let made = TableBuilder(origin: .dotted, line: keyLine)
                table.set(key, .table(made))
                table = made
            case .table(let existing) where existing.origin == .dotted:
                table = existing
            case .table(let existing):
                throw error("\(shownPath(path)) cannot be set here: table [\(shownPath(tablePath + path[...depth]))] is defined on line \(existing.line); set its keys under its header", line: keyLine)
            case .value(let existing):
                throw error("\(shownPath(path)) cannot be set: \(shown) is already set on line \(existing.line)"
                    + (isInlineTable(existing) ? " as an inline table, which cannot be extended" : ""), line: keyLine)
            }
        }
        let last = path[path.count - 1]
        if let existing = table[last] {
            throw error("\(shownPath(path)) is already set on line \(existing.line): set each key once", line: keyLine)
        }
        table.set(last, .value(value))
    }

    // MARK: Keys

    /// `a`, `"a b"`, `a.'b'.c`: one or more simple keys joined by dots.
    mutating func keyPath() throws -> [String] {
        var path = [try simpleKey()]
        skipSpaces()
        while peek() == "." {
            advance()
            skipSpaces()
            path.append(try simpleKey())
            skipSpaces()
        }
        return path
    }

    mutating func simpleKey() throws -> String {
        switch peek() {
        case "\"", "'": return try string()
        default:
            var key = String.UnicodeScalarView()
            while let scalar = peek(), isBareKeyScalar(scalar) {
                key.append(scalar)
                advance()
            }
            guard !key.isEmpty else {
                throw error("expected a key, found \(shownNext()): keys are letters, digits, _ and -, or quoted")
            }
            return String(key)
        }
    }

    // MARK: Values

    mutating func value() throws -> TOMLValue {
        let valueLine = line
        switch peek() {
        case "\"":
            if lookingAt("\"\"\"") { throw error("multi-line strings (\"\"\") are not supported: write the string on one line, with \\n for a line break") }
            return TOMLValue(kind: .string(try string()), line: valueLine)
        case "'":
            if lookingAt("'''") { throw error("multi-line strings (''') are not supported: write the string on one line") }
            return TOMLValue(kind: .string(try string()), line: valueLine)
        case "[":
            return TOMLValue(kind: .array(try array()), line: valueLine)
        case "{":
            return TOMLValue(kind: .table(try inlineTable()), line: valueLine)
        case nil, "\n", "\r", "#":
            throw error("expected a value after =")
        default:
            return TOMLValue(kind: try scalarValue(), line: valueLine)
        }
    }

    /// A number, boolean or (refused) date: a run of letters, digits and `+-._:`.
    mutating func scalarValue() throws -> TOMLValue.Kind {
        var token = String.UnicodeScalarView()
        while let scalar = peek(), isTokenScalar(scalar) {
            token.append(scalar)
            advance()
        }
        let text = String(token)
        if text == "true" { return .boolean(true) }
        if text == "false" { return .boolean(false) }
        if text.wholeMatch(of: /[+-]?(0|[1-9](_?[0-9])*)/) != nil {
            guard let number = Int64(text.replacing("_", with: "")) else { throw error("\(text) is too large for an integer") }
            return .integer(number)
        }
        if let match = text.wholeMatch(of: /0([xob])([0-9A-Fa-f](_?[0-9A-Fa-f])*)/) {
            let radix = match.1 == "x" ? 16 : match.1 == "o" ? 8 : 2
            guard let number = Int64(match.2.replacing("_", with: ""), radix: radix) else {
                throw error("\(text) is not an integer: its digits do not fit base \(radix), or it is too large")
            }
            return .integer(number)
        }
        if text.wholeMatch(of: /[+-]?(0|[1-9](_?[0-9])*)(\.[0-9](_?[0-9])*)?([eE][+-]?[0-9](_?[0-9])*)?/) != nil,
           let number = Double(text.replacing("_", with: "")) {
            return .float(number)
        }
        if let match = text.wholeMatch(of: /([+-]?)(inf|nan)/) {
            return .float(match.2 == "nan" ? .nan : match.1 == "-" ? -.infinity : .infinity)
        }
        if text.wholeMatch(of: /[0-9]{4}-[0-9]{2}-[0-9]{2}.*|[0-9]{2}:[0-9]{2}.*/) != nil {
            throw error("dates and times are not supported: write \(text) as a string, in quotes")
        }
        if text.isEmpty { throw error("expected a value, found \(shownNext())") }
        throw error("\(text) is not a value: put text in quotes (\"\(text)\"); numbers are like 2, -1 or 0.5; booleans true or false")
    }

    /// `[1, 2,]` over any number of lines, with comments between the values.
    mutating func array() throws -> [TOMLValue] {
        var values: [TOMLValue] = []
        try items(of: "the array", closedBy: "]", each: "a value") { parser in values.append(try parser.value()) }
        return values
    }

    /// `{ A = "x", b.c = 1 }`; as TOML 1.1 allows, it may span lines and end with a comma.
    mutating func inlineTable() throws -> TOMLTable {
        let table = TableBuilder(origin: .dotted, line: line)
        try items(of: "the inline table", closedBy: "}", each: "a key") { parser in
            let keyLine = parser.line
            let key = try parser.keyPath()
            try parser.expect("=", "after the key \(parser.shownPath(key)): write { KEY = VALUE, … }")
            parser.skipSpaces()
            try parser.assign(try parser.value(), to: key, in: table, line: keyLine)
        }
        return table.built()
    }

    /// The comma-separated items of an array or inline table, from its opening bracket to `closing`,
    /// over any number of lines, with comments between them and maybe a comma after the last.
    mutating func items(of what: String, closedBy closing: Unicode.Scalar, each item: String, _ read: (inout Parser) throws -> Void) throws {
        let openLine = line
        let notClosed = "\(what) opened on line \(openLine) is not closed: end it with \(closing)"
        advance()  // [ or {
        while true {
            try skipBlank()
            if peek() == closing { break }
            guard peek() != nil else { throw error(notClosed) }
            if peek() == "," { throw error("expected \(item) in \(what), found ,") }
            try read(&self)
            try skipBlank()
            if peek() == "," {
                advance()
            } else if peek() != closing {
                throw error(peek() == nil ? notClosed : "expected , or \(closing) in \(what) opened on line \(openLine), found \(shownNext())")
            }
        }
        advance()  // ] or }
    }

    /// `"…"` with escapes, or `'…'` as written; on one line either way.
    mutating func string() throws -> String {
        let quote = scalars[index]  // " or ', as the caller saw
        let basic = quote == "\""
        advance()
        var text = String.UnicodeScalarView()
        while true {
            guard let scalar = peek(), scalar != "\n", scalar != "\r" else {
                throw error("the string is not closed on its line: end it with \(quote)")
            }
            advance()
            if scalar == quote { return String(text) }
            if basic && scalar == "\\" {
                text.append(try escape())
                continue
            }
            try checkNotControl(scalar, in: basic ? "a string" : "a literal string",
                                hint: basic ? "write it as an escape like \\n or \\u0007" : "use a \"basic string\" with an escape")
            text.append(scalar)
        }
    }

    mutating func escape() throws -> Unicode.Scalar {
        guard let scalar = peek() else { throw error("the string is not closed on its line: end it with \"") }
        advance()
        switch scalar {
        case "b": return "\u{08}"
        case "t": return "\t"
        case "n": return "\n"
        case "f": return "\u{0C}"
        case "r": return "\r"
        case "\"": return "\""
        case "\\": return "\\"
        case "u", "U":
            let width = scalar == "u" ? 4 : 8
            var digits = ""
            for _ in 0..<width {
                guard let digit = peek(), digit.properties.isASCIIHexDigit else { break }
                digits.unicodeScalars.append(digit)
                advance()
            }
            guard digits.count == width, let value = UInt32(digits, radix: 16), let result = Unicode.Scalar(value) else {
                throw error("\\\(scalar)\(digits) is not a Unicode character: write \\u and 4 hex digits, or \\U and 8")
            }
            return result
        default:
            throw error("\\\(scalar) is not an escape: the escapes are \\b \\t \\n \\f \\r \\\" \\\\ \\uXXXX \\UXXXXXXXX (write \\\\ for a backslash)")
        }
    }

    // MARK: Blanks, comments, line ends

    mutating func skipSpaces() {
        while peek() == " " || peek() == "\t" { advance() }
    }

    /// Spaces, comments and line ends, as between lines or the values of an array.
    mutating func skipBlank() throws {
        while let scalar = peek() {
            switch scalar {
            case " ", "\t": advance()
            case "#": try comment()
            case "\n", "\r": try newline()
            default: return
            }
        }
    }

    /// What must end a line: spaces, maybe a comment, then a line end (or the end of the text).
    mutating func endOfLine(after what: String) throws {
        skipSpaces()
        if peek() == "#" { try comment() }
        guard let scalar = peek() else { return }
        guard scalar == "\n" || scalar == "\r" else {
            throw error("unexpected \(shownNext()) after \(what): put each key = value on a line of its own")
        }
        try newline()
    }

    mutating func comment() throws {
        while let scalar = peek(), scalar != "\n", scalar != "\r" {
            try checkNotControl(scalar, in: "a comment", hint: "remove it")
            advance()
        }
    }

    mutating func newline() throws {
        if peek() == "\r" {
            advance()
            guard peek() == "\n" else { throw error("a carriage return without a line feed: end lines with \\n or \\r\\n") }
        }
        advance()
        line += 1
    }

    func checkNotControl(_ scalar: Unicode.Scalar, in place: String, hint: String) throws {
        if (scalar.value < 0x20 && scalar != "\t") || scalar.value == 0x7F {
            throw error("control character U+\(hex(scalar.value, width: 4)) in \(place): \(hint)")
        }
    }

    // MARK: Reading

    func peek() -> Unicode.Scalar? {
        index < scalars.count ? scalars[index] : nil
    }

    mutating func advance() {
        index += 1
    }

    func lookingAt(_ text: String) -> Bool {
        let wanted = Array(text.unicodeScalars)
        return scalars[index...].starts(with: wanted)
    }

    mutating func expect(_ scalar: Unicode.Scalar, _ why: String) throws {
        skipSpaces()
        guard peek() == scalar else { throw error("expected \(scalar) \(why), found \(shownNext())") }
        advance()
    }

    /// The next character for a message: `"x"`, `the end of the line`, `the end of the file`.
    func shownNext() -> String {
        switch peek() {
        case nil: "the end of the file"
        case "\n", "\r": "the end of the line"
        case let scalar?: TOMLReader.quoted(String(scalar))
        }
    }

    func isTokenScalar(_ scalar: Unicode.Scalar) -> Bool {
        isBareKeyScalar(scalar) || scalar == "+" || scalar == "." || scalar == ":"
    }

    func isInlineTable(_ value: TOMLValue) -> Bool {
        if case .table = value.kind { true } else { false }
    }

    func shownPath(_ path: [String]) -> String {
        path.map(TOMLReader.key).joined(separator: ".")
    }

    func error(_ message: String, line errorLine: Int? = nil) -> StoreError {
        StoreError(.invalidArgument, "\(file):\(errorLine ?? line): \(message)")
    }
}
