/// Builds S3's XML documents (the server's replies). Text is escaped; nothing else is needed: no
/// attributes but the root's namespace, no declarations but the first line.
public struct XMLWriter {
    private(set) var out: [UInt8] = []

    public static func document(_ root: String, namespace: Bool = true, _ build: (inout XMLWriter) -> Void) -> [UInt8] {
        var writer = XMLWriter()
        writer.out.append(contentsOf: Array("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n".utf8))
        writer.raw(namespace ? "<\(root) xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\">" : "<\(root)>")
        build(&writer)
        writer.raw("</\(root)>")
        return writer.out
    }

    public mutating func raw(_ text: String) { out.append(contentsOf: Array(text.utf8)) }

    public mutating func element(_ name: String, _ text: String) {
        raw("<\(name)>")
        for byte in text.utf8 {
            switch byte {
            case UInt8(ascii: "<"): raw("&lt;")
            case UInt8(ascii: ">"): raw("&gt;")
            case UInt8(ascii: "&"): raw("&amp;")
            case UInt8(ascii: "\""): raw("&quot;")
            case UInt8(ascii: "'"): raw("&apos;")
            case 0..<0x20 where byte != 0x09 && byte != 0x0A && byte != 0x0D: raw("&#x\(String(byte, radix: 16));")
            default: out.append(byte)
            }
        }
        raw("</\(name)>")
    }

    public mutating func element(_ name: String, _ build: (inout XMLWriter) -> Void) {
        raw("<\(name)>")
        build(&self)
        raw("</\(name)>")
    }
}
