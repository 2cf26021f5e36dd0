import ArgumentParser
import ChunkStore
import Compute
import Controller
import Foundation

struct NodeCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "node",
        abstract: "The machines that run your apps: join tokens, the node list, removing a node.",
        discussion: """
            A node is a machine running `a67 agent`. To add one: make a join token here \
            (a67 node token create), copy the a67 binary and the token to the machine, and run \
            a67 agent join https://HOST:7067 --token-file FILE --name NAME there.
            """,
        subcommands: [Token.self, Ls.self, Rm.self])

    struct Token: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Join tokens: one-use passes that let a machine join as a node.",
            subcommands: [Create.self])

        struct Create: AsyncParsableCommand {
            static let configuration = CommandConfiguration(
                abstract: "Make a one-use join token.",
                discussion: """
                    Prints a token that admits one node until it expires. Pass it to the agent in a file \
                    (--token-file) or the A67_JOIN_TOKEN environment variable, never on its command line. \
                    Only its SHA-256 is kept here. When a67 serve runs with --tls-cert, it also prints the \
                    certificate's public key pin for a67 agent join --pin (a self-signed certificate needs no CA).
                    """)

            @OptionGroup var home: HomeOptions

            @Option(help: "How long the token is valid: seconds, or a number with s, m, h or d.")
            var ttl: String = "1h"

            @Flag(help: "Print the result as JSON.")
            var json = false

            func run() async throws {
                try await guarded {
                    let seconds = try parseDuration(ttl, option: "--ttl")
                    let store = ControllerStore(catalog: try home.catalogOnly().catalog)
                    let now = Catalog.now()
                    let token = try store.createJoinToken(ttl: .milliseconds(Int64(seconds * 1000)), now: now)
                    let expires = now + Int64(seconds * 1_000_000_000)
                    let pin = ControllerPin.current(home: home.path)
                    if json {
                        var result: [String: Any] = ["token": token, "expires": isoTime(expires)]
                        if let pin { result["pin"] = pin }
                        printJSON(result)
                    } else {
                        show(token)
                        let trust = pin.map { " --pin \($0)" } ?? ""
                        note("valid once, until \(isoTime(expires)); on the new node: a67 agent join URL --token-file FILE --name NAME\(trust)")
                    }
                }
            }
        }
    }

    struct Ls: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "List the nodes: state, address, what they offer and use, their apps, when last heard from.")

        @OptionGroup var home: HomeOptions

        @OptionGroup var remote: RemoteOptions

        @Flag(help: "Also list removed nodes.")
        var all = false

        @Flag(help: "Print the result as JSON.")
        var json = false

        func run() async throws {
            try await guarded {
                let nodes = try await remote.remote(home: home)?.get("nodes", query: all ? [("all", "1")] : [], as: [NodeSummary].self)
                    ?? ControllerStore(catalog: try home.catalogOnly().catalog).nodeSummaries(includingRemoved: all)
                if json { return printCodable(nodes) }
                if nodes.isEmpty {
                    show("no nodes yet: a67 node token create, then a67 agent join on the machine")
                    return
                }
                let now = Catalog.now()
                printTable(["NAME", "ADDRESS", "STATE", "CPU", "MEMORY", "DISK", "APPS", "LAST SEEN"], nodes.map { node in
                    [node.name, node.address, node.state,
                     String(format: "%.1f/%.1f", Double(node.used.cpuMillis) / 1000, Double(node.capacity.cpuMillis) / 1000),
                     "\(ByteSize.format(node.used.memoryBytes))/\(ByteSize.format(node.capacity.memoryBytes))",
                     "\(ByteSize.format(node.used.diskBytes))/\(ByteSize.format(node.capacity.diskBytes))",
                     String(node.apps),
                     node.lastSeen.map { "\(max(0, (now - $0) / 1_000_000_000))s ago" } ?? "never"]
                })
            }
        }
    }
    struct Rm: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Remove a node: its credential stops working at once.",
            discussion: "The node's history stays (a67 node ls --all). To add the machine again, join it with a new token.")

        @OptionGroup var home: HomeOptions

        @Argument(help: "The node's name.")
        var name: String

        func run() async throws {
            try await guarded {
                let store = ControllerStore(catalog: try home.catalogOnly().catalog)
                guard let node = try store.nodes().first(where: { $0.name == name && $0.state != .removed }) else {
                    throw StoreError(.notFound, "there is no node named \(name) (a67 node ls lists them)")
                }
                try store.remove(node: node.id, now: Catalog.now())
                show("removed node \(name); its agent can no longer reach the controller")
            }
        }
    }
}
