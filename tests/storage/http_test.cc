// Tests of the shared HTTP layer of the object-store backends (storage/http.h) and of the
// listing parsers built on it: percent-encoding, XML reading of untrusted text, HTTP dates,
// the one classification of transport failures and statuses, backend settings, and
// connections kept across threads.
#include "storage/http.h"

#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "storage/azure.h"
#include "storage/backend.h"
#include "storage/s3.h"

namespace haven::storage {
namespace {

TEST(HttpUrlEncode, Rfc3986AsS3AndAzureDocumentIt) {
  EXPECT_EQ(http::url_encode("a b/c~d_e.f-g", true), "a%20b/c~d_e.f-g");
  EXPECT_EQ(http::url_encode("a/b+c=d", false), "a%2Fb%2Bc%3Dd");
  EXPECT_EQ(http::url_encode("test$file.text", true), "test%24file.text");
  EXPECT_EQ(http::url_encode("\xc3\xa9*", false), "%C3%A9%2A");
  EXPECT_EQ(http::url_encode("AZaz09", false), "AZaz09");
  // SigV4's encoder is the same function.
  EXPECT_EQ(sigv4::uri_encode("a b/c", false), http::url_encode("a b/c", true));
  EXPECT_EQ(sigv4::uri_encode("a b/c", true), http::url_encode("a b/c", false));
}

TEST(HttpXml, UnescapesEntitiesAndReferences) {
  EXPECT_EQ(http::xml::unescape("a&amp;b&lt;c&gt;d&quot;e&apos;f"), "a&b<c>d\"e'f");
  EXPECT_EQ(http::xml::unescape("&#65;&#x42;&#X43;"), "ABC");
  EXPECT_EQ(http::xml::unescape("&#233;&#x20AC;&#x1F600;"), "\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80");
  // Unknown, unterminated or invalid references stay as they are.
  EXPECT_EQ(http::xml::unescape("&nbsp; & &#0; &#xD800; &#x110000; &#12a; &"),
            "&nbsp; & &#0; &#xD800; &#x110000; &#12a; &");
  EXPECT_EQ(http::xml::unescape("&amp;lt;"), "&lt;") << "unescaped once, not twice";
}

TEST(HttpXml, FindsElementsByExactName) {
  const std::string doc =
      "<R><NameX>no</NameX><Name attr=\"1\">a&amp;b</Name><Empty/><Name>second</Name>"
      "<Outer><Inner>x</Inner></Outer></R>";
  EXPECT_EQ(http::xml::text(doc, "Name").value_or("?"), "a&b");
  EXPECT_EQ(http::xml::text(doc, "Empty").value_or("?"), "");
  EXPECT_FALSE(http::xml::text(doc, "Missing").has_value());
  EXPECT_FALSE(http::xml::text(doc, "Nam").has_value());
  std::vector<std::string> names;
  http::xml::for_each(doc, "Name", [&](std::string_view c) {
    names.emplace_back(c);
    return true;
  });
  EXPECT_EQ(names, (std::vector<std::string>{"a&amp;b", "second"})) << "raw content";
  auto outer = http::xml::find(doc, "Outer");
  ASSERT_TRUE(outer);
  EXPECT_EQ(http::xml::text(std::string_view(doc).substr(outer->begin, outer->end - outer->begin), "Inner"),
            "x");
  // Bounded search.
  EXPECT_FALSE(http::xml::text(doc, "Inner", 0, doc.find("<Outer>")).has_value());
  // Truncated documents never read past their end.
  for (size_t cut = 0; cut < doc.size(); cut++) {
    std::string part = doc.substr(0, cut);
    (void)http::xml::text(part, "Name");
    (void)http::xml::text(part, "Empty");
    http::xml::for_each(part, "Name", [](std::string_view) { return true; });
  }
}

TEST(HttpXml, SurvivesRandomInput) {
  // A fuzzer's poor cousin: random bytes from XML's alphabet never crash or hang the reader.
  std::mt19937 rng(7);
  const std::string alphabet = "<>/&;#x0aZ= \"Name";
  for (int i = 0; i < 3000; i++) {
    std::string s(rng() % 80, ' ');
    for (auto& c : s) c = alphabet[rng() % alphabet.size()];
    (void)http::xml::unescape(s);
    (void)http::xml::text(s, "Name");
    http::xml::for_each(s, "Name", [](std::string_view) { return true; });
    (void)parse_list_objects_v2(s);
    (void)parse_list_blobs(s);
    (void)http::parse_http_date(s);
  }
}

TEST(HttpDates, Rfc1123RoundTrips) {
  auto t = http::parse_http_date("Tue, 02 Jan 2024 03:04:05 GMT");
  ASSERT_TRUE(t);
  EXPECT_EQ(*t, 1704164645LL * 1000000000);
  EXPECT_EQ(http::format_http_date(*t), "Tue, 02 Jan 2024 03:04:05 GMT");
  EXPECT_EQ(http::format_http_date(*t + 999999999), "Tue, 02 Jan 2024 03:04:05 GMT");
  EXPECT_TRUE(http::parse_http_date("Thu, 01 Jan 1970 00:00:00 UTC"));
  for (const char* bad : {"", "Tue, 02 Jan 2024 03:04:05", "Tue, 02 Foo 2024 03:04:05 GMT",
                          "Tue, 32 Jan 2024 03:04:05 GMT", "Tue, 02 Jan 2024 25:04:05 GMT",
                          "Tue, 02 Jan 2024 03:04:05 CET", "2024-01-02T03:04:05Z",
                          "Tue, 0x Jan 2024 03:04:05 GMT"}) {
    EXPECT_FALSE(http::parse_http_date(bad)) << bad;
  }
}

TEST(HttpErrors, OneClassificationOfTransportFailures) {
  for (CURLcode rc : {CURLE_COULDNT_CONNECT, CURLE_COULDNT_RESOLVE_HOST, CURLE_OPERATION_TIMEDOUT,
                      CURLE_SEND_ERROR, CURLE_RECV_ERROR, CURLE_GOT_NOTHING, CURLE_PARTIAL_FILE,
                      CURLE_SSL_CONNECT_ERROR, CURLE_HTTP2_STREAM, CURLE_SEND_FAIL_REWIND}) {
    Error e = http::classify_curl_error(rc, "s3:http://h/b: GET x");
    EXPECT_EQ(e.code(), Error::Code::kTransient) << curl::easy_strerror(rc);
    EXPECT_TRUE(e.retryable());
    EXPECT_EQ(e.message().rfind("s3:http://h/b: GET x: ", 0), 0u) << e.message();
  }
  EXPECT_EQ(http::classify_curl_error(CURLE_URL_MALFORMAT, "x").code(), Error::Code::kInvalidArgument);
  EXPECT_EQ(http::classify_curl_error(CURLE_UNSUPPORTED_PROTOCOL, "x").code(),
            Error::Code::kInvalidArgument);
  EXPECT_EQ(http::classify_curl_error(CURLE_PEER_FAILED_VERIFICATION, "x").code(), Error::Code::kIo);
  EXPECT_EQ(http::classify_curl_error(CURLE_OUT_OF_MEMORY, "x").code(), Error::Code::kIo);

  EXPECT_EQ(http::status_code(404), Error::Code::kNotFound);
  EXPECT_EQ(http::status_code(401), Error::Code::kPermissionDenied);
  EXPECT_EQ(http::status_code(403), Error::Code::kPermissionDenied);
  EXPECT_EQ(http::status_code(416), Error::Code::kCorrupt);
  EXPECT_EQ(http::status_code(507), Error::Code::kNoSpace);
  for (long s : {408L, 429L, 500L, 502L, 503L, 504L}) EXPECT_EQ(http::status_code(s), Error::Code::kTransient) << s;
  EXPECT_EQ(http::status_code(400), Error::Code::kIo);
  EXPECT_EQ(http::status_code(409), Error::Code::kIo);

  std::vector<std::string> secrets{"SECRETKEY", "abc"};
  EXPECT_EQ(http::redact("x SECRETKEY y SECRETKEY abc", &secrets), "x *** y *** abc");
  EXPECT_EQ(http::redact("plain", nullptr), "plain");
}

TEST(ListingParsers, S3ListObjectsV2) {
  const std::string page =
      "<?xml version=\"1.0\" encoding=\"UTF-8\"?>"
      "<ListBucketResult xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\"><Name>b</Name>"
      "<Prefix>repo/index/</Prefix><KeyCount>2</KeyCount><MaxKeys>2</MaxKeys>"
      "<IsTruncated>true</IsTruncated>"
      "<Contents><Key>repo/index/a&amp;1</Key><LastModified>2024-01-02T03:04:05.250Z</LastModified>"
      "<ETag>&quot;x&quot;</ETag><Size>12</Size><StorageClass>STANDARD</StorageClass></Contents>"
      "<Contents><Key>repo/index/b</Key><LastModified>bad</LastModified><Size>0</Size></Contents>"
      "<NextContinuationToken>tok+/=&amp;</NextContinuationToken></ListBucketResult>";
  auto p = parse_list_objects_v2(page);
  ASSERT_TRUE(p.ok()) << p.error().message();
  ASSERT_EQ(p->entries.size(), 2u);
  EXPECT_EQ(p->entries[0].key, "repo/index/a&1");
  EXPECT_EQ(p->entries[0].size, 12u);
  EXPECT_EQ(p->entries[0].modified, 1704164645LL * 1000000000 + 250000000);
  EXPECT_EQ(p->entries[1].modified, 0);
  EXPECT_TRUE(p->truncated);
  EXPECT_EQ(p->next_token, "tok+/=&");
  // Truncated without a token, or not a listing at all: errors, not endless loops.
  EXPECT_FALSE(parse_list_objects_v2("<ListBucketResult><IsTruncated>true</IsTruncated></ListBucketResult>").ok());
  EXPECT_FALSE(parse_list_objects_v2("<Error><Code>AccessDenied</Code></Error>").ok());
}

TEST(ListingParsers, AzureListBlobs) {
  const std::string page =
      "<?xml version=\"1.0\" encoding=\"utf-8\"?>"
      "<EnumerationResults ServiceEndpoint=\"http://127.0.0.1/devstoreaccount1\" ContainerName=\"c\">"
      "<Prefix>p/keys/</Prefix><MaxResults>2</MaxResults><Blobs>"
      "<Blob><Name>p/keys/k&lt;1</Name><Properties><Last-Modified>Tue, 02 Jan 2024 03:04:05 GMT"
      "</Last-Modified><Etag>0x1</Etag><Content-Length>77</Content-Length></Properties></Blob>"
      "<BlobPrefix><Name>p/keys/dir/</Name></BlobPrefix>"
      "<Blob><Name>p/keys/k2</Name><Properties><Content-Length>0</Content-Length></Properties></Blob>"
      "</Blobs><NextMarker>m&amp;2</NextMarker></EnumerationResults>";
  auto p = parse_list_blobs(page);
  ASSERT_TRUE(p.ok()) << p.error().message();
  ASSERT_EQ(p->entries.size(), 2u);
  EXPECT_EQ(p->entries[0].name, "p/keys/k<1");
  EXPECT_EQ(p->entries[0].size, 77u);
  EXPECT_EQ(p->entries[0].modified, 1704164645LL * 1000000000);
  EXPECT_EQ(p->entries[1].name, "p/keys/k2");
  EXPECT_EQ(p->entries[1].modified, 0);
  EXPECT_EQ(p->next_marker, "m&2");
  auto last = parse_list_blobs("<EnumerationResults><Blobs/><NextMarker/></EnumerationResults>");
  ASSERT_TRUE(last.ok());
  EXPECT_TRUE(last->entries.empty());
  EXPECT_TRUE(last->next_marker.empty());
  EXPECT_FALSE(parse_list_blobs("<Error><Code>AuthenticationFailed</Code></Error>").ok());
}

TEST(BackendSettings, LookupsAndDefaults) {
  BackendSettings none;
  EXPECT_EQ(none.get("AWS_ACCESS_KEY_ID"), "");
  auto s = BackendSettings::from_map({{"A", "1"}, {"EMPTY", ""}});
  EXPECT_EQ(s.get("A"), "1");
  EXPECT_EQ(s.get("EMPTY"), "");
  EXPECT_FALSE(s.lookup("EMPTY").has_value()) << "an empty value counts as unset";
  EXPECT_EQ(s.get("B"), "");
  // Object stores need credentials from the settings: none given, none found — and the
  // message names what to set.
  auto r = open_backend("s3:https://127.0.0.1:1/b/p", none);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code(), Error::Code::kInvalidArgument);
  EXPECT_NE(r.error().message().find("AWS_ACCESS_KEY_ID"), std::string::npos) << r.error().message();
  auto a = open_backend("azure:box/p", none);
  ASSERT_FALSE(a.ok());
  EXPECT_NE(a.error().message().find("AZURE_STORAGE_CONNECTION_STRING"), std::string::npos);
  // The local backend needs none.
  EXPECT_TRUE(open_backend("local:/tmp/x", none).ok());
}

// A kept-alive HTTP/1.1 server on loopback that answers every request with "ok" and counts
// the connections it accepted.
class CountingServer {
 public:
  CountingServer() {
    fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof a;
    if (fd_ < 0 || ::bind(fd_, reinterpret_cast<sockaddr*>(&a), len) != 0 || ::listen(fd_, 16) != 0 ||
        ::getsockname(fd_, reinterpret_cast<sockaddr*>(&a), &len) != 0) {
      ADD_FAILURE() << "cannot listen on loopback";
      return;
    }
    port_ = ntohs(a.sin_port);
    accept_ = std::thread([this] { accept_loop(); });
  }
  ~CountingServer() {
    stop_ = true;
    if (accept_.joinable()) accept_.join();
    for (auto& t : conns_) t.join();
    if (fd_ >= 0) ::close(fd_);
  }
  int port() const { return port_; }
  int connections() const { return accepted_.load(); }

 private:
  void accept_loop() {
    while (!stop_) {
      pollfd p{fd_, POLLIN, 0};
      if (::poll(&p, 1, 50) <= 0) continue;
      int c = ::accept4(fd_, nullptr, nullptr, SOCK_CLOEXEC);
      if (c < 0) continue;
      accepted_++;
      conns_.emplace_back([this, c] { serve(c); });
    }
  }
  void serve(int c) {
    std::string in;
    char buf[4096];
    while (!stop_) {
      pollfd p{c, POLLIN, 0};
      if (::poll(&p, 1, 50) <= 0) continue;
      ssize_t n = ::read(c, buf, sizeof buf);
      if (n <= 0) break;
      in.append(buf, static_cast<size_t>(n));
      size_t end;
      while ((end = in.find("\r\n\r\n")) != std::string::npos) {  // GETs: no body
        in.erase(0, end + 4);
        const std::string reply = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";
        if (::write(c, reply.data(), reply.size()) != static_cast<ssize_t>(reply.size())) break;
      }
    }
    ::close(c);
  }
  int fd_ = -1;
  int port_ = 0;
  std::atomic<bool> stop_{false};
  std::atomic<int> accepted_{0};
  std::thread accept_;
  std::vector<std::thread> conns_;  // only the accept thread adds, and it is joined first
};

// Threads that come and go one after another (a restore's readers, batch after batch) reuse
// the connection the ones before them opened, instead of one connection per thread.
TEST(HttpConnections, ThreadsThatComeAndGoShareKeptConnections) {
  CountingServer server;
  ASSERT_GT(server.port(), 0);
  const std::string url = "http://127.0.0.1:" + std::to_string(server.port()) + "/x";
  for (int round = 0; round < 6; round++) {
    std::thread t([&] {
      http::Request req;
      req.url = url;
      req.what = "GET x";
      auto r = http::perform(req);
      ASSERT_TRUE(r.ok()) << r.error().message();
      EXPECT_EQ(r->status, 200);
      EXPECT_EQ(std::string(r->body.begin(), r->body.end()), "ok");
    });
    t.join();
  }
  EXPECT_EQ(server.connections(), 1) << "each thread opened a connection of its own";
  // Threads at the same time each need one: two at once, twice, make two connections.
  for (int round = 0; round < 2; round++) {
    std::vector<std::thread> two;
    std::atomic<int> ready{0};
    for (int i = 0; i < 2; i++) {
      two.emplace_back([&] {
        ready++;
        while (ready.load() < 2) std::this_thread::yield();
        http::Request req;
        req.url = url;
        req.what = "GET x";
        auto r = http::perform(req);
        EXPECT_TRUE(r.ok());
      });
    }
    for (auto& t : two) t.join();
  }
  EXPECT_LE(server.connections(), 2);
}

}  // namespace
}  // namespace haven::storage
