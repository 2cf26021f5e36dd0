import Compute
import Foundation
import HTTPTypes
import NIOHTTP1
import Testing
@testable import AppProxy

/// The balancer: two distinct draws, the lesser load wins, unusable instances never picked.
@Suite struct AppProxyBalancerTests {
    struct Case: Sendable, CustomStringConvertible {
        let loads: [Int]
        let usable: [Bool]
        /// What may be picked (nil: nothing).
        let allowed: Set<Int>?
        var description: String { "loads \(loads) usable \(usable)" }
    }

    @Test(arguments: [
        Case(loads: [], usable: [], allowed: nil),
        Case(loads: [5], usable: [true], allowed: [0]),
        Case(loads: [5], usable: [false], allowed: nil),
        Case(loads: [0, 9], usable: [true, true], allowed: [0]),            // both drawn: the lesser load
        Case(loads: [9, 0, 9], usable: [true, false, true], allowed: [0, 2]), // the unusable one never
        Case(loads: [0, 0, 0, 7], usable: [false, false, false, true], allowed: [3]),
        Case(loads: [3, 1, 2], usable: [true, true, true], allowed: [1, 2]), // the most loaded loses every pair
    ])
    func picksAmongUsableByLoad(_ c: Case) {
        for seed in UInt64(0)..<200 {
            var rng = SplitMix64(seed: seed)
            let pick = Balancer.pick(count: c.loads.count, usable: { c.usable[$0] }, load: { c.loads[$0] }, using: &rng)
            if let allowed = c.allowed {
                #expect(pick.map { allowed.contains($0) } == true, "seed \(seed): \(String(describing: pick))")
            } else {
                #expect(pick == nil)
            }
        }
    }

    /// Equal loads: every instance is picked, about evenly; the same seed gives the same picks.
    @Test func spreadsEvenlyAndRepeatably() {
        var rng = SplitMix64(seed: 42)
        var counts = [0, 0, 0, 0]
        var picks: [Int] = []
        for _ in 0..<4000 {
            let pick = Balancer.pick(count: 4, usable: { _ in true }, load: { _ in 0 }, using: &rng)!
            counts[pick] += 1
            picks.append(pick)
        }
        #expect(counts.allSatisfy { $0 > 800 && $0 < 1200 }, "\(counts)")
        var again = SplitMix64(seed: 42)
        #expect(picks.prefix(50).elementsEqual((0..<50).map { _ in
            Balancer.pick(count: 4, usable: { _ in true }, load: { _ in 0 }, using: &again)!
        }))
    }
}

/// Passive outlier detection, driven by events and times given as values.
@Suite struct AppProxyOutlierTests {
    enum Event: Sendable { case fail(Int), succeed }  // .fail(at second)

    struct Case: Sendable, CustomStringConvertible {
        let name: String
        let events: [Event]
        /// (second, ejected then?) checked after the events.
        let checks: [(Int, Bool)]
        var description: String { name }
    }

    static let policy = OutlierPolicy(consecutiveFailures: 3, baseEjection: .seconds(10), maxEjection: .seconds(25))

    @Test(arguments: [
        Case(name: "two failures keep it in", events: [.fail(0), .fail(1)], checks: [(1, false), (2, false)]),
        Case(name: "three in a row eject it for the base period", events: [.fail(0), .fail(1), .fail(2)],
             checks: [(2, true), (11, true), (12, false)]),
        Case(name: "a success between resets the count", events: [.fail(0), .fail(1), .succeed, .fail(2), .fail(3)],
             checks: [(3, false)]),
        Case(name: "failures of requests sent before the ejection do not extend it",
             events: [.fail(0), .fail(0), .fail(0), .fail(5), .fail(9)], checks: [(9, true), (10, false)]),
        Case(name: "on probation one failure ejects again, twice as long",
             events: [.fail(0), .fail(0), .fail(0), .fail(10)], checks: [(29, true), (30, false)]),
        Case(name: "ejections grow to the maximum", events: [.fail(0), .fail(0), .fail(0), .fail(10), .fail(30)],
             checks: [(54, true), (55, false)]),
        Case(name: "a success on probation puts it back in with a clean slate",
             events: [.fail(0), .fail(0), .fail(0), .succeed, .fail(11), .fail(12)], checks: [(12, false)]),
    ])
    func ejectsAndReadmits(_ c: Case) {
        let start = ContinuousClock.now
        func at(_ second: Int) -> ContinuousClock.Instant { start + .seconds(second) }
        var state = OutlierState.fresh
        for event in c.events {
            switch event {
            case .fail(let second): state.failed(at: at(second), policy: Self.policy)
            case .succeed: state.succeeded()
            }
        }
        for (second, ejected) in c.checks {
            #expect(state.isEjected(at: at(second)) == ejected, "at \(second) s: \(state)")
        }
    }

    @Test func ejectionLengthsDoubleUpToTheMaximum() {
        #expect((1...4).map { Self.policy.ejection($0) } == [.seconds(10), .seconds(20), .seconds(25), .seconds(25)])
    }
}

/// Which requests are an app's and the path its instance sees.
@Suite struct AppProxyAddressingTests {
    static let addressing = AppAddressing(domain: "apps.local")

    static func head(_ authority: String, _ path: String, authorization: String? = nil) -> HTTPRequest {
        var fields = HTTPFields()
        if let authorization { fields[.authorization] = authorization }
        return HTTPRequest(method: .get, scheme: "http", authority: authority, path: path, headerFields: fields)
    }

    @Test(arguments: [
        ("web.apps.local", "/x?y=1", AppAddressing.Target.app("web", path: "/x?y=1")),
        ("web.apps.local:7067", "/", .app("web", path: "/")),
        ("WEB.Apps.Local:80", "/_a67/metrics", .app("web", path: "/_a67/metrics")),  // the whole host is the app's
        ("127.0.0.1:7067", "/apps/web/a/b?c=d", .app("web", path: "/a/b?c=d", prefix: "/apps/web")),
        ("127.0.0.1:7067", "/apps/web/", .app("web", path: "/", prefix: "/apps/web")),
        ("127.0.0.1:7067", "/apps/web", .redirect(location: "/apps/web/")),
        ("127.0.0.1:7067", "/apps/web?q=1", .redirect(location: "/apps/web/?q=1")),
    ])
    func appRequestsAndTheirPaths(authority: String, path: String, expected: AppAddressing.Target) {
        let head = Self.head(authority, path)
        #expect(Self.addressing.takes(head))
        #expect(Self.addressing.target(head) == expected)
    }

    @Test(arguments: [
        ("127.0.0.1:7067", "/photos/a", nil as String?),
        ("apps.local", "/", nil),                    // the domain itself is no app
        ("webapps.local", "/", nil),                 // not under the domain
        ("web.apps.local.evil", "/", nil),
        ("[::1]:7067", "/", nil),
        ("127.0.0.1", "/apps", nil),
        ("127.0.0.1", "/apps/", nil),                // no app name: S3's bucket "apps"
        ("127.0.0.1", "/apps//x", nil),
        ("127.0.0.1", "/appsx/web/", nil),
        // Signed for S3: the bucket named "apps" keeps working.
        ("127.0.0.1", "/apps/web/key", "AWS4-HMAC-SHA256 Credential=AK/20260101/us-east-1/s3/aws4_request, SignedHeaders=host, Signature=00"),
        ("127.0.0.1", "/apps/web/key?X-Amz-Credential=AK&X-Amz-Signature=00", nil),
    ])
    func otherRequestsAreLeftToS3(authority: String, path: String, authorization: String?) {
        let head = Self.head(authority, path, authorization: authorization)
        #expect(!Self.addressing.takes(head))
        #expect(Self.addressing.target(head) == nil)
    }

    @Test func theDomainIsConfigurable() {
        let custom = AppAddressing(domain: ".Example.ORG.")
        #expect(custom.target(Self.head("shop.example.org", "/")) == .app("shop", path: "/"))
        #expect(!custom.takes(Self.head("shop.apps.local", "/")))
    }
}

/// Hop-by-hop headers dropped both ways; Host kept; X-Forwarded-* added.
@Suite struct AppProxyHeaderTests {
    @Test func requestHeaders() {
        let fields: HTTPFields = [
            .connection: "keep-alive, X-Secret-Hop", HTTPField.Name("X-Secret-Hop")!: "1", HTTPField.Name("Keep-Alive")!: "timeout=5",
            .te: "trailers", .transferEncoding: "chunked", .contentLength: "5", .accept: "text/html",
            HTTPField.Name("X-Forwarded-For")!: "10.0.0.9", HTTPField.Name("X-Forwarded-Host")!: "spoofed", .cookie: "a=1",
            HTTPField.Name("Proxy-Authorization")!: "Basic x", HTTPField.Name("X-Forwarded-Prefix")!: "/spoofed",
        ]
        let headers = ForwardedHeaders.request(fields, host: "web.apps.local:7067", client: "192.0.2.1", proto: "https",
                                               prefix: "/apps/web")
        let names = Set(headers.map { $0.name.lowercased() })
        for dropped in ["connection", "x-secret-hop", "keep-alive", "te", "transfer-encoding", "content-length", "proxy-authorization"] {
            #expect(!names.contains(dropped), "\(dropped)")
        }
        #expect(headers["Host"] == ["web.apps.local:7067"])
        #expect(headers["Accept"] == ["text/html"])
        #expect(headers["Cookie"] == ["a=1"])
        #expect(headers["X-Forwarded-For"] == ["10.0.0.9, 192.0.2.1"])
        #expect(headers["X-Forwarded-Host"] == ["web.apps.local:7067"])
        #expect(headers["X-Forwarded-Proto"] == ["https"])
        #expect(headers["X-Forwarded-Prefix"] == ["/apps/web"])
        #expect(!ForwardedHeaders.request([:], host: nil, client: nil, proto: "http").contains(name: "X-Forwarded-Prefix"))
    }

    @Test func responseHeaders() {
        let headers: HTTPHeaders = ["Connection": "close, X-Hop", "X-Hop": "1", "Transfer-Encoding": "chunked", "Content-Type": "text/plain",
                                    "Set-Cookie": "a=1", "Content-Length": "12", "Upgrade": "h2c"]
        let fields = ForwardedHeaders.response(headers)
        #expect(Set(fields.map { $0.name.canonicalName }) == ["content-type", "set-cookie", "content-length"])
    }

    /// The names a Connection header lists: trimmed, lowercased, without "close" and "keep-alive".
    @Test(arguments: [
        ([], []),
        (["keep-alive"], []),
        (["Keep-Alive, close"], []),
        (["close, X-Hop"], ["x-hop"]),
        ([" X-A ,\tx-b\t", "Upgrade"], ["x-a", "x-b", "upgrade"]),
        ([",, ,"], []),
    ] as [([String], Set<String>)])
    func connectionNamed(values: [String], names: Set<String>) {
        #expect(ForwardedHeaders.connectionNamed(values) == names)
    }

    @Test func onlyMethodsThatMayBeRepeatedAreRetried() {
        #expect(AppProxy.retried == [.get, .head, .put, .delete, .options])
        #expect(!AppProxy.retried.contains(.post) && !AppProxy.retried.contains(.patch))
    }
}
