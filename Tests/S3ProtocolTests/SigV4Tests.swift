import ChunkStore
import Foundation
import S3Protocol
import Testing

/// AWS's published Signature V4 examples: the S3 header-auth examples ("Examples: Signature
/// Calculations in AWS Signature Version 4", Amazon S3 API reference) and get-vanilla from the
/// aws-sig-v4-test-suite.
@Suite struct SigV4Tests {
    static let s3 = SigV4Signer(accessKeyID: "AKIAIOSFODNN7EXAMPLE", secretKey: "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
                                region: "us-east-1")
    static let emptyHash = SigV4Signer.emptyPayloadHash

    static func signature(_ headers: [(String, String)]) -> String {
        let auth = headers.first { $0.0 == "Authorization" }!.1
        return String(auth[auth.range(of: "Signature=")!.upperBound...])
    }

    @Test func getObjectWithRange() {
        let headers = Self.s3.sign(method: "GET", path: "/test.txt", query: [], headers: [
            ("Host", "examplebucket.s3.amazonaws.com"), ("Range", "bytes=0-9"),
            ("x-amz-content-sha256", Self.emptyHash), ("x-amz-date", "20130524T000000Z"),
        ], payloadHash: Self.emptyHash)
        #expect(Self.signature(headers) == "f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41")
        #expect(headers.last!.1.hasPrefix("AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request, SignedHeaders=host;range;x-amz-content-sha256;x-amz-date, "))
    }

    @Test func putObject() {
        let body = Array("Welcome to Amazon S3.".utf8)
        let hash = Hex.encode(Crypto.sha256(body))
        #expect(hash == "44ce7dd67c959e0d3524ffac1771dfbba87d2b6b4b4e99e42034a8b803f8b072")
        let headers = Self.s3.sign(method: "PUT", path: "/" + SigV4Signer.encode("test$file.text", keepSlash: true), query: [], headers: [
            ("Host", "examplebucket.s3.amazonaws.com"), ("Date", "Fri, 24 May 2013 00:00:00 GMT"),
            ("x-amz-date", "20130524T000000Z"), ("x-amz-storage-class", "REDUCED_REDUNDANCY"),
            ("x-amz-content-sha256", hash),
        ], payloadHash: hash)
        #expect(Self.signature(headers) == "98ad721746da40c64f1a55b78f14c238d841ea1380cd77a1b5971af0ece108bd")
    }

    @Test func getBucketLifecycle() {
        let headers = Self.s3.sign(method: "GET", path: "/", query: [("lifecycle", "")], headers: [
            ("Host", "examplebucket.s3.amazonaws.com"), ("x-amz-date", "20130524T000000Z"),
            ("x-amz-content-sha256", Self.emptyHash),
        ], payloadHash: Self.emptyHash)
        #expect(Self.signature(headers) == "fea454ca298b7da1c68078a5d1bdbfbbe0d65c699e0f91ac7a200a0136783543")
    }

    @Test func listObjectsWithQuerySorted() {
        let headers = Self.s3.sign(method: "GET", path: "/", query: [("prefix", "J"), ("max-keys", "2")], headers: [
            ("Host", "examplebucket.s3.amazonaws.com"), ("x-amz-date", "20130524T000000Z"),
            ("x-amz-content-sha256", Self.emptyHash),
        ], payloadHash: Self.emptyHash)
        #expect(Self.signature(headers) == "34b48302e7b5fa45bde8084f4b7868a86f0a534bc59db6670ed5711ef69dc6f7")
    }

    @Test func testSuiteGetVanilla() {
        let signer = SigV4Signer(accessKeyID: "AKIDEXAMPLE", secretKey: "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
                                 region: "us-east-1", service: "service")
        let headers = signer.sign(method: "GET", path: "/", query: [], headers: [
            ("Host", "example.amazonaws.com"), ("X-Amz-Date", "20150830T123600Z"),
        ], payloadHash: Self.emptyHash)
        #expect(Self.signature(headers) == "5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31")
    }

    @Test func encodingKeepsUnreservedOnly() {
        #expect(SigV4Signer.encode("a b/c~d*e+f=", keepSlash: true) == "a%20b/c~d%2Ae%2Bf%3D")
        #expect(SigV4Signer.encode("a/b", keepSlash: false) == "a%2Fb")
        #expect(SigV4Signer.canonicalQuery([("b", "2"), ("a", "x y"), ("a", "1")]) == "a=1&a=x%20y&b=2")
    }

    @Test func timestampsBothWays() throws {
        let date = Date(timeIntervalSince1970: 1_369_353_600)
        #expect(SigV4Signer.timestamp(date) == "20130524T000000Z")
        #expect(SigV4Signer.date(fromTimestamp: "20130524T000000Z") == date)
        for bad in ["20130524T000000", "2013-05-24T00:00:00Z", "20130524X000000Z", "2013052aT000000Z", ""] {
            #expect(SigV4Signer.date(fromTimestamp: bad) == nil, "\(bad)")
        }
    }
}

/// HTTP's and S3's date forms, both ways where both are read.
@Suite struct HTTPDatesTests {
    @Test func imfFixdateBothWays() {
        let date = Date(timeIntervalSince1970: 784_111_777)
        #expect(HTTPDates.format(date) == "Sun, 06 Nov 1994 08:49:37 GMT")
        #expect(HTTPDates.parse("Sun, 06 Nov 1994 08:49:37 GMT") == date)
        #expect(HTTPDates.parse("Sunday, 06-Nov-94 08:49:37 GMT") == nil)
        #expect(HTTPDates.parse("Sun, 06 Nov 1994 08:49 GMT") == nil)
    }

    @Test func iso8601WithMilliseconds() {
        #expect(HTTPDates.iso8601(Date(timeIntervalSince1970: 1_255_369_830.25)) == "2009-10-12T17:50:30.250Z")
    }
}
