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
