// storage/http.h — the one HTTP layer of the object-store backends (S3, Azure Blob) over
// libcurl: one easy handle per thread (its connection cache keeps connections to the service
// alive between requests; never shared, so no locking), one way to perform a request
// (perform: timeouts, uploads, cancellation, redaction), one classification of transport
// failures (classify_curl_error) and of HTTP statuses (status_code), one percent-encoder
// (url_encode), one XML reader for the services' small response documents (namespace xml)
// and HTTP dates.
//
// The XML reader and the date parser take untrusted server text: they never read outside the
// given string and never throw, and a fuzzer may call them directly.
//
// Thread-safety: every function may be called from any thread; perform() uses the calling
// thread's handle.
#pragma once

#include <chrono>
#include <cstddef>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "storage/curl_api.h"
#include "util/bytes.h"
#include "util/clock.h"
#include "util/error.h"

namespace haven::storage::http {

// ---- requests ------------------------------------------------------------------------------

struct Response;
// Takes a response body piece by piece (Request::body_sink).
using BodySink = std::function<bool(const Response&, ByteView)>;

struct Request {
  std::string method = "GET";  // GET, HEAD, PUT, POST, DELETE
  std::string url;             // complete and percent-encoded (url_encode)
  std::vector<std::pair<std::string, std::string>> headers;  // sent as given
  ByteView body;               // sent with PUT and POST (may be empty)
  std::string ca_file;         // extra trusted CA certificates (PEM); empty: the system's
  // The whole request, connecting included, must be done within this (else
  // CURLE_OPERATION_TIMEDOUT, kTransient); zero: no limit but the stall rule of perform().
  // For small requests that must not hang (alert webhooks); object transfers leave it zero.
  std::chrono::milliseconds timeout{0};
  // Names the request in messages, e.g. "s3:https://host/bucket/prefix: GET data/3f/3fa9...".
  // Never holds a secret (the URL is not quoted: it may carry a SAS).
  std::string what;
  // Appended to the message of a certificate failure: how to trust the server's CA.
  std::string certificate_hint;
  // Strings that must never appear in a message (credentials); replaced by "***".
  const std::vector<std::string>* secrets = nullptr;
  // When set, the body of a 200 or 206 response goes to this sink piece by piece as it arrives
  // (with the status and the headers, complete by then) instead of into Response::body; other
  // statuses still fill body (their error documents). A sink that returns false aborts the
  // transfer: perform() then fails with kIo, and the sink keeps its own reason.
  BodySink body_sink;
};

struct Response {
  long status = 0;
  std::map<std::string, std::string> headers;  // lower-case names, trimmed values
  Bytes body;
  // The value of a header (lower-case name), or "".
  std::string header(const std::string& name) const;
};

// Performs `req` on this thread's handle and returns whatever status the server answered.
// Fails only when no response came: kCancelled (this thread's cancel token fired before the
// request — then nothing is sent — or during the transfer, which is aborted within a second),
// else classify_curl_error(). Connections time out after 10 s; a transfer slower than 1 KiB/s
// for 60 s is dead (a stalled connection, not a slow link); a request with a `timeout` ends
// there at the latest. Uploads can be rewound, so libcurl may resend a PUT or POST on a reused
// connection that died before the response.
Result<Response> perform(const Request& req);

// The error for a transfer that failed with `rc` (not a cancellation): kTransient for the
// network failing under a valid request (refused, reset, timed out, DNS, TLS handshake, a
// short or garbled reply: a retry may succeed), kInvalidArgument for a malformed URL or an
// unsupported protocol, kIo otherwise (an untrusted certificate included). `message` names
// the request; the curl reason is appended.
Error classify_curl_error(CURLcode rc, const std::string& message);

// The error code an HTTP status means for a storage request: 404 kNotFound, 401/403
// kPermissionDenied, 416 kCorrupt (a range past the end), 507 kNoSpace, 408/429/5xx
// kTransient, anything else kIo. Backends refine it with the service's error code.
Error::Code status_code(long status);

// `s` with every secret (of at least 4 characters) replaced by "***".
std::string redact(std::string s, const std::vector<std::string>* secrets);

// RFC 3986 percent-encoding, the rule both S3 (SigV4 canonical URIs and queries) and Azure
// document: unreserved characters (A-Z a-z 0-9 - _ . ~) stay, '/' stays when `keep_slash`,
// every other byte becomes %XX with upper-case hex.
std::string url_encode(std::string_view s, bool keep_slash);

// ---- dates ---------------------------------------------------------------------------------

// RFC 1123 / IMF-fixdate, "Tue, 02 Jan 2024 03:04:05 GMT" (Last-Modified, x-ms-date), in UTC.
std::string format_http_date(TimeNs t);
// Parses an IMF-fixdate ("GMT" or "UTC"); nullopt if malformed.
std::optional<TimeNs> parse_http_date(std::string_view s);

// ---- XML -----------------------------------------------------------------------------------
// Enough of XML for the services' response documents: elements found by name, text
// unescaped. No namespaces, CDATA or comments are interpreted (the services send none).
namespace xml {

// The five predefined entities and numeric references (&#65; &#x41;, as UTF-8); anything
// else (an unknown or unterminated entity, a reference to an invalid code point) stays as is.
std::string unescape(std::string_view s);

// Where the next element `tag` in doc[from, end) is: its content [begin, end) (raw, not
// unescaped) and `next`, just past its closing tag. <tag/> has empty content. `tag` must be
// followed by '>', '/' or white space, so <Name> is not found by a search for <Nam>.
struct Span {
  size_t begin = 0, end = 0, next = 0;
};
std::optional<Span> find(std::string_view doc, std::string_view tag, size_t from = 0,
                         size_t end = std::string_view::npos);

// The unescaped text of the first element `tag` in doc[from, end), or nullopt if absent.
std::optional<std::string> text(std::string_view doc, std::string_view tag, size_t from = 0,
                                size_t end = std::string_view::npos);
// The same, "" when absent.
std::string text_or_empty(std::string_view doc, std::string_view tag);

// Calls fn with the raw content of each element `tag`, in document order, until it returns
// false.
void for_each(std::string_view doc, std::string_view tag,
              const std::function<bool(std::string_view content)>& fn);

}  // namespace xml

// ---- the handle and its callbacks ----------------------------------------------------------

// This thread's handle (nullptr if libcurl cannot be loaded: curl::available() says why).
CURL* thread_curl();

// CURLOPT_WRITEFUNCTION: appends the body to the Bytes given as CURLOPT_WRITEDATA.
size_t append_body(char* p, size_t size, size_t n, void* bytes);
// CURLOPT_HEADERFUNCTION: fills the std::map<std::string, std::string> given as
// CURLOPT_HEADERDATA with lower-cased names and trimmed values; a new status line (after
// "100 Continue") starts the map afresh.
size_t collect_header(char* p, size_t size, size_t n, void* headers);

// Makes the next transfer on `h` abort (CURLE_ABORTED_BY_CALLBACK) once this thread's cancel
// token (util/cancel.h) fires: within ~100 ms while data flows, within about a second when the
// connection is idle (libcurl then calls its progress callback once a second). Call after
// curl::easy_reset(). perform() does.
void abort_on_cancel(CURL* h);
// The error of a transfer that failed with `rc` because it was cancelled, or nullopt when it
// failed for another reason.
std::optional<Error> cancelled_transfer(CURLcode rc);

}  // namespace haven::storage::http
