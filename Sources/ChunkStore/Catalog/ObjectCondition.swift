import Foundation
import GRDB

/// An object's ETag as S3 clients see it, unquoted: the form kept in its manifest's attributes (the
/// MD5 of a single PUT's bytes, md5-N for a multipart upload), or for an object put by `a67 put`
/// (which computes no MD5) a form from the manifest's ID that no client mistakes for an MD5.
extension Manifest {
    public static let etagAttribute = "etag"

    public static func etag(attributes: [String: String], id: ChunkID) -> String {
        attributes[etagAttribute] ?? Hex.encode(Array(id.bytes.prefix(16))) + "-1"
    }

    /// Whether an If-Match or If-None-Match value (`*`, or a list of ETags, quoted or not, weak or
    /// strong) names `etag`.
    public static func etagList(_ list: String, matches etag: String) -> Bool {
        list.split(separator: ",").contains { item in
            var tag = item.trimmingCharacters(in: .whitespaces)
            if tag == "*" { return true }
            if tag.hasPrefix("W/") { tag.removeFirst(2) }
            return tag.trimmingCharacters(in: CharacterSet(charactersIn: "\"")) == etag
        }
    }
}

/// What a conditional write or delete requires of the object at its key (S3's If-Match and
/// If-None-Match: *), checked inside the catalog transaction that makes the change, so that of two
/// writers only one can find it holding: two racing `If-None-Match: *` puts of one key give one
/// success and one `ObjectConditionFailed`.
public struct ObjectCondition: Sendable, Equatable {
    /// The key must hold an object whose ETag this list names (`*`: any object).
    public var ifMatch: String?
    /// The key must hold no object (`If-None-Match: *`).
    public var ifNoneMatchAny: Bool

    public init(ifMatch: String? = nil, ifNoneMatchAny: Bool = false) {
        self.ifMatch = ifMatch
        self.ifNoneMatchAny = ifNoneMatchAny
    }

    public var isEmpty: Bool { ifMatch == nil && !ifNoneMatchAny }

    /// Why the condition does not hold for the key's current object (its ETag, nil when the key holds
    /// no object), or nil when it holds. If-Match is looked at first, as RFC 7232 orders them.
    public func failure(current etag: String?) -> ObjectConditionFailed? {
        if let ifMatch {
            guard let etag else { return ObjectConditionFailed(header: "If-Match", noObject: true) }
            if !Manifest.etagList(ifMatch, matches: etag) { return ObjectConditionFailed(header: "If-Match", noObject: false) }
        }
        if ifNoneMatchAny && etag != nil { return ObjectConditionFailed(header: "If-None-Match", noObject: false) }
        return nil
    }
}

/// A write or delete refused because its `ObjectCondition` did not hold; nothing was changed.
public struct ObjectConditionFailed: Error, Sendable, Equatable, CustomStringConvertible {
    /// The header whose condition failed ("If-Match" or "If-None-Match").
    public let header: String
    /// If-Match failed because the key holds no object at all.
    public let noObject: Bool

    public init(header: String, noObject: Bool) {
        self.header = header
        self.noObject = noObject
    }

    public var description: String {
        noObject ? "\(header) failed: the key holds no object" : "\(header) failed: the key's object does not meet it"
    }
}

extension Namespace {
    /// The ETag of the object at `segments` (a hard link's extra name reads as its file), or nil when
    /// the key holds none (nothing, a folder, a symlink or a special file made in a mount).
    static func currentETag(bucket: BucketRecord, _ segments: [String], _ db: Database) throws -> String? {
        guard let row = try resolve(bucket: bucket, segments, db),
              let named = try Row.fetchOne(db, sql: """
                  SELECT i.manifest, m.body FROM inode i JOIN manifest m ON m.id = i.manifest
                  WHERE i.id = (SELECT COALESCE(link_of, id) FROM inode WHERE id = ?) AND i.kind = 'f'
                  """, arguments: [row]) else { return nil }
        let id = try Catalog.chunkID(named["manifest"] as Data)
        return Manifest.etag(attributes: try Manifest(decoding: [UInt8](named["body"] as Data)).attributes, id: id)
    }
}
