// storage/azure.h — the Azure Blob Storage backend (Blob REST API over libcurl).
//
// Location: "azure:CONTAINER/PREFIX" (PREFIX optional). Objects are block blobs named
// "PREFIX/" + the local backend's relative paths: config, keys/<id>, data/<id[0:2]>/<id>,
// index/<id>, snapshots/<id>, locks/<id>.
//
// Credentials come from the environment (never from the location, never printed):
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
// Error mapping: 404 → kNotFound, 401/403 → kPermissionDenied, 409 on save → kAlreadyExists,
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
#include <utility>
#include <vector>

#include "storage/backend.h"

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

// Builds the configuration for `spec` ("container/prefix") from environment variables read
// through `getenv_fn` (tests pass a map; production passes ::getenv). Fails with
// kInvalidArgument on a malformed spec or missing/malformed credentials; messages never quote
// secrets.
Result<AzureConfig> azure_config_from_env(
    const std::string& spec, const std::function<const char*(const char*)>& getenv_fn);

class AzureBackend : public Backend {
 public:
  explicit AzureBackend(AzureConfig config);
  ~AzureBackend() override;

  std::string location() const override;
  Status save(const ObjectName& name, ByteView data) override;
  Result<Bytes> load(const ObjectName& name, uint64_t offset = 0, uint64_t length = 0) override;
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
  struct Response;
  struct Request;
  Result<Response> perform(const Request& req) const;
  Error http_error(const Response& resp, const std::string& what) const;
  Status save_blocks(const ObjectName& name, ByteView data) const;
  // One List Blobs page loop over blob names starting with `prefix`.
  Status list_prefix(const std::string& prefix, int max_results,
                     const std::function<bool(const std::string& name, uint64_t size)>& fn,
                     bool* container_missing) const;

  AzureConfig cfg_;
};

// Decoders of the service's XML answers (the fuzz target fuzz_azure_xml feeds them any bytes).
struct AzureListPage {
  std::vector<std::pair<std::string, uint64_t>> blobs;  // <Name> (unescaped), <Content-Length>
  std::string next_marker;  // <NextMarker> after </Blobs>; empty on the last page
};
// One List Blobs page; kIo for a <Blob> element that is not closed.
Result<AzureListPage> parse_azure_list_page(const std::string& xml);
// An error response body's <Code>, or empty.
std::string parse_azure_error_code(const std::string& xml);

// Opens an Azure backend for `spec` (what follows "azure:") with credentials from the process
// environment.
Result<std::shared_ptr<Backend>> open_azure_backend(const std::string& spec);

}  // namespace haven::storage
