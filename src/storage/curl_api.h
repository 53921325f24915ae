// storage/curl_api.h — libcurl, opened at first use (util/shared_library.h): the functions
// Haven calls, under their libcurl names without the curl_ prefix. Types and constants come
// from <curl/curl.h> as usual. If libcurl cannot be loaded, easy_init() and url() return
// nullptr and available() says why (the library and the package to install).
#pragma once

#include <curl/curl.h>

#include <type_traits>

#include "util/error.h"

namespace haven::curl {

// OK when libcurl is loaded with everything below, else the error naming the fix.
Status available();

using SetoptFn = CURLcode (*)(CURL*, CURLoption, ...);
using GetinfoFn = CURLcode (*)(CURL*, CURLINFO, ...);
SetoptFn setopt_fn();    // nullptr when libcurl is not available
GetinfoFn getinfo_fn();  // nullptr when libcurl is not available

CURL* easy_init();  // the first also runs curl_global_init, once per process
void easy_cleanup(CURL* h);
void easy_reset(CURL* h);
CURLcode easy_perform(CURL* h);
const char* easy_strerror(CURLcode c);
// `value` goes through C varargs as libcurl's own macro would pass it: a number, a pointer or a
// function pointer (a lambda must be converted to one first).
template <typename T>
CURLcode easy_setopt(CURL* h, CURLoption option, T value) {
  static_assert(std::is_scalar_v<T>, "curl options take numbers, pointers or function pointers");
  SetoptFn f = setopt_fn();
  return f ? f(h, option, value) : CURLE_FAILED_INIT;
}
template <typename T>
CURLcode easy_getinfo(CURL* h, CURLINFO info, T out) {
  static_assert(std::is_pointer_v<T>, "curl_easy_getinfo writes through a pointer");
  GetinfoFn f = getinfo_fn();
  return f ? f(h, info, out) : CURLE_FAILED_INIT;
}
curl_slist* slist_append(curl_slist* list, const char* s);
void slist_free_all(curl_slist* list);
CURLU* url();
void url_cleanup(CURLU* u);
CURLUcode url_set(CURLU* u, CURLUPart part, const char* content, unsigned int flags);
CURLUcode url_get(CURLU* u, CURLUPart part, char** out, unsigned int flags);
void free(void* p);

}  // namespace haven::curl
