import ChunkStore
import CurlTransport

/// Reading objects over HTTP as S3 and WebDAV servers answer: the same statuses, the same
/// servers that ignore Range, the same checks on what arrived.
enum HTTPGet {
    /// A GET of `range` (or all) of `name`. `send` runs the GET with the range as "FIRST-LAST"
    /// (nil for all); `head` sizes the object; `failure` classifies any other status.
    static func read(_ name: String, range: Range<Int>?, at location: String,
                     head: () async throws -> ObjectInfo,
                     send: (_ range: String?) async throws -> TransferResponse,
                     failure: (TransferResponse) -> Error) async throws -> [UInt8] {
        if let range, range.isEmpty {
            _ = try await head() // no bytes, but notFound when absent
            return []
        }
        let response = try await send(range.map { "\($0.lowerBound)-\($0.upperBound - 1)" })
        switch response.status {
        case 200, 206:
            if let length = response.contentLength, length != response.body.count {
                throw BackendError.transient("\(location): \(name): got \(response.body.count) of \(length) bytes")
            }
            if response.status == 200, let range {
                // A server that ignored the Range header sent the whole object.
                let end = min(range.upperBound, response.body.count)
                return range.lowerBound < end ? Array(response.body[range.lowerBound..<end]) : []
            }
            return response.body
        case 416:
            _ = try await head() // past the end of an existing object: no bytes; absent: notFound
            return []
        default:
            throw failure(response)
        }
    }

    /// The size a successful HEAD reports.
    static func size(_ response: TransferResponse, name: String, at location: String,
                     failure: (TransferResponse) -> Error) throws -> ObjectInfo {
        guard response.status == 200 else { throw failure(response) }
        guard let size = response.contentLength else {
            throw BackendError.permanent("\(location): HEAD \(name) returned no Content-Length")
        }
        return ObjectInfo(name: name, size: size)
    }
}
