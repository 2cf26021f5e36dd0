/// The release of Automator67, shown by `a67 --version` and the control API.
public enum A67Version {
    public static let current = "0.1.0"
}
