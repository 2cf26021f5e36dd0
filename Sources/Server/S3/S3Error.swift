import ChunkStore
import HTTPTypes
import Hummingbird
import S3Protocol
import Logging

/// An error in S3's form: an HTTP status, a code clients switch on, and a message for a person.
struct S3Error: Error, Sendable {
    let status: HTTPResponse.Status
    let code: String
    let message: String
    var headers: [(String, String)] = []
    /// For PreconditionFailed: the header whose condition did not hold (S3's <Condition>).
    var condition: String?

    init(_ status: HTTPResponse.Status, _ code: String, _ message: String, headers: [(String, String)] = [],
         condition: String? = nil) {
        self.status = status
        self.code = code
        self.message = message
        self.headers = headers
        self.condition = condition
    }

    static func accessDenied(_ message: String = "Access Denied") -> S3Error { S3Error(.forbidden, "AccessDenied", message) }
    static func noSuchBucket(_ name: String) -> S3Error { S3Error(.notFound, "NoSuchBucket", "The specified bucket \(name) does not exist") }
    static func noSuchKey(_ key: String) -> S3Error { S3Error(.notFound, "NoSuchKey", "The specified key \(key) does not exist") }
    static func noSuchUpload(_ id: String) -> S3Error {
        S3Error(.notFound, "NoSuchUpload", "The specified multipart upload \(id) does not exist: it was never started, or was completed or aborted")
    }
    static func invalidArgument(_ message: String) -> S3Error { S3Error(.badRequest, "InvalidArgument", message) }
    static func malformedXML(_ what: String) -> S3Error {
        S3Error(.badRequest, "MalformedXML", "The XML you provided was not well-formed or did not validate against the schema: \(what)")
    }
    static func notImplemented(_ what: String) -> S3Error {
        S3Error(.init(code: 501), "NotImplemented", "\(what) is not implemented by Automator67")
    }

    static let internalError = S3Error(.internalServerError, "InternalError", "We encountered an internal error. Please try again.")

    /// What a client is told of an error not already in S3's form: S3's code with S3's own generic
    /// message (`notFound` for a missing thing, as the request names it). The store's messages are
    /// written for the CLI: they name providers, local paths, commands and options. So the detail goes
    /// to the server's log, with the request ID the client also got, for an admin to match the two.
    static func reported(_ error: any Error, requestID: String, operation: String, path: String,
                         notFound: @autoclosure () -> S3Error) -> S3Error {
        if let error = error as? S3Error { return error }
        BlobServer.logger.error("request \(requestID): \(operation) \(path): \(error)")
        guard let error = error as? StoreError else { return internalError }
        switch error.code {
        case .notFound: return notFound()
        case .invalidArgument: return invalidArgument("Invalid Argument")
        case .alreadyExists, .conflict:
            return S3Error(.conflict, "OperationAborted", "A conflicting conditional operation is currently in progress against this resource. Please try again.")
        case .providerFailure: return S3Error(.serviceUnavailable, "ServiceUnavailable", "Service is unable to handle request.")
        case .quotaExceeded:
            return S3Error(.forbidden, "QuotaExceeded", "The upload would exceed your quota. Delete objects or ask the administrator for a larger quota")
        case .integrity, .io, .internal, .wrongPassphrase, .notInitialized, .keyringLost: return internalError
        }
    }

    func response(resource: String, requestID: String, head: Bool) -> Response {
        var fields = HTTPFields()
        fields[.contentType] = "application/xml"
        fields[HTTPField.Name("x-amz-request-id")!] = requestID
        for (name, value) in headers { if let name = HTTPField.Name(name) { fields[name] = value } }
        if head {
            return Response(status: status, headers: fields)
        }
        let body = XMLWriter.document("Error", namespace: false) { x in
            x.element("Code", code)
            x.element("Message", message)
            if let condition { x.element("Condition", condition) }
            x.element("Resource", resource)
            x.element("RequestId", requestID)
        }
        return Response(status: status, headers: fields, body: ResponseBody(byteBuffer: ByteBuffer(bytes: body)))
    }
}
