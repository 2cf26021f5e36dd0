import ChunkStore
@testable import Compute
import Foundation
import Testing

// The app manifest (a67app.toml): the TOML reader on its own.

// MARK: The TOML reader

/// A parsed document written back compactly, so a case states its whole expected tree in one line:
/// `{a=1,b="x",c=[1,2.5],d={e=true}}`.
private func render(_ value: TOMLValue) -> String {
    switch value.kind {
    case .string(let text): TOMLReader.quoted(text)
    case .integer(let number): String(number)
    case .float(let number): String(number)
    case .boolean(let flag): String(flag)
    case .array(let values): "[" + values.map(render).joined(separator: ",") + "]"
    case .table(let table): render(table)
    }
}

private func render(_ table: TOMLTable) -> String {
    "{" + table.entries.map { TOMLReader.key($0.key) + "=" + render($0.value) }.joined(separator: ",") + "}"
}

/// The message of the `StoreError(.invalidArgument)` that `body` throws, or a failure.
private func invalidArgument(_ body: () throws -> Void, sourceLocation: SourceLocation = #_sourceLocation) -> String? {
    do {
        try body()
        Issue.record("no error thrown", sourceLocation: sourceLocation)
        return nil
    } catch let error as StoreError {
        #expect(error.code == .invalidArgument, sourceLocation: sourceLocation)
        return error.message
    } catch {
        Issue.record("threw \(error), not a StoreError", sourceLocation: sourceLocation)
        return nil
    }
}

@Suite struct TOMLReaderTests {
    @Test(arguments: [
        ("", "{}"),
        ("# only a comment\n\n   \n", "{}"),
        ("a = 1 # trailing comment\nb = -2\nc = +3\nd = 1_000", "{a=1,b=-2,c=3,d=1000}"),
        ("hex = 0xDEAD_beef\noct = 0o755\nbin = 0b1010", "{hex=3735928559,oct=493,bin=10}"),
        ("f = 0.5\ng = -1e3\nh = 6.25E-2\ni = 1_0.5\nj = inf\nk = -inf", "{f=0.5,g=-1000.0,h=0.0625,i=10.5,j=inf,k=-inf}"),
        ("t = true\nf = false", "{t=true,f=false}"),
        (#"s = "tab\there \"q\" back\\slash \u00e9 \U0001F600 nl\n""#, #"{s="tab\there \"q\" back\\slash é 😀 nl\n"}"#),
        (#"s = 'C:\no\escapes "here"'"#, #"{s="C:\\no\\escapes \"here\""}"#),
        (#"s = """#, #"{s=""}"#),
        ("\"quoted key\" = 1\n'literal key' = 2\nbare-key_1 = 3\n1234 = 4", #"{"quoted key"=1,"literal key"=2,bare-key_1=3,1234=4}"#),
        ("a.b.c = 1\na.b.d = 2\na . \"e f\" = 3", #"{a={b={c=1,d=2},"e f"=3}}"#),
        ("[t]\nx = 1\n[u.v]\ny = 2\n[u]\nz = 3", "{t={x=1},u={v={y=2},z=3}}"),
        ("[ t . \"s p\" ]  # spaces in a header\nx = 1", #"{t={"s p"={x=1}}}"#),
        ("[a]\nb.c = 1\n[a.b.d]\ne = 2", "{a={b={c=1,d={e=2}}}}"),
        ("e = {}\nt = { A = \"x\", b.c = 1, d = { e = [1] } }", #"{e={},t={A="x",b={c=1},d={e=[1]}}}"#),
        ("t = {\n  a = 1, # one\n  b = 2,\n}", "{t={a=1,b=2}}"),
        ("a = []\nb = [1, \"two\", [3], { four = 4 }]", #"{a=[],b=[1,"two",[3],{four=4}]}"#),
        ("a = [\n  1,   # first\n  # between\n  2,\n]\nb = 3", "{a=[1,2],b=3}"),
        ("a = 1\r\nb = 2\r\n", "{a=1,b=2}"),
        ("\u{FEFF}a = 1", "{a=1}"),
    ])
    func reads(text: String, expected: String) throws {
        let table = try TOMLReader.parse(text, file: "t.toml")
        #expect(render(table) == expected)
    }

    @Test func nanIsAFloat() throws {
        let table = try TOMLReader.parse("n = nan", file: "t.toml")
        guard case .float(let number)? = table["n"]?.kind else { Issue.record("not a float"); return }
        #expect(number.isNaN)
    }

    /// Every value remembers the line it starts on (its key's line); a table, its header's line or the
    /// key that made it; an array's elements, their own lines.
    @Test func valuesRememberTheirLines() throws {
        let text = """
            # comment
            name = "web"

            a.b = 1
            list = [
              "x",

              "y",
            ]
            [health]
            http = "/h"
            [u.v]
            w = { x = 1,
              y = 2 }
            """
        let table = try TOMLReader.parse(text, file: "t.toml")
        func line(_ path: String...) -> Int? {
            var value = table[path[0]]
            for key in path.dropFirst() {
                guard case .table(let inner)? = value?.kind else { return nil }
                value = inner[key]
            }
            return value?.line
        }
        #expect(line("name") == 2)
        #expect(line("a") == 4)
        #expect(line("a", "b") == 4)
        #expect(line("list") == 5)
        guard case .array(let elements)? = table["list"]?.kind else { Issue.record("not an array"); return }
        #expect(elements.map(\.line) == [6, 8])
        #expect(line("health") == 10)
        #expect(line("health", "http") == 11)
        #expect(line("u") == 12)
        #expect(line("u", "v") == 12)
        #expect(line("u", "v", "w") == 13)
        #expect(line("u", "v", "w", "y") == 14)
    }

    /// A header for an implied table moves its line to the header.
    @Test func anImpliedTableTakesItsHeadersLine() throws {
        let table = try TOMLReader.parse("[a.b]\nx = 1\n\n[a]\ny = 2", file: "t.toml")
        #expect(table["a"]?.line == 4)
    }

    @Test(arguments: [
        // What the manifest does not need, refused by name.
        ("when = 1979-05-27", "t.toml:1: dates and times are not supported: write 1979-05-27 as a string, in quotes"),
        ("a = 1\nwhen = 07:32:00", "t.toml:2: dates and times are not supported: write 07:32:00 as a string, in quotes"),
        ("[[apps]]\nname = 1", "t.toml:1: arrays of tables ([[…]]) are not supported here: use a table or an inline table"),
        ("s = \"\"\"\nx\"\"\"", "t.toml:1: multi-line strings (\"\"\") are not supported: write the string on one line, with \\n for a line break"),
        ("s = '''x'''", "t.toml:1: multi-line strings (''') are not supported: write the string on one line"),
        // Keys and tables defined twice.
        ("a = 1\nb = 2\na = 3", "t.toml:3: a is already set on line 1: set each key once"),
        ("\"a\" = 1\na = 2", "t.toml:2: a is already set on line 1: set each key once"),
        ("a.b = 1\na.b = 2", "t.toml:2: a.b is already set on line 1: set each key once"),
        ("a = 1\na.b = 2", "t.toml:2: a.b cannot be set: a is already set on line 1"),
        ("t = { a = 1, a = 2 }", "t.toml:1: a is already set on line 1: set each key once"),
        ("[t]\nx = 1\n\n[t]\ny = 2", "t.toml:4: table [t] is already defined on line 1: define each table once"),
        ("[a.b]\n[a]\n[a]", "t.toml:3: table [a] is already defined on line 2: define each table once"),
        ("a.b = 1\n[a]", "t.toml:2: table [a] is already defined by dotted keys on line 1: define each table once"),
        ("t = { a = 1 }\n[t]", "t.toml:2: [t] cannot be a table: t is already set on line 1 as an inline table, which cannot be extended"),
        ("t = { a = 1 }\nt.b = 2", "t.toml:2: t.b cannot be set: t is already set on line 1 as an inline table, which cannot be extended"),
        ("a = 1\n[a.b]", "t.toml:2: [a.b] cannot be a table: a is already set on line 1"),
        ("[a.b]\n[a]\nb.c = 1", "t.toml:3: b.c cannot be set here: table [a.b] is defined on line 1; set its keys under its header"),
        // Syntax.
        ("name = web", "t.toml:1: web is not a value: put text in quotes (\"web\"); numbers are like 2, -1 or 0.5; booleans true or false"),
        ("a = 01", "t.toml:1: 01 is not a value: put text in quotes (\"01\"); numbers are like 2, -1 or 0.5; booleans true or false"),
        ("a = 1__0", "t.toml:1: 1__0 is not a value: put text in quotes (\"1__0\"); numbers are like 2, -1 or 0.5; booleans true or false"),
        ("a = .5", "t.toml:1: .5 is not a value: put text in quotes (\".5\"); numbers are like 2, -1 or 0.5; booleans true or false"),
        ("a = 99999999999999999999", "t.toml:1: 99999999999999999999 is too large for an integer"),
        ("a = 0o9", "t.toml:1: 0o9 is not an integer: its digits do not fit base 8, or it is too large"),
        ("a =", "t.toml:1: expected a value after ="),
        ("a = # nothing", "t.toml:1: expected a value after ="),
        ("a", "t.toml:1: expected = after the key a: write KEY = VALUE, found the end of the file"),
        ("a b = 1", "t.toml:1: expected = after the key a: write KEY = VALUE, found \"b\""),
        ("= 1", "t.toml:1: expected a key, found \"=\": keys are letters, digits, _ and -, or quoted"),
        ("a = 1 b = 2", "t.toml:1: unexpected \"b\" after the value of a: put each key = value on a line of its own"),
        ("[t] x = 1", "t.toml:1: unexpected \"x\" after the table header [t]: put each key = value on a line of its own"),
        ("[t", "t.toml:1: expected ] to close the table header [t], found the end of the file"),
        ("a = \"open\nb = 1", "t.toml:1: the string is not closed on its line: end it with \""),
        ("a = 'open", "t.toml:1: the string is not closed on its line: end it with '"),
        (#"a = "\q""#, #"t.toml:1: \q is not an escape: the escapes are \b \t \n \f \r \" \\ \uXXXX \UXXXXXXXX (write \\ for a backslash)"#),
        (#"a = "\u12""#, #"t.toml:1: \u12 is not a Unicode character: write \u and 4 hex digits, or \U and 8"#),
        (#"a = "\uD800""#, #"t.toml:1: \uD800 is not a Unicode character: write \u and 4 hex digits, or \U and 8"#),
        ("a = \"bell\u{07}\"", "t.toml:1: control character U+0007 in a string: write it as an escape like \\n or \\u0007"),
        ("# bell\u{07}", "t.toml:1: control character U+0007 in a comment: remove it"),
        ("a = 1\rb = 2", "t.toml:1: a carriage return without a line feed: end lines with \\n or \\r\\n"),
        ("a = [1,\n2", "t.toml:2: the array opened on line 1 is not closed: end it with ]"),
        ("a = [1 2]", "t.toml:1: expected , or ] in the array opened on line 1, found \"2\""),
        ("a = [1,,2]", "t.toml:1: expected a value in the array, found ,"),
        ("a = { b = 1 c = 2 }", "t.toml:1: expected , or } in the inline table opened on line 1, found \"c\""),
        ("a = { b = 1", "t.toml:1: the inline table opened on line 1 is not closed: end it with }"),
        ("a = { b = 1,, }", "t.toml:1: expected a key in the inline table, found ,"),
        ("a = {\n  b = 1\n", "t.toml:3: the inline table opened on line 1 is not closed: end it with }"),
    ])
    func refuses(text: String, message: String) {
        #expect(invalidArgument { _ = try TOMLReader.parse(text, file: "t.toml") } == message)
    }
}
