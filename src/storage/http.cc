// storage/http.cc — the shared HTTP layer of the object-store backends (see http.h).
#include "storage/http.h"

#include <algorithm>
#include <cstring>
#include <ctime>
#include <limits>
#include <memory>
#include <mutex>
#include <vector>

#include "storage/curl_api.h"
#include "util/cancel.h"

namespace haven::storage::http {

namespace {
// Handles of threads that have ended, kept with their open connections for the threads that
// come next. A restore's readers are new threads for every batch, as are a session's workers:
// with a handle per thread and nothing kept, each was a new TCP connection (and over HTTPS a
// TLS handshake, two or three round trips) per thread and batch. Never destroyed: threads
// hand their handles back as late as process exit, after other statics (libcurl's own) may
// be gone; the connections close with the process.
class HandlePool {
 public:
  CURL* take() {
    {
      std::lock_guard<std::mutex> g(mu_);
      if (!idle_.empty()) {
        CURL* h = idle_.back();
        idle_.pop_back();
        return h;
      }
    }
    return curl::easy_init();
  }
  void give(CURL* h) {
    {
      std::lock_guard<std::mutex> g(mu_);
      if (idle_.size() < kKeep) {
        idle_.push_back(h);
        return;
      }
    }
    curl::easy_cleanup(h);
  }

 private:
  static constexpr size_t kKeep = 32;  // more than the threads any one operation runs
  std::mutex mu_;
  std::vector<CURL*> idle_;
};

HandlePool& handle_pool() {
  static HandlePool* pool = new HandlePool;
  return *pool;
}

struct ThreadCurl {
  CURL* h = nullptr;
  ThreadCurl() { h = handle_pool().take(); }
  ~ThreadCurl() {
    if (h != nullptr) handle_pool().give(h);
  }
};

std::string trim(const std::string& s) {
  size_t b = s.find_first_not_of(" \t\r\n");
  if (b == std::string::npos) return "";
  size_t e = s.find_last_not_of(" \t\r\n");
  return s.substr(b, e - b + 1);
}

// The body of an upload, read by libcurl and rewound when it resends the request.
struct Upload {
  ByteView data;
  size_t pos = 0;
};

size_t read_body(char* buf, size_t size, size_t n, void* ud) {
  auto* u = static_cast<Upload*>(ud);
  size_t take = std::min(size * n, u->data.size() - u->pos);
  if (take > 0) std::memcpy(buf, u->data.data() + u->pos, take);
  u->pos += take;
  return take;
}

int seek_body(void* ud, curl_off_t offset, int origin) {
  auto* u = static_cast<Upload*>(ud);
  if (origin != SEEK_SET || offset < 0 || static_cast<size_t>(offset) > u->data.size()) {
    return CURL_SEEKFUNC_CANTSEEK;
  }
  u->pos = static_cast<size_t>(offset);
  return CURL_SEEKFUNC_OK;
}

int xferinfo(void* token, curl_off_t, curl_off_t, curl_off_t, curl_off_t) {
  return static_cast<const CancelToken*>(token)->cancelled() ? 1 : 0;
}

bool certificate_error(CURLcode rc) {
  return rc == CURLE_PEER_FAILED_VERIFICATION || rc == CURLE_SSL_CACERT_BADFILE ||
         rc == CURLE_SSL_CERTPROBLEM || rc == CURLE_SSL_ISSUER_ERROR;
}
}  // namespace

// ---- requests ------------------------------------------------------------------------------

std::string Response::header(const std::string& name) const {
  auto it = headers.find(name);
  return it == headers.end() ? "" : it->second;
}

std::string redact(std::string s, const std::vector<std::string>* secrets) {
  if (secrets == nullptr) return s;
  for (const std::string& secret : *secrets) {
    if (secret.size() < 4) continue;
    for (size_t p; (p = s.find(secret)) != std::string::npos;) s.replace(p, secret.size(), "***");
  }
  return s;
}

Error classify_curl_error(CURLcode rc, const std::string& message) {
  const std::string msg = message + ": " + curl::easy_strerror(rc);
  switch (rc) {
    case CURLE_COULDNT_RESOLVE_HOST:
    case CURLE_COULDNT_RESOLVE_PROXY:
    case CURLE_COULDNT_CONNECT:
    case CURLE_OPERATION_TIMEDOUT:
    case CURLE_SEND_ERROR:
    case CURLE_RECV_ERROR:
    case CURLE_GOT_NOTHING:
    case CURLE_PARTIAL_FILE:
    case CURLE_SEND_FAIL_REWIND:
    case CURLE_WEIRD_SERVER_REPLY:
    case CURLE_SSL_CONNECT_ERROR:
    case CURLE_HTTP2:
    case CURLE_HTTP2_STREAM:
    case CURLE_HTTP3:
    case CURLE_QUIC_CONNECT_ERROR:
    case CURLE_AGAIN:
    case CURLE_UNRECOVERABLE_POLL:
      // The network, not the request, failed: a retry may succeed.
      return Error(Error::Code::kTransient, msg);
    case CURLE_UNSUPPORTED_PROTOCOL:
    case CURLE_URL_MALFORMAT:
      return Error(Error::Code::kInvalidArgument, msg);
    default:
      // An untrusted certificate, an out-of-memory, a local failure: repeating would fail again.
      return Error(Error::Code::kIo, msg);
  }
}

Error::Code status_code(long status) {
  if (status == 404) return Error::Code::kNotFound;
  if (status == 401 || status == 403) return Error::Code::kPermissionDenied;
  if (status == 416) return Error::Code::kCorrupt;
  if (status == 507) return Error::Code::kNoSpace;
  if (status == 408 || status == 429 || status >= 500) return Error::Code::kTransient;
  return Error::Code::kIo;
}

namespace {
// CURLOPT_WRITEFUNCTION of a request with a body_sink: a 200 or 206 body goes to the sink,
// anything else into Response::body.
struct Sink {
  CURL* h;
  const Request* req;
  Response* resp;
  int to_sink = -1;  // decided at the first piece of the body, when the status is known
};
size_t to_sink(char* p, size_t size, size_t n, void* state) {
  auto* s = static_cast<Sink*>(state);
  if (s->to_sink < 0) {
    curl::easy_getinfo(s->h, CURLINFO_RESPONSE_CODE, &s->resp->status);
    s->to_sink = s->resp->status == 200 || s->resp->status == 206 ? 1 : 0;
  }
  if (s->to_sink == 0) return append_body(p, size, n, &s->resp->body);
  return s->req->body_sink(*s->resp, ByteView(reinterpret_cast<const uint8_t*>(p), size * n)) ? size * n : 0;
}
}  // namespace

Result<Response> perform(const Request& req) {
  // Nothing is sent under a cancelled token.
  HAVEN_TRY(current_cancel().check());
  CURL* h = thread_curl();
  if (h == nullptr) return Error(Error::Code::kInternal, req.what + ": curl_easy_init failed");
  curl::easy_reset(h);

  struct curl_slist* list = nullptr;
  for (const auto& [k, v] : req.headers) list = curl::slist_append(list, (k + ": " + v).c_str());
  list = curl::slist_append(list, "Expect:");  // no 100-continue round trip before uploads
  std::unique_ptr<curl_slist, void (*)(curl_slist*)> list_guard(list, curl::slist_free_all);

  Response resp;
  Upload up{req.body, 0};
  char errbuf[CURL_ERROR_SIZE] = {0};
  curl::easy_setopt(h, CURLOPT_URL, req.url.c_str());
  curl::easy_setopt(h, CURLOPT_HTTPHEADER, list);
  curl::easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
  curl::easy_setopt(h, CURLOPT_ERRORBUFFER, errbuf);
  curl::easy_setopt(h, CURLOPT_CONNECTTIMEOUT, 10L);
  // No overall timeout unless the request sets one (packs can be large); a stalled transfer
  // fails with CURLE_OPERATION_TIMEDOUT, which is transient.
  if (req.timeout.count() > 0) {
    curl::easy_setopt(h, CURLOPT_TIMEOUT_MS, static_cast<long>(req.timeout.count()));
  }
  curl::easy_setopt(h, CURLOPT_LOW_SPEED_LIMIT, 1024L);
  curl::easy_setopt(h, CURLOPT_LOW_SPEED_TIME, 60L);
  curl::easy_setopt(h, CURLOPT_TCP_KEEPALIVE, 1L);
  // Receive up to 128 KiB per read from the socket, not curl's default 16 KiB: restoring 789
  // MB from s3rver took 51,321 recvfrom and 52,403 poll calls with 16 KiB; 12,746 and 18,003
  // with 64 KiB; 7,410 and 11,924 with 128 KiB; 5,657 and 11,816 with 256 KiB (strace -c). The
  // buffer is one per handle: at most 4 MiB for the 32 handles the pool keeps.
  curl::easy_setopt(h, CURLOPT_BUFFERSIZE, 128L << 10);
  curl::easy_setopt(h, CURLOPT_FOLLOWLOCATION, 0L);
  curl::easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
  if (!req.ca_file.empty()) curl::easy_setopt(h, CURLOPT_CAINFO, req.ca_file.c_str());
  Sink sink{h, &req, &resp};
  if (req.body_sink) {
    curl::easy_setopt(h, CURLOPT_WRITEFUNCTION, to_sink);
    curl::easy_setopt(h, CURLOPT_WRITEDATA, &sink);
  } else {
    curl::easy_setopt(h, CURLOPT_WRITEFUNCTION, append_body);
    curl::easy_setopt(h, CURLOPT_WRITEDATA, &resp.body);
  }
  curl::easy_setopt(h, CURLOPT_HEADERFUNCTION, collect_header);
  curl::easy_setopt(h, CURLOPT_HEADERDATA, &resp.headers);
  if (req.method == "HEAD") {
    curl::easy_setopt(h, CURLOPT_NOBODY, 1L);
  } else if (req.method == "PUT") {
    curl::easy_setopt(h, CURLOPT_UPLOAD, 1L);
    curl::easy_setopt(h, CURLOPT_READFUNCTION, read_body);
    curl::easy_setopt(h, CURLOPT_READDATA, &up);
    curl::easy_setopt(h, CURLOPT_SEEKFUNCTION, seek_body);
    curl::easy_setopt(h, CURLOPT_SEEKDATA, &up);
    curl::easy_setopt(h, CURLOPT_INFILESIZE_LARGE, static_cast<curl_off_t>(req.body.size()));
  } else if (req.method == "POST") {
    // The body through the same rewindable reader as a PUT's (not CURLOPT_POSTFIELDS), so a
    // resend on a dead reused connection starts it again.
    curl::easy_setopt(h, CURLOPT_POST, 1L);
    curl::easy_setopt(h, CURLOPT_READFUNCTION, read_body);
    curl::easy_setopt(h, CURLOPT_READDATA, &up);
    curl::easy_setopt(h, CURLOPT_SEEKFUNCTION, seek_body);
    curl::easy_setopt(h, CURLOPT_SEEKDATA, &up);
    curl::easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, static_cast<curl_off_t>(req.body.size()));
  } else if (req.method != "GET") {
    curl::easy_setopt(h, CURLOPT_CUSTOMREQUEST, req.method.c_str());
  }
  abort_on_cancel(h);
  CURLcode rc = curl::easy_perform(h);
  // Drop the pointers into this frame before returning.
  curl::easy_setopt(h, CURLOPT_ERRORBUFFER, nullptr);
  curl::easy_setopt(h, CURLOPT_HTTPHEADER, nullptr);
  if (auto cancelled = cancelled_transfer(rc)) return *cancelled;
  if (rc != CURLE_OK) {
    // The error buffer names host and port at most; redaction guards against anything more.
    Error e = classify_curl_error(rc, req.what);
    std::string msg = e.message();
    if (errbuf[0] != '\0' && std::strcmp(errbuf, curl::easy_strerror(rc)) != 0) {
      msg += " (" + std::string(errbuf) + ")";
    }
    if (certificate_error(rc) && !req.certificate_hint.empty()) {
      msg += " (" + req.certificate_hint + ")";
    }
    return Error(e.code(), redact(std::move(msg), req.secrets));
  }
  curl::easy_getinfo(h, CURLINFO_RESPONSE_CODE, &resp.status);
  return resp;
}

// ---- URL encoding --------------------------------------------------------------------------

std::string url_encode(std::string_view s, bool keep_slash) {
  static const char* kHex = "0123456789ABCDEF";
  std::string out;
  out.reserve(s.size());
  for (unsigned char c : s) {
    if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' ||
        c == '_' || c == '.' || c == '~' || (c == '/' && keep_slash)) {
      out += static_cast<char>(c);
    } else {
      out += '%';
      out += kHex[c >> 4];
      out += kHex[c & 15];
    }
  }
  return out;
}

// ---- dates ---------------------------------------------------------------------------------

namespace {
const char* const kDays[] = {"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"};
const char* const kMonths[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                               "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};

bool digits(std::string_view s, size_t pos, size_t n, int& out) {
  if (pos + n > s.size()) return false;
  out = 0;
  for (size_t i = pos; i < pos + n; i++) {
    if (s[i] < '0' || s[i] > '9') return false;
    out = out * 10 + (s[i] - '0');
  }
  return true;
}
}  // namespace

std::string format_http_date(TimeNs t) {
  time_t secs = static_cast<time_t>(t / 1000000000);
  struct tm tm;
  gmtime_r(&secs, &tm);
  char buf[64];
  snprintf(buf, sizeof buf, "%s, %02d %s %04d %02d:%02d:%02d GMT", kDays[tm.tm_wday], tm.tm_mday,
           kMonths[tm.tm_mon], tm.tm_year + 1900, tm.tm_hour, tm.tm_min, tm.tm_sec);
  return buf;
}

std::optional<TimeNs> parse_http_date(std::string_view s) {
  // "Tue, 02 Jan 2024 03:04:05 GMT": fixed positions.
  if (s.size() != 29 || s[3] != ',' || s[4] != ' ' || s[7] != ' ' || s[11] != ' ' ||
      s[16] != ' ' || s[19] != ':' || s[22] != ':' || s[25] != ' ') {
    return std::nullopt;
  }
  std::string_view zone = s.substr(26);
  if (zone != "GMT" && zone != "UTC") return std::nullopt;
  int day, year, hour, minute, second, month = -1;
  std::string_view mon = s.substr(8, 3);
  for (int i = 0; i < 12; i++) {
    if (mon == kMonths[i]) month = i;
  }
  if (month < 0 || !digits(s, 5, 2, day) || !digits(s, 12, 4, year) || !digits(s, 17, 2, hour) ||
      !digits(s, 20, 2, minute) || !digits(s, 23, 2, second)) {
    return std::nullopt;
  }
  if (day < 1 || day > 31 || year < 1970 || hour > 23 || minute > 59 || second > 60) {
    return std::nullopt;
  }
  struct tm tm = {};
  tm.tm_year = year - 1900;
  tm.tm_mon = month;
  tm.tm_mday = day;
  tm.tm_hour = hour;
  tm.tm_min = minute;
  tm.tm_sec = second;
  time_t secs = timegm(&tm);
  // Past 2262 a TimeNs overflows: such a date is not one we can represent.
  if (secs < 0 || secs > std::numeric_limits<TimeNs>::max() / 1000000000 - 1) return std::nullopt;
  return static_cast<TimeNs>(secs) * 1000000000;
}

// ---- XML -----------------------------------------------------------------------------------

namespace xml {

namespace {
void append_utf8(std::string& out, unsigned long cp) {
  if (cp < 0x80) {
    out += static_cast<char>(cp);
  } else if (cp < 0x800) {
    out += static_cast<char>(0xC0 | (cp >> 6));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else if (cp < 0x10000) {
    out += static_cast<char>(0xE0 | (cp >> 12));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else {
    out += static_cast<char>(0xF0 | (cp >> 18));
    out += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  }
}

// The code point of a numeric reference's body ("#65", "#x41"), or nullopt.
std::optional<unsigned long> code_point(std::string_view ent) {
  if (ent.size() < 2 || ent[0] != '#') return std::nullopt;
  const bool hex = ent[1] == 'x' || ent[1] == 'X';
  std::string_view d = ent.substr(hex ? 2 : 1);
  if (d.empty() || d.size() > 8) return std::nullopt;
  unsigned long cp = 0;
  for (char c : d) {
    int v;
    if (c >= '0' && c <= '9') v = c - '0';
    else if (hex && c >= 'a' && c <= 'f') v = c - 'a' + 10;
    else if (hex && c >= 'A' && c <= 'F') v = c - 'A' + 10;
    else return std::nullopt;
    cp = cp * (hex ? 16 : 10) + static_cast<unsigned long>(v);
  }
  if (cp == 0 || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return std::nullopt;
  return cp;
}

bool name_ends(char c) { return c == '>' || c == '/' || c == ' ' || c == '\t' || c == '\r' || c == '\n'; }
}  // namespace

std::string unescape(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (size_t i = 0; i < s.size(); i++) {
    if (s[i] != '&') {
      out += s[i];
      continue;
    }
    size_t semi = s.find(';', i + 1);
    if (semi == std::string_view::npos || semi - i > 12) {
      out += s[i];
      continue;
    }
    std::string_view ent = s.substr(i + 1, semi - i - 1);
    if (ent == "amp") out += '&';
    else if (ent == "lt") out += '<';
    else if (ent == "gt") out += '>';
    else if (ent == "quot") out += '"';
    else if (ent == "apos") out += '\'';
    else if (auto cp = code_point(ent)) append_utf8(out, *cp);
    else {
      out += s[i];
      continue;
    }
    i = semi;
  }
  return out;
}

std::optional<Span> find(std::string_view doc, std::string_view tag, size_t from, size_t end) {
  end = std::min(end, doc.size());
  if (tag.empty() || from >= end) return std::nullopt;
  const std::string open = "<" + std::string(tag);
  const std::string close = "</" + std::string(tag) + ">";
  for (size_t p = doc.find(open, from); p != std::string_view::npos && p < end;
       p = doc.find(open, p + 1)) {
    size_t after = p + open.size();
    if (after >= end) return std::nullopt;
    if (!name_ends(doc[after])) continue;  // a longer tag name
    size_t gt = doc.find('>', after);
    if (gt == std::string_view::npos || gt >= end) return std::nullopt;
    if (doc[gt - 1] == '/') return Span{gt + 1, gt + 1, gt + 1};  // <Tag/>
    size_t c = doc.find(close, gt + 1);
    if (c == std::string_view::npos || c + close.size() > end) return std::nullopt;
    return Span{gt + 1, c, c + close.size()};
  }
  return std::nullopt;
}

std::optional<std::string> text(std::string_view doc, std::string_view tag, size_t from,
                                size_t end) {
  auto sp = find(doc, tag, from, end);
  if (!sp) return std::nullopt;
  return unescape(doc.substr(sp->begin, sp->end - sp->begin));
}

std::string text_or_empty(std::string_view doc, std::string_view tag) {
  return text(doc, tag).value_or("");
}

void for_each(std::string_view doc, std::string_view tag,
              const std::function<bool(std::string_view content)>& fn) {
  size_t pos = 0;
  while (auto sp = find(doc, tag, pos)) {
    if (!fn(doc.substr(sp->begin, sp->end - sp->begin))) return;
    pos = sp->next;
  }
}

}  // namespace xml

// ---- the handle and its callbacks ----------------------------------------------------------

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

void abort_on_cancel(CURL* h) {
  // The token outlives the transfer: it is the calling thread's current one (a CancelScope
  // further up this thread's stack, or the never-cancelled default).
  curl::easy_setopt(h, CURLOPT_XFERINFOFUNCTION, xferinfo);
  curl::easy_setopt(h, CURLOPT_XFERINFODATA, const_cast<CancelToken*>(&current_cancel()));
  curl::easy_setopt(h, CURLOPT_NOPROGRESS, 0L);
}

std::optional<Error> cancelled_transfer(CURLcode rc) {
  if (rc != CURLE_ABORTED_BY_CALLBACK) return std::nullopt;
  Status st = current_cancel().check();
  if (st.ok()) return Error(Error::Code::kCancelled, "transfer aborted");
  return st.error();
}

}  // namespace haven::storage::http
