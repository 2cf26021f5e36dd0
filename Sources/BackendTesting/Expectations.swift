import ChunkStore
import Testing

/// Expects `body` to throw a StoreError with `code`; returns it for further checks. Shared by the
/// test targets.
@discardableResult
public func expectStoreError(_ code: StoreError.Code, sourceLocation: SourceLocation = #_sourceLocation,
                             _ body: () throws -> Void) -> StoreError? {
    let error = #expect(throws: StoreError.self, sourceLocation: sourceLocation) { try body() }
    #expect(error?.code == code, "got \(String(describing: error))", sourceLocation: sourceLocation)
    return error
}
