// storage/s3.h — the S3-compatible object-store backend (AWS S3, MinIO, Ceph RGW, Wasabi,
// Backblaze B2's S3 API, Google Cloud Storage's XML/S3-interoperable API), over libcurl with
// AWS Signature Version 4.
//
// Location ("s3:" + spec), with settings from BackendSettings (storage/backend.h; the CLI
// passes its environment, so the names below are environment variables there):
//   s3:bucket/prefix                     AWS S3; region from HAVEN_S3_REGION, AWS_REGION,
//                                        AWS_DEFAULT_REGION, the profile's region in
//                                        ~/.aws/config, else us-east-1; virtual-hosted style.
//   s3:https://host[:port]/bucket/prefix a custom endpoint; path-style by default
//                                        (HAVEN_S3_PATH_STYLE=0 switches to virtual-hosted).
//   s3:http://...                        the same without TLS (test servers only).
// Credentials: AWS_ACCESS_KEY_ID + AWS_SECRET_ACCESS_KEY (+ AWS_SESSION_TOKEN), else the
// profile AWS_PROFILE (default "default") of AWS_SHARED_CREDENTIALS_FILE or
// HOME/.aws/credentials (AWS_CONFIG_FILE or HOME/.aws/config for the profile's region).
// HTTPS verifies certificates; HAVEN_S3_CA_FILE (or AWS_CA_BUNDLE) names extra trusted CAs.
// Credentials never appear in messages: errors name only endpoint, bucket and object.
//
// Layout under the prefix: the names the local backend uses (config, keys/<id>,
// data/<id[0:2]>/<id>, index/<id>, snapshots/<id>, locks/<id>), so docs/FORMAT.md holds.
//
// Listing: ListObjectsV2 pages of list_page_size keys (max-keys), followed by continuation
// tokens; sizes and LastModified (ISO 8601, milliseconds) come with the listing, stat() reads
// Content-Length and Last-Modified (RFC 1123, seconds) of a HEAD.
//
// Atomicity: an S3 PUT is atomic (the object appears whole or not at all), so there are no
// leftovers. save() refuses an existing name by a HEAD first and then a create-only PUT
// (If-None-Match: *, honoured by AWS since 2024, MinIO and Ceph; x-goog-if-generation-match: 0
// on Google Cloud Storage). A server that answers 501 to the condition gets plain PUTs from
// then on. Where the condition is ignored, a window remains between HEAD and PUT in which two
// writers of the same name both succeed — harmless for content-addressed objects, whose bytes
// are identical. s3rver 3.7.1 is such a server (it honours If-None-Match only on GET).
// remove() also HEADs first, since S3's DELETE succeeds on a missing key; discard(), for which a
// missing key is no error, sends only the DELETE.
//
// Thread-safety: every method may be called concurrently. Each thread uses its own CURL easy
// handle (thread_local), so connections are reused across requests of that thread.
#pragma once

#include <atomic>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "storage/backend.h"
#include "storage/http.h"

namespace haven::storage {

struct S3Credentials {
  std::string access_key, secret_key, session_token;
};

struct S3Config {
  std::string scheme = "https";  // "https" or "http"
  std::string host;              // endpoint host[:port], e.g. "s3.eu-west-1.amazonaws.com"
  std::string bucket;
  std::string prefix;            // without leading or trailing '/'; may be empty
  std::string region = "us-east-1";
  bool path_style = false;
  std::string ca_file;           // empty: the system's trusted CAs
  int list_page_size = 1000;     // max-keys of each listing page (1..1000)
  S3Credentials creds;           // secrets: never printed
};

// One page of a ListObjectsV2 response.
struct S3ListPage {
  struct Entry {
    std::string key;  // unescaped
    uint64_t size = 0;
    TimeNs modified = 0;  // LastModified; 0 if absent or malformed
  };
  std::vector<Entry> entries;
  bool truncated = false;
  std::string next_token;  // NextContinuationToken, unescaped
};
// Parses a ListObjectsV2 response body (untrusted server text; a fuzzer calls this). Fails
// with kIo on a document that is not a listing or is truncated without a continuation token.
Result<S3ListPage> parse_list_objects_v2(std::string_view xml);

class S3Backend : public Backend {
 public:
  explicit S3Backend(S3Config config);

  std::string location() const override;
  Status save(const ObjectName& name, ByteView data) override;
  // Without the HEAD: the conditional PUT alone (a server that ignores If-None-Match could
  // only replace an object nobody else can have named).
  Status save_new(const ObjectName& name, ByteView data) override;
  Result<Bytes> load(const ObjectName& name, uint64_t offset, uint64_t length) override;
  // The response body is handed over as it arrives (one ranged GET).
  bool streams_reads() const override { return true; }
  Status load_pieces(const ObjectName& name, uint64_t offset, uint64_t length,
                     const std::function<void(ByteView)>& piece) override;
  Result<ObjectInfo> stat(const ObjectName& name) override;
  Status list(ObjectType type, const std::function<void(const ObjectInfo&)>& fn) override;
  Status remove(const ObjectName& name) override;
  Status discard(const ObjectName& name) override;
  Result<bool> is_empty() override;
  Status create() override;

  // The object key of a name ("<prefix>/data/3f/3fa9...").
  std::string key_of(const ObjectName& name) const;

  struct Request;

 private:
  // A create-only PUT, after a HEAD that refuses an existing object when `head_first`.
  Status put_new(const ObjectName& name, ByteView data, bool head_first);
  // `body_sink`: see http::Request.
  Result<http::Response> perform(const Request& req, const http::BodySink* body_sink = nullptr) const;
  Error http_error(const http::Response& resp, const std::string& what) const;
  Status check_range_start(const ObjectName& name, const http::Response& resp, uint64_t offset) const;
  Error load_error(const ObjectName& name, const http::Response& resp) const;
  Status list_keys(const std::string& key_prefix,
                   const std::function<bool(const S3ListPage::Entry&)>& fn);

  S3Config cfg_;
  std::vector<std::string> secrets_;  // the credentials, redacted from every message
  // Set once a server answered a conditional PUT with 501 NotImplemented.
  std::atomic<bool> no_conditional_put_{false};
};

// Parses the part of a location after "s3:" and gathers region, credentials and options from
// `settings` and the AWS shared files they point to; fails with kInvalidArgument on a
// malformed spec or when no credentials are found (naming the settings, never their values).
Result<S3Config> parse_s3_location(const std::string& spec, const BackendSettings& settings);
Result<std::shared_ptr<Backend>> open_s3_backend(const std::string& spec,
                                                 const BackendSettings& settings);

// Signature Version 4, exposed for known-answer tests against AWS's published examples.
namespace sigv4 {
// RFC 3986 percent-encoding as SigV4 wants it ('/' kept when !encode_slash): http::url_encode.
std::string uri_encode(const std::string& s, bool encode_slash);
std::string sha256_hex(ByteView data);
struct Input {
  std::string method;         // "GET", "PUT"...
  std::string canonical_uri;  // already encoded path, e.g. "/test.txt"
  std::vector<std::pair<std::string, std::string>> query;    // raw (unencoded) name, value
  std::vector<std::pair<std::string, std::string>> headers;  // lower-case names; all signed
  std::string payload_sha256;  // hex
  std::string amz_date;        // "20130524T000000Z"
  std::string region;
  std::string service = "s3";
};
std::string canonical_query(const std::vector<std::pair<std::string, std::string>>& query);
std::string canonical_request(const Input& in);
std::string signature(const Input& in, const std::string& secret_key);
// The Authorization header's value.
std::string authorization(const Input& in, const std::string& access_key,
                          const std::string& secret_key);
}  // namespace sigv4

}  // namespace haven::storage
