import ChunkStore
import Foundation
import S3Protocol
import Testing
@testable import Server

/// The pieces of the S3 server that do not need a socket: checksums, aws-chunked decoding with
/// AWS's published streaming example, ranges.
@Suite struct StreamingTests {
    @Test func crcVectors() {
        var crc = CRC32(.ieee)
        crc.update(Array("123456789".utf8))
        #expect(crc.value == [0xCB, 0xF4, 0x39, 0x26])
        var castagnoli = CRC32(.castagnoli)
        castagnoli.update(Array("123456789".utf8))
        #expect(castagnoli.value == [0xE3, 0x06, 0x92, 0x83])
        // Fed in odd pieces, the same as in one.
        let data = (0..<100_003).map { UInt8(truncatingIfNeeded: $0 &* 2_654_435_761 >> 7) }
        var whole = CRC32(.ieee), pieces = CRC32(.ieee)
        whole.update(data)
        var at = 0
        for size in [1, 7, 8, 9, 4096, 13] { pieces.update(Array(data[at..<(at + size)])); at += size }
        pieces.update(Array(data[at...]))
        #expect(whole.value == pieces.value)
    }

    @Test func digestsMatchOneShot() {
        let md5 = StreamDigest(.md5)
        md5.update(Array("a".utf8))
        md5.update(Array("bc".utf8))
        #expect(Hex.encode(md5.finish()) == "900150983cd24fb0d6963f7d28e17f72")
        let sha1 = StreamDigest(.sha1)
        sha1.update(Array("abc".utf8))
        #expect(Hex.encode(sha1.finish()) == "a9993e364706816aba3e25717850c26c9cd0d89d")
        let data = Crypto.randomBytes(70_000)
        let sha = StreamDigest(.sha256)
        sha.update(Array(data[..<1000]))
        sha.update(Array(data[1000...]))
        #expect(sha.finish() == Crypto.sha256(data))
    }

    /// AWS's example "Signature Calculations for the Authorization Header: Transferring Payload in
    /// Multiple Chunks" (a 66,560-byte object in chunks of 65,536 and 1,024 bytes).
    static let secret = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
    static let seed = "4f232c4386841ef735655705268965c44a0e4690baa4adea153f7db9fa80a0a9"
    static let chunkSignatures = ["ad80c730a21e5b8d04586a2213dd63b9a0e99e0e2307b0ade35a65485a288648",
                                  "0055627c9e194cb4542bae2aa5492e3c1575bbb81b612b7d234b86a503ef5497",
                                  "b6c6ea8a5354eaf15b3cb7646744f4275b71ea724fed81ceb9323e279d449df9"]

    static var signing: ChunkSigning {
        ChunkSigning(key: SigV4Signer.signingKey(secret: secret, day: "20130524", region: "us-east-1", service: "s3"),
                     amzDate: "20130524T000000Z", scope: "20130524/us-east-1/s3/aws4_request", seedSignature: seed)
    }

    @Test func seedSignatureOfTheExample() {
        let signer = SigV4Signer(accessKeyID: "AKIAIOSFODNN7EXAMPLE", secretKey: Self.secret, region: "us-east-1")
        let headers = signer.sign(method: "PUT", path: "/examplebucket/chunkObject.txt", query: [], headers: [
            ("Host", "s3.amazonaws.com"), ("x-amz-date", "20130524T000000Z"), ("x-amz-storage-class", "REDUCED_REDUNDANCY"),
            ("Content-Encoding", "aws-chunked"), ("x-amz-decoded-content-length", "66560"), ("Content-Length", "66824"),
            ("x-amz-content-sha256", "STREAMING-AWS4-HMAC-SHA256-PAYLOAD"),
        ], payloadHash: "STREAMING-AWS4-HMAC-SHA256-PAYLOAD")
        #expect(headers.last!.1.hasSuffix("Signature=\(Self.seed)"))
    }

    static func exampleBody(signatures: [String]) -> [UInt8] {
        var body: [UInt8] = []
        for (size, signature) in zip([65536, 1024, 0], signatures) {
            body += Array("\(String(size, radix: 16));chunk-signature=\(signature)\r\n".utf8)
            body += [UInt8](repeating: UInt8(ascii: "a"), count: size)
            body += Array("\r\n".utf8)
        }
        return body
    }

    static func decode(_ body: [UInt8], signing: ChunkSigning?, trailer: Bool = false, pieceSize: Int) throws -> [UInt8] {
        let decoder = AWSChunkedDecoder(signing: signing, trailer: trailer)
        var out: [UInt8] = []
        var at = 0
        while at < body.count {
            let end = min(body.count, at + pieceSize)
            try Array(body[at..<end]).withUnsafeBytes { try decoder.feed($0, into: &out) }
            at = end
        }
        try decoder.finish()
        return out
    }

    @Test(arguments: [1, 100, 65_600, 1 << 20])
    func decodesTheSignedExample(pieceSize: Int) throws {
        let out = try Self.decode(Self.exampleBody(signatures: Self.chunkSignatures), signing: Self.signing, pieceSize: pieceSize)
        #expect(out == [UInt8](repeating: UInt8(ascii: "a"), count: 66560))
    }

    @Test func refusesAlteredChunksAndSignatures() {
        var body = Self.exampleBody(signatures: Self.chunkSignatures)
        body[200] = UInt8(ascii: "b")
        #expect(throws: S3Error.self) { try Self.decode(body, signing: Self.signing, pieceSize: 4096) }
        var swapped = Self.chunkSignatures
        swapped.swapAt(0, 1)
        #expect(throws: S3Error.self) {
            try Self.decode(Self.exampleBody(signatures: swapped), signing: Self.signing, pieceSize: 4096)
        }
        // Cut before the final chunk: incomplete, never accepted.
        let whole = Self.exampleBody(signatures: Self.chunkSignatures)
        #expect(throws: S3Error.self) { try Self.decode(Array(whole[..<66_000]), signing: Self.signing, pieceSize: 4096) }
    }

    @Test func unsignedChunksWithATrailer() throws {
        let body = Array("5\r\nhello\r\n6\r\n world\r\n0\r\nx-amz-checksum-crc32:DUoRhQ==\r\n\r\n".utf8)
        let decoder = AWSChunkedDecoder(signing: nil, trailer: true)
        var out: [UInt8] = []
        try body.withUnsafeBytes { try decoder.feed($0, into: &out) }
        try decoder.finish()
        #expect(out == Array("hello world".utf8))
        #expect(decoder.trailers["x-amz-checksum-crc32"] == "DUoRhQ==")
        var crc = CRC32(.ieee)
        crc.update(out)
        #expect(Data(crc.value).base64EncodedString() == "DUoRhQ==")
    }

    @Test func ranges() throws {
        #expect(try S3Handler.parseRange("bytes=3-9", size: 100) == 3...9)
        #expect(try S3Handler.parseRange("bytes=90-", size: 100) == 90...99)
        #expect(try S3Handler.parseRange("bytes=-5", size: 100) == 95...99)
        #expect(try S3Handler.parseRange("bytes=50-500", size: 100) == 50...99)
        #expect(try S3Handler.parseRange("bytes=0-1,5-6", size: 100) == nil)
        #expect(throws: S3Error.self) { try S3Handler.parseRange("bytes=100-", size: 100) }
        #expect(throws: S3Error.self) { try S3Handler.parseRange("bytes=-5", size: 0) }
    }
}
