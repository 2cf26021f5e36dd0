import Compute
import Testing

/// The module's parts are tested in their own files: ManifestTests, SchedulerTests, BundleTests.
@Suite struct ComputeTests {
    @Test func theModuleIsLinked() { #expect(String(describing: Compute.self) == "Compute") }
}
