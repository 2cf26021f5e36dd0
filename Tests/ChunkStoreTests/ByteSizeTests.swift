import ChunkStore
import Testing

/// Sizes as users write them (`--quota 10G`, `memory = "128M"`) and as a67 prints them.
@Suite struct ByteSizeTests {
    static let written: [(String, Int64)] = [
        ("128M", 134_217_728), ("1G", 1_073_741_824), ("512k", 524_288), ("2MiB", 2_097_152), ("1T", 1_099_511_627_776),
        ("1.5TiB", 1_649_267_441_664), ("100MB", 100_000_000), ("1KB", 1000), ("4096", 4096), ("4096B", 4096),
        ("0.5G", 536_870_912), ("64 M", 67_108_864), (" 10G ", 10_737_418_240),
    ]

    @Test(arguments: written)
    func parses(text: String, bytes: Int64) throws {
        #expect(try ByteSize.parse(text) == bytes)
    }

    @Test(arguments: ["", "M", "lots", "-1M", "1Q", "1.M", ".5G", "1..2M", "99999999999T", "٣M"])
    func refuses(text: String) {
        #expect(throws: StoreError.self) { try ByteSize.parse(text) }
    }

    static let printed: [(Int64, String)] = [
        (0, "0 B"), (100, "100 B"), (1023, "1023 B"), (1024, "1 KiB"), (1536, "1.5 KiB"), (536_870_912, "512 MiB"),
        (1_073_725_440, "1 GiB"), (1_610_612_736, "1.5 GiB"), (-1536, "-1.5 KiB"), (Int64.max, "8 EiB"),
    ]

    @Test(arguments: printed)
    func formats(bytes: Int64, text: String) {
        #expect(ByteSize.format(bytes) == text)
    }

    @Test func rates() {
        #expect(ByteSize.rate(13_000_000, 2) == "6.5 MB/s")
        #expect(ByteSize.rate(1, 0) == "-")
    }
}
