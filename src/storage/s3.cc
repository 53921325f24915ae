// storage/s3.cc — the S3-compatible backend (locations, layout, atomicity: see s3.h).
#include "storage/s3.h"

#include "storage/curl_api.h"
#include "util/cancel.h"
#include "storage/http.h"

#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/sha.h>

#include <algorithm>
#include <cctype>
#include <cstdlib>
#include <ctime>
#include <fstream>
#include <map>
#include <mutex>
#include <sstream>

namespace haven::storage {

// ---- Signature Version 4 -------------------------------------------------------------------

namespace sigv4 {

std::string uri_encode(const std::string& s, bool encode_slash) {
  return http::url_encode(s, !encode_slash);
}

std::string sha256_hex(ByteView data) {
  uint8_t md[SHA256_DIGEST_LENGTH];
  SHA256(data.data(), data.size(), md);
  return to_hex(ByteView(md, sizeof md));
}

namespace {
Bytes hmac(ByteView key, const std::string& msg) {
  Bytes out(EVP_MAX_MD_SIZE);
  unsigned int len = 0;
  HMAC(EVP_sha256(), key.data(), static_cast<int>(key.size()),
       reinterpret_cast<const uint8_t*>(msg.data()), msg.size(), out.data(), &len);
  out.resize(len);
  return out;
}

std::string trim(const std::string& v) {
  size_t b = v.find_first_not_of(" \t"), e = v.find_last_not_of(" \t");
  if (b == std::string::npos) return "";
  // SigV4 also collapses inner runs of spaces; our header values never contain them.
  return v.substr(b, e - b + 1);
}

std::vector<std::pair<std::string, std::string>> sorted_headers(const Input& in) {
  auto h = in.headers;
  std::sort(h.begin(), h.end());
  return h;
}

std::string signed_headers(const Input& in) {
  std::string out;
  for (const auto& [k, v] : sorted_headers(in)) out += (out.empty() ? "" : ";") + k;
  return out;
}

std::string scope(const Input& in) {
  return in.amz_date.substr(0, 8) + "/" + in.region + "/" + in.service + "/aws4_request";
}
}  // namespace

std::string canonical_query(const std::vector<std::pair<std::string, std::string>>& query) {
  std::vector<std::pair<std::string, std::string>> enc;
  for (const auto& [k, v] : query) enc.emplace_back(uri_encode(k, true), uri_encode(v, true));
  std::sort(enc.begin(), enc.end());
  std::string out;
  for (const auto& [k, v] : enc) out += (out.empty() ? "" : "&") + k + "=" + v;
  return out;
}

std::string canonical_request(const Input& in) {
  std::string out = in.method + "\n" + in.canonical_uri + "\n" + canonical_query(in.query) + "\n";
  for (const auto& [k, v] : sorted_headers(in)) out += k + ":" + trim(v) + "\n";
  out += "\n" + signed_headers(in) + "\n" + in.payload_sha256;
  return out;
}

std::string signature(const Input& in, const std::string& secret_key) {
  std::string string_to_sign = "AWS4-HMAC-SHA256\n" + in.amz_date + "\n" + scope(in) + "\n" +
                               sha256_hex(as_bytes(canonical_request(in)));
  std::string k = "AWS4" + secret_key;
  Bytes key = hmac(as_bytes(k), in.amz_date.substr(0, 8));
  key = hmac(key, in.region);
  key = hmac(key, in.service);
  key = hmac(key, "aws4_request");
  return to_hex(hmac(key, string_to_sign));
}

std::string authorization(const Input& in, const std::string& access_key,
                          const std::string& secret_key) {
  return "AWS4-HMAC-SHA256 Credential=" + access_key + "/" + scope(in) +
         ",SignedHeaders=" + signed_headers(in) + ",Signature=" + signature(in, secret_key);
}

}  // namespace sigv4

// ---- HTTP over libcurl ---------------------------------------------------------------------

struct S3Backend::Request {
  std::string method;  // GET, HEAD, PUT, DELETE
  std::string key;     // object key; empty for bucket-level requests
  std::vector<std::pair<std::string, std::string>> query;
  std::vector<std::pair<std::string, std::string>> headers;  // lower-case, signed
  ByteView body;
};

namespace {

std::string amz_now() {
  time_t t = ::time(nullptr);
  struct tm tm;
  gmtime_r(&t, &tm);
  char buf[32];
  strftime(buf, sizeof buf, "%Y%m%dT%H%M%SZ", &tm);
  return buf;
}

}  // namespace

S3Backend::S3Backend(S3Config config) : cfg_(std::move(config)) {
  for (const std::string* secret : {&cfg_.creds.access_key, &cfg_.creds.secret_key,
                                    &cfg_.creds.session_token}) {
    if (!secret->empty()) secrets_.push_back(*secret);
  }
  if (cfg_.list_page_size < 1 || cfg_.list_page_size > 1000) cfg_.list_page_size = 1000;
}

std::string S3Backend::location() const {
  std::string s = "s3:" + cfg_.scheme + "://" + cfg_.host + "/" + cfg_.bucket;
  if (!cfg_.prefix.empty()) s += "/" + cfg_.prefix;
  return s;
}

std::string S3Backend::key_of(const ObjectName& name) const {
  std::string rel = object_path(name);
  return cfg_.prefix.empty() ? rel : cfg_.prefix + "/" + rel;
}

Result<http::Response> S3Backend::perform(const Request& req, const http::BodySink* body_sink) const {
  // Virtual-hosted style puts the bucket in the host name, path-style in the path.
  const std::string host = cfg_.path_style ? cfg_.host : cfg_.bucket + "." + cfg_.host;
  std::string path = "/";
  if (cfg_.path_style) path += cfg_.bucket + (req.key.empty() ? "" : "/");
  path += sigv4::uri_encode(req.key, false);

  sigv4::Input in;
  in.method = req.method;
  in.canonical_uri = path;
  in.query = req.query;
  in.payload_sha256 = sigv4::sha256_hex(req.body);
  in.amz_date = amz_now();
  in.region = cfg_.region;
  in.headers = req.headers;
  in.headers.emplace_back("host", host);
  in.headers.emplace_back("x-amz-content-sha256", in.payload_sha256);
  in.headers.emplace_back("x-amz-date", in.amz_date);
  if (!cfg_.creds.session_token.empty()) {
    in.headers.emplace_back("x-amz-security-token", cfg_.creds.session_token);
  }

  http::Request hr;
  hr.method = req.method;
  hr.url = cfg_.scheme + "://" + host + path;
  std::string q = sigv4::canonical_query(req.query);
  if (!q.empty()) hr.url += "?" + q;
  hr.headers = in.headers;
  hr.headers.emplace_back("Authorization", sigv4::authorization(in, cfg_.creds.access_key,
                                                                 cfg_.creds.secret_key));
  hr.body = req.body;
  if (body_sink != nullptr) hr.body_sink = *body_sink;
  hr.ca_file = cfg_.ca_file;
  hr.what = location() + ": " + req.method + " " + (req.key.empty() ? "bucket" : req.key);
  hr.certificate_hint =
      "set HAVEN_S3_CA_FILE to the CA certificate that signed the server's certificate";
  hr.secrets = &secrets_;
  return http::perform(hr);
}

Error S3Backend::http_error(const http::Response& resp, const std::string& what) const {
  std::string body = to_string(resp.body);
  std::string code = http::xml::text_or_empty(body, "Code");
  std::string message = http::xml::text_or_empty(body, "Message");
  std::string msg = location() + ": " + what + ": HTTP " + std::to_string(resp.status);
  if (!code.empty()) msg += " " + code;
  if (!message.empty()) msg += ": " + message;
  msg = http::redact(msg, &secrets_);
  Error::Code c = http::status_code(resp.status);
  // Hosted stores report a full quota by a code (MinIO also by 507).
  if (code.find("Quota") != std::string::npos || code == "XMinioStorageFull") {
    c = Error::Code::kNoSpace;
  }
  if (code == "RequestTimeout" || code == "SlowDown" || code == "OperationAborted" ||
      code == "ConditionalRequestConflict") {
    c = Error::Code::kTransient;
  }
  if (c == Error::Code::kPermissionDenied) {
    return Error(c, msg + " (check the S3 credentials: AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY or "
                          "AWS_PROFILE, and that they may access this bucket)");
  }
  if (c != Error::Code::kIo) return Error(c, msg);
  // A wrong region: AWS answers 301 PermanentRedirect or 400 AuthorizationHeaderMalformed
  // and names the bucket's region in a header or the body.
  std::string region = resp.header("x-amz-bucket-region");
  if (region.empty()) region = http::xml::text_or_empty(body, "Region");
  if (!region.empty() && region != cfg_.region) {
    return Error(Error::Code::kIo, msg + " (the bucket is in region " + region +
                                       ": set AWS_REGION or HAVEN_S3_REGION to " + region + ")");
  }
  return Error(Error::Code::kIo, msg);
}

// ---- Backend methods -----------------------------------------------------------------------

Status S3Backend::save(const ObjectName& name, ByteView data) { return put_new(name, data, true); }

Status S3Backend::save_new(const ObjectName& name, ByteView data) { return put_new(name, data, false); }

Status S3Backend::put_new(const ObjectName& name, ByteView data, bool head_first) {
  HAVEN_TRY(check_object_name(name));
  const std::string key = key_of(name);
  if (head_first) {
    // HEAD first: servers that ignore If-None-Match would otherwise silently replace the object.
    HAVEN_ASSIGN(http::Response head, perform(Request{"HEAD", key, {}, {}, {}}));
    if (head.status == 200) {
      return Error(Error::Code::kAlreadyExists, location() + ": " + name.describe() + " already exists");
    }
    if (head.status != 404) return http_error(head, "save " + name.describe());
  }
  Request put{"PUT", key, {}, {{"content-type", "application/octet-stream"}}, data};
  const bool conditional = !no_conditional_put_.load(std::memory_order_relaxed);
  if (conditional) {
    // Create-only PUT: GCS spells it "generation 0", everyone else "If-None-Match: *".
    if (cfg_.host.find("storage.googleapis.com") != std::string::npos) {
      put.headers.emplace_back("x-goog-if-generation-match", "0");
    } else {
      put.headers.emplace_back("if-none-match", "*");
    }
  }
  HAVEN_ASSIGN(http::Response resp, perform(put));
  if (conditional && (resp.status == 501 ||
                      http::xml::text_or_empty(to_string(resp.body), "Code") == "NotImplemented")) {
    // A server that refuses conditional PUTs outright: stay with the HEAD check from now on.
    no_conditional_put_.store(true, std::memory_order_relaxed);
    put.headers.resize(1);
    HAVEN_ASSIGN(http::Response plain, perform(put));
    resp = std::move(plain);
  }
  if (resp.status / 100 == 2) return ok_status();
  if (resp.status == 412) {
    return Error(Error::Code::kAlreadyExists, location() + ": " + name.describe() + " already exists");
  }
  return http_error(resp, "save " + name.describe());
}

namespace {
// "requested range [offset, end) beyond end of object (size ...)": a read past an object's end.
Error range_beyond(const ObjectName& name, uint64_t offset, const std::string& end, const std::string& size) {
  return Error(Error::Code::kCorrupt, name.describe() + ": requested range [" + std::to_string(offset) +
                                          ", " + end + ") beyond end of object (size " + size + ")");
}
// The total size a 206's Content-Range ("bytes first-last/total") names, or "".
std::string content_range_total(const http::Response& resp) {
  std::string cr = resp.header("content-range");
  return cr.substr(cr.find('/') == std::string::npos ? cr.size() : cr.find('/') + 1);
}
}  // namespace

// A 206 must start where the range asked (some servers send more than asked: s3rver 3.7.1 takes
// "bytes=0-0" for "from 0 to the end"; the caller keeps what was asked for).
Status S3Backend::check_range_start(const ObjectName& name, const http::Response& resp, uint64_t offset) const {
  std::string cr = resp.header("content-range");
  if (cr.rfind("bytes ", 0) == 0 && std::strtoull(cr.c_str() + 6, nullptr, 10) != offset) {
    return Error(Error::Code::kIo, location() + ": load " + name.describe() + ": asked for bytes from " +
                                       std::to_string(offset) + ", got Content-Range " + cr);
  }
  return ok_status();
}

// What a load that got neither 200 nor 206 (nor 416, which each load answers itself) failed of.
Error S3Backend::load_error(const ObjectName& name, const http::Response& resp) const {
  if (resp.status == 404) {
    return Error(Error::Code::kNotFound, location() + ": " + name.describe() + " not found");
  }
  return http_error(resp, "load " + name.describe());
}

Result<Bytes> S3Backend::load(const ObjectName& name, uint64_t offset, uint64_t length) {
  HAVEN_TRY(check_object_name(name));
  const uint64_t end = offset + length;
  auto beyond = [&](const std::string& size) {
    return range_beyond(name, offset,
                        length != 0 && end < offset ? std::string("overflow") : std::to_string(length == 0 ? offset : end),
                        size);
  };
  if (length != 0 && end < offset) return beyond("?");
  Request get{"GET", key_of(name), {}, {}, {}};
  const bool ranged = offset != 0 || length != 0;
  if (ranged) {
    get.headers.emplace_back("range", "bytes=" + std::to_string(offset) + "-" +
                                          (length == 0 ? "" : std::to_string(end - 1)));
  }
  HAVEN_ASSIGN(http::Response resp, perform(get));
  if (resp.status == 200) {
    // The whole object (no range asked, or a server that ignores Range).
    const uint64_t size = resp.body.size();
    if (offset > size || (length != 0 && end > size)) return beyond(std::to_string(size));
    if (!ranged) return std::move(resp.body);
    return Bytes(resp.body.begin() + static_cast<ptrdiff_t>(offset),
                 resp.body.begin() + static_cast<ptrdiff_t>(length == 0 ? size : end));
  }
  if (resp.status == 206) {
    // S3 truncates a range that reaches past the end.
    HAVEN_TRY(check_range_start(name, resp, offset));
    std::string total = content_range_total(resp);
    if (length != 0 && resp.body.size() > length) resp.body.resize(length);
    if (length != 0 && resp.body.size() != length) return beyond(total.empty() ? "?" : total);
    return std::move(resp.body);
  }
  if (resp.status == 416) {
    // Offset at or past the end. Reading zero bytes at exactly the end is allowed.
    HAVEN_ASSIGN(ObjectInfo info, stat(name));
    if (length == 0 && offset == info.size) return Bytes{};
    return beyond(std::to_string(info.size));
  }
  return load_error(name, resp);
}

Status S3Backend::load_pieces(const ObjectName& name, uint64_t offset, uint64_t length,
                              const std::function<void(ByteView)>& piece) {
  if (length == 0) return ok_status();
  HAVEN_TRY(check_object_name(name));
  const uint64_t end = offset + length;
  Request get{"GET", key_of(name), {}, {}, {}};
  get.headers.emplace_back("range", "bytes=" + std::to_string(offset) + "-" + std::to_string(end - 1));
  uint64_t seen = 0;  // body bytes so far
  uint64_t got = 0;   // bytes of the range handed over
  Status refused = ok_status();
  http::BodySink sink = [&](const http::Response& resp, ByteView body) {
    // 206: the body starts at `offset` (checked before any byte is taken); 200: a server that
    // ignores Range sends the whole object, of which the range is a part. Bytes past the range
    // are dropped.
    const uint64_t first = resp.status == 200 ? offset : 0;
    if (resp.status == 206 && seen == 0) {
      refused = check_range_start(name, resp, offset);
      if (!refused.ok()) return false;
    }
    const uint64_t at = seen;
    seen += body.size();
    uint64_t lo = std::max(at, first), hi = std::min(seen, first + length);
    if (lo < hi) {
      got = hi - first;
      piece(body.subspan(static_cast<size_t>(lo - at), static_cast<size_t>(hi - lo)));
    }
    return true;
  };
  auto resp = perform(get, &sink);
  HAVEN_TRY(refused);
  HAVEN_TRY(resp);
  if (resp->status == 200 || resp->status == 206) {
    if (got == length) return ok_status();
    std::string total = content_range_total(*resp);
    return range_beyond(name, offset, std::to_string(end),
                        resp->status == 200 ? std::to_string(seen) : (total.empty() ? "?" : total));
  }
  if (resp->status == 416) {
    HAVEN_ASSIGN(ObjectInfo info, stat(name));
    return range_beyond(name, offset, std::to_string(end), std::to_string(info.size));
  }
  return load_error(name, *resp);
}

Result<ObjectInfo> S3Backend::stat(const ObjectName& name) {
  HAVEN_TRY(check_object_name(name));
  HAVEN_ASSIGN(http::Response resp, perform(Request{"HEAD", key_of(name), {}, {}, {}}));
  if (resp.status == 404) {
    return Error(Error::Code::kNotFound, location() + ": " + name.describe() + " not found");
  }
  if (resp.status != 200) return http_error(resp, "stat " + name.describe());
  std::string len = resp.header("content-length");
  if (len.empty()) {
    return Error(Error::Code::kIo, location() + ": stat " + name.describe() + ": no Content-Length");
  }
  TimeNs modified = http::parse_http_date(resp.header("last-modified")).value_or(0);
  return ObjectInfo{name, std::strtoull(len.c_str(), nullptr, 10), modified};
}

Result<S3ListPage> parse_list_objects_v2(std::string_view xml) {
  if (!http::xml::find(xml, "ListBucketResult")) {
    return Error(Error::Code::kIo, "malformed ListObjectsV2 response (no ListBucketResult)");
  }
  S3ListPage page;
  http::xml::for_each(xml, "Contents", [&](std::string_view contents) {
    S3ListPage::Entry e;
    e.key = http::xml::text(contents, "Key").value_or("");
    e.size = std::strtoull(http::xml::text(contents, "Size").value_or("0").c_str(), nullptr, 10);
    if (auto t = parse_time(http::xml::text(contents, "LastModified").value_or(""))) e.modified = *t;
    if (!e.key.empty()) page.entries.push_back(std::move(e));
    return true;
  });
  page.truncated = http::xml::text(xml, "IsTruncated").value_or("") == "true";
  page.next_token = http::xml::text(xml, "NextContinuationToken").value_or("");
  if (page.truncated && page.next_token.empty()) {
    return Error(Error::Code::kIo, "truncated ListObjectsV2 response without a continuation token");
  }
  return page;
}

Status S3Backend::list_keys(const std::string& key_prefix,
                            const std::function<bool(const S3ListPage::Entry&)>& fn) {
  std::string token;
  for (;;) {
    Request req{"GET", "", {{"list-type", "2"}, {"max-keys", std::to_string(cfg_.list_page_size)}}, {}, {}};
    if (!key_prefix.empty()) req.query.emplace_back("prefix", key_prefix);
    if (!token.empty()) req.query.emplace_back("continuation-token", token);
    HAVEN_ASSIGN(http::Response resp, perform(req));
    if (resp.status != 200) return http_error(resp, "list " + key_prefix);
    // The page is parsed whole first: fn may call back into the backend on this thread, which
    // reuses this thread's CURL handle, so no request may still be in flight when it runs.
    auto page = parse_list_objects_v2(to_string(resp.body));
    if (!page.ok()) return Error(Error::Code::kIo, location() + ": list " + key_prefix + ": " + page.error().message());
    for (const auto& e : page->entries) {
      if (!fn(e)) return ok_status();
    }
    if (!page->truncated) return ok_status();
    token = page->next_token;
  }
}

Status S3Backend::list(ObjectType type, const std::function<void(const ObjectInfo&)>& fn) {
  if (type == ObjectType::kConfig) {
    auto info = stat(ObjectName{ObjectType::kConfig, "config"});
    if (info.ok()) fn(*info);
    else if (info.error().code() != Error::Code::kNotFound) return info.error();
    return ok_status();
  }
  const std::string repo_base = cfg_.prefix.empty() ? "" : cfg_.prefix + "/";
  const std::string base = repo_base + type_dir(type) + "/";
  return list_keys(base, [&](const S3ListPage::Entry& e) {
    // One mapping from keys to object names for every backend (backend.h).
    if (auto n = object_name_of_key(type, repo_base, e.key)) fn(ObjectInfo{*n, e.size, e.modified});
    return true;
  });
}

Status S3Backend::remove(const ObjectName& name) {
  HAVEN_TRY(check_object_name(name));
  // S3's DELETE succeeds on a missing key; the contract wants kNotFound, so look first.
  HAVEN_TRY(stat(name));
  HAVEN_ASSIGN(http::Response resp, perform(Request{"DELETE", key_of(name), {}, {}, {}}));
  if (resp.status == 200 || resp.status == 204) return ok_status();
  return http_error(resp, "remove " + name.describe());
}

Status S3Backend::discard(const ObjectName& name) {
  HAVEN_TRY(check_object_name(name));
  HAVEN_ASSIGN(http::Response resp, perform(Request{"DELETE", key_of(name), {}, {}, {}}));
  if (resp.status == 200 || resp.status == 204 || resp.status == 404) return ok_status();
  return http_error(resp, "remove " + name.describe());
}

Result<bool> S3Backend::is_empty() {
  HAVEN_ASSIGN(http::Response head, perform(Request{"HEAD", "", {}, {}, {}}));
  if (head.status == 404) return true;  // no bucket yet: create() makes it
  if (head.status != 200 && head.status != 403) return http_error(head, "bucket " + cfg_.bucket);
  // 403 on HEAD bucket: the credentials may still list the prefix; let the listing decide.
  bool empty = true;
  HAVEN_TRY(list_keys(cfg_.prefix.empty() ? "" : cfg_.prefix + "/",
                      [&](const S3ListPage::Entry& e) {
                        // "Folder" markers (keys ending in '/') that consoles create don't count.
                        if (!e.key.empty() && e.key.back() == '/') return true;
                        empty = false;
                        return false;
                      }));
  return empty;
}

Status S3Backend::create() {
  HAVEN_ASSIGN(http::Response head, perform(Request{"HEAD", "", {}, {}, {}}));
  if (head.status == 200) return ok_status();
  // 403: the bucket exists but these credentials may not HEAD it (or may not see whether it
  // exists); objects can still be writable, and the first save will tell.
  if (head.status == 403) return ok_status();
  if (head.status != 404) return http_error(head, "bucket " + cfg_.bucket);
  std::string body;
  // AWS wants the region in the body outside us-east-1; other servers need no such thing.
  if (cfg_.host.find("amazonaws.com") != std::string::npos && cfg_.region != "us-east-1") {
    body = "<CreateBucketConfiguration xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\">"
           "<LocationConstraint>" + cfg_.region + "</LocationConstraint></CreateBucketConfiguration>";
  }
  HAVEN_ASSIGN(http::Response resp, perform(Request{"PUT", "", {}, {}, as_bytes(body)}));
  if (resp.status / 100 == 2) return ok_status();
  std::string code = http::xml::text_or_empty(to_string(resp.body), "Code");
  if (code == "BucketAlreadyOwnedByYou") return ok_status();  // created concurrently
  if (code == "BucketAlreadyExists") {
    return Error(Error::Code::kPermissionDenied,
                 location() + ": bucket name " + cfg_.bucket + " is taken by another account");
  }
  return http_error(resp, "create bucket " + cfg_.bucket);
}

// ---- locations, credentials, options -------------------------------------------------------

namespace {

std::string trim_ws(const std::string& s) {
  size_t b = s.find_first_not_of(" \t\r\n"), e = s.find_last_not_of(" \t\r\n");
  return b == std::string::npos ? "" : s.substr(b, e - b + 1);
}

// key = value pairs of section [section] of an INI file (~/.aws/credentials, ~/.aws/config).
std::map<std::string, std::string> ini_section(const std::string& path, const std::string& section) {
  std::map<std::string, std::string> out;
  std::ifstream in(path);
  std::string line;
  bool inside = false;
  while (std::getline(in, line)) {
    line = trim_ws(line);
    if (line.empty() || line[0] == '#' || line[0] == ';') continue;
    if (line[0] == '[') {
      inside = trim_ws(line.substr(1, line.find(']') - 1)) == section;
      continue;
    }
    auto eq = line.find('=');
    if (inside && eq != std::string::npos) out[trim_ws(line.substr(0, eq))] = trim_ws(line.substr(eq + 1));
  }
  return out;
}

std::string aws_file(const BackendSettings& settings, const char* name, const char* leaf) {
  std::string p = settings.get(name);
  if (!p.empty()) return p;
  std::string home = settings.get("HOME");
  return home.empty() ? "" : home + "/.aws/" + leaf;
}

}  // namespace

Result<S3Config> parse_s3_location(const std::string& spec, const BackendSettings& settings) {
  auto env = [&](const char* name) { return settings.get(name); };
  S3Config cfg;
  std::string rest = spec;
  bool custom = false;
  auto bad = [&](const std::string& why) {
    return Error(Error::Code::kInvalidArgument,
                 "invalid S3 location 's3:" + spec + "': " + why +
                     " (use s3:bucket/prefix for AWS or s3:https://host[:port]/bucket/prefix)");
  };
  for (const char* scheme : {"https", "http"}) {
    std::string p = std::string(scheme) + "://";
    if (rest.rfind(p, 0) == 0) {
      cfg.scheme = scheme;
      rest = rest.substr(p.size());
      auto slash = rest.find('/');
      cfg.host = rest.substr(0, slash);
      rest = slash == std::string::npos ? "" : rest.substr(slash + 1);
      custom = true;
      break;
    }
  }
  if (!custom && rest.find("://") != std::string::npos) return bad("only http and https endpoints");
  if (custom && (cfg.host.empty() || cfg.host.find('@') != std::string::npos)) {
    return bad("no host (and credentials do not belong in the location)");
  }
  auto slash = rest.find('/');
  cfg.bucket = rest.substr(0, slash);
  cfg.prefix = slash == std::string::npos ? "" : rest.substr(slash + 1);
  while (!cfg.prefix.empty() && cfg.prefix.back() == '/') cfg.prefix.pop_back();
  while (!cfg.prefix.empty() && cfg.prefix.front() == '/') cfg.prefix.erase(0, 1);
  if (cfg.bucket.empty()) return bad("no bucket");

  // Credentials: the environment first, then the profile in the shared credentials file.
  const std::string profile = env("AWS_PROFILE").empty() ? "default" : env("AWS_PROFILE");
  cfg.creds.access_key = env("AWS_ACCESS_KEY_ID");
  cfg.creds.secret_key = env("AWS_SECRET_ACCESS_KEY");
  cfg.creds.session_token = env("AWS_SESSION_TOKEN");
  if (cfg.creds.access_key.empty() || cfg.creds.secret_key.empty()) {
    auto sec = ini_section(aws_file(settings, "AWS_SHARED_CREDENTIALS_FILE", "credentials"), profile);
    cfg.creds.access_key = sec["aws_access_key_id"];
    cfg.creds.secret_key = sec["aws_secret_access_key"];
    cfg.creds.session_token = sec["aws_session_token"];
  }
  if (cfg.creds.access_key.empty() || cfg.creds.secret_key.empty()) {
    return Error(Error::Code::kInvalidArgument,
                 "no S3 credentials: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or "
                 "AWS_PROFILE (profile \"" + profile + "\" in ~/.aws/credentials)");
  }

  // Region: explicit override, the endpoint's own name, the AWS variables, the profile.
  const auto conf = ini_section(aws_file(settings, "AWS_CONFIG_FILE", "config"),
                                profile == "default" ? "default" : "profile " + profile);
  std::string host_region;
  if (custom && cfg.host.size() > 17 && cfg.host.rfind("s3.", 0) == 0 &&
      cfg.host.find(".amazonaws.com") != std::string::npos) {
    host_region = cfg.host.substr(3, cfg.host.find(".amazonaws.com") - 3);  // s3.<r>.amazonaws.com
    if (host_region.find('.') != std::string::npos) host_region.clear();
  }
  for (const std::string& r : {env("HAVEN_S3_REGION"), host_region, env("AWS_REGION"),
                               env("AWS_DEFAULT_REGION"),
                               conf.count("region") ? conf.at("region") : std::string()}) {
    if (!r.empty()) {
      cfg.region = r;
      break;
    }
  }

  if (!custom) cfg.host = "s3." + cfg.region + ".amazonaws.com";
  const bool aws = cfg.host.find("amazonaws.com") != std::string::npos;
  // Custom endpoints (MinIO, Ceph, test servers on an IP) usually need path-style; AWS prefers
  // virtual-hosted, except for bucket names with dots, which break the TLS wildcard match.
  cfg.path_style = !aws || cfg.bucket.find('.') != std::string::npos;
  std::string ps = env("HAVEN_S3_PATH_STYLE");
  if (ps == "1" || ps == "true") cfg.path_style = true;
  if (ps == "0" || ps == "false") cfg.path_style = false;

  cfg.ca_file = env("HAVEN_S3_CA_FILE");
  if (cfg.ca_file.empty()) cfg.ca_file = env("AWS_CA_BUNDLE");
  if (settings.list_page_size > 0) cfg.list_page_size = settings.list_page_size;
  return cfg;
}

Result<std::shared_ptr<Backend>> open_s3_backend(const std::string& spec,
                                                 const BackendSettings& settings) {
  HAVEN_ASSIGN(S3Config cfg, parse_s3_location(spec, settings));
  return std::shared_ptr<Backend>(std::make_shared<S3Backend>(std::move(cfg)));
}

}  // namespace haven::storage
