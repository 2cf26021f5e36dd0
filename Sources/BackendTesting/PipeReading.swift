#if canImport(Glibc)
import Glibc
#endif

/// Reading a child process's output in tests with read(2), not Foundation's FileHandle reads: on Linux
/// those stop the whole process (a trap, not a Swift error) when the read fails, and a read of a pipe
/// can fail with EINTR while child processes come and go. Here EINTR is retried and any other error
/// ends the read like end of file.
public enum PipeReading {
    /// Everything until end of file.
    public static func readAll(_ fd: Int32) -> [UInt8] {
        var out: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 65536)
        while true {
            let n = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
            if n > 0 {
                out += buffer[0..<n]
            } else if n < 0 && errno == EINTR {
                continue
            } else {
                return out
            }
        }
    }

    /// One line, without its newline (what came before end of file, if no newline did).
    public static func readLine(_ fd: Int32) -> [UInt8] {
        var line: [UInt8] = []
        var byte: UInt8 = 0
        while true {
            let n = read(fd, &byte, 1)
            if n == 1 {
                if byte == UInt8(ascii: "\n") { return line }
                line.append(byte)
            } else if n < 0 && errno == EINTR {
                continue
            } else {
                return line
            }
        }
    }
}
