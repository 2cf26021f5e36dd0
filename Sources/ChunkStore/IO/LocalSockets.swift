#if canImport(Glibc)
import Glibc
#endif

/// The few socket calls the node agent makes on its own machine, in Swift values (the sockaddr
/// handling stays here, with the C library): is a TCP port free, does a port accept connections.
public enum LocalSockets {
    /// Whether TCP port `port` can be bound on every IPv4 address now (and on every IPv6 address,
    /// where the machine has IPv6): nothing listens on it or holds it. The socket is closed again at
    /// once, so the answer is a snapshot: the caller hands the port out right after.
    public static func isPortFree(_ port: Int) -> Bool {
        guard (1...65535).contains(port) else { return false }
        var v4 = sockaddr_in()
        v4.sin_family = sa_family_t(AF_INET)
        v4.sin_port = UInt16(port).bigEndian
        v4.sin_addr.s_addr = INADDR_ANY
        guard bindable(family: AF_INET, address: v4) == true else { return false }
        var v6 = sockaddr_in6()
        v6.sin6_family = sa_family_t(AF_INET6)
        v6.sin6_port = UInt16(port).bigEndian
        v6.sin6_addr = in6addr_any
        // nil: no IPv6 here, which leaves the IPv4 answer.
        return bindable(family: AF_INET6, address: v6) ?? true
    }

    /// Why a local probe failed, in words for an instance's report.
    public struct ProbeError: Error, Sendable, Equatable, CustomStringConvertible {
        public let description: String
    }

    /// Connects to 127.0.0.1:`port` and closes the connection again: throws why when no connection
    /// is accepted within `timeoutMilliseconds`. Blocks the calling thread for at most that long.
    public static func checkAcceptsConnections(port: Int, timeoutMilliseconds: Int) throws(ProbeError) {
        close(try connected(port: port, deadline: deadline(after: timeoutMilliseconds)))
    }

    /// The status of an HTTP/1.0 GET of `path` on 127.0.0.1:`port` (its first response line), within
    /// `timeoutMilliseconds` in all. A health check: the body is not read. Blocks the calling thread.
    public static func httpStatus(port: Int, path: String, timeoutMilliseconds: Int) throws(ProbeError) -> Int {
        let deadline = deadline(after: timeoutMilliseconds)
        let fd = try connected(port: port, deadline: deadline)
        defer { close(fd) }
        let request = Array("GET \(path) HTTP/1.0\r\nHost: 127.0.0.1:\(port)\r\nUser-Agent: a67-agent\r\nConnection: close\r\n\r\n".utf8)
        var sent = 0
        while sent < request.count {
            try wait(fd, for: Int16(POLLOUT), until: deadline)
            let n = request[sent...].withUnsafeBytes { send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
            if n < 0 && errno != EAGAIN && errno != EINTR { throw ProbeError(description: "sending the request: \(reason())") }
            sent += max(n, 0)
        }
        var head: [UInt8] = []
        while !head.contains(0x0A) && head.count < 1024 {
            try wait(fd, for: Int16(POLLIN), until: deadline)
            var block = [UInt8](repeating: 0, count: 512)
            let n = block.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            if n == 0 { break }
            if n < 0 {
                if errno == EAGAIN || errno == EINTR { continue }
                throw ProbeError(description: "reading the answer: \(reason())")
            }
            head += block[..<n]
        }
        // "HTTP/1.1 200 OK"
        let fields = head.prefix { $0 != 0x0D && $0 != 0x0A }.split(separator: 0x20)
        guard fields.count >= 2, fields[0].starts(with: Array("HTTP/".utf8)),
              let status = Int(String(decoding: fields[1], as: UTF8.self)) else {
            throw ProbeError(description: head.isEmpty ? "the connection closed without an answer" : "the answer is not HTTP")
        }
        return status
    }

    private static func deadline(after milliseconds: Int) -> timespec {
        var now = timespec()
        clock_gettime(CLOCK_MONOTONIC, &now)
        let total = Int(now.tv_nsec) + (milliseconds % 1000) * 1_000_000
        return timespec(tv_sec: now.tv_sec + milliseconds / 1000 + total / 1_000_000_000, tv_nsec: total % 1_000_000_000)
    }

    private static func remainingMilliseconds(until deadline: timespec) -> Int32 {
        var now = timespec()
        clock_gettime(CLOCK_MONOTONIC, &now)
        let ms = (deadline.tv_sec - now.tv_sec) * 1000 + (deadline.tv_nsec - now.tv_nsec) / 1_000_000
        return Int32(clamping: max(0, ms))
    }

    private static func reason() -> String { String(cString: strerror(errno)) }

    /// Waits until `fd` is ready for `events`, or throws "timed out" at the deadline.
    private static func wait(_ fd: Int32, for events: Int16, until deadline: timespec) throws(ProbeError) {
        while true {
            var poller = pollfd(fd: fd, events: events, revents: 0)
            let ready = poll(&poller, 1, remainingMilliseconds(until: deadline))
            if ready > 0 { return }
            if ready == 0 { throw ProbeError(description: "timed out") }
            if errno != EINTR { throw ProbeError(description: "poll: \(reason())") }
        }
    }

    /// A non-blocking socket connected to 127.0.0.1:`port` by the deadline.
    private static func connected(port: Int, deadline: timespec) throws(ProbeError) -> Int32 {
        guard (1...65535).contains(port) else { throw ProbeError(description: "no port") }
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue) | Int32(SOCK_NONBLOCK.rawValue), 0)
        guard fd >= 0 else { throw ProbeError(description: "socket: \(reason())") }
        do throws(ProbeError) {
            try connect(fd, port: port, deadline: deadline)
            return fd
        } catch {
            close(fd)
            throw error
        }
    }

    private static func connect(_ fd: Int32, port: Int, deadline: timespec) throws(ProbeError) {
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = UInt16(port).bigEndian
        address.sin_addr.s_addr = UInt32(0x7F00_0001).bigEndian
        let r = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { Glibc.connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        if r == 0 { return }
        guard errno == EINPROGRESS else { throw ProbeError(description: "connecting to port \(port): \(reason())") }
        try wait(fd, for: Int16(POLLOUT), until: deadline)
        var failure: Int32 = 0
        var length = socklen_t(MemoryLayout<Int32>.size)
        guard getsockopt(fd, SOL_SOCKET, SO_ERROR, &failure, &length) == 0 else { throw ProbeError(description: "getsockopt: \(reason())") }
        guard failure == 0 else { throw ProbeError(description: "connecting to port \(port): \(String(cString: strerror(failure)))") }
    }

    /// true: bound; false: taken; nil: this address family is not available.
    private static func bindable<Address>(family: Int32, address: Address) -> Bool? {
        let fd = socket(family, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { return errno == EAFNOSUPPORT ? nil : false }
        defer { close(fd) }
        if family == AF_INET6 {
            var only: Int32 = 1
            setsockopt(fd, Int32(IPPROTO_IPV6), IPV6_V6ONLY, &only, socklen_t(MemoryLayout<Int32>.size))
        }
        var address = address
        let r = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<Address>.size)) }
        }
        if r == 0 { return true }
        return errno == EADDRNOTAVAIL || errno == EAFNOSUPPORT ? nil : false
    }
}
