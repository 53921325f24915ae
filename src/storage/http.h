// storage/http.h — what the HTTP object-store backends (S3, Azure Blob) share over libcurl:
// one easy handle per thread (its connection cache keeps connections to the service alive
// between requests; never shared, so no locking) and the callbacks that collect a response.
#pragma once

#include <curl/curl.h>

#include <map>
#include <optional>
#include <string>

#include "util/bytes.h"
#include "util/error.h"

namespace haven::storage::http {

// This thread's handle (curl_global_init runs once per process, before the first).
CURL* thread_curl();

// CURLOPT_WRITEFUNCTION: appends the body to the Bytes given as CURLOPT_WRITEDATA.
size_t append_body(char* p, size_t size, size_t n, void* bytes);
// CURLOPT_HEADERFUNCTION: fills the std::map<std::string, std::string> given as
// CURLOPT_HEADERDATA with lower-cased names and trimmed values; a new status line (after
// "100 Continue") starts the map afresh.
size_t collect_header(char* p, size_t size, size_t n, void* headers);

// Makes the next transfer on `h` abort (CURLE_ABORTED_BY_CALLBACK) within ~100 ms once this
// thread's cancel token (util/cancel.h) fires. Call after curl_easy_reset().
void abort_on_cancel(CURL* h);
// The error of a transfer that failed with `rc` because it was cancelled, or nullopt when it
// failed for another reason.
std::optional<Error> cancelled_transfer(CURLcode rc);

}  // namespace haven::storage::http
