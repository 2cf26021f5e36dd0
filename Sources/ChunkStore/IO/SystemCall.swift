#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A failed system call: which call, on what, and the errno it set.
public struct SystemCallError: Error, CustomStringConvertible, Sendable {
    public let call: String
    public let path: String
    public let errno: Int32

    public var description: String {
        "\(call) \(path): \(String(cString: strerror(errno)))"
    }

    public var isNoSpace: Bool { errno == ENOSPC || errno == EDQUOT }
    public var isNotFound: Bool { errno == ENOENT }
}

/// Runs a system call, retrying on EINTR, turning -1/errno into a `SystemCallError`.
@discardableResult
@inline(__always)
func sys<T: BinaryInteger>(_ call: String, _ path: String, _ body: () -> T) throws(SystemCallError) -> T {
    while true {
        let r = body()
        if r != -1 { return r }
        let e = errno
        if e == EINTR { continue }
        throw SystemCallError(call: call, path: path, errno: e)
    }
}

/// Raises this process's limit on open descriptors (RLIMIT_NOFILE) to its hard limit and returns the
/// limit now in force. A server holds a descriptor per connection; the usual soft limit (1,024) is
/// far below what the hard limit allows.
public func raiseOpenFileLimit() throws(SystemCallError) -> UInt64 {
    #if canImport(Glibc)
    let resource = __rlimit_resource_t(RLIMIT_NOFILE.rawValue)
    #else
    let resource = RLIMIT_NOFILE
    #endif
    var limit = rlimit()
    try sys("getrlimit", "RLIMIT_NOFILE") { getrlimit(resource, &limit) }
    // An unlimited hard limit (RLIM_INFINITY) is not a value the kernel takes for descriptors (fs.nr_open caps it).
    let wanted = limit.rlim_max == rlim_t.max ? max(limit.rlim_cur, 1 << 20) : limit.rlim_max
    guard limit.rlim_cur < wanted else { return UInt64(limit.rlim_cur) }
    var raised = limit
    raised.rlim_cur = wanted
    do {
        try sys("setrlimit", "RLIMIT_NOFILE") { setrlimit(resource, &raised) }
        return UInt64(raised.rlim_cur)
    } catch {
        return UInt64(limit.rlim_cur)
    }
}
