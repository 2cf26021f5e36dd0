import ChunkStore
import Foundation

/// AWS Signature Version 4 for header-based authentication, as S3 and its compatibles check it: the
/// S3 backend signs with it, and the server's verifier checks requests against the same canonical
/// request, string to sign, signing key and URI encoding (one implementation of each, here).
/// Checked against AWS's published examples in `SigV4Tests`.
public struct SigV4Signer: Sendable {
    public let accessKeyID: String
    let secretKey: String
    public let region: String
    public let service: String

    public init(accessKeyID: String, secretKey: String, region: String, service: String = "s3") {
        self.accessKeyID = accessKeyID
        self.secretKey = secretKey
        self.region = region
        self.service = service
    }

    /// The SHA-256 of an empty body, hex.
    public static let emptyPayloadHash = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"

    /// Signs a request. `path` is the URI path as sent (already percent-encoded), `query` the
    /// decoded query parameters, `headers` every header to sign (must include `host`; names in any
    /// case). Returns the headers to send: the given ones plus x-amz-date and Authorization.
    public func sign(method: String, path: String, query: [(String, String)], headers: [(String, String)],
                     payloadHash: String, date: Date = Date()) -> [(String, String)] {
        var all = headers
        if !all.contains(where: { $0.0.lowercased() == "x-amz-date" }) { all.append(("x-amz-date", Self.timestamp(date))) }
        let amzDate = all.first { $0.0.lowercased() == "x-amz-date" }!.1
        let day = String(amzDate.prefix(8))
        let canonicalHeaders = Self.canonicalHeaders(all)
        let signedHeaders = canonicalHeaders.map(\.0).joined(separator: ";")
        let canonicalRequest = Self.canonicalRequest(method: method, path: path, canonicalQuery: Self.canonicalQuery(query),
                                                     headers: canonicalHeaders, payloadHash: payloadHash)
        let scope = Self.scope(day: day, region: region, service: service)
        let key = Self.signingKey(secret: secretKey, day: day, region: region, service: service)
        let signature = Self.signature(key: key, of: Self.stringToSign(amzDate: amzDate, scope: scope, canonicalRequest: canonicalRequest))
        all.append(("Authorization", "AWS4-HMAC-SHA256 Credential=\(accessKeyID)/\(scope), SignedHeaders=\(signedHeaders), Signature=\(signature)"))
        return all
    }

    /// Headers as signed: names lowercased, values `trimmed`, sorted by name.
    public static func canonicalHeaders(_ headers: [(String, String)]) -> [(String, String)] {
        headers.map { ($0.0.lowercased(), trimmed($0.1)) }.sorted { $0.0 < $1.0 }
    }

    /// The canonical request: `headers` as `canonicalHeaders` gives them, each one signed.
    public static func canonicalRequest(method: String, path: String, canonicalQuery: String, headers: [(String, String)],
                                        payloadHash: String) -> String {
        [
            method,
            path.isEmpty ? "/" : path,
            canonicalQuery,
            headers.map { "\($0.0):\($0.1)\n" }.joined(),
            headers.map(\.0).joined(separator: ";"),
            payloadHash,
        ].joined(separator: "\n")
    }

    public static func stringToSign(amzDate: String, scope: String, canonicalRequest: String) -> String {
        ["AWS4-HMAC-SHA256", amzDate, scope, Hex.encode(Crypto.sha256(Array(canonicalRequest.utf8)))].joined(separator: "\n")
    }

    /// "20130524/us-east-1/s3/aws4_request": what a signature is good for.
    public static func scope(day: String, region: String, service: String) -> String {
        "\(day)/\(region)/\(service)/aws4_request"
    }

    /// The key for one day, region and service: HMAC chain from "AWS4" + secret.
    public static func signingKey(secret: String, day: String, region: String, service: String) -> [UInt8] {
        var key = Crypto.hmacSHA256(key: Array("AWS4\(secret)".utf8), Array(day.utf8))
        for part in [region, service, "aws4_request"] { key = Crypto.hmacSHA256(key: key, Array(part.utf8)) }
        return key
    }

    /// The signature of a string to sign (a request's, or an aws-chunked chunk's), hex.
    public static func signature(key: [UInt8], of stringToSign: String) -> String {
        Hex.encode(Crypto.hmacSHA256(key: key, Array(stringToSign.utf8)))
    }

    /// "20130524T000000Z": x-amz-date's form.
    public static func timestamp(_ date: Date) -> String {
        let t = HTTPDates.fields(date)
        return String(format: "%04d%02d%02dT%02d%02d%02dZ", t.tm_year + 1900, t.tm_mon + 1, t.tm_mday,
                      t.tm_hour, t.tm_min, t.tm_sec)
    }

    /// The date of an x-amz-date; nil when `text` is not of the form YYYYMMDDTHHMMSSZ.
    public static func date(fromTimestamp text: String) -> Date? {
        let b = Array(text.utf8)
        func number(_ range: Range<Int>) -> Int? {
            var v = 0
            for i in range { guard b[i] >= 0x30 && b[i] <= 0x39 else { return nil }; v = v * 10 + Int(b[i] - 0x30) }
            return v
        }
        guard b.count == 16, b[8] == UInt8(ascii: "T"), b[15] == UInt8(ascii: "Z"),
              let year = number(0..<4), let month = number(4..<6), let day = number(6..<8),
              let hour = number(9..<11), let minute = number(11..<13), let second = number(13..<15) else { return nil }
        return HTTPDates.date(year: year, month: month, day: day, hour: hour, minute: minute, second: second)
    }

    /// Parameters sorted by encoded name, then value; every byte but the unreserved ones encoded.
    public static func canonicalQuery(_ query: [(String, String)]) -> String {
        let encoded: [(name: String, value: String)] = query.map { pair in
            (encode(pair.0, keepSlash: false), encode(pair.1, keepSlash: false))
        }
        let sorted = encoded.sorted { a, b in a.name == b.name ? a.value < b.value : a.name < b.name }
        return sorted.map { "\($0.name)=\($0.value)" }.joined(separator: "&")
    }

    /// RFC 3986 encoding as SigV4 wants it: A–Z a–z 0–9 - _ . ~ kept, `/` kept in paths.
    public static func encode(_ text: String, keepSlash: Bool) -> String {
        var out = ""
        for byte in text.utf8 {
            if unreserved[Int(byte)] || (keepSlash && byte == 0x2F) {
                out.unicodeScalars.append(Unicode.Scalar(byte))
            } else {
                out += String(format: "%%%02X", byte)
            }
        }
        return out
    }

    private static let unreserved: [Bool] = (0..<256).map { (byte: Int) -> Bool in
        let scalar = Character(Unicode.Scalar(UInt8(byte)))
        return scalar.isASCII && (scalar.isLetter || scalar.isNumber || "-_.~".contains(scalar))
    }

    /// A header value as signed: surrounding spaces removed, inner runs of spaces collapsed.
    public static func trimmed(_ value: String) -> String {
        value.split(separator: " ", omittingEmptySubsequences: true).joined(separator: " ")
            .trimmingCharacters(in: .whitespaces)
    }
}
