import CCurl
import ChunkStore
import Foundation

enum Fingerprint {
    /// SHA-256 of a host key blob, base64 without padding: OpenSSH's fingerprint format.
    static func sha256Base64(_ key: UnsafeRawBufferPointer) -> String {
        let digest = Crypto.sha256([UInt8](key))
        return Data(digest).base64EncodedString().replacingOccurrences(of: "=", with: "")
    }
}

/// A secret that libssh2 must read from a path (an SSH private key), held in an anonymous in-memory
/// file (memfd) instead of on disk. `path` (/proc/self/fd/N) names it until the object is released;
/// like the process's memory, it is readable by the same user (and root), by nobody else.
public final class SecretFile: Sendable {
    public let path: String
    private let descriptor: Int32

    public init(contents: [UInt8]) throws {
        let fd = a67_memfd_secret()
        guard fd >= 0 else {
            throw TransferError(.other, code: -1, message: "cannot hold a key in memory: memfd_create failed (errno \(errno))")
        }
        var written = 0
        while written < contents.count {
            let result = contents[written...].withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
            if result < 0 && errno == EINTR { continue }
            guard result > 0 else {
                Glibc.close(fd)
                throw TransferError(.other, code: -1, message: "cannot hold a key in memory: write failed (errno \(errno))")
            }
            written += result
        }
        descriptor = fd
        path = "/proc/self/fd/\(fd)"
    }

    deinit { Glibc.close(descriptor) }
}
