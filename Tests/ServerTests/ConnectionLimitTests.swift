import Testing
@testable import Server

/// The connection counts `a67 serve` refuses past: per client address and in all.
@Suite struct ConnectionLimitTests {
    @Test func countsPerClientAndInAll() {
        var limits = ConnectionLimits()
        limits.maxConnections = 3
        limits.maxPerClient = 2
        let counter = ConnectionCounter(limits)
        #expect(counter.admit("10.0.0.1"))
        #expect(counter.admit("10.0.0.1"))
        #expect(!counter.admit("10.0.0.1"))
        #expect(counter.admit("10.0.0.2"))
        #expect(!counter.admit("10.0.0.3"))
        counter.release("10.0.0.1")
        #expect(counter.admit("10.0.0.3"))
        #expect(!counter.admit("10.0.0.1"))
        counter.release("10.0.0.2")
        #expect(counter.admit("10.0.0.1"))
    }
}
