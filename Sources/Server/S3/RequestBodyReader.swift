import ChunkStore
import Foundation
import HTTPTypes
import Hummingbird
import S3Protocol

/// Reads a request body in pieces as it arrives, decoding aws-chunked framing, and checks it on the
/// way: the MD5 (ETag and Content-MD5), the signed SHA-256 or chunk signatures, a CRC32, CRC32C,
/// SHA-1 or SHA-256 checksum (in a header or a trailer), the declared length and the quota.
/// Nothing is trusted until `finish` returns.
final class RequestBodyReader {
    private var iterator: RequestBody.AsyncIterator
    /// Decoded aws-chunked bytes not handed out yet.
    private var pending: [UInt8] = []
    private var pendingStart = 0
    /// What is left of the last buffer of a plain body.
    private var plain: ByteBuffer?
    private var ended = false
    private let md5 = StreamDigest(.md5)
    private let sha256: (digest: StreamDigest, expected: String)?
    private var checksum: Checksum?
    private let decoder: AWSChunkedDecoder?
    private let contentMD5: [UInt8]?
    /// The decoded length the client declared, if any.
    let declaredLength: Int64?
    /// Room under the bucket owner's quota, taken as bytes arrive (the declared length up front).
    private let quota: QuotaReservation?
    private(set) var received: Int64 = 0

    init(_ request: Request, payload: PayloadCheck, quota: QuotaReservation?) throws {
        iterator = request.body.makeAsyncIterator()
        let headers = request.headers
        func header(_ name: String) -> String? { HTTPField.Name(name).flatMap { headers[$0] } }
        let contentLength = header("content-length").flatMap { Int64($0) }
        switch payload {
        case .sha256(let hash): sha256 = (StreamDigest(.sha256), hash)
        default: sha256 = nil
        }
        switch payload {
        case .signedChunks(let signing, let trailer): decoder = AWSChunkedDecoder(signing: signing, trailer: trailer)
        case .unsignedChunks: decoder = AWSChunkedDecoder(signing: nil, trailer: true)
        default:
            decoder = nil
            if let encoding = header("content-encoding"), encoding.split(separator: ",").contains(where: {
                $0.trimmingCharacters(in: .whitespaces) == "aws-chunked"
            }) {
                throw S3Error.invalidArgument("Content-Encoding aws-chunked needs x-amz-content-sha256 set to a STREAMING- form")
            }
        }
        if decoder != nil {
            guard let decoded = header("x-amz-decoded-content-length").flatMap({ Int64($0) }), decoded >= 0 else {
                throw S3Error(.lengthRequired, "MissingContentLength", "aws-chunked uploads need x-amz-decoded-content-length")
            }
            declaredLength = decoded
        } else {
            declaredLength = contentLength
        }
        if let md5 = header("content-md5") {
            guard let bytes = Data(base64Encoded: md5), bytes.count == 16 else {
                throw S3Error(.badRequest, "InvalidDigest", "The Content-MD5 you specified is not a base64 MD5")
            }
            contentMD5 = [UInt8](bytes)
        } else {
            contentMD5 = nil
        }
        checksum = try Checksum(headers: header)
        self.quota = quota
        // Refused before any byte is stored when the declared length does not fit.
        if let declaredLength { try quota?.cover(declaredLength) }
    }

    /// Up to `count` decoded bytes; fewer only at the end of the body.
    func read(upTo count: Int) async throws -> [UInt8] {
        var out: [UInt8] = []
        let expectedLeft = declaredLength.map { max(0, $0 - received) }
        out.reserveCapacity(min(count, Int(min(expectedLeft ?? Int64(count), Int64(count)))))
        while out.count < count {
            if pendingStart < pending.count {
                let take = min(count - out.count, pending.count - pendingStart)
                out.append(contentsOf: pending[pendingStart..<(pendingStart + take)])
                pendingStart += take
            } else if var buffer = plain {
                // A plain body is copied once, from the network's buffer into the piece.
                let take = min(count - out.count, buffer.readableBytes)
                buffer.withUnsafeReadableBytes { out.append(contentsOf: UnsafeRawBufferPointer(rebasing: $0.prefix(take))) }
                buffer.moveReaderIndex(forwardBy: take)
                plain = buffer.readableBytes > 0 ? buffer : nil
            } else {
                guard try await fill() else { break }
            }
        }
        received += Int64(out.count)
        try quota?.cover(received)
        if let declaredLength, received > declaredLength {
            throw S3Error(.badRequest, "IncompleteBody", "The body is longer than the declared length \(declaredLength)")
        }
        out.withUnsafeBytes { bytes in
            md5.update(bytes)
            checksum?.update(bytes)
        }
        return out
    }

    /// Takes the next piece of the body: a plain body's buffer as it is, an aws-chunked body decoded
    /// into `pending`. False at the end.
    private func fill() async throws -> Bool {
        pending.removeAll(keepingCapacity: true)
        pendingStart = 0
        while true {
            if ended { return false }
            let next: ByteBuffer?
            do {
                next = try await iterator.next()
            } catch {
                throw S3Error(.badRequest, "IncompleteBody", "The connection ended before the body was complete")
            }
            guard let buffer = next else {
                ended = true
                if let decoder { try decoder.finish() }
                return !pending.isEmpty
            }
            if let decoder {
                try buffer.withUnsafeReadableBytes { raw in try decoder.feed(raw, into: &pending) }
                if !pending.isEmpty { return true }
            } else if buffer.readableBytes > 0 {
                buffer.withUnsafeReadableBytes { raw in sha256?.digest.update(raw) }
                plain = buffer
                return true
            }
        }
    }

    /// Reads what is left (a body that must be small: XML, at most `limit` bytes).
    func readAll(limit: Int) async throws -> [UInt8] {
        let bytes = try await read(upTo: limit + 1)
        guard bytes.count <= limit else {
            throw S3Error(.badRequest, "MaxMessageLengthExceeded", "The request body is longer than \(limit) bytes")
        }
        return bytes
    }

    /// The checksum the client sent, as (header, base64 value), once `finish` has checked it.
    var checksumHeader: (String, String)? { checksum.map { ($0.header, $0.value) } }

    /// Checks everything once the body has been read; returns the body's MD5.
    func finish() throws -> [UInt8] {
        if let declaredLength, received != declaredLength {
            throw S3Error(.badRequest, "IncompleteBody", "You did not provide the number of bytes specified by the Content-Length HTTP header (\(received) of \(declaredLength))")
        }
        if let sha256 {
            guard Hex.encode(sha256.digest.finish()) == sha256.expected else {
                throw S3Error(.badRequest, "XAmzContentSHA256Mismatch", "The provided 'x-amz-content-sha256' header does not match what was computed")
            }
        }
        let digest = md5.finish()
        if let contentMD5, contentMD5 != digest {
            throw S3Error(.badRequest, "BadDigest", "The Content-MD5 you specified did not match what we received")
        }
        if var checksum {
            if checksum.expected == nil, let trailer = decoder?.trailers[checksum.header] { checksum.expected = trailer }
            try checksum.verify()
            self.checksum = checksum
        } else if let decoder, let name = decoder.trailers.keys.first(where: { $0.hasPrefix("x-amz-checksum-") }) {
            throw S3Error(.badRequest, "InvalidRequest", "The trailer \(name) was not announced in x-amz-trailer")
        }
        return digest
    }
}

/// A checksum S3 clients send with uploads (x-amz-checksum-ALGORITHM, base64), computed as the
/// body streams through.
struct Checksum {
    enum Algorithm { case crc32(CRC32), crc32c(CRC32), sha1(StreamDigest), sha256(StreamDigest) }
    var algorithm: Algorithm
    let header: String
    var expected: String?

    /// From `x-amz-checksum-*` (value known now) or `x-amz-trailer` (value at the end); nil without.
    init?(headers: (String) -> String?) throws {
        if let trailer = headers("x-amz-trailer")?.trimmingCharacters(in: .whitespaces).lowercased() {
            try self.init(name: trailer, value: nil)
            return
        }
        for name in ["x-amz-checksum-crc32", "x-amz-checksum-crc32c", "x-amz-checksum-sha1", "x-amz-checksum-sha256"] {
            if let value = headers(name) {
                try self.init(name: name, value: value)
                return
            }
        }
        if let other = headers("x-amz-sdk-checksum-algorithm")?.lowercased(),
           !["crc32", "crc32c", "sha1", "sha256"].contains(other) {
            throw S3Error(.badRequest, "InvalidRequest", "Checksum algorithm \(other) is not supported: use CRC32, CRC32C, SHA1 or SHA256")
        }
        return nil
    }

    init(name: String, value: String?) throws {
        header = name
        expected = value
        switch name {
        case "x-amz-checksum-crc32": algorithm = .crc32(CRC32(.ieee))
        case "x-amz-checksum-crc32c": algorithm = .crc32c(CRC32(.castagnoli))
        case "x-amz-checksum-sha1": algorithm = .sha1(StreamDigest(.sha1))
        case "x-amz-checksum-sha256": algorithm = .sha256(StreamDigest(.sha256))
        default:
            throw S3Error(.badRequest, "InvalidRequest", "Checksum \(name) is not supported: use CRC32, CRC32C, SHA1 or SHA256")
        }
    }

    mutating func update(_ bytes: UnsafeRawBufferPointer) {
        switch algorithm {
        case .crc32(var crc): crc.update(bytes); algorithm = .crc32(crc)
        case .crc32c(var crc): crc.update(bytes); algorithm = .crc32c(crc)
        case .sha1(let digest), .sha256(let digest): digest.update(bytes)
        }
    }

    var value: String {
        switch algorithm {
        case .crc32(let crc), .crc32c(let crc): Data(crc.value).base64EncodedString()
        case .sha1(let digest), .sha256(let digest): Data(digest.finish()).base64EncodedString()
        }
    }

    func verify() throws {
        guard let expected else {
            throw S3Error(.badRequest, "InvalidRequest", "The announced trailer \(header) did not arrive")
        }
        guard expected == value else {
            throw S3Error(.badRequest, "BadDigest", "The \(header.dropFirst("x-amz-checksum-".count).uppercased()) you specified did not match the calculated checksum")
        }
    }
}

/// Decodes `Content-Encoding: aws-chunked`: `hex-size[;chunk-signature=SIG]\r\n DATA \r\n`, ended by
/// a zero-size chunk, then trailer lines and an empty line. Signed chunks are checked as they end.
final class AWSChunkedDecoder {
    private enum State { case size, data(Int), dataEnd, trailers, done }
    private var state = State.size
    private var line: [UInt8] = []
    private let signing: ChunkSigning?
    private let expectsTrailer: Bool
    private var previousSignature: String
    private var chunkSignature: String?
    private var chunkHash: StreamDigest?
    private(set) var trailers: [String: String] = [:]
    private var trailerBytes: [UInt8] = []
    private var trailerSignature: String?
    static let maxLine = 4096
    static let maxTrailers = 16384

    init(signing: ChunkSigning?, trailer: Bool) {
        self.signing = signing
        expectsTrailer = trailer
        previousSignature = signing?.seedSignature ?? ""
    }

    func feed(_ raw: UnsafeRawBufferPointer, into out: inout [UInt8]) throws {
        var i = 0
        let n = raw.count
        while i < n {
            switch state {
            case .data(let left):
                let take = min(left, n - i)
                let slice = UnsafeRawBufferPointer(rebasing: raw[i..<(i + take)])
                out.append(contentsOf: slice)
                chunkHash?.update(slice)
                i += take
                state = left - take == 0 ? .dataEnd : .data(left - take)
                if left - take == 0 { try endChunk() }
            case .size, .dataEnd, .trailers:
                let byte = raw[i]
                i += 1
                if byte == UInt8(ascii: "\n") {
                    if line.last == UInt8(ascii: "\r") { line.removeLast() }
                    try endLine()
                    line.removeAll(keepingCapacity: true)
                } else {
                    line.append(byte)
                    guard line.count <= Self.maxLine else { throw Self.malformed("a chunk header line is too long") }
                }
            case .done:
                throw Self.malformed("bytes follow the final chunk")
            }
        }
    }

    private func endLine() throws {
        switch state {
        case .size:
            let text = String(decoding: line, as: UTF8.self)
            let parts = text.split(separator: ";", maxSplits: 1)
            guard let first = parts.first, first.count <= 16, let size = Int(first, radix: 16), size >= 0 else {
                throw Self.malformed("a chunk size is not hexadecimal")
            }
            if signing != nil {
                guard parts.count == 2, parts[1].hasPrefix("chunk-signature=") else {
                    throw S3Error(.forbidden, "SignatureDoesNotMatch", "A chunk of a signed aws-chunked body has no chunk-signature")
                }
                chunkSignature = String(parts[1].dropFirst("chunk-signature=".count))
                chunkHash = StreamDigest(.sha256)
            }
            if size == 0 {
                try endChunk()
                state = .trailers
            } else {
                state = .data(size)
            }
        case .dataEnd:
            guard line.isEmpty else { throw Self.malformed("a chunk's data is longer than its size") }
            state = .size
        case .trailers:
            if line.isEmpty {
                try endTrailers()
                state = .done
                return
            }
            trailerBytes += line + [UInt8(ascii: "\n")]
            guard trailerBytes.count <= Self.maxTrailers else { throw Self.malformed("the trailers are too long") }
            let text = String(decoding: line, as: UTF8.self)
            guard let colon = text.firstIndex(of: ":") else { throw Self.malformed("a trailer line has no ':'") }
            let name = text[..<colon].trimmingCharacters(in: .whitespaces).lowercased()
            let value = text[text.index(after: colon)...].trimmingCharacters(in: .whitespaces)
            if name == "x-amz-trailer-signature" {
                trailerSignature = value
                trailerBytes.removeLast(line.count + 1)
            } else {
                trailers[name] = value
            }
        case .data, .done:
            break
        }
    }

    private func endChunk() throws {
        guard let signing, let hash = chunkHash?.finish(), let given = chunkSignature else { return }
        let expected = signing.chunkSignature(previous: previousSignature, hash: hash)
        guard SigV4Verifier.constantTimeEqual(expected, given.lowercased()) else {
            throw S3Error(.forbidden, "SignatureDoesNotMatch", "The signature of a chunk of the aws-chunked body does not match")
        }
        previousSignature = expected
        chunkHash = nil
        chunkSignature = nil
    }

    private func endTrailers() throws {
        guard let signing, expectsTrailer else { return }
        guard let given = trailerSignature else {
            throw S3Error(.forbidden, "SignatureDoesNotMatch", "The signed trailer has no x-amz-trailer-signature")
        }
        // The trailer is signed as "name:value\n" lines.
        let canonical = trailers.sorted { $0.key < $1.key }.map { "\($0.key):\($0.value)\n" }.joined()
        let expected = signing.trailerSignature(previous: previousSignature, trailer: Array(canonical.utf8))
        guard SigV4Verifier.constantTimeEqual(expected, given.lowercased()) else {
            throw S3Error(.forbidden, "SignatureDoesNotMatch", "The signature of the aws-chunked trailer does not match")
        }
    }

    func finish() throws {
        switch state {
        case .done: return
        case .trailers where line.isEmpty && !expectsTrailer: return
        default: throw S3Error(.badRequest, "IncompleteBody", "The aws-chunked body ended before its final chunk")
        }
    }

    static func malformed(_ why: String) -> S3Error {
        S3Error(.badRequest, "IncompleteBody", "The aws-chunked body is malformed: \(why)")
    }
}
