import Hummingbird
import HummingbirdCore
import Logging
import NIOCore
import NIOHTTPTypes
import Synchronization

/// How many connections `a67 serve` holds and for how long. Without limits, 1,100 idle connections
/// from one client used up the server's descriptors and it answered no one. A connection past either
/// count is closed as it is accepted, so the server's descriptors stay bounded and every other client
/// still gets in; a connection idle for `idleTimeout` is closed, and so is one whose request head
/// (request line and headers) is not whole within `requestHeadTimeout` of its first byte (slowloris).
public struct ConnectionLimits: Sendable {
    public var maxConnections = 1024
    public var maxPerClient = 128
    public var idleTimeout: Duration = .seconds(30)
    public var requestHeadTimeout: Duration = .seconds(10)
    public init() {}
}

/// Open connections, in all and per client address.
final class ConnectionCounter: Sendable {
    let limits: ConnectionLimits
    private let open = Mutex<(total: Int, byClient: [String: Int])>((0, [:]))

    init(_ limits: ConnectionLimits) { self.limits = limits }

    /// Counts a new connection from `client`; false (and nothing counted) when it is one too many.
    func admit(_ client: String) -> Bool {
        open.withLock { open in
            let mine = open.byClient[client, default: 0]
            guard open.total < limits.maxConnections, mine < limits.maxPerClient else { return false }
            open.total += 1
            open.byClient[client] = mine + 1
            return true
        }
    }

    func release(_ client: String) {
        open.withLock { open in
            open.total -= 1
            let left = open.byClient[client, default: 1] - 1
            open.byClient[client] = left > 0 ? left : nil
        }
    }
}

/// Hummingbird's HTTP/1.1 child channel with the connection limits in front: a connection past the
/// counts is closed before anything is set up for it, and every admitted one gets a request-head
/// deadline under the HTTP decoder.
struct LimitedHTTP1Channel: ServerChildChannel {
    typealias Value = HTTP1Channel.Value
    let http: HTTP1Channel
    let counter: ConnectionCounter

    struct Refused: Error {}

    func setup(channel: any Channel, logger: Logger) -> EventLoopFuture<Value> {
        let client = channel.remoteAddress?.ipAddress ?? "unknown"
        guard counter.admit(client) else {
            channel.close(promise: nil)
            return channel.eventLoop.makeFailedFuture(Refused())
        }
        let counter = self.counter
        channel.closeFuture.whenComplete { _ in counter.release(client) }
        do {
            // First in the pipeline: it sees the bytes before the HTTP decoder does.
            try channel.pipeline.syncOperations.addHandler(RequestHeadDeadline(timeout: counter.limits.requestHeadTimeout))
        } catch {
            channel.close(promise: nil)
            return channel.eventLoop.makeFailedFuture(error)
        }
        return http.setup(channel: channel, logger: logger)
    }

    func handle(value: Value, logger: Logger) async {
        await http.handle(value: value, logger: logger)
    }
}

/// What `RequestHeadWatcher` tells `RequestHeadDeadline` (an outbound user event).
enum RequestHeadEvent {
    case headReceived
    case responseSent
}

/// Closes the connection when a request's head is not whole within `timeout` of the request's first
/// byte. It sits under the HTTP decoder and sees bytes; `RequestHeadWatcher`, above the decoder, tells
/// it when a head arrived and when a response was sent (only then can the next bytes start a request).
final class RequestHeadDeadline: ChannelDuplexHandler, RemovableChannelHandler {
    typealias InboundIn = ByteBuffer
    typealias InboundOut = ByteBuffer
    typealias OutboundIn = Any

    private let timeout: TimeAmount
    /// Requests whose head arrived and whose response is not sent yet.
    private var inProgress = 0
    private var deadline: Scheduled<Void>?

    init(timeout: Duration) {
        let parts = timeout.components
        self.timeout = .nanoseconds(parts.seconds * 1_000_000_000 + parts.attoseconds / 1_000_000_000)
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        if inProgress == 0 && deadline == nil {
            let loopBound = context.loopBound
            deadline = context.eventLoop.assumeIsolated().scheduleTask(in: timeout) {
                loopBound.value.close(promise: nil)
            }
        }
        context.fireChannelRead(data)
    }

    func triggerUserOutboundEvent(context: ChannelHandlerContext, event: Any, promise: EventLoopPromise<Void>?) {
        guard let event = event as? RequestHeadEvent else {
            context.triggerUserOutboundEvent(event, promise: promise)
            return
        }
        switch event {
        case .headReceived:
            inProgress += 1
            cancel()
        case .responseSent:
            inProgress = max(0, inProgress - 1)
        }
        promise?.succeed(())
    }

    func channelInactive(context: ChannelHandlerContext) {
        cancel()
        context.fireChannelInactive()
    }

    func handlerRemoved(context: ChannelHandlerContext) { cancel() }

    private func cancel() {
        deadline?.cancel()
        deadline = nil
    }
}

/// Above the HTTP decoder: tells `RequestHeadDeadline` when a request head arrives and when a
/// response has been written whole.
final class RequestHeadWatcher: ChannelDuplexHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPRequestPart
    typealias InboundOut = HTTPRequestPart
    typealias OutboundIn = HTTPResponsePart
    typealias OutboundOut = HTTPResponsePart

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        if case .head = unwrapInboundIn(data) { context.triggerUserOutboundEvent(RequestHeadEvent.headReceived, promise: nil) }
        context.fireChannelRead(data)
    }

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        let isEnd = if case .end = unwrapOutboundIn(data) { true } else { false }
        context.write(data, promise: promise)
        if isEnd { context.triggerUserOutboundEvent(RequestHeadEvent.responseSent, promise: nil) }
    }
}
