import ChunkStore
import Foundation
import Replicator
import Synchronization

/// A one-line progress display on standard error (bytes, rate, ETA), shown only on a terminal and
/// only for transfers over 8 MiB; silent otherwise, so scripts and pipes see none of it.
final class ProgressBar: Sendable {
    private struct State {
        var done: Int64 = 0
        var lastDraw = Date.distantPast
        var drawn = false
    }
    private let total: Int64?
    private let label: String
    private let started = Date()
    private let enabled: Bool
    private let state = Mutex(State())
    static let threshold: Int64 = 8 << 20

    init(label: String, total: Int64?) {
        self.label = label
        self.total = total
        enabled = isatty(2) == 1 && (total.map { $0 > Self.threshold } ?? true)
    }

    var handler: ProgressHandler? {
        guard enabled else { return nil }
        return { [self] bytes in self.advance(bytes) }
    }

    private func advance(_ bytes: Int64) {
        let line: String? = state.withLock { s in
            s.done += bytes
            let now = Date()
            guard now.timeIntervalSince(s.lastDraw) >= 0.1, total != nil || s.done > Self.threshold else { return nil }
            s.lastDraw = now
            s.drawn = true
            return render(s.done, elapsed: now.timeIntervalSince(started))
        }
        if let line { writeStandardError("\r\u{1B}[K" + line) }
    }

    private func render(_ done: Int64, elapsed: Double) -> String {
        let speed = elapsed > 0 ? Double(done) / elapsed : 0
        var parts = [label, ByteSize.format(done)]
        if let total, total > 0 {
            parts[1] += " / " + ByteSize.format(total)
            parts.append(String(format: "%3.0f%%", Double(done) * 100 / Double(total)))
            let eta = speed > 0 ? Double(total - done) / speed : 0
            parts.append(String(format: "%.1f MB/s", speed / 1e6))
            parts.append(String(format: "ETA %.0fs", eta))
        } else {
            parts.append(String(format: "%.1f MB/s", speed / 1e6))
        }
        return parts.joined(separator: "  ")
    }

    /// Clears the line.
    func finish() {
        if state.withLock({ $0.drawn }) { writeStandardError("\r\u{1B}[K") }
    }
}
