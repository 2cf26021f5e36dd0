import ChunkStore
import Testing

/// Expects `body` to throw a StoreError with `code`; returns it for further checks. Shared by the
/// test targets.
@discardableResult
public func expectStoreError(_ code: StoreError.Code, sourceLocation: SourceLocation = #_sourceLocation,
                             _ body: () async throws -> Void) async -> StoreError? {
    let error = await #expect(throws: StoreError.self, sourceLocation: sourceLocation) { try await body() }
    #expect(error?.code == code, "got \(String(describing: error))", sourceLocation: sourceLocation)
    return error
}

/// Expects `body` to throw a BackendError matching `matches`.
public func expectBackendError(sourceLocation: SourceLocation = #_sourceLocation, _ body: () async throws -> Void,
                               where matches: (BackendError) -> Bool) async {
    let error = await #expect(throws: BackendError.self, sourceLocation: sourceLocation) { try await body() }
    #expect(error.map(matches) == true, "got \(String(describing: error))", sourceLocation: sourceLocation)
}

/// Runs `sql` against the catalog at `path` from another process (Python's sqlite3), as a flipped bit
/// or a stray tool would change it behind a67's back.
public func alterCatalog(_ path: String, _ sql: String, sourceLocation: SourceLocation = #_sourceLocation) async throws {
    let python = try await ChildProcess.run("/usr/bin/python3", [
        "-c", "import sqlite3, sys; c = sqlite3.connect(sys.argv[1]); c.executescript(sys.argv[2]); c.commit()", path, sql,
    ], stdout: .inherit, stderr: .inherit)
    #expect(python.status == 0, "python3 could not change the catalog", sourceLocation: sourceLocation)
}
