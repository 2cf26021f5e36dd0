import Compute
import Testing

/// The values shared by the module's parts; the parts are tested in their own files (ManifestTests,
/// SchedulerTests, BundleTests).
@Suite struct ComputeTests {
    @Test func resourcesAddSubtractAndFit() {
        let node = Resources(memoryBytes: 1 << 30, cpuMillis: 1000, diskBytes: 10 << 30)
        let used = Resources(memoryBytes: 768 << 20, cpuMillis: 500, diskBytes: 1 << 30)
        let free = node - used
        #expect(free == Resources(memoryBytes: 256 << 20, cpuMillis: 500, diskBytes: 9 << 30))
        #expect(Resources(memoryBytes: 256 << 20, cpuMillis: 500).fits(in: free))
        #expect(!Resources(memoryBytes: (256 << 20) + 1).fits(in: free))
        #expect(used + free == node)
    }

    @Test func constraintsMatchLabels() {
        let labels = ["region": "eu", "disk": "ssd"]
        #expect(Constraint(label: "region", value: "eu").isSatisfied(by: labels))
        #expect(!Constraint(label: "region", value: "us").isSatisfied(by: labels))
        #expect(Constraint(label: "disk", op: .notEquals, value: "hdd").isSatisfied(by: labels))
        #expect(!Constraint(label: "gpu", value: "yes").isSatisfied(by: labels))
        #expect(Constraint(label: "gpu", op: .notEquals, value: "yes").isSatisfied(by: labels))
        #expect("\(Constraint(label: "disk", op: .notEquals, value: "hdd"))" == "disk!=hdd")
    }
}
