// OpenSSL for ChunkStore: AES-256-GCM, HMAC-SHA256, SHA-256, scrypt, randomness.
// Only the non-deprecated OpenSSL 3 entry points are used. The GCM helpers wrap EVP's
// multi-call API (and its ctrl calls) into one call each so Swift sees plain functions.
#ifndef A67_COPENSSL_SHIM_H
#define A67_COPENSSL_SHIM_H

#include <openssl/evp.h>
#include <openssl/kdf.h>
#include <openssl/rand.h>
#include <openssl/err.h>
#include <openssl/crypto.h>
#include <openssl/opensslv.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <stddef.h>
#include <stdint.h>

// Encrypts `len` bytes from `in` to `out` (which may equal `in`) under a 32-byte key and 12-byte nonce,
// authenticating `aad`; writes the 16-byte tag. Returns 1 on success, 0 on failure.
static inline int a67_aes256gcm_seal(const uint8_t *key, const uint8_t *nonce,
                                     const uint8_t *aad, size_t aad_len,
                                     const uint8_t *in, size_t len, uint8_t *out, uint8_t *tag) {
    EVP_CIPHER_CTX *ctx = EVP_CIPHER_CTX_new();
    if (ctx == NULL) return 0;
    int ok = 0, outl = 0;
    if (EVP_EncryptInit_ex(ctx, EVP_aes_256_gcm(), NULL, NULL, NULL) != 1) goto done;
    if (EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_IVLEN, 12, NULL) != 1) goto done;
    if (EVP_EncryptInit_ex(ctx, NULL, NULL, key, nonce) != 1) goto done;
    if (aad_len > 0 && EVP_EncryptUpdate(ctx, NULL, &outl, aad, (int)aad_len) != 1) goto done;
    size_t done_len = 0;
    while (done_len < len) { // EVP takes int lengths: feed in 1 GiB pieces at most
        size_t piece = len - done_len; if (piece > (1u << 30)) piece = 1u << 30;
        if (EVP_EncryptUpdate(ctx, out + done_len, &outl, in + done_len, (int)piece) != 1) goto done;
        done_len += (size_t)outl;
    }
    if (EVP_EncryptFinal_ex(ctx, out + done_len, &outl) != 1) goto done;
    if (EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_GET_TAG, 16, tag) != 1) goto done;
    ok = 1;
done:
    EVP_CIPHER_CTX_free(ctx);
    return ok;
}

// Decrypts and verifies. Returns 1 when the tag matches, 0 otherwise (then `out` must be discarded).
static inline int a67_aes256gcm_open(const uint8_t *key, const uint8_t *nonce,
                                     const uint8_t *aad, size_t aad_len,
                                     const uint8_t *in, size_t len, uint8_t *out, const uint8_t *tag) {
    EVP_CIPHER_CTX *ctx = EVP_CIPHER_CTX_new();
    if (ctx == NULL) return 0;
    int ok = 0, outl = 0;
    if (EVP_DecryptInit_ex(ctx, EVP_aes_256_gcm(), NULL, NULL, NULL) != 1) goto done;
    if (EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_IVLEN, 12, NULL) != 1) goto done;
    if (EVP_DecryptInit_ex(ctx, NULL, NULL, key, nonce) != 1) goto done;
    if (aad_len > 0 && EVP_DecryptUpdate(ctx, NULL, &outl, aad, (int)aad_len) != 1) goto done;
    size_t done_len = 0;
    while (done_len < len) {
        size_t piece = len - done_len; if (piece > (1u << 30)) piece = 1u << 30;
        if (EVP_DecryptUpdate(ctx, out + done_len, &outl, in + done_len, (int)piece) != 1) goto done;
        done_len += (size_t)outl;
    }
    if (EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_TAG, 16, (void *)tag) != 1) goto done;
    if (EVP_DecryptFinal_ex(ctx, out + done_len, &outl) != 1) goto done;
    ok = 1;
done:
    EVP_CIPHER_CTX_free(ctx);
    return ok;
}

// HMAC-SHA256 of `len` bytes under `key`; writes 32 bytes to `out`. Returns 1 on success.
static inline int a67_hmac_sha256(const uint8_t *key, size_t key_len,
                                  const uint8_t *data, size_t len, uint8_t *out) {
    size_t out_len = 0;
    unsigned char *r = EVP_Q_mac(NULL, "HMAC", NULL, "SHA256", NULL, key, key_len,
                                 data, len, out, 32, &out_len);
    return r != NULL && out_len == 32;
}

// Initialises libcrypto without its atexit cleanup: a process that exits (on an error, say) while
// other threads still hash or decrypt must not have OpenSSL's state freed under them. Returns 1.
static inline int a67_openssl_init_without_atexit(void) {
    return OPENSSL_init_crypto(OPENSSL_INIT_NO_ATEXIT, NULL);
}

// MD5 of `len` bytes (for S3's Content-MD5 upload check only); writes 16 bytes to `out`.
static inline int a67_md5(const uint8_t *data, size_t len, uint8_t *out) {
    unsigned int out_len = 0;
    return EVP_Digest(data, len, out, &out_len, EVP_md5(), NULL) == 1 && out_len == 16;
}

// SHA-256 of `len` bytes; writes 32 bytes to `out`. Returns 1 on success.
static inline int a67_sha256(const uint8_t *data, size_t len, uint8_t *out) {
    unsigned int out_len = 0;
    return EVP_Digest(data, len, out, &out_len, EVP_sha256(), NULL) == 1 && out_len == 32;
}

// Incremental digests for streamed bodies: kind 0 = MD5, 1 = SHA-1, 2 = SHA-256. NULL on failure.
static inline EVP_MD_CTX *a67_digest_new(int kind) {
    const EVP_MD *md = kind == 0 ? EVP_md5() : kind == 1 ? EVP_sha1() : EVP_sha256();
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    if (ctx == NULL) return NULL;
    if (EVP_DigestInit_ex(ctx, md, NULL) != 1) { EVP_MD_CTX_free(ctx); return NULL; }
    return ctx;
}
static inline int a67_digest_update(EVP_MD_CTX *ctx, const uint8_t *data, size_t len) {
    return EVP_DigestUpdate(ctx, data, len) == 1;
}
// Writes the digest (16, 20 or 32 bytes) to `out`; the context cannot be updated afterwards.
static inline int a67_digest_final(EVP_MD_CTX *ctx, uint8_t *out) {
    unsigned int out_len = 0;
    return EVP_DigestFinal_ex(ctx, out, &out_len) == 1;
}
static inline void a67_digest_free(EVP_MD_CTX *ctx) { EVP_MD_CTX_free(ctx); }

// scrypt(passphrase, salt, N, r, p) -> `key_len` bytes. Returns 1 on success.
static inline int a67_scrypt(const uint8_t *pass, size_t pass_len, const uint8_t *salt, size_t salt_len,
                             uint64_t n, uint64_t r, uint64_t p, uint8_t *key, size_t key_len) {
    uint64_t maxmem = 128 * n * r + 256 * r * p + (16u << 20);
    return EVP_PBE_scrypt((const char *)pass, pass_len, salt, salt_len, n, r, p, maxmem, key, key_len) == 1;
}

static inline int a67_random_bytes(uint8_t *out, size_t len) {
    return RAND_bytes(out, (int)len) == 1;
}

static inline const char *a67_openssl_version(void) {
    return OpenSSL_version(OPENSSL_VERSION);
}

// The SHA-256 of the SubjectPublicKeyInfo of the first certificate in a PEM text (what curl's
// CURLOPT_PINNEDPUBLICKEY "sha256//" pins). Returns 1 and writes 32 bytes to `out`, or 0 when the
// text holds no readable certificate.
static inline int a67_certificate_spki_sha256(const char *pem, size_t len, uint8_t *out) {
    BIO *bio = BIO_new_mem_buf(pem, (int)len);
    if (bio == NULL) return 0;
    X509 *cert = PEM_read_bio_X509(bio, NULL, NULL, NULL);
    BIO_free(bio);
    if (cert == NULL) return 0;
    int ok = 0;
    unsigned char *der = NULL;
    EVP_PKEY *key = X509_get0_pubkey(cert);
    int der_len = key ? i2d_PUBKEY(key, &der) : -1;
    if (der_len > 0) {
        unsigned int out_len = 0;
        ok = EVP_Digest(der, (size_t)der_len, out, &out_len, EVP_sha256(), NULL) == 1 && out_len == 32;
    }
    OPENSSL_free(der);
    X509_free(cert);
    return ok;
}

#endif
