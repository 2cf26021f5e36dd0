import Foundation

/// Just enough XML for S3 listings and WebDAV multistatus replies: elements by local name (namespace
/// prefixes dropped), their text with entities decoded. No DTDs, no validation.
///
/// Documents nest at most `maxDepth` elements deep: S3 bodies and replies need 4 levels and a WebDAV
/// multistatus 6 (multistatus/response/propstat/prop/resourcetype/collection), and a deeper tree is
/// a hazard, not data: releasing a tree 50,000 levels deep recurses once per level and overflows the
/// stack. Nothing here recurses over the tree.
public struct XMLElement: Sendable {
    public let name: String
    public var children: [XMLElement] = []
    public var text = ""

    /// The first child named `name`.
    public func child(_ name: String) -> XMLElement? { children.first { $0.name == name } }
    public func children(_ name: String) -> [XMLElement] { children.filter { $0.name == name } }
    /// Every descendant named `name`, depth first, in document order.
    public func descendants(_ name: String) -> [XMLElement] {
        var found: [XMLElement] = []
        var pending = Array(children.reversed())
        while let next = pending.popLast() {
            if next.name == name { found.append(next) }
            pending.append(contentsOf: next.children.reversed())
        }
        return found
    }

    /// How deep elements may nest (the root is at depth 1).
    public static let maxDepth = 32

    /// Parses `bytes`; nil when they are not well-formed enough to read or nest deeper than `maxDepth`.
    public static func parse(_ bytes: [UInt8]) -> XMLElement? {
        var parser = Parser(bytes: bytes)
        return parser.document()
    }

    private struct Parser {
        let bytes: [UInt8]
        var at = 0

        mutating func document() -> XMLElement? {
            var stack: [XMLElement] = [XMLElement(name: "")]
            while at < bytes.count {
                if bytes[at] == UInt8(ascii: "<") {
                    if starts("<?") { guard skip(past: "?>") else { return nil }; continue }
                    if starts("<!--") { guard skip(past: "-->") else { return nil }; continue }
                    if starts("<![CDATA[") {
                        at += 9
                        let start = at
                        guard skip(past: "]]>") else { return nil }
                        stack[stack.count - 1].text += String(decoding: bytes[start..<(at - 3)], as: UTF8.self)
                        continue
                    }
                    if starts("<!") { guard skip(past: ">") else { return nil }; continue }
                    let start = at + 1
                    guard skip(past: ">") else { return nil }
                    let tag = String(decoding: bytes[start..<(at - 1)], as: UTF8.self)
                    if tag.hasPrefix("/") {
                        guard stack.count > 1 else { return nil }
                        let done = stack.removeLast()
                        guard done.name == Self.localName(String(tag.dropFirst())) else { return nil }
                        stack[stack.count - 1].children.append(done)
                    } else {
                        let selfClosing = tag.hasSuffix("/")
                        let body = selfClosing ? String(tag.dropLast()) : tag
                        let name = Self.localName(String(body.prefix { !$0.isWhitespace }))
                        // The stack holds a placeholder under the root: its count is the new element's depth.
                        guard stack.count <= XMLElement.maxDepth else { return nil }
                        if selfClosing {
                            stack[stack.count - 1].children.append(XMLElement(name: name))
                        } else {
                            stack.append(XMLElement(name: name))
                        }
                    }
                } else {
                    let start = at
                    while at < bytes.count && bytes[at] != UInt8(ascii: "<") { at += 1 }
                    stack[stack.count - 1].text += Self.decodeEntities(String(decoding: bytes[start..<at], as: UTF8.self))
                }
            }
            guard stack.count == 1 else { return nil }
            return stack[0].children.first
        }

        private func starts(_ marker: String) -> Bool {
            let m = Array(marker.utf8)
            return at + m.count <= bytes.count && Array(bytes[at..<(at + m.count)]) == m
        }

        /// Moves past the next `marker`; false when there is none.
        private mutating func skip(past marker: String) -> Bool {
            let m = Array(marker.utf8)
            var i = at
            while i + m.count <= bytes.count {
                if bytes[i] == m[0] && Array(bytes[i..<(i + m.count)]) == m {
                    at = i + m.count
                    return true
                }
                i += 1
            }
            return false
        }

        static func localName(_ qualified: String) -> String {
            let trimmed = qualified.trimmingCharacters(in: .whitespacesAndNewlines)
            return trimmed.lastIndex(of: ":").map { String(trimmed[trimmed.index(after: $0)...]) } ?? trimmed
        }

        static func decodeEntities(_ text: String) -> String {
            guard text.contains("&") else { return text }
            var out = ""
            var rest = Substring(text)
            while let amp = rest.firstIndex(of: "&") {
                out += rest[..<amp]
                guard let semi = rest[amp...].firstIndex(of: ";") else {
                    rest = rest[amp...]
                    break
                }
                let entity = rest[rest.index(after: amp)..<semi]
                switch entity {
                case "amp": out += "&"
                case "lt": out += "<"
                case "gt": out += ">"
                case "quot": out += "\""
                case "apos": out += "'"
                default:
                    let number = entity.hasPrefix("#x") ? UInt32(entity.dropFirst(2), radix: 16)
                        : entity.hasPrefix("#") ? UInt32(entity.dropFirst()) : nil
                    if let number, let scalar = Unicode.Scalar(number) { out.unicodeScalars.append(scalar) }
                    else { out += "&\(entity);" }
                }
                rest = rest[rest.index(after: semi)...]
            }
            return out + rest
        }
    }
}
