import ChunkStore
import Foundation
import HTTPTypes
import Hummingbird

/// Around every route: parses the target the way S3 reads it, counts the request in flight and, once
/// answered, by operation and status; answers errors in S3's form (reporting what S3 does not name
/// to the log, with the request ID); and sends the request ID and the server's name with every answer.
struct RequestAccounting: RouterMiddleware {
    typealias Context = ServerRequestContext
    let metrics: ServerMetrics

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        let started = ContinuousClock.now
        let requestID = context.requestID
        let target = request.head.path ?? "/"
        metrics.inFlight(+1)
        defer { metrics.inFlight(-1) }
        var response: Response
        do {
            var context = context
            context.target = try S3Path(target)
            response = try await next(request, context)
        } catch {
            let resource = String(target.prefix { $0 != "?" })
            response = S3Error.reported(Self.unrouted(error, request), requestID: requestID, operation: context.operation.name,
                                        path: resource, notFound: .internalError)
                .response(resource: resource, requestID: requestID, head: request.method == .head)
        }
        response.headers[HTTPField.Name("x-amz-request-id")!] = requestID
        response.headers[.server] = "Automator67"
        metrics.observe(operation: context.operation.name, status: response.status.code, seconds: started.duration(to: .now))
        return response
    }

    /// The router's own not-found: S3 takes every path outside /_a67 for every method HTTP names
    /// (`RouterMethods.any`), so for such a method it is a path under /_a67 that no module takes (one a
    /// module's routes pass through, like /_a67/api, resolves to no route rather than to the 404 route),
    /// and for any other method a method nothing takes, answered as S3 answers a method it does not allow.
    static func unrouted(_ error: any Error, _ request: Request) -> any Error {
        guard let error = error as? HTTPError else { return error }
        if error.status == .notFound {
            return namedHTTPMethods.contains(request.method) ? BlobServer.nothingServed
                : S3Error(.methodNotAllowed, "MethodNotAllowed",
                          "The specified method \(request.method.rawValue) is not allowed against this resource")
        }
        return S3Error(error.status, error.status.reasonPhrase.replacingOccurrences(of: " ", with: ""), error.body ?? error.status.reasonPhrase)
    }
}
