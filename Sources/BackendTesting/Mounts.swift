import Foundation

/// Mounts for tests that need a real filesystem's limits (a small tmpfs that fills up, a read-only
/// bind mount). Needs root (the tests run as root). Always unmounts, also when the body throws:
/// relying on deinit left mounts behind.
public enum Mounts {
    /// Runs `mount MOUNTARGUMENTS`, then `body`, then `umount path`.
    public static func with<T>(_ mountArguments: [String], unmounting path: String,
                               _ body: () async throws -> T) async throws -> T {
        try await run("/bin/mount", mountArguments, failure: "mount \(mountArguments.joined(separator: " ")) failed: the tests need root")
        do {
            let result = try await body()
            try await run("/bin/umount", [path], failure: "umount \(path) failed")
            return result
        } catch {
            _ = try? await run("/bin/umount", [path], failure: "")
            throw error
        }
    }

    /// A tmpfs of `size` (as mount's size= takes it) at `path`, created if missing, for `body`.
    public static func withTmpfs<T>(at path: String, size: String, _ body: () async throws -> T) async throws -> T {
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        return try await with(["-t", "tmpfs", "-o", "size=\(size)", "tmpfs", path], unmounting: path, body)
    }

    private static func run(_ tool: String, _ arguments: [String], failure: String) async throws {
        let result = try await ChildProcess.run(tool, arguments, stdout: .inherit, stderr: .inherit)
        guard result.status == 0 else {
            throw NSError(domain: "Mounts", code: Int(result.status), userInfo: [NSLocalizedDescriptionKey: failure])
        }
    }
}
