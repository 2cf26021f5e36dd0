/// The one error type of the store. `message` is for a person: it says what went wrong and,
/// where there is something to do, what to do. Secrets (passphrases, keys) never appear in it.
public struct StoreError: Error, CustomStringConvertible, Sendable, Equatable {
    public enum Code: String, Sendable, Equatable {
        /// A bucket, key, provider or source that does not exist.
        case notFound
        /// Input that can never work: an invalid name, key, range or option.
        case invalidArgument
        /// Something that already exists (a repository, a bucket, a provider).
        case alreadyExists
        /// Refused because it would lose data or break the namespace (a bucket not empty, a file in the way).
        case conflict
        /// The passphrase does not unlock the keyring, or none was given.
        case wrongPassphrase
        /// No repository at $A67_HOME.
        case notInitialized
        /// The repository's catalog is at $A67_HOME but its keyring is missing or damaged there: the keys
        /// are gone from this machine, not the data (every provider holds a copy of the keyring).
        case keyringLost
        /// Stored bytes failed verification: corrupted, truncated or swapped data.
        case integrity
        /// A provider could not do what was asked (unwritable, full, unreachable).
        case providerFailure
        /// The bucket owner's quota (a67 user quota) has no room for what was asked.
        case quotaExceeded
        /// A local file or stream could not be read or written.
        case io
        /// A bug: an invariant did not hold.
        case `internal`
    }

    public let code: Code
    public let message: String

    public init(_ code: Code, _ message: String) {
        self.code = code
        self.message = message
    }

    public var description: String { message }
}
