#include "storage/curl_api.h"

#include <mutex>

#include "util/shared_library.h"

namespace haven::curl {

namespace {

struct Api {
  decltype(&::curl_global_init) global_init = nullptr;
  decltype(&::curl_easy_init) easy_init = nullptr;
  decltype(&::curl_easy_cleanup) easy_cleanup = nullptr;
  decltype(&::curl_easy_reset) easy_reset = nullptr;
  decltype(&::curl_easy_perform) easy_perform = nullptr;
  decltype(&::curl_easy_strerror) easy_strerror = nullptr;
  SetoptFn easy_setopt = nullptr;
  GetinfoFn easy_getinfo = nullptr;
  decltype(&::curl_slist_append) slist_append = nullptr;
  decltype(&::curl_slist_free_all) slist_free_all = nullptr;
  decltype(&::curl_url) url = nullptr;
  decltype(&::curl_url_cleanup) url_cleanup = nullptr;
  decltype(&::curl_url_set) url_set = nullptr;
  decltype(&::curl_url_get) url_get = nullptr;
  decltype(&::curl_free) free = nullptr;
  bool complete = false;  // every symbol found
};

SharedLibrary& library() {
  static SharedLibrary lib("libcurl.so.4", "libcurl4");
  return lib;
}

template <typename Fn>
void resolve(Fn& fn, const char* name) {
  fn = reinterpret_cast<Fn>(library().symbol(name));
}

const Api& api() {
  static const Api a = [] {
    Api x;
    resolve(x.global_init, "curl_global_init");
    resolve(x.easy_init, "curl_easy_init");
    resolve(x.easy_cleanup, "curl_easy_cleanup");
    resolve(x.easy_reset, "curl_easy_reset");
    resolve(x.easy_perform, "curl_easy_perform");
    resolve(x.easy_strerror, "curl_easy_strerror");
    resolve(x.easy_setopt, "curl_easy_setopt");
    resolve(x.easy_getinfo, "curl_easy_getinfo");
    resolve(x.slist_append, "curl_slist_append");
    resolve(x.slist_free_all, "curl_slist_free_all");
    resolve(x.url, "curl_url");
    resolve(x.url_cleanup, "curl_url_cleanup");
    resolve(x.url_set, "curl_url_set");
    resolve(x.url_get, "curl_url_get");
    resolve(x.free, "curl_free");
    x.complete = library().status().ok();  // the library and every symbol
    return x;
  }();
  return a;
}

}  // namespace

Status available() {
  if (api().complete) return ok_status();
  return library().status().error().with_context("object storage, webhooks and mail need libcurl");
}

SetoptFn setopt_fn() { return api().complete ? api().easy_setopt : nullptr; }
GetinfoFn getinfo_fn() { return api().complete ? api().easy_getinfo : nullptr; }

CURL* easy_init() {
  if (!api().complete) return nullptr;
  // curl_global_init is not thread-safe: once per process, before the first handle.
  static std::once_flag once;
  std::call_once(once, [] { api().global_init(CURL_GLOBAL_DEFAULT); });
  return api().easy_init();
}
void easy_cleanup(CURL* h) {
  if (h != nullptr && api().complete) api().easy_cleanup(h);
}
void easy_reset(CURL* h) {
  if (api().complete) api().easy_reset(h);
}
CURLcode easy_perform(CURL* h) { return api().complete ? api().easy_perform(h) : CURLE_FAILED_INIT; }
const char* easy_strerror(CURLcode c) {
  return api().complete ? api().easy_strerror(c) : "libcurl is not available";
}
curl_slist* slist_append(curl_slist* list, const char* s) {
  return api().complete ? api().slist_append(list, s) : list;
}
void slist_free_all(curl_slist* list) {
  if (list != nullptr && api().complete) api().slist_free_all(list);
}
CURLU* url() { return api().complete ? api().url() : nullptr; }
void url_cleanup(CURLU* u) {
  if (u != nullptr && api().complete) api().url_cleanup(u);
}
CURLUcode url_set(CURLU* u, CURLUPart part, const char* content, unsigned int flags) {
  return api().complete ? api().url_set(u, part, content, flags) : CURLUE_OUT_OF_MEMORY;
}
CURLUcode url_get(CURLU* u, CURLUPart part, char** out, unsigned int flags) {
  return api().complete ? api().url_get(u, part, out, flags) : CURLUE_OUT_OF_MEMORY;
}
void free(void* p) {
  if (p != nullptr && api().complete) api().free(p);
}

}  // namespace haven::curl
