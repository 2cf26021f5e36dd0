// libcurl for the CurlTransport module (the only Swift module that imports this shim).
// curl_easy_setopt, curl_easy_getinfo and curl_multi_setopt are variadic, which Swift cannot call:
// typed wrappers below, one per argument type. Callback types are spelled out so Swift can pass
// @convention(c) closures.
#ifndef A67_CCURL_SHIM_H
#define A67_CCURL_SHIM_H
#include <curl/curl.h>
#include <linux/memfd.h>
#include <sys/syscall.h>
#include <unistd.h>

// Macros Swift does not import.
static const long a67_curlauth_basic = (long)CURLAUTH_BASIC;

// An anonymous in-memory file for a secret libssh2 must read from a path (see SecretFile).
// (The system call directly: glibc declares memfd_create only under _GNU_SOURCE, which would give
// this module other definitions of shared types than the modules Swift builds beside it.)
static inline int a67_memfd_secret(void) { return (int)syscall(SYS_memfd_create, "a67-secret", MFD_CLOEXEC); }

typedef size_t (*a67_curl_data_callback)(char *buffer, size_t size, size_t count, void *context);
typedef int (*a67_curl_seek_callback)(void *context, curl_off_t offset, int origin);
typedef int (*a67_curl_xferinfo_callback)(void *context, curl_off_t dltotal, curl_off_t dlnow,
                                          curl_off_t ultotal, curl_off_t ulnow);
typedef int (*a67_curl_hostkey_callback)(void *context, int keytype, const char *key, size_t keylen);

static inline CURLcode a67_curl_setopt_long(CURL *h, CURLoption o, long v) { return curl_easy_setopt(h, o, v); }
static inline CURLcode a67_curl_setopt_ptr(CURL *h, CURLoption o, const void *v) { return curl_easy_setopt(h, o, v); }
static inline CURLcode a67_curl_setopt_off(CURL *h, CURLoption o, curl_off_t v) { return curl_easy_setopt(h, o, v); }
static inline CURLcode a67_curl_setopt_data_callback(CURL *h, CURLoption o, a67_curl_data_callback f) { return curl_easy_setopt(h, o, f); }
static inline CURLcode a67_curl_setopt_seek_callback(CURL *h, a67_curl_seek_callback f) { return curl_easy_setopt(h, CURLOPT_SEEKFUNCTION, f); }
static inline CURLcode a67_curl_setopt_xferinfo_callback(CURL *h, a67_curl_xferinfo_callback f) { return curl_easy_setopt(h, CURLOPT_XFERINFOFUNCTION, f); }
static inline CURLcode a67_curl_setopt_hostkey_callback(CURL *h, a67_curl_hostkey_callback f) { return curl_easy_setopt(h, CURLOPT_SSH_HOSTKEYFUNCTION, f); }
static inline CURLcode a67_curl_getinfo_long(CURL *h, CURLINFO i, long *v) { return curl_easy_getinfo(h, i, v); }
static inline CURLcode a67_curl_getinfo_off(CURL *h, CURLINFO i, curl_off_t *v) { return curl_easy_getinfo(h, i, v); }
static inline CURLcode a67_curl_getinfo_private(CURL *h, void **v) { return curl_easy_getinfo(h, CURLINFO_PRIVATE, v); }
static inline CURLMcode a67_curlm_setopt_long(CURLM *m, CURLMoption o, long v) { return curl_multi_setopt(m, o, v); }

// The next finished transfer on `m`, if any: 1 with its handle and result, 0 when none is left.
// (CURLMsg's result sits in a union, which this keeps out of Swift.)
static inline int a67_curlm_next_done(CURLM *m, CURL **easy, CURLcode *result) {
    int queued = 0;
    CURLMsg *msg;
    while ((msg = curl_multi_info_read(m, &queued)) != NULL) {
        if (msg->msg == CURLMSG_DONE) {
            *easy = msg->easy_handle;
            *result = msg->data.result;
            return 1;
        }
    }
    return 0;
}
#endif
