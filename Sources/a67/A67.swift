import ArgumentParser
import ChunkStore

@main
struct A67: AsyncParsableCommand {
    static func main() async {
        MemoryTuning.configureForChunkBuffers()
        Crypto.prepareLibrary()
        TerminalLogHandler.bootstrap()
        do {
            var command = try parseAsRoot()
            if var asyncCommand = command as? AsyncParsableCommand {
                try await asyncCommand.run()
            } else {
                try command.run()
            }
        } catch {
            exit(withError: error)
        }
    }

    static let version = A67Version.current

    static let configuration = CommandConfiguration(
        commandName: "a67",
        abstract: "Automator67: one encrypted, replicated store over your free storage accounts.",
        discussion: """
            Files and objects are split into chunks of at most 5 MiB, compressed (zstd), encrypted \
            (AES-256-GCM) and stored on your providers. State lives in $A67_HOME (default ~/.a67).

            The passphrase comes from the file named by A67_PASSPHRASE_FILE, or A67_PASSPHRASE, or a \
            prompt on a terminal. Read-only views (ls, stat, bucket ls, provider ls) need none.

            Start here:
              a67 init
              a67 provider add disk1 --dir /mnt/disk1/a67
              a67 bucket create photos
              a67 put ./holiday.jpg photos/2026/holiday.jpg
              a67 get photos/2026/holiday.jpg ./copy.jpg
            Or run `a67 up` for a ready-made demo repository.

            Your apps on your VMs: a67 serve is also their controller; a67 node token create, then \
            a67 agent join on each VM, then a67 app deploy ./myapp (README, "Run your apps").

            Exit codes:
            \(ExitStatus.helpTable)
            """,
        version: version,
        subcommands: [
            Init.self, Up.self, ProviderCommand.self, BucketCommand.self, Put.self, Get.self, List.self, Remove.self,
            Stat.self, Status.self, Scrub.self, Repair.self, Rebalance.self, GC.self, Undelete.self, Snapshot.self, Recover.self,
            Config.self, Serve.self, MountCommand.self, UmountCommand.self, UserCommand.self, KeyCommand.self,
            NodeCommand.self, AgentCommand.self, AppCommand.self,
            Version.self,
        ]
    )
}
