import ChunkStore
import Hummingbird
import NIOCore
import Synchronization

/// What `a67 serve` knows about a request while it is served: its S3 request ID, its target parsed
/// the way S3 reads it (bucket, key and query percent-decoded, the raw path kept for SigV4), and the
/// operation the metrics and logs count it as, named by the route that takes it.
public struct ServerRequestContext: RequestContext, RemoteAddressRequestContext {
    public var coreContext: CoreRequestContextStorage
    /// S3's request ID, sent back in `x-amz-request-id` and in error bodies; logged with errors.
    public let requestID: String
    /// What the metrics count the request as ("Unknown" until a route names it).
    public let operation = OperationName()
    /// The request target; set by the request accounting before any route runs.
    var target = S3Path.root
    /// The connection, kept (one reference) so that `remoteAddress` is only looked up by what needs it.
    private let channel: any Channel

    /// The client's address: the app proxy's X-Forwarded-For, the address the agent API records for a
    /// joining node.
    public var remoteAddress: SocketAddress? { channel.remoteAddress }

    public init(source: ApplicationRequestContextSource) {
        coreContext = .init(source: source)
        channel = source.channel
        requestID = Hex.encode(Crypto.randomBytes(8)).uppercased()
    }
}

/// The operation a request is counted as; shared by the copies of the request's context, so that the
/// request accounting around the route sees the name the route gave it.
public final class OperationName: Sendable {
    private let value = Mutex("Unknown")

    public var name: String {
        get { value.withLock { $0 } }
        set { value.withLock { $0 = newValue } }
    }
}
