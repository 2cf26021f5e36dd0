import HTTPTypes
import NIOHTTP1

/// The headers a forwarded request and its answer carry (pure). Hop-by-hop headers (RFC 9110 7.6.1:
/// Connection and the headers it names, Keep-Alive, Proxy-*, TE, Trailer, Transfer-Encoding,
/// Upgrade) belong to one connection and are dropped both ways; the framing (Content-Length,
/// chunked) is set again by whoever writes the next hop. The request keeps its Host and gains
/// X-Forwarded-For (the client's address appended to any the client sent), X-Forwarded-Proto,
/// X-Forwarded-Host and, for `/apps/NAME/` requests, X-Forwarded-Prefix (set by the proxy,
/// replacing any the client sent: the proxy is the edge).
enum ForwardedHeaders {
    static let hopByHop: Set<String> = ["connection", "keep-alive", "proxy-connection", "proxy-authenticate",
                                        "proxy-authorization", "te", "trailer", "transfer-encoding", "upgrade"]

    /// The request headers for the instance.
    static func request(_ fields: HTTPFields, host: String?, client: String?, proto: String, prefix: String? = nil) -> HTTPHeaders {
        let named = connectionNamed(fields[values: .connection])
        var headers = HTTPHeaders()
        headers.reserveCapacity(fields.count + 4)
        var forwardedFor: String?
        for field in fields {
            let name = field.name.canonicalName
            if hopByHop.contains(name) || name == "content-length" || name == "host" || name == "x-forwarded-proto"
                || name == "x-forwarded-host" || name == "x-forwarded-prefix" || named.contains(name) { continue }
            if name == "x-forwarded-for" {
                forwardedFor = forwardedFor.map { $0 + ", " + field.value } ?? field.value
                continue
            }
            headers.add(name: field.name.rawName, value: field.value)
        }
        if let host { headers.add(name: "Host", value: host) }
        if let client { forwardedFor = forwardedFor.map { $0 + ", " + client } ?? client }
        if let forwardedFor { headers.add(name: "X-Forwarded-For", value: forwardedFor) }
        headers.add(name: "X-Forwarded-Proto", value: proto)
        if let host { headers.add(name: "X-Forwarded-Host", value: host) }
        if let prefix { headers.add(name: "X-Forwarded-Prefix", value: prefix) }
        return headers
    }

    /// The answer's headers for the client.
    static func response(_ headers: HTTPHeaders) -> HTTPFields {
        let named = connectionNamed(headers[canonicalForm: "connection"].map(String.init))
        var fields = HTTPFields()
        fields.reserveCapacity(headers.count)
        for (name, value) in headers {
            guard let fieldName = HTTPField.Name(name), !hopByHop.contains(fieldName.canonicalName),
                  !named.contains(fieldName.canonicalName) else { continue }
            fields.append(HTTPField(name: fieldName, value: value))
        }
        return fields
    }

    /// The header names a Connection header lists (lowercased), besides its "close" and "keep-alive"
    /// (which most answers carry: they leave the set empty, and so cost no allocation).
    static func connectionNamed(_ values: [String]) -> Set<String> {
        var names = Set<String>()
        for value in values {
            for token in value.utf8.split(separator: UInt8(ascii: ",")) {
                let isSpace = { (byte: UInt8) in byte == UInt8(ascii: " ") || byte == UInt8(ascii: "\t") }
                let trimmed = token.drop(while: isSpace).reversed().drop(while: isSpace).reversed()
                let name = String(decoding: trimmed, as: UTF8.self).lowercased()
                if name != "close" && name != "keep-alive" && !name.isEmpty { names.insert(name) }
            }
        }
        return names
    }
}
