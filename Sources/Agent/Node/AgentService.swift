import Foundation
import ServiceLifecycle

extension AgentNode: Service {}

/// How the agent runs as a system service.
public enum AgentService {
    /// The systemd unit that runs `binary agent run --data DATA` at boot. `KillMode=process`: stopping
    /// or restarting the unit stops the agent only, and the instances it supervises (each in its own
    /// session) keep running until the next agent adopts them.
    public static func unit(binary: String, data: String) -> String {
        """
        [Unit]
        Description=Automator67 node agent (runs the apps its controller places here)
        After=network-online.target
        Wants=network-online.target

        [Service]
        ExecStart=\(quoted(binary)) agent run --data \(quoted(data))
        Restart=always
        RestartSec=2
        KillMode=process
        # The agent's own memory stays small (a few MB); instances are limited by their cgroups.
        LimitNOFILE=65536

        [Install]
        WantedBy=multi-user.target

        """
    }

    /// A word of a systemd command line: quoted when it holds a space, a quote or a backslash.
    static func quoted(_ word: String) -> String {
        guard word.contains(where: { $0 == " " || $0 == "\"" || $0 == "\\" || $0 == "'" }) else { return word }
        return "\"" + word.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "\"", with: "\\\"") + "\""
    }
}
