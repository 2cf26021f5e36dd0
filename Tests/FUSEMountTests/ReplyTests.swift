import ChunkStore
import Foundation
import Synchronization
import Testing
@testable import FUSEMount

/// Records what the kernel would be told.
final class RecordingSink: ReplySink {
    let answers = Mutex<[Answer]>([])
    func send(_ answer: Answer) { answers.withLock { $0.append(answer) } }
    var recorded: [Answer] { answers.withLock { $0 } }
}

/// The reply type answers every request exactly once (a second answer does not compile: every
/// answer consumes the reply).
@Suite struct ReplyTests {
    @Test func anAnswerGoesOnce() {
        let sink = RecordingSink()
        let reply = Reply(sink)
        reply.send(.written(3))
        #expect(sink.recorded == [.written(3)])
    }

    @Test func aReplyDroppedUnansweredAnswersEIO() {
        let sink = RecordingSink()
        do {
            _ = Reply(sink)
        }
        #expect(sink.recorded == [.error(EIO)])
    }

    @Test func errorsAnswerTheirErrnoAndLogOnlyTheUnexpected() {
        let sink = RecordingSink()
        let logged = Mutex<[String]>([])
        Reply(sink).fail(NamespaceError.nameTooLong) { line in logged.withLock { $0.append(line) } }
        Reply(sink).fail(MountError.errno(EDQUOT)) { line in logged.withLock { $0.append(line) } }
        Reply(sink).fail(MountError.errno(EFBIG)) { line in logged.withLock { $0.append(line) } }
        Reply(sink).fail(StoreError(.providerFailure, "every provider is down")) { line in logged.withLock { $0.append(line) } }
        #expect(sink.recorded == [.error(ENAMETOOLONG), .error(EDQUOT), .error(EFBIG), .error(EIO)])
        #expect(logged.withLock { $0.count } == 1)
    }

    @Test func aDeferredReplyIsTakenOnceAcrossThreads() async throws {
        let sink = RecordingSink()
        let later = DeferredReply(Reply(sink))
        await withTaskGroup(of: Void.self) { group in
            for n in 0..<8 {
                group.addTask {
                    guard let reply = later.take() else { return }
                    reply.send(.written(n))
                }
            }
        }
        #expect(sink.recorded.count == 1)
        if let reply = later.take() {
            Issue.record("a deferred reply was taken twice")
            reply.send(.ok)
        }
    }
}
