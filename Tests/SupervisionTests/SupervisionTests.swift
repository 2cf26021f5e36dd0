import ChunkStore
import Foundation
import Supervision
import Testing

/// The parts of process supervision that need no second process: pid files, their names, and what a
/// failed start reports.
@Suite struct SupervisionTests {
    @Test func pidFileNamesOneFilePerInstance() {
        #expect(PIDFile(directory: "/home/a/.a67/mounts", instance: "/mnt/photos").path == "/home/a/.a67/mounts/%mnt%photos.pid")
        #expect(PIDFile.fileName("/") == "%")
    }

    @Test(arguments: [("123\n", Int32(123)), ("  42 ", 42), ("", nil), ("x1", nil), ("0", nil), ("-5", nil), ("99999999999", nil)])
    func pidFileText(text: String, pid: Int32?) {
        #expect(PIDFile.parse(text) == pid)
    }

    @Test func pidFileRoundTripAndLiveness() throws {
        let directory = FileManager.default.temporaryDirectory.path + "/supervision-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let file = PIDFile(directory: directory, instance: "/mnt/x")
        #expect(file.read() == nil)
        file.write()
        #expect(file.read() == getpid())
        #expect(file.runningProcess() == getpid())
        // A pid no process has (above the kernel's pid_max).
        file.write(Int32.max)
        #expect(file.read() == Int32.max)
        #expect(file.runningProcess() == nil)
        file.remove()
        #expect(file.read() == nil)
    }

    @Test func stopIsFalseWithoutAProcess() {
        #expect(!Supervision.stop(Int32.max))
        #expect(!Supervision.stop(0))
    }

    @Test func tailJoinsTheLastLines() {
        #expect(Supervision.tail("a\nb\nc\n", lines: 2) == "b | c")
        #expect(Supervision.tail("") == "")
        #expect(Supervision.tail((1...9).map(String.init).joined(separator: "\n")) == "5 | 6 | 7 | 8 | 9")
    }
}
