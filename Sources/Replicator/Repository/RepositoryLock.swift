import ChunkStore
import Foundation
import Logging

/// An advisory lock on the repository (flock on $A67_HOME/lock): puts hold it shared, garbage
/// collection holds it exclusive, so that collection never runs while a put has stored a chunk it has
/// not yet recorded. The kernel releases it when the process dies, even by kill -9.
final class RepositoryLock: Sendable {
    private let fd: Int32

    init(home: String, exclusive: Bool, name: String = "lock") throws {
        let path = home + "/" + name
        fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0o600)
        guard fd >= 0 else {
            throw StoreError(.io, "cannot open the repository lock \(path): \(String(cString: strerror(errno)))")
        }
        let mode = exclusive ? LOCK_EX : LOCK_SH
        if flock(fd, mode | LOCK_NB) != 0 {
            if exclusive && name == "lock" {
                Logger(label: "a67").notice("waiting for other a67 commands on this repository to finish...")
            }
            while flock(fd, mode) != 0 {
                guard errno == EINTR else {
                    close(fd)
                    throw StoreError(.io, "cannot lock the repository \(path): \(String(cString: strerror(errno)))")
                }
            }
        }
    }

    func release() { close(fd) }
}

#if canImport(Glibc)
import Glibc
#endif
