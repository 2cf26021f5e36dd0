import Foundation
import HTTPTypes

/// Request headers that change what a write means. Automator67 keeps no ACLs, tags, object locks or
/// website redirects and takes no customer or KMS keys: a request that asks for one is refused whole
/// (501 NotImplemented, naming the header) before any byte is stored, never done without it.
/// SSE-S3 is true of every object (each chunk is sealed with AES-256-GCM before it leaves the
/// machine), so `x-amz-server-side-encryption: AES256` is accepted, and every object operation
/// answers with it, as S3 does for a bucket with default encryption (every bucket since 2023).
enum WriteHeaders {
    static let encryption = "x-amz-server-side-encryption"
    static let sseS3 = "AES256"

    /// The operations that answer with `x-amz-server-side-encryption: AES256`.
    static let encryptedAnswers: Set<S3Operation> = [.putObject, .copyObject, .getObject, .headObject, .createMultipartUpload,
                                                     .uploadPart, .uploadPartCopy, .completeMultipartUpload]

    private static let objectWrites: Set<S3Operation> = [.putObject, .copyObject, .createMultipartUpload]
    private static let partWrites: Set<S3Operation> = [.uploadPart, .uploadPartCopy]
    private static let copies: Set<S3Operation> = [.copyObject, .uploadPartCopy]

    /// One header a67 cannot honour: where it matters, what it asks for, and which values are what
    /// a67 does anyway (nil: none is).
    private struct Rule {
        let names: [String]
        let operations: Set<S3Operation>
        let what: String
        var accepted: Set<String>? = nil
    }

    private static let sseC = ["algorithm", "key", "key-md5"]
    private static let rules: [Rule] = [
        Rule(names: sseC.map { "x-amz-server-side-encryption-customer-\($0)" }, operations: objectWrites.union(partWrites),
             what: "encryption with a customer-provided key (SSE-C)"),
        Rule(names: sseC.map { "x-amz-copy-source-server-side-encryption-customer-\($0)" }, operations: copies,
             what: "a copy source encrypted with a customer-provided key (SSE-C)"),
        Rule(names: [encryption], operations: objectWrites, what: "server-side encryption other than AES256 (every object is AES256)",
             accepted: [sseS3]),
        Rule(names: ["x-amz-server-side-encryption-aws-kms-key-id", "x-amz-server-side-encryption-context"], operations: objectWrites,
             what: "encryption with an AWS KMS key"),
        Rule(names: ["x-amz-tagging"], operations: objectWrites, what: "object tags", accepted: [""]),
        Rule(names: ["x-amz-tagging-directive"], operations: [.copyObject], what: "replacing object tags", accepted: ["COPY"]),
        // An object belongs to its bucket's owner, who alone may reach it: the canned ACLs that say so are what a67 does.
        Rule(names: ["x-amz-acl"], operations: objectWrites.union([.createBucket]), what: "access control lists other than private",
             accepted: ["private", "bucket-owner-full-control"]),
        Rule(names: ["read", "write", "read-acp", "write-acp", "full-control"].map { "x-amz-grant-\($0)" },
             operations: objectWrites.union([.createBucket]), what: "access control grants"),
        Rule(names: ["x-amz-object-lock-mode", "x-amz-object-lock-retain-until-date"], operations: objectWrites,
             what: "object lock retention"),
        Rule(names: ["x-amz-object-lock-legal-hold"], operations: objectWrites, what: "object lock legal holds", accepted: ["OFF"]),
        Rule(names: ["x-amz-bucket-object-lock-enabled"], operations: [.createBucket], what: "object lock", accepted: ["false"]),
        Rule(names: ["x-amz-website-redirect-location"], operations: objectWrites, what: "website redirects"),
    ]

    /// Refuses `r` when it asks `operation` for something a67 does not do.
    static func check(_ r: S3Request, _ operation: S3Operation) throws {
        for rule in rules where rule.operations.contains(operation) {
            for name in rule.names {
                guard let value = r.header(name) else { continue }
                if let accepted = rule.accepted, accepted.contains(value.trimmingCharacters(in: .whitespaces)) { continue }
                throw S3Error(.init(code: 501), "NotImplemented",
                              "A header you provided implies functionality that is not implemented: \(name) (\(rule.what) is not implemented by Automator67); send the request without it")
            }
        }
    }
}

/// User metadata values the way S3 keeps them: a value sent as RFC 2047 encoded words
/// (`=?UTF-8?B?...?=`) is decoded before it is stored; a stored value with anything but US-ASCII in it
/// goes back encoded (`=?UTF-8?B?<base64 of its UTF-8>?=`), since a header value is read as ISO-8859-1
/// by most clients; a US-ASCII value goes back as it is.
enum MetadataValue {
    /// What to store for a value as it arrived.
    static func stored(_ value: String) -> String {
        guard value.contains("=?") else { return value }
        var out = ""
        var rest = Substring(value)
        var afterWord = false
        while let start = rest.range(of: "=?") {
            let before = rest[..<start.lowerBound]
            guard let (text, end) = encodedWord(rest[start.lowerBound...]) else {
                out += rest[..<start.upperBound]
                rest = rest[start.upperBound...]
                afterWord = false
                continue
            }
            // Whitespace between two encoded words is not part of the text (RFC 2047, section 6.2).
            if !(afterWord && before.allSatisfy(\.isWhitespace)) { out += before }
            out += text
            rest = rest[end...]
            afterWord = true
        }
        return out + rest
    }

    /// What to send for a stored value.
    static func sent(_ value: String) -> String {
        value.unicodeScalars.allSatisfy(\.isASCII) ? value : "=?UTF-8?B?\(Data(value.utf8).base64EncodedString())?="
    }

    /// `=?charset?B|Q?text?=` at the start of `word`: its text and where it ends; nil when it is not one.
    private static func encodedWord(_ word: Substring) -> (String, String.Index)? {
        let body = word.dropFirst(2)
        guard let mark = body.firstIndex(of: "?") else { return nil }
        let charset = body[..<mark].split(separator: "*").first.map { $0.lowercased() } ?? ""
        let rest = body[body.index(after: mark)...]
        guard let kind = rest.first, rest.dropFirst().first == "?" else { return nil }
        let textStart = rest.index(rest.startIndex, offsetBy: 2)
        guard let close = word[textStart...].range(of: "?=") else { return nil }
        let text = word[textStart..<close.lowerBound]
        guard !text.contains(where: \.isWhitespace) else { return nil }
        let bytes: [UInt8]
        switch kind {
        case "B", "b":
            guard let data = Data(base64Encoded: String(text)) else { return nil }
            bytes = [UInt8](data)
        case "Q", "q":
            var out: [UInt8] = []
            var utf8 = Array(text.utf8)[...]
            while let byte = utf8.popFirst() {
                if byte == UInt8(ascii: "_") {
                    out.append(UInt8(ascii: " "))
                } else if byte == UInt8(ascii: "="), utf8.count >= 2, let hex = UInt8(String(decoding: utf8.prefix(2), as: UTF8.self), radix: 16) {
                    out.append(hex)
                    utf8 = utf8.dropFirst(2)
                } else {
                    out.append(byte)
                }
            }
            bytes = out
        default:
            return nil
        }
        let encodings: [String: String.Encoding] = ["utf-8": .utf8, "utf8": .utf8, "us-ascii": .ascii, "iso-8859-1": .isoLatin1,
                                                    "latin1": .isoLatin1]
        guard let encoding = encodings[charset], let decoded = String(data: Data(bytes), encoding: encoding) else { return nil }
        return (decoded, close.upperBound)
    }
}
