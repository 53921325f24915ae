#include "storage/http.h"

#include <algorithm>
#include <mutex>

#include "util/cancel.h"

namespace haven::storage::http {

namespace {
struct ThreadCurl {
  CURL* h = nullptr;
  ThreadCurl() {
    static std::once_flag once;
    std::call_once(once, [] { curl_global_init(CURL_GLOBAL_DEFAULT); });
    h = curl_easy_init();
  }
  ~ThreadCurl() {
    if (h != nullptr) curl_easy_cleanup(h);
  }
};

std::string trim(const std::string& s) {
  size_t b = s.find_first_not_of(" \t\r\n");
  if (b == std::string::npos) return "";
  size_t e = s.find_last_not_of(" \t\r\n");
  return s.substr(b, e - b + 1);
}
}  // namespace

CURL* thread_curl() {
  thread_local ThreadCurl tc;
  return tc.h;
}

size_t append_body(char* p, size_t size, size_t n, void* bytes) {
  auto* out = static_cast<Bytes*>(bytes);
  out->insert(out->end(), reinterpret_cast<uint8_t*>(p), reinterpret_cast<uint8_t*>(p) + size * n);
  return size * n;
}

size_t collect_header(char* p, size_t size, size_t n, void* headers) {
  auto* h = static_cast<std::map<std::string, std::string>*>(headers);
  std::string line(p, size * n);
  if (line.rfind("HTTP/", 0) == 0) {
    h->clear();
  } else if (auto colon = line.find(':'); colon != std::string::npos) {
    std::string k = trim(line.substr(0, colon));
    std::transform(k.begin(), k.end(), k.begin(), [](unsigned char c) { return std::tolower(c); });
    (*h)[k] = trim(line.substr(colon + 1));
  }
  return size * n;
}

namespace {
int xferinfo(void* token, curl_off_t, curl_off_t, curl_off_t, curl_off_t) {
  return static_cast<const CancelToken*>(token)->cancelled() ? 1 : 0;
}
}  // namespace

void abort_on_cancel(CURL* h) {
  // The token outlives the transfer: it is the calling thread's current one (a CancelScope
  // further up this thread's stack, or the never-cancelled default).
  curl_easy_setopt(h, CURLOPT_XFERINFOFUNCTION, xferinfo);
  curl_easy_setopt(h, CURLOPT_XFERINFODATA, const_cast<CancelToken*>(&current_cancel()));
  curl_easy_setopt(h, CURLOPT_NOPROGRESS, 0L);
}

std::optional<Error> cancelled_transfer(CURLcode rc) {
  if (rc != CURLE_ABORTED_BY_CALLBACK) return std::nullopt;
  Status st = current_cancel().check();
  if (st.ok()) return Error(Error::Code::kCancelled, "transfer aborted");
  return st.error();
}

}  // namespace haven::storage::http
