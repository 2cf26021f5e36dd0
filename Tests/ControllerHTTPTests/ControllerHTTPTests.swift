import Testing
@testable import ControllerHTTP
