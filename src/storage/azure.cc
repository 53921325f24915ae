// storage/azure.cc — the Azure Blob Storage backend (layout, credentials, error mapping: see
// azure.h). Protocol: Blob REST API, x-ms-version kApiVersion, Shared Key or SAS.
#include "storage/azure.h"

#include "util/cancel.h"
#include "storage/http.h"

#include <curl/curl.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include <algorithm>
#include <cctype>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <map>
#include <mutex>
#include <utility>
#include <vector>

namespace haven::storage {

namespace {

// Supported by Azure and by Azurite 3.x (without --skipApiVersionCheck).
constexpr const char* kApiVersion = "2021-08-06";

// The Azurite development account (public, documented; used for UseDevelopmentStorage=true).
constexpr const char* kDevAccount = "devstoreaccount1";
constexpr const char* kDevKey =
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==";

// ---- encoding helpers ----------------------------------------------------------------------

std::string lower(std::string s) {
  for (auto& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

std::string trim(const std::string& s) {
  size_t b = s.find_first_not_of(" \t\r\n");
  if (b == std::string::npos) return "";
  size_t e = s.find_last_not_of(" \t\r\n");
  return s.substr(b, e - b + 1);
}

// Percent-encodes everything but RFC 3986 unreserved characters (and '/' when keep_slash).
std::string pct_encode(const std::string& s, bool keep_slash) {
  static const char* hex = "0123456789ABCDEF";
  std::string out;
  for (unsigned char c : s) {
    if (std::isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~' ||
        (keep_slash && c == '/')) {
      out += static_cast<char>(c);
    } else {
      out += '%';
      out += hex[c >> 4];
      out += hex[c & 15];
    }
  }
  return out;
}

std::optional<Bytes> base64_decode(const std::string& in) {
  std::string s = trim(in);
  if (s.empty() || s.size() % 4 != 0) return std::nullopt;
  Bytes out(s.size() / 4 * 3);
  int n = EVP_DecodeBlock(out.data(), reinterpret_cast<const unsigned char*>(s.data()),
                          static_cast<int>(s.size()));
  if (n < 0) return std::nullopt;
  size_t pad = 0;
  if (s.back() == '=') pad++;
  if (s.size() >= 2 && s[s.size() - 2] == '=') pad++;
  out.resize(static_cast<size_t>(n) - pad);
  return out;
}

std::string base64_encode(ByteView b) {
  std::string out(4 * ((b.size() + 2) / 3) + 1, '\0');
  int n = EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out.data()), b.data(),
                          static_cast<int>(b.size()));
  out.resize(static_cast<size_t>(n));
  return out;
}

std::string hmac_sha256_b64(const Bytes& key, const std::string& msg) {
  unsigned char mac[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  HMAC(EVP_sha256(), key.data(), static_cast<int>(key.size()),
       reinterpret_cast<const unsigned char*>(msg.data()), msg.size(), mac, &len);
  return base64_encode(ByteView(mac, len));
}

// RFC 1123 date in GMT, built by hand so that the C locale is not needed.
std::string http_date() {
  static const char* days[] = {"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"};
  static const char* months[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                 "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
  time_t now = time(nullptr);
  struct tm t;
  gmtime_r(&now, &t);
  char buf[64];
  snprintf(buf, sizeof buf, "%s, %02d %s %04d %02d:%02d:%02d GMT", days[t.tm_wday], t.tm_mday,
           months[t.tm_mon], t.tm_year + 1900, t.tm_hour, t.tm_min, t.tm_sec);
  return buf;
}

std::string xml_unescape(const std::string& s) {
  std::string out;
  for (size_t i = 0; i < s.size();) {
    if (s[i] == '&') {
      static const std::pair<const char*, char> ents[] = {
          {"&amp;", '&'}, {"&lt;", '<'}, {"&gt;", '>'}, {"&quot;", '"'}, {"&apos;", '\''}};
      bool done = false;
      for (const auto& [e, c] : ents) {
        size_t n = std::strlen(e);
        if (s.compare(i, n, e) == 0) {
          out += c;
          i += n;
          done = true;
          break;
        }
      }
      if (done) continue;
    }
    out += s[i++];
  }
  return out;
}

// Text of the first <tag ...>...</tag> at or after `from` (within [from, end)); nullopt if
// absent or empty-element. Sets *next past the closing tag.
std::optional<std::string> xml_element(const std::string& doc, const std::string& tag,
                                       size_t from, size_t end, size_t* next = nullptr) {
  const std::string open = "<" + tag;
  for (size_t p = doc.find(open, from); p != std::string::npos && p < end;
       p = doc.find(open, p + 1)) {
    size_t after = p + open.size();
    if (after >= doc.size()) return std::nullopt;
    char c = doc[after];
    if (c != '>' && c != ' ' && c != '/') continue;  // a longer tag name
    size_t gt = doc.find('>', after);
    if (gt == std::string::npos || gt >= end) return std::nullopt;
    if (doc[gt - 1] == '/') {  // <Tag/>
      if (next) *next = gt + 1;
      return std::nullopt;
    }
    size_t close = doc.find("</" + tag + ">", gt);
    if (close == std::string::npos || close > end) return std::nullopt;
    if (next) *next = close + tag.size() + 3;
    return xml_unescape(doc.substr(gt + 1, close - gt - 1));
  }
  return std::nullopt;
}

bool valid_container(const std::string& c) {
  if (c.size() < 3 || c.size() > 63) return false;
  for (char ch : c) {
    if (!((ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') || ch == '-')) return false;
  }
  return c.front() != '-' && c.back() != '-' && c.find("--") == std::string::npos;
}

// ---- libcurl (one handle per thread: storage/http.h) ---------------------------------------

struct Upload {
  ByteView data;
  size_t pos = 0;
};

size_t read_cb(char* buf, size_t size, size_t n, void* ud) {
  auto* u = static_cast<Upload*>(ud);
  size_t take = std::min(size * n, u->data.size() - u->pos);
  if (take > 0) std::memcpy(buf, u->data.data() + u->pos, take);
  u->pos += take;
  return take;
}

int seek_cb(void* ud, curl_off_t offset, int origin) {
  auto* u = static_cast<Upload*>(ud);
  if (origin != SEEK_SET || offset < 0 || static_cast<size_t>(offset) > u->data.size()) {
    return CURL_SEEKFUNC_CANTSEEK;
  }
  u->pos = static_cast<size_t>(offset);
  return CURL_SEEKFUNC_OK;
}



bool transient_curl_error(CURLcode c) {
  switch (c) {
    case CURLE_COULDNT_RESOLVE_HOST:
    case CURLE_COULDNT_RESOLVE_PROXY:
    case CURLE_COULDNT_CONNECT:
    case CURLE_OPERATION_TIMEDOUT:
    case CURLE_SEND_ERROR:
    case CURLE_RECV_ERROR:
    case CURLE_GOT_NOTHING:
    case CURLE_PARTIAL_FILE:
    case CURLE_SSL_CONNECT_ERROR:
    case CURLE_HTTP2:
    case CURLE_HTTP2_STREAM:
      return true;
    default:
      return false;
  }
}

}  // namespace

// ---- configuration -------------------------------------------------------------------------

Result<AzureConfig> azure_config_from_env(
    const std::string& spec, const std::function<const char*(const char*)>& getenv_fn) {
  auto env = [&](const char* name) -> std::string {
    const char* v = getenv_fn(name);
    return v == nullptr ? std::string() : std::string(v);
  };
  AzureConfig cfg;
  auto slash = spec.find('/');
  cfg.container = spec.substr(0, slash);
  if (slash != std::string::npos) cfg.prefix = spec.substr(slash + 1);
  while (!cfg.prefix.empty() && cfg.prefix.back() == '/') cfg.prefix.pop_back();
  while (!cfg.prefix.empty() && cfg.prefix.front() == '/') cfg.prefix.erase(0, 1);
  if (!valid_container(cfg.container)) {
    return Error(Error::Code::kInvalidArgument,
                 "invalid Azure container name '" + cfg.container +
                     "' in azure:" + spec +
                     " (3-63 lower-case letters, digits and single hyphens; the location form "
                     "is azure:CONTAINER/PREFIX)");
  }

  std::string key_b64, protocol = "https", suffix = "core.windows.net";
  std::string conn = env("AZURE_STORAGE_CONNECTION_STRING");
  if (!conn.empty()) {
    size_t start = 0;
    while (start <= conn.size()) {
      size_t semi = conn.find(';', start);
      if (semi == std::string::npos) semi = conn.size();
      std::string part = trim(conn.substr(start, semi - start));
      start = semi + 1;
      if (part.empty()) continue;
      auto eq = part.find('=');
      if (eq == std::string::npos) {
        // Never quote the part: it could be a secret.
        return Error(Error::Code::kInvalidArgument,
                     "AZURE_STORAGE_CONNECTION_STRING: expected Name=Value pairs separated by ';'");
      }
      std::string k = lower(trim(part.substr(0, eq)));
      std::string v = trim(part.substr(eq + 1));
      if (k == "accountname") {
        cfg.account = v;
      } else if (k == "accountkey") {
        key_b64 = v;
      } else if (k == "blobendpoint") {
        cfg.endpoint = v;
      } else if (k == "defaultendpointsprotocol") {
        protocol = lower(v);
      } else if (k == "endpointsuffix") {
        suffix = v;
      } else if (k == "sharedaccesssignature") {
        cfg.sas = v;
      } else if (k == "usedevelopmentstorage" && lower(v) == "true") {
        cfg.account = kDevAccount;
        key_b64 = kDevKey;
        cfg.endpoint = std::string("http://127.0.0.1:10000/") + kDevAccount;
      }
      // Other keys (QueueEndpoint, TableEndpoint...) do not concern blobs.
    }
  }
  if (cfg.account.empty()) cfg.account = env("AZURE_STORAGE_ACCOUNT");
  if (key_b64.empty()) key_b64 = env("AZURE_STORAGE_KEY");
  if (cfg.sas.empty()) cfg.sas = env("AZURE_STORAGE_SAS_TOKEN");
  if (!cfg.sas.empty() && cfg.sas[0] == '?') cfg.sas.erase(0, 1);

  if (!key_b64.empty()) {
    auto key = base64_decode(key_b64);
    if (!key || key->empty()) {
      return Error(Error::Code::kInvalidArgument,
                   "the Azure account key (AccountKey in AZURE_STORAGE_CONNECTION_STRING, or "
                   "AZURE_STORAGE_KEY) is not valid base64");
    }
    cfg.key = std::move(*key);
    if (cfg.account.empty()) {
      return Error(Error::Code::kInvalidArgument,
                   "an Azure account key needs the account name: set AZURE_STORAGE_ACCOUNT or "
                   "AccountName in AZURE_STORAGE_CONNECTION_STRING");
    }
    cfg.sas.clear();  // Shared Key is preferred: it can also create the container
  } else if (cfg.sas.empty()) {
    return Error(Error::Code::kInvalidArgument,
                 "no Azure credentials: set AZURE_STORAGE_CONNECTION_STRING, or "
                 "AZURE_STORAGE_ACCOUNT with AZURE_STORAGE_KEY or AZURE_STORAGE_SAS_TOKEN");
  }
  if (cfg.endpoint.empty()) {
    if (cfg.account.empty()) {
      return Error(Error::Code::kInvalidArgument,
                   "no Azure endpoint: set AZURE_STORAGE_ACCOUNT, or AccountName or BlobEndpoint "
                   "in AZURE_STORAGE_CONNECTION_STRING");
    }
    if (protocol != "http" && protocol != "https") protocol = "https";
    cfg.endpoint = protocol + "://" + cfg.account + ".blob." + suffix;
  }
  while (!cfg.endpoint.empty() && cfg.endpoint.back() == '/') cfg.endpoint.pop_back();
  if (cfg.endpoint.rfind("http://", 0) != 0 && cfg.endpoint.rfind("https://", 0) != 0) {
    return Error(Error::Code::kInvalidArgument,
                 "the Azure blob endpoint must start with http:// or https://");
  }
  return cfg;
}

Result<AzureListPage> parse_azure_list_page(const std::string& doc) {
  AzureListPage page;
  size_t pos = 0;
  for (;;) {
    size_t b = doc.find("<Blob>", pos);
    if (b == std::string::npos) break;
    size_t e = doc.find("</Blob>", b);
    if (e == std::string::npos) return Error(Error::Code::kIo, "malformed List Blobs response");
    pos = e + 7;
    auto blob = xml_element(doc, "Name", b, e);
    auto size = xml_element(doc, "Content-Length", b, e);
    if (!blob) continue;
    page.blobs.emplace_back(std::move(*blob), size ? std::strtoull(size->c_str(), nullptr, 10) : 0);
  }
  size_t tail = doc.rfind("</Blobs>");
  page.next_marker =
      xml_element(doc, "NextMarker", tail == std::string::npos ? 0 : tail, doc.size()).value_or("");
  return page;
}

std::string parse_azure_error_code(const std::string& doc) {
  return xml_element(doc, "Code", 0, doc.size()).value_or("");
}

// ---- requests ------------------------------------------------------------------------------

struct AzureBackend::Request {
  std::string method = "GET";  // GET, HEAD, PUT, DELETE
  std::string blob;            // blob name; empty for container operations
  std::vector<std::pair<std::string, std::string>> query;  // unencoded
  std::map<std::string, std::string> headers;              // lower-case names
  ByteView body;
};

struct AzureBackend::Response {
  long status = 0;
  std::map<std::string, std::string> headers;
  Bytes body;
  std::string error_code() const {
    if (auto it = headers.find("x-ms-error-code"); it != headers.end()) return it->second;
    return parse_azure_error_code(std::string(body.begin(), body.end()));
  }
};

AzureBackend::AzureBackend(AzureConfig config) : cfg_(std::move(config)) {}

AzureBackend::~AzureBackend() { secure_zero(cfg_.key.data(), cfg_.key.size()); }

std::string AzureBackend::location() const {
  return "azure:" + cfg_.container + (cfg_.prefix.empty() ? "" : "/" + cfg_.prefix);
}

std::string AzureBackend::blob_name(const ObjectName& name) const {
  std::string rel = object_path(name);
  return cfg_.prefix.empty() ? rel : cfg_.prefix + "/" + rel;
}

Result<AzureBackend::Response> AzureBackend::perform(const Request& req) const {
  // URL path: endpoint path (Azurite: "/devstoreaccount1") + "/container[/blob]".
  size_t scheme_end = cfg_.endpoint.find("://") + 3;
  size_t path_start = cfg_.endpoint.find('/', scheme_end);
  std::string endpoint_path =
      path_start == std::string::npos ? "" : cfg_.endpoint.substr(path_start);
  std::string path = endpoint_path + "/" + pct_encode(cfg_.container, false);
  if (!req.blob.empty()) path += "/" + pct_encode(req.blob, true);

  std::string query;
  for (const auto& [k, v] : req.query) {
    query += (query.empty() ? "" : "&") + k + (v.empty() ? "" : "=" + pct_encode(v, false));
  }
  std::string url = cfg_.endpoint.substr(0, path_start == std::string::npos
                                                ? cfg_.endpoint.size()
                                                : path_start) +
                    path;
  std::string full_query = query;
  if (!cfg_.sas.empty()) full_query += (full_query.empty() ? "" : "&") + cfg_.sas;
  if (!full_query.empty()) url += "?" + full_query;

  std::map<std::string, std::string> headers = req.headers;
  headers["x-ms-date"] = http_date();
  headers["x-ms-version"] = kApiVersion;
  const bool has_body = req.method == "PUT";
  const std::string content_length = has_body ? std::to_string(req.body.size()) : "";

  if (!cfg_.key.empty()) {
    // Shared Key string-to-sign (version 2015-02-21+): standard headers, then the x-ms-*
    // headers sorted, then "/account/path" and the sorted, decoded query parameters.
    auto hdr = [&](const char* n) {
      auto it = headers.find(n);
      return it == headers.end() ? std::string() : it->second;
    };
    std::string sts = req.method + "\n" + hdr("content-encoding") + "\n" +
                      hdr("content-language") + "\n" +
                      (content_length == "0" ? "" : content_length) + "\n" + hdr("content-md5") +
                      "\n" + hdr("content-type") + "\n" + "\n" /* Date: x-ms-date is used */ +
                      hdr("if-modified-since") + "\n" + hdr("if-match") + "\n" +
                      hdr("if-none-match") + "\n" + hdr("if-unmodified-since") + "\n" +
                      hdr("range") + "\n";
    for (const auto& [k, v] : headers) {  // std::map: already sorted by lower-case name
      if (k.rfind("x-ms-", 0) == 0) sts += k + ":" + v + "\n";
    }
    sts += "/" + cfg_.account + path;
    std::vector<std::pair<std::string, std::string>> q = req.query;
    for (auto& kv : q) kv.first = lower(kv.first);
    std::sort(q.begin(), q.end());
    for (const auto& [k, v] : q) sts += "\n" + k + ":" + v;
    headers["authorization"] =
        "SharedKey " + cfg_.account + ":" + hmac_sha256_b64(cfg_.key, sts);
  }

  CURL* h = http::thread_curl();
  if (h == nullptr) return Error(Error::Code::kInternal, "curl_easy_init failed");
  curl_easy_reset(h);
  struct curl_slist* list = nullptr;
  for (const auto& [k, v] : headers) list = curl_slist_append(list, (k + ": " + v).c_str());
  list = curl_slist_append(list, "Expect:");  // no 100-continue round trip
  std::unique_ptr<curl_slist, void (*)(curl_slist*)> list_guard(list, curl_slist_free_all);

  Response resp;
  Upload up{req.body, 0};
  char errbuf[CURL_ERROR_SIZE] = {0};
  curl_easy_setopt(h, CURLOPT_URL, url.c_str());
  curl_easy_setopt(h, CURLOPT_HTTPHEADER, list);
  curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(h, CURLOPT_ERRORBUFFER, errbuf);
  curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT, 15L);
  // No overall timeout (packs can be large); a stalled transfer (under 1 byte/s for 60 s)
  // fails with CURLE_OPERATION_TIMEDOUT, which is transient.
  curl_easy_setopt(h, CURLOPT_LOW_SPEED_LIMIT, 1L);
  curl_easy_setopt(h, CURLOPT_LOW_SPEED_TIME, 60L);
  curl_easy_setopt(h, CURLOPT_TCP_KEEPALIVE, 1L);
  curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, http::append_body);
  curl_easy_setopt(h, CURLOPT_WRITEDATA, &resp.body);
  curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, http::collect_header);
  curl_easy_setopt(h, CURLOPT_HEADERDATA, &resp.headers);
  if (req.method == "HEAD") {
    curl_easy_setopt(h, CURLOPT_NOBODY, 1L);
  } else if (req.method == "PUT") {
    curl_easy_setopt(h, CURLOPT_UPLOAD, 1L);
    curl_easy_setopt(h, CURLOPT_READFUNCTION, read_cb);
    curl_easy_setopt(h, CURLOPT_READDATA, &up);
    curl_easy_setopt(h, CURLOPT_SEEKFUNCTION, seek_cb);
    curl_easy_setopt(h, CURLOPT_SEEKDATA, &up);
    curl_easy_setopt(h, CURLOPT_INFILESIZE_LARGE, static_cast<curl_off_t>(req.body.size()));
  } else if (req.method != "GET") {
    curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, req.method.c_str());
  }
  HAVEN_TRY(current_cancel().check());
  http::abort_on_cancel(h);
  CURLcode rc = curl_easy_perform(h);
  // Drop pointers to this frame's buffers before returning.
  curl_easy_setopt(h, CURLOPT_ERRORBUFFER, nullptr);
  curl_easy_setopt(h, CURLOPT_HTTPHEADER, nullptr);
  if (auto cancelled = http::cancelled_transfer(rc)) return *cancelled;
  if (rc != CURLE_OK) {
    // The error buffer names host and port at most, never the URL's query (the SAS).
    std::string detail = errbuf[0] != '\0' ? std::string(errbuf) : curl_easy_strerror(rc);
    if (!cfg_.sas.empty()) {
      for (size_t p; (p = detail.find(cfg_.sas)) != std::string::npos;) {
        detail.replace(p, cfg_.sas.size(), "<SAS>");
      }
    }
    return Error(transient_curl_error(rc) ? Error::Code::kTransient : Error::Code::kIo,
                 location() + ": cannot reach " + cfg_.endpoint.substr(0, path_start) + ": " +
                     detail);
  }
  curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &resp.status);
  return resp;
}

Error AzureBackend::http_error(const Response& resp, const std::string& what) const {
  // Only the service's error *code* is quoted: its free-text message can echo request details.
  std::string code = resp.error_code();
  std::string msg = what + ": HTTP " + std::to_string(resp.status) +
                    (code.empty() ? "" : " " + code);
  long s = resp.status;
  if (s == 404) return Error(Error::Code::kNotFound, msg + " (not found)");
  if (s == 401 || s == 403) {
    return Error(Error::Code::kPermissionDenied,
                 msg + ": access denied; check the Azure credentials (account key, SAS token or "
                       "AZURE_STORAGE_CONNECTION_STRING) and their permissions");
  }
  if (s == 416) return Error(Error::Code::kCorrupt, msg + " (range past the end of the object)");
  if (s == 408 || s == 429 || s >= 500) return Error(Error::Code::kTransient, msg);
  return Error(Error::Code::kIo, msg);
}

// ---- Backend methods -----------------------------------------------------------------------

Status AzureBackend::save(const ObjectName& name, ByteView data) {
  HAVEN_TRY(check_object_name(name));
  if (data.size() > cfg_.single_put_max && cfg_.block_size > 0) return save_blocks(name, data);
  Request r;
  r.method = "PUT";
  r.blob = blob_name(name);
  r.headers["x-ms-blob-type"] = "BlockBlob";
  r.headers["content-type"] = "application/octet-stream";
  // Objects are immutable: the service refuses the write if the name exists.
  r.headers["if-none-match"] = "*";
  r.body = data;
  HAVEN_ASSIGN(Response resp, perform(r));
  if (resp.status == 201) return ok_status();
  std::string what = location() + ": saving " + name.describe();
  if (resp.status == 409 || resp.status == 412) {
    return Error(Error::Code::kAlreadyExists, what + ": the object already exists");
  }
  if (resp.status == 404) {
    return Error(Error::Code::kNotFound,
                 what + ": the container '" + cfg_.container + "' does not exist");
  }
  return http_error(resp, what);
}

Status AzureBackend::save_blocks(const ObjectName& name, ByteView data) const {
  const std::string what = location() + ": saving " + name.describe();
  // Block IDs must all have the same length: base64 of a fixed-width counter.
  std::vector<std::string> ids;
  for (size_t off = 0; off < data.size(); off += cfg_.block_size) {
    char raw[16];
    snprintf(raw, sizeof raw, "blk-%08zu", ids.size());
    std::string id = base64_encode(as_bytes(raw));
    Request r;
    r.method = "PUT";
    r.blob = blob_name(name);
    r.query = {{"comp", "block"}, {"blockid", id}};
    r.body = data.subspan(off, std::min(cfg_.block_size, data.size() - off));
    HAVEN_ASSIGN(Response resp, perform(r));
    if (resp.status == 404) {
      return Error(Error::Code::kNotFound,
                   what + ": the container '" + cfg_.container + "' does not exist");
    }
    if (resp.status != 201) return http_error(resp, what + " (block " + std::to_string(ids.size()) + ")");
    ids.push_back(std::move(id));
  }
  std::string xml = "<?xml version=\"1.0\" encoding=\"utf-8\"?><BlockList>";
  for (const auto& id : ids) xml += "<Latest>" + id + "</Latest>";
  xml += "</BlockList>";
  Request r;
  r.method = "PUT";
  r.blob = blob_name(name);
  r.query = {{"comp", "blocklist"}};
  r.headers["content-type"] = "application/xml";
  r.headers["x-ms-blob-content-type"] = "application/octet-stream";
  // Commit only if the name is still free: objects are immutable.
  r.headers["if-none-match"] = "*";
  r.body = as_bytes(xml);
  HAVEN_ASSIGN(Response resp, perform(r));
  if (resp.status == 201) return ok_status();
  if (resp.status == 409 || resp.status == 412) {
    return Error(Error::Code::kAlreadyExists, what + ": the object already exists");
  }
  return http_error(resp, what);
}

Result<Bytes> AzureBackend::load(const ObjectName& name, uint64_t offset, uint64_t length) {
  HAVEN_TRY(check_object_name(name));
  Request r;
  r.blob = blob_name(name);
  if (offset != 0 || length != 0) {
    r.headers["x-ms-range"] = "bytes=" + std::to_string(offset) + "-" +
                              (length != 0 ? std::to_string(offset + length - 1) : "");
  }
  HAVEN_ASSIGN(Response resp, perform(r));
  std::string what = location() + ": loading " + name.describe();
  if (resp.status == 416) {
    // A start at or past the end. Reading from exactly the end "to the end" is empty, not an
    // error; anything else disagrees with the object's size.
    HAVEN_ASSIGN(ObjectInfo info, stat(name));
    if (length == 0 && offset == info.size) return Bytes{};
    return Error(Error::Code::kCorrupt,
                 what + ": range " + std::to_string(offset) + "+" + std::to_string(length) +
                     " reaches past the end (size " + std::to_string(info.size) + ")");
  }
  if (resp.status != 200 && resp.status != 206) return http_error(resp, what);
  if (length != 0 && resp.body.size() != length) {
    return Error(Error::Code::kCorrupt,
                 what + ": range " + std::to_string(offset) + "+" + std::to_string(length) +
                     " reaches past the end (got " + std::to_string(resp.body.size()) +
                     " bytes)");
  }
  if (auto it = resp.headers.find("content-length"); it != resp.headers.end()) {
    if (std::strtoull(it->second.c_str(), nullptr, 10) != resp.body.size()) {
      return Error(Error::Code::kTransient, what + ": short read");
    }
  }
  return std::move(resp.body);
}

Result<ObjectInfo> AzureBackend::stat(const ObjectName& name) {
  HAVEN_TRY(check_object_name(name));
  Request r;
  r.method = "HEAD";
  r.blob = blob_name(name);
  HAVEN_ASSIGN(Response resp, perform(r));
  if (resp.status != 200) return http_error(resp, location() + ": stat " + name.describe());
  auto it = resp.headers.find("content-length");
  if (it == resp.headers.end()) {
    return Error(Error::Code::kIo, location() + ": stat " + name.describe() +
                                       ": response without Content-Length");
  }
  return ObjectInfo{name, std::strtoull(it->second.c_str(), nullptr, 10)};
}

Status AzureBackend::list_prefix(const std::string& prefix, int max_results,
                                 const std::function<bool(const std::string&, uint64_t)>& fn,
                                 bool* container_missing) const {
  if (container_missing) *container_missing = false;
  std::string marker;
  for (;;) {
    Request r;
    r.query = {{"restype", "container"}, {"comp", "list"}};
    if (!prefix.empty()) r.query.emplace_back("prefix", prefix);
    r.query.emplace_back("maxresults", std::to_string(max_results));
    if (!marker.empty()) r.query.emplace_back("marker", marker);
    HAVEN_ASSIGN(Response resp, perform(r));
    if (resp.status == 404 && container_missing) {
      *container_missing = true;
      return ok_status();
    }
    if (resp.status != 200) return http_error(resp, location() + ": listing " + prefix);
    auto page = parse_azure_list_page(std::string(resp.body.begin(), resp.body.end()));
    if (!page.ok()) return page.error().with_context(location());
    for (const auto& [blob, size] : page->blobs) {
      if (!fn(blob, size)) return ok_status();
    }
    if (page->next_marker.empty()) return ok_status();
    marker = std::move(page->next_marker);
  }
}

Status AzureBackend::list(ObjectType type, const std::function<void(const ObjectInfo&)>& fn) {
  const std::string base = cfg_.prefix.empty() ? "" : cfg_.prefix + "/";
  bool missing = false;  // a missing container lists nothing
  const std::string dir = base + (type == ObjectType::kConfig ? "config" : type_dir(type) + std::string("/"));
  return list_prefix(
      dir, cfg_.list_page_size,
      [&](const std::string& blob, uint64_t size) {
        if (auto name = object_name_of_key(type, base, blob)) fn(ObjectInfo{std::move(*name), size});
        return true;
      },
      &missing);
}

Status AzureBackend::remove(const ObjectName& name) {
  HAVEN_TRY(check_object_name(name));
  Request r;
  r.method = "DELETE";
  r.blob = blob_name(name);
  HAVEN_ASSIGN(Response resp, perform(r));
  if (resp.status == 202 || resp.status == 200) return ok_status();
  return http_error(resp, location() + ": removing " + name.describe());
}

Result<bool> AzureBackend::is_empty() {
  bool any = false, missing = false;
  HAVEN_TRY(list_prefix(cfg_.prefix.empty() ? "" : cfg_.prefix + "/", 1,
                        [&](const std::string&, uint64_t) {
                          any = true;
                          return false;
                        },
                        &missing));
  return !any;
}

Status AzureBackend::create() {
  Request r;
  r.method = "PUT";
  r.query = {{"restype", "container"}};
  HAVEN_ASSIGN(Response resp, perform(r));
  if (resp.status == 201 || resp.status == 409 /* ContainerAlreadyExists */) return ok_status();
  std::string what = location() + ": creating container '" + cfg_.container + "'";
  if (resp.status == 401 || resp.status == 403) {
    // Credentials scoped to the container (e.g. a container SAS) cannot create containers;
    // that is fine when the container already exists and we can list it.
    bool missing = false;
    Status probe = list_prefix("", 1, [](const std::string&, uint64_t) { return false; },
                               &missing);
    if (probe.ok() && !missing) return ok_status();
  }
  return http_error(resp, what);
}

Result<std::shared_ptr<Backend>> open_azure_backend(const std::string& spec) {
  HAVEN_ASSIGN(AzureConfig cfg, azure_config_from_env(spec, [](const char* n) {
                 return static_cast<const char*>(::getenv(n));
               }));
  return std::shared_ptr<Backend>(std::make_shared<AzureBackend>(std::move(cfg)));
}

}  // namespace haven::storage
