import Foundation
import Testing

/// `a67 user` and `a67 key` as a user runs them: secrets shown once and never again, removal, and
/// clear errors for bad names, unknown users and keys.
@Suite struct UserKeyCLITests {
    @Test func usersKeysAndOwners() async throws {
        let cli = try CLI()
        try await cli.setUp()
        try await cli.ok(["user", "add", "alice", "--quota", "10M"])
        let created = try await cli.ok(["key", "create", "alice", "--json"])
        let key = try #require(try JSONSerialization.jsonObject(with: Data(created.stdout.utf8)) as? [String: String])
        let id = try #require(key["accessKeyId"]), secret = try #require(key["secretAccessKey"])
        #expect(id.count == 20 && secret.count == 40)
        // Listed afterwards without the secret, in text and JSON; nor is it in the catalog's file.
        let listed = try await cli.ok(["key", "ls", "--json"]).stdout + (try cli.ok(["key", "ls", "alice"]).stdout)
        #expect(listed.contains(id) && !listed.contains(secret))
        let catalog = try #require(FileManager.default.contents(atPath: cli.home + "/catalog.db"))
        #expect(catalog.range(of: Data(secret.utf8)) == nil, "the secret is stored sealed")
        let users = try await cli.ok(["user", "ls", "--json"]).stdout
        #expect(users.contains("\"quota\" : 10485760"))
        try await cli.ok(["user", "quota", "alice", "none"])
        #expect(try await cli.ok(["user", "ls", "--json"]).stdout.contains("\"quota\" : null"))
        // A bucket given to alice.
        try await cli.ok(["bucket", "create", "alices", "--owner", "alice"])
        try await cli.fails(["bucket", "create", "nobodys", "--owner", "nobody"], status: 2, message: "no user named nobody")
        try await cli.fails(["user", "add", "alice"], status: 6, message: "already exists")
        try await cli.fails(["user", "add", "bad name"], status: 64, message: "invalid user name")
        try await cli.fails(["key", "create", "nobody"], status: 2, message: "no user named nobody")
        try await cli.fails(["user", "quota", "alice", "lots"], status: 64, message: "cannot read \"lots\" as a size")
        #expect(try await cli.ok(["key", "rm", id, "--json"]).stdout.contains(id))
        #expect(!(try await cli.ok(["key", "ls"]).stdout.contains(id)))
        try await cli.fails(["key", "rm", id], status: 2, message: "no access key")
    }
}

extension UserKeyCLITests {
    /// A port this test holds: a67 serve on it must say so and exit, not hang or crash.
    @Test func serveOnATakenPortSaysSo() async throws {
        let cli = try CLI()
        try await cli.setUp()
        let (fd, port) = try #require(CLI.listeningLoopbackSocket())
        defer { close(fd) }
        try await cli.fails(["serve", "--listen", "127.0.0.1:\(port)"], status: 6, message: "the address is in use")
        try await cli.fails(["serve", "--listen", "localhost"], status: 64, message: "is not HOST:PORT")
    }
}
