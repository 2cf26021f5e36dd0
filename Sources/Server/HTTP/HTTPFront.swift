import HTTPTypes
import Hummingbird

/// A part of `a67 serve` that answers some requests before any route sees them: the app proxy
/// (`Host: NAME.apps.DOMAIN`, `/apps/NAME/`), whose requests are an app's own traffic and so are
/// neither S3's nor the control API's. The composition root hands fronts to `BlobServer.run`; the
/// first whose `takes` accepts a request answers it, and every other request goes on to the routes
/// (the modules under /_a67, then S3) as if no front were there.
///
/// A front's requests skip the server's request accounting (no S3 request ID, no S3 error bodies,
/// not in the S3 operation metrics): the front answers in its own words and counts its own.
public protocol HTTPFront: Sendable {
    /// Whether this front answers `head`. Called for every request the server gets, S3's included,
    /// so it must stay cheap: a suffix check on the host and a prefix check on the path, with no
    /// locks, no I/O and no allocation.
    func takes(_ head: HTTPRequest) -> Bool

    /// Answers a request `takes` accepted. Whatever it throws is answered 502 in plain text.
    func respond(to request: Request, context: ServerRequestContext) async throws -> Response
}

/// Hands each request to the first front that takes it; the rest go on to the routes.
struct FrontRouting: RouterMiddleware {
    typealias Context = ServerRequestContext
    let fronts: [any HTTPFront]

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        for front in fronts where front.takes(request.head) {
            do {
                return try await front.respond(to: request, context: context)
            } catch {
                BlobServer.logger.error("\(request.method) \(request.head.authority ?? "") \(request.head.path ?? ""): \(error)")
                return Response(status: .badGateway, headers: [.contentType: "text/plain; charset=utf-8"],
                                body: ResponseBody(byteBuffer: ByteBuffer(string: "bad gateway: \(error)\n")))
            }
        }
        return try await next(request, context)
    }
}
