// storage/azure.h — the Azure Blob Storage backend (Blob REST API over libcurl).
//
// Location: "azure:CONTAINER/PREFIX" (PREFIX optional). Objects are block blobs named
// "PREFIX/" + the local backend's relative paths: config, keys/<id>, data/<id[0:2]>/<id>,
// index/<id>, snapshots/<id>, locks/<id>.
//
// Credentials come from BackendSettings (storage/backend.h; the CLI passes its environment,
// so these are environment variables there), never from the location, never printed:
//   AZURE_STORAGE_CONNECTION_STRING  "AccountName=..;AccountKey=..;BlobEndpoint=..;
//                                     DefaultEndpointsProtocol=..;EndpointSuffix=..;
//                                     SharedAccessSignature=.." or "UseDevelopmentStorage=true"
//                                     (Azurite and custom endpoints are given this way)
//   AZURE_STORAGE_ACCOUNT, AZURE_STORAGE_KEY, AZURE_STORAGE_SAS_TOKEN
//                                     fill in what the connection string does not give.
// With an account key requests are signed with Shared Key; otherwise the SAS token is appended
// to every request. The endpoint is BlobEndpoint if given (path-style, e.g.
// http://127.0.0.1:10000/devstoreaccount1), else PROTOCOL://ACCOUNT.blob.SUFFIX.
//
// Durability: Put Blob is atomic on the service side (a failed upload leaves no blob), and is
// sent with "If-None-Match: *" so an existing name is never replaced (409 → kAlreadyExists).
// Objects larger than single_put_max are staged as uncommitted blocks (invisible to readers and
// listings, discarded by the service after a week) and made visible at once by Put Block List,
// which carries the same "If-None-Match: *".
//
// Listing: List Blobs pages of list_page_size (maxresults) followed by NextMarker; sizes and
// modification times (Properties/Last-Modified, RFC 1123) come with the listing, stat()
// reads Content-Length and Last-Modified of a HEAD.
//
// Error mapping (http::status_code): 404 → kNotFound, 401/403 → kPermissionDenied, 409 on save → kAlreadyExists,
// 408/429/5xx and connection failures/timeouts/resets → kTransient, other statuses → kIo,
// a range past the end → kCorrupt. Messages name the object and the service's error code,
// never the key, the SAS token or a signed URL.
//
// Thread-safety: all methods may be called concurrently. The configuration is immutable after
// construction; each thread uses its own CURL easy handle (kept alive for connection reuse).
#pragma once

#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "storage/backend.h"
#include "storage/http.h"

namespace haven::storage {

// Everything needed to talk to one container. Holds secrets: never log or print it.
struct AzureConfig {
  std::string account;
  Bytes key;                // decoded account key; empty when using a SAS
  std::string sas;          // SAS query string without the leading '?'; empty with a key
  std::string endpoint;     // e.g. "https://acct.blob.core.windows.net", no trailing '/'
  std::string container;
  std::string prefix;       // without leading/trailing '/'; may be empty
  int list_page_size = 1000;  // List Blobs maxresults (tests use small pages)
  // Objects up to this size go up in one Put Blob; larger ones as Put Block requests of
  // block_size bytes committed by one Put Block List (tests use small values).
  size_t single_put_max = 32u << 20;
  size_t block_size = 8u << 20;
};

// Builds the configuration for `spec` ("container/prefix") from `settings`. Fails with
// kInvalidArgument on a malformed spec or missing/malformed credentials; messages name the
// settings, never quote their values.
Result<AzureConfig> azure_config(const std::string& spec, const BackendSettings& settings);

// One page of a List Blobs response.
struct AzureListPage {
  struct Entry {
    std::string name;  // unescaped
    uint64_t size = 0;
    TimeNs modified = 0;  // Properties/Last-Modified; 0 if absent or malformed
  };
  std::vector<Entry> entries;
  std::string next_marker;  // empty on the last page
};
// Parses a List Blobs response body (untrusted server text; a fuzzer calls this). Fails with
// kIo on a document that is not a listing.
Result<AzureListPage> parse_list_blobs(std::string_view xml);

class AzureBackend : public Backend {
 public:
  explicit AzureBackend(AzureConfig config);
  ~AzureBackend() override;

  std::string location() const override;
  Status save(const ObjectName& name, ByteView data) override;
  Result<Bytes> load(const ObjectName& name, uint64_t offset = 0, uint64_t length = 0) override;
  // The response body is handed over as it arrives (one ranged Get Blob).
  bool streams_reads() const override { return true; }
  Status load_pieces(const ObjectName& name, uint64_t offset, uint64_t length,
                     const std::function<void(ByteView)>& piece) override;
  Result<ObjectInfo> stat(const ObjectName& name) override;
  Status list(ObjectType type, const std::function<void(const ObjectInfo&)>& fn) override;
  Status remove(const ObjectName& name) override;
  Result<bool> is_empty() override;
  // Creates the container if it does not exist. If the credentials may not create containers
  // (e.g. a container-scoped SAS) but the container exists and is readable, succeeds.
  Status create() override;

  // The blob name of an object (for tests).
  std::string blob_name(const ObjectName& name) const;

 private:
  struct Request;
  // `body_sink`: see http::Request.
  Result<http::Response> perform(const Request& req, const http::BodySink* body_sink = nullptr) const;
  Error http_error(const http::Response& resp, const std::string& what) const;
  Status save_blocks(const ObjectName& name, ByteView data) const;
  // One List Blobs page loop over blob names starting with `prefix`.
  Status list_prefix(const std::string& prefix, int max_results,
                     const std::function<bool(const AzureListPage::Entry&)>& fn,
                     bool* container_missing) const;

  AzureConfig cfg_;
  std::vector<std::string> secrets_;  // the SAS and the encoded key, redacted from messages
};

// Opens an Azure backend for `spec` (what follows "azure:") with credentials from `settings`.
Result<std::shared_ptr<Backend>> open_azure_backend(const std::string& spec,
                                                    const BackendSettings& settings);

}  // namespace haven::storage
