import ChunkStore
import Testing

/// The controller's certificate pin, as agents check it (curl's "sha256//" public key pin).
@Suite struct PublicKeyPinTests {
    /// A self-signed P-256 certificate (CN=test) and its pin, computed with
    /// `openssl x509 -pubkey -noout | openssl pkey -pubin -outform der | openssl dgst -sha256 -binary | base64`.
    static let certificate = """
    -----BEGIN CERTIFICATE-----
    MIIBczCCARmgAwIBAgIUKdSjmv6niyFnb+6rgdtGXNOIwikwCgYIKoZIzj0EAwIw
    DzENMAsGA1UEAwwEdGVzdDAeFw0yNjEyMDMxNzQxMzlaFw0yNjEyMDQxNzQxMzla
    MA8xDTALBgNVBAMMBHRlc3QwWTATBgcqhkjOPQIBBggqhkjOPQMBBwNCAAT5YXZ9
    o7WCeUqi468dhiO1N9kNCSes4TYkRliTifEeMTh6BN3wabU/qYNvTQO70pAq+GL0
    QOhNEjl1tjcuZJeAo1MwUTAdBgNVHQ4EFgQUslUF7z9PaZsTILAshn10GGbjRUMw
    HwYDVR0jBBgwFoAUslUF7z9PaZsTILAshn10GGbjRUMwDwYDVR0TAQH/BAUwAwEB
    /zAKBggqhkjOPQQDAgNIADBFAiEApvshVGv1GpOvhbpdT8ESKfVfWM2SxxfCBe8h
    ayG+V14CIDWdh98Rk+0j0yDaTgYHBYTUelSlf3UV64MQ5IGx1myS
    -----END CERTIFICATE-----
    """
    static let pin = "sha256//i/6KHKiW2lesYLLrS63QyGn3id9ClY1oSBEnryBL8t4="

    @Test func theKeyPinIsTheSHA256OfTheSubjectPublicKeyInfo() {
        #expect(Crypto.publicKeyPin(certificatePEM: Array(Self.certificate.utf8)) == Self.pin)
    }

    @Test func textWithoutACertificateHasNoPin() {
        #expect(Crypto.publicKeyPin(certificatePEM: Array("not a certificate".utf8)) == nil)
        #expect(Crypto.publicKeyPin(certificatePEM: []) == nil)
        let cut = String(Self.certificate.prefix(200))
        #expect(Crypto.publicKeyPin(certificatePEM: Array(cut.utf8)) == nil)
    }
}
