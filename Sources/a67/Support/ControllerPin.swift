import ChunkStore
import Foundation

/// The pin of the certificate `a67 serve` serves HTTPS with, kept in `$A67_HOME/controller.pin` while
/// it does, so that `a67 node token create` can print it for agents (`a67 agent join --pin`): a
/// self-signed controller is then trusted by its key, with no CA.
enum ControllerPin {
    static func path(home: String) -> String { home + "/controller.pin" }

    /// Records the pin of `certificate` (a PEM file), or removes the record when serving plain HTTP.
    static func record(certificate: String?, home: String) throws {
        guard let certificate else {
            try? FileManager.default.removeItem(atPath: path(home: home))
            return
        }
        let pem: [UInt8]
        do {
            pem = try LocalFile.read(certificate, atMost: 1 << 20)
        } catch {
            throw StoreError(.invalidArgument, "cannot read --tls-cert \(certificate): \(error.reason)")
        }
        guard let pin = Crypto.publicKeyPin(certificatePEM: pem) else {
            throw StoreError(.invalidArgument, "--tls-cert \(certificate) holds no PEM certificate (-----BEGIN CERTIFICATE-----)")
        }
        try LocalFile.write(Array((pin + "\n").utf8), to: path(home: home), mode: 0o644)
    }

    /// The pin recorded by the running (or last) `a67 serve --tls-cert`, if any.
    static func current(home: String) -> String? {
        guard let bytes = try? LocalFile.read(path(home: home), atMost: 4096) else { return nil }
        let pin = String(decoding: bytes, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
        return pin.hasPrefix("sha256//") ? pin : nil
    }
}
