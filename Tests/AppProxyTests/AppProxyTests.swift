import Testing
@testable import AppProxy
