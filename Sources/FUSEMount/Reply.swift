import ChunkStore
import Foundation
import Synchronization

/// What the kernel is told about one request, in Swift values; `KernelReply` (FUSEAdapter.swift)
/// packs it into libfuse's reply call.
enum Answer: Equatable, Sendable {
    /// Success with nothing to say (fuse_reply_err 0).
    case ok
    case error(Int32)
    /// forget: no reply goes to the kernel at all.
    case none
    case entry(MountFileSystem.Attributes)
    case attributes(MountFileSystem.Attributes)
    case opened(MountFileSystem.OpenFile)
    case created(MountFileSystem.Attributes, MountFileSystem.OpenFile)
    case data([UInt8])
    case written(Int)
    case symlinkTarget(String)
    /// The size an extended attribute (or the list of names) would take.
    case xattrSize(Int)
    case capacity(MountFileSystem.Capacity)
}

/// Where one request's answer goes: the kernel, or a recorder in tests.
protocol ReplySink: Sendable {
    func send(_ answer: Answer)
}

/// The answer to one request, given exactly once: the type cannot be copied and every answer
/// consumes it, so a second answer does not compile; a reply dropped unanswered (a path that
/// forgot) answers EIO as it goes, so the kernel never waits for ever on a request.
struct Reply: ~Copyable, Sendable {
    private var sink: (any ReplySink)?

    init(_ sink: any ReplySink) { self.sink = sink }

    consuming func send(_ answer: Answer) {
        sink?.send(answer)
        sink = nil
    }

    /// The errno for `error`; an unexpected one is logged through `log` (a store failure, say).
    consuming func fail(_ error: Error, log: (String) -> Void) {
        let (code, unexpected) = Self.errno(for: error)
        if unexpected { log("\(error)") }
        send(.error(code))
    }

    deinit {
        sink?.send(.error(EIO))
    }

    /// The errno the kernel gets for an operation's error, and whether the error was unexpected
    /// (anything but a namespace answer, an errno of our own or a chunk not found).
    static func errno(for error: Error) -> (code: Int32, unexpected: Bool) {
        switch error {
        case let error as NamespaceError:
            switch error {
            case .notFound: return (ENOENT, false)
            case .exists: return (EEXIST, false)
            case .notEmpty: return (ENOTEMPTY, false)
            case .notDirectory: return (ENOTDIR, false)
            case .isDirectory: return (EISDIR, false)
            case .invalid: return (EINVAL, false)
            case .nameTooLong: return (ENAMETOOLONG, false)
            case .noAttribute: return (ENODATA, false)
            case .notPermitted: return (EPERM, false)
            }
        case MountError.errno(let code):
            return (code, false)
        case let error as StoreError where error.code == .notFound:
            return (ENOENT, false)
        default:
            return (EIO, true)
        }
    }
}

/// A reply handed to work that finishes later, on another thread (a read waiting for a chunk):
/// whoever takes it first answers; it can be taken once.
final class DeferredReply: Sendable {
    private let slot: Mutex<Reply?>

    init(_ reply: consuming Reply) { slot = Mutex(reply) }

    func take() -> Reply? { slot.withLock { $0.take() } }
}
