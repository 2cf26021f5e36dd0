import Agent
import ArgumentParser
import ChunkStore
import Foundation
import Logging
import ServiceLifecycle

struct AgentCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "agent",
        abstract: "Run this machine as a node: join a controller, then run the apps it places here.",
        discussion: """
            On each machine that should run apps (a free VM, say), copy the a67 binary and a join token \
            made by a67 node token create on the controller, then:
              a67 agent join https://HOST:7067 --token-file tok --name vm1 --data /var/lib/a67
              a67 agent install-service       # or: a67 agent run --data /var/lib/a67
            The agent never holds your repository's keys or any provider's credentials: the controller \
            grants it the keys of the bundles it runs, and nothing more.
            """,
        subcommands: [Join.self, Run.self, InstallService.self])

    struct DataOption: ParsableArguments {
        @Option(help: "The agent's folder: its identity, credential, bundles, logs and instance state.")
        var data: String = "/var/lib/a67"

        var path: String { absolute(data) }
    }

    struct Join: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Join a controller with a one-use token and save this node's credential.",
            discussion: """
                The token is read from --token-file or the A67_JOIN_TOKEN environment variable, never \
                from the command line (where ps would show it). The credential the controller issues is \
                saved in DATA/credential, readable by root only. Then start the agent with a67 agent run \
                or a67 agent install-service.
                """)

        @Argument(help: "The controller's URL: https://HOST:7067 (http:// only on a trusted network).")
        var controller: String

        @Option(help: "A file holding the join token.")
        var tokenFile: String?

        @Option(help: "This node's name: letters, digits, '-' or '_', unique among the nodes.")
        var name: String = ProcessInfo.processInfo.hostName.split(separator: ".").first.map(String.init) ?? "node"

        @Option(name: .customLong("label"), help: "A label KEY=VALUE for placement constraints (repeat for more).")
        var labels: [String] = []

        @Option(help: "Where this node's instances are reached (an address); default: the address the controller sees.")
        var advertise: String?

        @Option(help: "A PEM file of the CA that signed the controller's certificate (default: the system's CAs).")
        var caFile: String?

        @Option(help: "The controller's public key pin, sha256//BASE64, as a67 node token create prints it.")
        var pin: String?

        @OptionGroup var data: DataOption

        @Flag(help: "Print the result as JSON.")
        var json = false

        func run() async throws {
            try await guarded {
                let token = try readToken()
                var labelMap: [String: String] = [:]
                for label in labels {
                    let parts = label.split(separator: "=", maxSplits: 1).map(String.init)
                    guard parts.count == 2, !parts[0].isEmpty else {
                        throw StoreError(.invalidArgument, "--label \(label) is not KEY=VALUE (for example --label region=eu)")
                    }
                    labelMap[parts[0]] = parts[1]
                }
                guard controller.hasPrefix("https://") || controller.hasPrefix("http://") else {
                    throw StoreError(.invalidArgument, "\(controller) is not a controller URL: write https://HOST:7067")
                }
                let identity = try await AgentNode.join(controller: controller, token: token, name: name, advertise: advertise,
                                                        labels: labelMap, data: data.path, caFile: caFile.map(absolute), pinnedKey: pin)
                if json {
                    printJSON(["node": identity.nodeID, "name": identity.name, "address": identity.address, "data": data.path])
                } else {
                    show("joined \(identity.controller) as \(identity.name) (\(identity.nodeID)), reached at \(identity.address)")
                    note("start it: a67 agent run --data \(data.path)   (or a67 agent install-service --data \(data.path))")
                }
            }
        }

        func readToken() throws -> String {
            let text: String
            if let tokenFile {
                do {
                    text = String(decoding: try LocalFile.read(absolute(tokenFile), atMost: 4096, stoppingAfter: 0x0A), as: UTF8.self)
                } catch {
                    throw StoreError(.invalidArgument, "cannot read the token file \(tokenFile): \(error.reason)")
                }
            } else if let env = ProcessInfo.processInfo.environment["A67_JOIN_TOKEN"], !env.isEmpty {
                text = env
            } else {
                throw StoreError(.invalidArgument, "no join token: pass --token-file FILE or set A67_JOIN_TOKEN (make one with a67 node token create)")
            }
            let token = text.trimmingCharacters(in: .whitespacesAndNewlines)
            guard !token.isEmpty else { throw StoreError(.invalidArgument, "the join token is empty") }
            return token
        }
    }

    struct Run: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Run the agent in the foreground: follow the controller, run and supervise this node's instances.",
            discussion: """
                Instances run in their own sessions and survive the agent: a restarted agent adopts \
                them. While the controller is unreachable the apps keep running. Stop with Ctrl-C or \
                SIGTERM (the instances keep running; a67 agent run adopts them again).
                """)

        @OptionGroup var data: DataOption

        @Option(help: "How often to report to the controller: seconds, or a number with s or m (default: the controller's, 5s).")
        var heartbeat: String?

        func run() async throws {
            try await guarded {
                var (identity, credential) = try AgentIdentity.load(data: data.path)
                if let heartbeat {
                    let seconds = try parseDuration(heartbeat, option: "--heartbeat")
                    guard seconds >= 0.1 else { throw StoreError(.invalidArgument, "--heartbeat must be at least 0.1s") }
                    identity.heartbeatSeconds = seconds
                }
                let logger = Logger(label: "a67.agent")
                let supervisor = Supervisor(dataDirectory: data.path, logger: logger)
                let node = try AgentNode(data: data.path, identity: identity, credential: credential, supervisor: supervisor, logger: logger)
                note("a67 agent: \(identity.name) (\(identity.nodeID)) following \(identity.controller)")
                let group = ServiceGroup(configuration: .init(services: [node], gracefulShutdownSignals: [.sigterm, .sigint], logger: logger))
                try await group.run()
                await supervisor.shutdown(stopInstances: false)
            }
        }
    }

    struct InstallService: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "install-service",
            abstract: "Write and enable a systemd unit that runs the agent at boot.",
            discussion: """
                Writes UNIT-DIR/a67-agent.service running this a67 binary as `a67 agent run --data DATA`, \
                restarted when it exits. Stopping or restarting the unit leaves the instances running \
                (KillMode=process): the agent adopts them when it starts again.
                """)

        @OptionGroup var data: DataOption

        @Option(help: "Where to write the unit.")
        var unitDir: String = "/etc/systemd/system"

        @Flag(help: "Only write the unit; do not run systemctl.")
        var noEnable = false

        func run() async throws {
            try await guarded {
                _ = try AgentIdentity.load(data: data.path)
                let binary = absolute(CommandLine.arguments[0].contains("/") ? CommandLine.arguments[0]
                                      : (Bundle.main.executablePath ?? "/usr/local/bin/a67"))
                let unit = AgentService.unit(binary: binary, data: data.path)
                let path = absolute(unitDir) + "/a67-agent.service"
                try LocalFile.write(Array(unit.utf8), to: path, mode: 0o644)
                show("wrote \(path)")
                guard !noEnable else { return }
                for arguments in [["daemon-reload"], ["enable", "--now", "a67-agent.service"]] {
                    let process = Process()
                    process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
                    process.arguments = ["systemctl"] + arguments
                    try process.run()
                    process.waitUntilExit()
                    guard process.terminationStatus == 0 else {
                        throw StoreError(.io, "systemctl \(arguments.joined(separator: " ")) failed (status \(process.terminationStatus)); "
                            + "the unit is written: enable it by hand, or run a67 agent run --data \(data.path)")
                    }
                }
                show("a67-agent.service enabled and started")
            }
        }
    }
}
