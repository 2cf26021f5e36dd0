/// What went wrong packing or unpacking an app bundle. `message` is for a person: it names the file,
/// entry or line concerned and, where there is something to do, what to do.
public struct BundleError: Error, CustomStringConvertible, Sendable, Equatable {
    public enum Code: String, Sendable, Equatable {
        /// A file the bundle cannot hold (a device, FIFO or socket), or a name that is not UTF-8.
        case unsupportedFile
        /// A symlink whose target is absolute or leaves the folder.
        case symlinkEscapes
        /// A line of `.a67ignore` that is not a pattern this subset takes.
        case ignoreSyntax
        /// A file changed size or type between listing the folder and reading it.
        case changedWhilePacking
        /// An archive entry whose path is absolute, has `..`, or goes through a symlink or a missing folder.
        case unsafePath
        /// Two archive entries with the same path.
        case duplicateEntry
        /// An archive that is not the deterministic ustar a67 writes: a bad header, checksum, type,
        /// size, or an archive that ends early or goes on after its end.
        case malformed
        /// The archive's SHA-256 is not the one the deployment names.
        case digestMismatch
        /// The folder to unpack into already exists.
        case destinationExists
        /// A local file or folder could not be read or written.
        case io
    }

    public let code: Code
    public let message: String

    public init(_ code: Code, _ message: String) {
        self.code = code
        self.message = message
    }

    public var description: String { message }
}
