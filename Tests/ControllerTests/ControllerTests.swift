import Controller
import Testing

/// The controller's parts are tested in their own files.
@Suite struct ControllerTests {}
