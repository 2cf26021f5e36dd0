import Foundation

/// Which user an instance runs as. An agent running as root must not give apps root: they run as a
/// dedicated unprivileged user (`a67app` when the machine has one, else `nobody`).
public enum RunAs: Sendable, Equatable {
    /// The unprivileged user when the agent is root (`RunAs.unprivileged`), else the agent's own.
    case automatic
    /// The agent's own user, even root (tests; a machine given over to one trusted app).
    case agent
    /// This uid and gid.
    case user(uid: UInt32, gid: UInt32)

    /// The user the agent prefers for apps, then the usual fallback.
    public static let preferredNames = ["a67app", "nobody"]
    /// nobody's ids on Debian and Ubuntu, for a machine whose /etc/passwd names neither.
    public static let fallback: (uid: UInt32, gid: UInt32) = (65534, 65534)

    /// The ids to switch to, or nil to keep the agent's: `agentUID` is the agent's uid, `passwd` the
    /// text of /etc/passwd.
    public func ids(agentUID: UInt32, passwd: String) -> (uid: UInt32, gid: UInt32)? {
        switch self {
        case .agent: return nil
        case .user(let uid, let gid): return (uid, gid)
        case .automatic:
            guard agentUID == 0 else { return nil }
            return Self.preferredNames.lazy.compactMap { Self.lookup($0, passwd: passwd) }.first ?? Self.fallback
        }
    }

    /// The uid and gid of user `name` in /etc/passwd's text (name:password:uid:gid:...).
    public static func lookup(_ name: String, passwd: String) -> (uid: UInt32, gid: UInt32)? {
        for line in passwd.split(separator: "\n") {
            let fields = line.split(separator: ":", omittingEmptySubsequences: false)
            guard fields.count >= 4, fields[0] == name, let uid = UInt32(fields[2]), let gid = UInt32(fields[3]) else { continue }
            return (uid, gid)
        }
        return nil
    }
}
