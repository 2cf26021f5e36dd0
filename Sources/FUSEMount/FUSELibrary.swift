import CFUSE

/// libfuse3 as this build links it. The mount itself (`a67 mount`) arrives with issue 6; this module
/// owns the CFUSE shim so that no other module ever imports it.
public enum FUSELibrary {
    /// For example "3.14.0".
    public static var version: String { String(cString: fuse_pkgversion()) }
}
