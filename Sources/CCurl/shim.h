// libcurl for ChunkStore's remote backends. curl_easy_setopt and curl_easy_getinfo are
// variadic, which Swift cannot call: typed wrappers below.
#ifndef A67_CCURL_SHIM_H
#define A67_CCURL_SHIM_H
#include <curl/curl.h>

static inline CURLcode a67_curl_setopt_long(CURL *h, CURLoption o, long v) { return curl_easy_setopt(h, o, v); }
static inline CURLcode a67_curl_setopt_ptr(CURL *h, CURLoption o, const void *v) { return curl_easy_setopt(h, o, v); }
static inline CURLcode a67_curl_setopt_off(CURL *h, CURLoption o, curl_off_t v) { return curl_easy_setopt(h, o, v); }
static inline CURLcode a67_curl_getinfo_long(CURL *h, CURLINFO i, long *v) { return curl_easy_getinfo(h, i, v); }
#endif
