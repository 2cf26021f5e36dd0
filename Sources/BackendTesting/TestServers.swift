import ChunkStore
import Foundation

/// The real servers tools/test starts on loopback (tools/servers: SeaweedFS for S3, rclone's WebDAV
/// server, sshd for SFTP), found through the environment it exports. Missing servers fail the tests
/// that need them: nothing here skips. Test targets extend it with the backends they build.
public enum TestServers {
    /// The value of `name` in the servers' environment.
    public static func env(_ name: String) throws -> String {
        guard let value = ProcessInfo.processInfo.environment[name], !value.isEmpty else {
            throw Missing(variable: name)
        }
        return value
    }

    public struct Missing: Error, CustomStringConvertible {
        public let variable: String
        public var description: String {
            "\(variable) is not set: run the tests through tools/test, which starts SeaweedFS, rclone's WebDAV server and sshd on loopback (tools/servers start DIR, then source DIR/servers.env)"
        }
    }

    /// `label` and a random suffix: a name (prefix, folder, bucket) no other test or run uses.
    public static func unique(_ label: String) -> String { "\(label)-\(Hex.encode(Crypto.randomBytes(6)))" }
}
