import HTTPTypes
import Hummingbird

/// A part of `a67 serve` with HTTP routes of its own beside the S3 API: today the control API and
/// the metrics page; later the controller, the SQL API and the dashboard (the app proxy, which takes
/// requests by their Host as well as their path, is an `HTTPFront` instead). Server never
/// imports a module: the composition root (the CLI's serve command) builds the modules and hands
/// them to `BlobServer.run`, which lets each register its routes on the `/_a67` group.
///
/// The group's prefix is one no bucket can take (bucket names have no '_', `Names.validateBucket`),
/// so a module's routes never hide a bucket. Every request a module answers passes through the
/// server's request accounting first (request ID, `x-amz-request-id` and `Server` headers, metrics,
/// errors reported and answered in S3's form): a handler names its operation with
/// `context.operation.name` and may throw `S3Error` (or any error: it is answered as S3 would).
/// Paths under `/_a67` that no module takes are answered 404.
public protocol HTTPModule: Sendable {
    /// Adds this module's routes to `group`, the `/_a67` group (`BlobServer.pagesPrefix`).
    func register(on group: RouterGroup<ServerRequestContext>)
}

/// The methods HTTP names, which `any` routes.
let namedHTTPMethods: [HTTPRequest.Method] = [.get, .head, .put, .post, .delete, .options, .patch, .trace, .connect]

extension RouterMethods {
    /// Routes every method HTTP names (GET, HEAD, PUT, POST, DELETE, OPTIONS, PATCH, TRACE, CONNECT)
    /// at each of `paths` to `handler`, which answers the methods it does not take itself (as S3 does,
    /// after checking the signature). A method HTTP does not name reaches no route: the request
    /// accounting answers it 405.
    @discardableResult
    public func any(_ paths: RouterPath..., use handler: @escaping @Sendable (Request, Context) async throws -> Response) -> Self {
        for path in paths {
            for method in namedHTTPMethods {
                on(path, method: method, use: handler)
            }
        }
        return self
    }
}
