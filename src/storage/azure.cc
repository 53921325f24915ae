// storage/azure.cc — the Azure Blob Storage backend (layout, credentials, error mapping: see
// azure.h). Protocol: Blob REST API, x-ms-version kApiVersion, Shared Key or SAS.
#include "storage/azure.h"

#include "storage/curl_api.h"
#include "util/cancel.h"
#include "storage/http.h"

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

bool valid_container(const std::string& c) {
  if (c.size() < 3 || c.size() > 63) return false;
  for (char ch : c) {
    if (!((ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') || ch == '-')) return false;
  }
  return c.front() != '-' && c.back() != '-' && c.find("--") == std::string::npos;
}

}  // namespace

// ---- configuration -------------------------------------------------------------------------

Result<AzureConfig> azure_config(const std::string& spec, const BackendSettings& settings) {
  auto env = [&](const char* name) { return settings.get(name); };
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
  if (settings.list_page_size > 0) cfg.list_page_size = settings.list_page_size;
  return cfg;
}

// ---- requests ------------------------------------------------------------------------------

struct AzureBackend::Request {
  std::string method = "GET";  // GET, HEAD, PUT, DELETE
  std::string blob;            // blob name; empty for container operations
  std::vector<std::pair<std::string, std::string>> query;  // unencoded
  std::map<std::string, std::string> headers;              // lower-case names
  ByteView body;
};

namespace {
// The service's error code: the x-ms-error-code header, else <Code> of the body.
std::string error_code(const http::Response& resp) {
  std::string h = resp.header("x-ms-error-code");
  if (!h.empty()) return h;
  return http::xml::text_or_empty(to_string(resp.body), "Code");
}
}  // namespace

AzureBackend::AzureBackend(AzureConfig config) : cfg_(std::move(config)) {
  if (!cfg_.sas.empty()) secrets_.push_back(cfg_.sas);
  if (!cfg_.key.empty()) secrets_.push_back(base64_encode(cfg_.key));
  if (cfg_.list_page_size < 1 || cfg_.list_page_size > 5000) cfg_.list_page_size = 1000;
}

AzureBackend::~AzureBackend() {
  secure_zero(cfg_.key.data(), cfg_.key.size());
  for (auto& s : secrets_) secure_zero(s.data(), s.size());
}

std::string AzureBackend::location() const {
  return "azure:" + cfg_.container + (cfg_.prefix.empty() ? "" : "/" + cfg_.prefix);
}

std::string AzureBackend::blob_name(const ObjectName& name) const {
  std::string rel = object_path(name);
  return cfg_.prefix.empty() ? rel : cfg_.prefix + "/" + rel;
}

Result<http::Response> AzureBackend::perform(const Request& req, const http::BodySink* body_sink) const {
  // URL path: endpoint path (Azurite: "/devstoreaccount1") + "/container[/blob]".
  size_t scheme_end = cfg_.endpoint.find("://") + 3;
  size_t path_start = cfg_.endpoint.find('/', scheme_end);
  std::string endpoint_path =
      path_start == std::string::npos ? "" : cfg_.endpoint.substr(path_start);
  std::string path = endpoint_path + "/" + http::url_encode(cfg_.container, false);
  if (!req.blob.empty()) path += "/" + http::url_encode(req.blob, true);

  std::string query;
  for (const auto& [k, v] : req.query) {
    query += (query.empty() ? "" : "&") + k + (v.empty() ? "" : "=" + http::url_encode(v, false));
  }
  std::string url = cfg_.endpoint.substr(0, path_start == std::string::npos
                                                ? cfg_.endpoint.size()
                                                : path_start) +
                    path;
  std::string full_query = query;
  if (!cfg_.sas.empty()) full_query += (full_query.empty() ? "" : "&") + cfg_.sas;
  if (!full_query.empty()) url += "?" + full_query;

  std::map<std::string, std::string> headers = req.headers;
  headers["x-ms-date"] = http::format_http_date(now());
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

  http::Request hr;
  hr.method = req.method;
  hr.url = url;
  hr.headers.assign(headers.begin(), headers.end());
  hr.body = req.body;
  if (body_sink != nullptr) hr.body_sink = *body_sink;
  // The endpoint names no secret (a SAS travels in the query, which is not quoted).
  hr.what = location() + ": " + req.method + " " +
            (req.blob.empty() ? "container " + cfg_.container : req.blob) + " at " +
            cfg_.endpoint;
  hr.secrets = &secrets_;
  return http::perform(hr);
}

Error AzureBackend::http_error(const http::Response& resp, const std::string& what) const {
  // Only the service's error *code* is quoted: its free-text message can echo request details.
  std::string code = error_code(resp);
  std::string msg = http::redact(what + ": HTTP " + std::to_string(resp.status) +
                                     (code.empty() ? "" : " " + code),
                                 &secrets_);
  switch (Error::Code c = http::status_code(resp.status)) {
    case Error::Code::kNotFound: return Error(c, msg + " (not found)");
    case Error::Code::kPermissionDenied:
      return Error(c, msg + ": access denied; check the Azure credentials (account key, SAS "
                            "token or AZURE_STORAGE_CONNECTION_STRING) and their permissions");
    case Error::Code::kCorrupt: return Error(c, msg + " (range past the end of the object)");
    default: return Error(c, msg);
  }
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
  HAVEN_ASSIGN(http::Response resp, perform(r));
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
    HAVEN_ASSIGN(http::Response resp, perform(r));
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
  HAVEN_ASSIGN(http::Response resp, perform(r));
  if (resp.status == 201) return ok_status();
  if (resp.status == 409 || resp.status == 412) {
    return Error(Error::Code::kAlreadyExists, what + ": the object already exists");
  }
  return http_error(resp, what);
}

namespace {
// "<what>: range offset+length reaches past the end (<detail>)": a read past a blob's end.
Error range_past_end(const std::string& what, uint64_t offset, uint64_t length, const std::string& detail) {
  return Error(Error::Code::kCorrupt, what + ": range " + std::to_string(offset) + "+" + std::to_string(length) +
                                          " reaches past the end (" + detail + ")");
}
}  // namespace

Result<Bytes> AzureBackend::load(const ObjectName& name, uint64_t offset, uint64_t length) {
  HAVEN_TRY(check_object_name(name));
  Request r;
  r.blob = blob_name(name);
  if (offset != 0 || length != 0) {
    r.headers["x-ms-range"] = "bytes=" + std::to_string(offset) + "-" +
                              (length != 0 ? std::to_string(offset + length - 1) : "");
  }
  HAVEN_ASSIGN(http::Response resp, perform(r));
  std::string what = location() + ": loading " + name.describe();
  if (resp.status == 416) {
    // A start at or past the end. Reading from exactly the end "to the end" is empty, not an
    // error; anything else disagrees with the object's size.
    HAVEN_ASSIGN(ObjectInfo info, stat(name));
    if (length == 0 && offset == info.size) return Bytes{};
    return range_past_end(what, offset, length, "size " + std::to_string(info.size));
  }
  if (resp.status != 200 && resp.status != 206) return http_error(resp, what);
  if (length != 0 && resp.body.size() != length) {
    return range_past_end(what, offset, length, "got " + std::to_string(resp.body.size()) + " bytes");
  }
  if (auto it = resp.headers.find("content-length"); it != resp.headers.end()) {
    if (std::strtoull(it->second.c_str(), nullptr, 10) != resp.body.size()) {
      return Error(Error::Code::kTransient, what + ": short read");
    }
  }
  return std::move(resp.body);
}

Status AzureBackend::load_pieces(const ObjectName& name, uint64_t offset, uint64_t length,
                                 const std::function<void(ByteView)>& piece) {
  if (length == 0) return ok_status();
  HAVEN_TRY(check_object_name(name));
  Request r;
  r.blob = blob_name(name);
  r.headers["x-ms-range"] = "bytes=" + std::to_string(offset) + "-" + std::to_string(offset + length - 1);
  uint64_t got = 0;
  bool too_long = false;
  http::BodySink sink = [&](const http::Response&, ByteView body) {
    // The service honours ranges: 206 with exactly the range, or 200 for a range that is
    // the whole blob. More than asked is not a part of this range.
    if (body.size() > length - got) {
      too_long = true;
      return false;
    }
    got += body.size();
    piece(body);
    return true;
  };
  auto resp = perform(r, &sink);
  std::string what = location() + ": loading " + name.describe();
  if (too_long) return Error(Error::Code::kIo, what + ": the service sent more than the range asked for");
  HAVEN_TRY(resp);
  if (resp->status == 416) {
    HAVEN_ASSIGN(ObjectInfo info, stat(name));
    return range_past_end(what, offset, length, "size " + std::to_string(info.size));
  }
  if (resp->status != 200 && resp->status != 206) return http_error(*resp, what);
  if (got != length) {
    // Cut short by the end of the blob, or by a connection that closed early.
    if (auto it = resp->headers.find("content-length");
        it != resp->headers.end() && std::strtoull(it->second.c_str(), nullptr, 10) != got) {
      return Error(Error::Code::kTransient, what + ": short read");
    }
    return range_past_end(what, offset, length, "got " + std::to_string(got) + " bytes");
  }
  return ok_status();
}

Result<ObjectInfo> AzureBackend::stat(const ObjectName& name) {
  HAVEN_TRY(check_object_name(name));
  Request r;
  r.method = "HEAD";
  r.blob = blob_name(name);
  HAVEN_ASSIGN(http::Response resp, perform(r));
  if (resp.status != 200) return http_error(resp, location() + ": stat " + name.describe());
  auto it = resp.headers.find("content-length");
  if (it == resp.headers.end()) {
    return Error(Error::Code::kIo, location() + ": stat " + name.describe() +
                                       ": response without Content-Length");
  }
  TimeNs modified = http::parse_http_date(resp.header("last-modified")).value_or(0);
  return ObjectInfo{name, std::strtoull(it->second.c_str(), nullptr, 10), modified};
}

Result<AzureListPage> parse_list_blobs(std::string_view doc) {
  if (!http::xml::find(doc, "EnumerationResults")) {
    return Error(Error::Code::kIo, "malformed List Blobs response (no EnumerationResults)");
  }
  AzureListPage page;
  size_t after_blobs = 0;
  if (auto blobs = http::xml::find(doc, "Blobs")) {
    after_blobs = blobs->next;
    http::xml::for_each(doc.substr(blobs->begin, blobs->end - blobs->begin), "Blob",
                        [&](std::string_view blob) {
                          AzureListPage::Entry e;
                          e.name = http::xml::text(blob, "Name").value_or("");
                          auto props = http::xml::find(blob, "Properties");
                          std::string_view p = props ? blob.substr(props->begin, props->end - props->begin)
                                                     : std::string_view();
                          e.size = std::strtoull(
                              http::xml::text(p, "Content-Length").value_or("0").c_str(), nullptr, 10);
                          e.modified =
                              http::parse_http_date(http::xml::text(p, "Last-Modified").value_or(""))
                                  .value_or(0);
                          if (!e.name.empty()) page.entries.push_back(std::move(e));
                          return true;
                        });
  }
  page.next_marker = http::xml::text(doc, "NextMarker", after_blobs).value_or("");
  return page;
}

Status AzureBackend::list_prefix(const std::string& prefix, int max_results,
                                 const std::function<bool(const AzureListPage::Entry&)>& fn,
                                 bool* container_missing) const {
  if (container_missing) *container_missing = false;
  std::string marker;
  for (;;) {
    Request r;
    r.query = {{"restype", "container"}, {"comp", "list"}};
    if (!prefix.empty()) r.query.emplace_back("prefix", prefix);
    r.query.emplace_back("maxresults", std::to_string(max_results));
    if (!marker.empty()) r.query.emplace_back("marker", marker);
    HAVEN_ASSIGN(http::Response resp, perform(r));
    if (resp.status == 404 && container_missing) {
      *container_missing = true;
      return ok_status();
    }
    if (resp.status != 200) return http_error(resp, location() + ": listing " + prefix);
    // The page is parsed whole first: fn may call back into the backend on this thread.
    auto page = parse_list_blobs(to_string(resp.body));
    if (!page.ok()) return Error(Error::Code::kIo, location() + ": listing " + prefix + ": " + page.error().message());
    for (const auto& e : page->entries) {
      if (!fn(e)) return ok_status();
    }
    marker = page->next_marker;
    if (marker.empty()) return ok_status();
  }
}

Status AzureBackend::list(ObjectType type, const std::function<void(const ObjectInfo&)>& fn) {
  const std::string base = cfg_.prefix.empty() ? "" : cfg_.prefix + "/";
  bool missing = false;  // a missing container lists nothing
  if (type == ObjectType::kConfig) {
    return list_prefix(base + "config", cfg_.list_page_size,
                       [&](const AzureListPage::Entry& e) {
                         if (e.name == base + "config") {
                           fn(ObjectInfo{ObjectName{type, "config"}, e.size, e.modified});
                         }
                         return true;
                       },
                       &missing);
  }
  const std::string dir = base + type_dir(type) + "/";
  return list_prefix(
      dir, cfg_.list_page_size,
      [&](const AzureListPage::Entry& e) {
        // One mapping from keys to object names for every backend (backend.h); anything else
        // under the prefix (temporary names, other layouts) is not an object of this type.
        if (auto n = object_name_of_key(type, base, e.name)) fn(ObjectInfo{*n, e.size, e.modified});
        return true;
      },
      &missing);
}

Status AzureBackend::remove(const ObjectName& name) {
  HAVEN_TRY(check_object_name(name));
  Request r;
  r.method = "DELETE";
  r.blob = blob_name(name);
  HAVEN_ASSIGN(http::Response resp, perform(r));
  if (resp.status == 202 || resp.status == 200) return ok_status();
  return http_error(resp, location() + ": removing " + name.describe());
}

Result<bool> AzureBackend::is_empty() {
  bool any = false, missing = false;
  HAVEN_TRY(list_prefix(cfg_.prefix.empty() ? "" : cfg_.prefix + "/", 1,
                        [&](const AzureListPage::Entry&) {
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
  HAVEN_ASSIGN(http::Response resp, perform(r));
  if (resp.status == 201 || resp.status == 409 /* ContainerAlreadyExists */) return ok_status();
  std::string what = location() + ": creating container '" + cfg_.container + "'";
  if (resp.status == 401 || resp.status == 403) {
    // Credentials scoped to the container (e.g. a container SAS) cannot create containers;
    // that is fine when the container already exists and we can list it.
    bool missing = false;
    Status probe = list_prefix("", 1, [](const AzureListPage::Entry&) { return false; },
                               &missing);
    if (probe.ok() && !missing) return ok_status();
  }
  return http_error(resp, what);
}

Result<std::shared_ptr<Backend>> open_azure_backend(const std::string& spec,
                                                    const BackendSettings& settings) {
  HAVEN_ASSIGN(AzureConfig cfg, azure_config(spec, settings));
  return std::shared_ptr<Backend>(std::make_shared<AzureBackend>(std::move(cfg)));
}

}  // namespace haven::storage
