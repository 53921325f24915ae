// monitor/channels.cc — delivering one notification through one alert channel (channels.h).
//
// The HTTP channels (webhook, Slack, PagerDuty) go through the storage module's HTTP layer
// (storage/http.h: its timeouts, cancellation, redaction and classification of transport
// failures); e-mail is libcurl's SMTP on a handle of its own; a command is a subprocess
// (util/subprocess.h) with the notification on its stdin.
#include "monitor/channels.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <memory>
#include <thread>
#include <utility>

#include "storage/curl_api.h"
#include "storage/http.h"
#include "util/bytes.h"
#include "util/cancel.h"
#include "util/subprocess.h"
#include "util/version.h"

namespace haven::monitor {

namespace http = storage::http;
using Code = Error::Code;
using Header = std::pair<std::string, std::string>;

const char* channel_type_name(ChannelType t) {
  switch (t) {
    case ChannelType::kWebhook: return "webhook";
    case ChannelType::kSlack: return "slack";
    case ChannelType::kPagerDuty: return "pagerduty";
    case ChannelType::kEmail: return "email";
    case ChannelType::kCommand: return "command";
  }
  return "unknown";
}

const char* action_name(NotifyAction a) {
  return a == NotifyAction::kResolve ? "resolve" : "trigger";
}

nlohmann::json Notification::to_json() const {
  nlohmann::json j = nlohmann::json::object();
  j["id"] = id;
  j["alert_key"] = alert_key;
  j["action"] = action_name(action);
  j["severity"] = severity;
  j["kind"] = kind;
  j["summary"] = summary;
  j["time"] = format_time(time);
  j["escalation_level"] = escalation_level;
  j["details"] = details;
  j["source"] = source;
  return j;
}

namespace {

constexpr const char* kPagerDutyUrl = "https://events.pagerduty.com/v2/enqueue";
// How much of a receiver's answer (or a command's stderr) a message quotes.
constexpr size_t kExcerpt = 200;

// "alert channel 'oncall' (webhook)": how every message names the channel.
std::string label(const ChannelConfig& c) {
  return "alert channel '" + c.name + "' (" + channel_type_name(c.type) + ")";
}

Error fail(const ChannelConfig& c, Code code, const std::string& what) {
  return Error(code, label(c) + ": " + what);
}

// libcurl could not be loaded (or a handle not made): the error says which and the fix.
Error curl_missing(const ChannelConfig& c) {
  Status s = curl::available();
  return s.ok() ? fail(c, Code::kInternal, "libcurl could not make a handle")
                : fail(c, s.error().code(), s.error().message());
}

// Text from outside (a receiver's answer, a summary) made one printable line: control
// characters become spaces, at most `max` bytes (cut on a UTF-8 boundary).
std::string one_line(std::string_view s, size_t max = std::string::npos) {
  std::string out;
  for (char ch : s) {
    const auto c = static_cast<unsigned char>(ch);
    out += (c < 0x20 || c == 0x7f) ? ' ' : ch;
  }
  if (out.size() > max) {
    size_t cut = max;
    while (cut > 0 && (static_cast<unsigned char>(out[cut]) & 0xC0) == 0x80) cut--;
    out.resize(cut);
    out += "...";
  }
  size_t e = out.find_last_not_of(' ');
  out.resize(e == std::string::npos ? 0 : e + 1);
  return out;
}

// JSON text that never throws: invalid UTF-8 in a string (a path from a file system, say)
// becomes U+FFFD instead of an exception.
std::string dump(const nlohmann::json& j, int indent = -1) {
  return j.dump(indent, ' ', false, nlohmann::json::error_handler_t::replace);
}

// A detail's value as a person reads it: strings as they are, anything else as JSON.
std::string detail_text(const nlohmann::json& v) {
  return v.is_string() ? v.get_ref<const std::string&>() : dump(v);
}

std::string upper(std::string s) {
  for (char& ch : s) {
    if (ch >= 'a' && ch <= 'z') ch = static_cast<char>(ch - 'a' + 'A');
  }
  return s;
}

std::string base64(std::string_view in) {
  static const char* kAlphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  size_t i = 0;
  for (; i + 2 < in.size(); i += 3) {
    const uint32_t v = static_cast<uint32_t>(static_cast<unsigned char>(in[i])) << 16 |
                       static_cast<uint32_t>(static_cast<unsigned char>(in[i + 1])) << 8 |
                       static_cast<unsigned char>(in[i + 2]);
    for (int s : {18, 12, 6, 0}) out += kAlphabet[(v >> s) & 63];
  }
  if (i < in.size()) {
    uint32_t v = static_cast<uint32_t>(static_cast<unsigned char>(in[i])) << 16;
    if (i + 1 < in.size()) v |= static_cast<uint32_t>(static_cast<unsigned char>(in[i + 1])) << 8;
    out += kAlphabet[(v >> 18) & 63];
    out += kAlphabet[(v >> 12) & 63];
    out += i + 1 < in.size() ? kAlphabet[(v >> 6) & 63] : '=';
    out += '=';
  }
  return out;
}

// ---- URLs: what a message may show of them --------------------------------------------------

// A URL taken apart: the part a message may show ("https://host:443") and the parts that must
// never appear in one (user info, path, query: a Slack URL's token is its path).
struct Endpoint {
  std::string shown;
  std::vector<std::string> secret_parts;
};

// Parses `url`, which must use one of `schemes`. The error never quotes the URL.
Result<Endpoint> parse_endpoint(const ChannelConfig& c, const std::string& url,
                                std::initializer_list<const char*> schemes,
                                const char* field) {
  if (url.empty()) return fail(c, Code::kInvalidArgument, std::string("no ") + field + " given");
  std::unique_ptr<CURLU, void (*)(CURLU*)> u(curl::url(), curl::url_cleanup);
  if (!u) return curl_missing(c);
  if (curl::url_set(u.get(), CURLUPART_URL, url.c_str(), 0) != CURLUE_OK) {
    return fail(c, Code::kInvalidArgument,
                std::string("the ") + field + " is not a valid URL (not quoted: it may hold a token)");
  }
  auto part = [&](CURLUPart p, unsigned flags = 0) {
    char* v = nullptr;
    std::string s;
    if (curl::url_get(u.get(), p, &v, flags) == CURLUE_OK && v != nullptr) s = v;
    curl::free(v);
    return s;
  };
  Endpoint ep;
  const std::string scheme = part(CURLUPART_SCHEME);
  bool allowed = false;
  for (const char* s : schemes) allowed = allowed || scheme == s;
  if (!allowed) {
    std::string list;
    for (const char* s : schemes) list += (list.empty() ? "" : " or ") + std::string(s) + "://";
    return fail(c, Code::kInvalidArgument,
                std::string("the ") + field + " must start with " + list);
  }
  const std::string host = part(CURLUPART_HOST);
  const std::string port = part(CURLUPART_PORT, CURLU_DEFAULT_PORT);
  ep.shown = scheme + "://" + host + (port.empty() ? "" : ":" + port);
  // The whole URL, unless it is no more than what a message shows anyway.
  if (url != ep.shown && url != ep.shown + "/") ep.secret_parts.push_back(url);
  // Each part as written and percent-decoded (a receiver quoting the request shows either).
  for (unsigned flags : {0u, static_cast<unsigned>(CURLU_URLDECODE)}) {
    for (CURLUPart p : {CURLUPART_USER, CURLUPART_PASSWORD, CURLUPART_OPTIONS, CURLUPART_QUERY,
                        CURLUPART_FRAGMENT}) {
      if (std::string s = part(p, flags); !s.empty()) ep.secret_parts.push_back(s);
    }
    if (std::string path = part(CURLUPART_PATH, flags); path.size() > 1) {
      ep.secret_parts.push_back(path);
      // Long segments too: a token is often one segment of the path (Slack's last one).
      size_t start = 1;
      while (start < path.size()) {
        size_t end = path.find('/', start);
        if (end == std::string::npos) end = path.size();
        if (end - start >= 16) ep.secret_parts.push_back(path.substr(start, end - start));
        start = end + 1;
      }
    }
  }
  // User info becomes an "Authorization: Basic" header, which a receiver may quote.
  if (std::string user = part(CURLUPART_USER, CURLU_URLDECODE); !user.empty()) {
    ep.secret_parts.push_back(base64(user + ":" + part(CURLUPART_PASSWORD, CURLU_URLDECODE)));
  }
  return ep;
}

// ---- HTTP channels ---------------------------------------------------------------------------

// POSTs `body` (JSON) to `url`: OK on any 2xx. 408, 429 and 5xx are kTransient; any other status
// (a redirect included: none is followed) is kInvalidArgument; no answer is perform()'s error.
Status post_json(const ChannelConfig& c, const std::string& url, const Endpoint& ep,
                 const std::string& body, std::vector<Header> headers,
                 const std::vector<std::string>& secrets) {
  http::Request req;
  req.method = "POST";
  req.url = url;
  req.headers = std::move(headers);
  req.headers.emplace_back("Content-Type", "application/json");
  req.headers.emplace_back("User-Agent", std::string("haven/") + HAVEN_VERSION);
  req.body = as_bytes(body);
  req.ca_file = c.ca_file;
  req.timeout = c.timeout;
  req.what = label(c) + ": POST " + ep.shown;
  req.certificate_hint = "give the channel's ca_file to trust the receiver's CA";
  req.secrets = &secrets;
  auto resp = http::perform(req);
  if (!resp.ok()) return resp.error();  // names the channel (req.what), redacted
  const long st = resp->status;
  if (st >= 200 && st < 300) return ok_status();
  std::string msg = req.what + ": HTTP " + std::to_string(st);
  // Redacted before it is cut, so no secret can survive cut in half.
  if (std::string excerpt = one_line(http::redact(to_string(resp->body), &secrets), kExcerpt);
      !excerpt.empty()) {
    msg += ": " + excerpt;
  }
  const bool transient = st == 408 || st == 429 || st >= 500;
  if (std::string after = resp->header("retry-after"); transient && !after.empty()) {
    msg += " (Retry-After: " + one_line(after, 40) + ")";
  }
  if (st >= 300 && st < 400) msg += " (redirects are not followed: give the final URL)";
  return Error(transient ? Code::kTransient : Code::kInvalidArgument,
               http::redact(std::move(msg), &secrets));
}

// Slack's formatting escapes (https://api.slack.com/reference/surfaces/formatting#escaping).
std::string slack_escape(std::string_view s) {
  std::string out;
  for (char ch : s) {
    if (ch == '&') out += "&amp;";
    else if (ch == '<') out += "&lt;";
    else if (ch == '>') out += "&gt;";
    else out += ch;
  }
  return out;
}

// "[CRITICAL] summary", "[CRITICAL] summary (resolved)".
std::string headline(const Notification& n) {
  std::string s = "[" + upper(n.severity.empty() ? "alert" : n.severity) + "] " +
                  one_line(n.summary);
  if (n.action == NotifyAction::kResolve) s += " (resolved)";
  return s;
}

nlohmann::json slack_body(const Notification& n) {
  const std::string text = slack_escape(headline(n));
  nlohmann::json fields = nlohmann::json::array();
  auto field = [&](const std::string& title, const std::string& value, bool short_field) {
    nlohmann::json f = nlohmann::json::object();
    f["title"] = title;
    f["value"] = slack_escape(one_line(value, 500));
    f["short"] = short_field;
    fields.push_back(std::move(f));
  };
  field("Alert", n.alert_key, true);
  field("Event", n.kind, true);
  if (n.escalation_level > 0) field("Escalation level", std::to_string(n.escalation_level), true);
  if (n.details.is_object()) {
    size_t shown = 0;
    for (const auto& [k, v] : n.details.items()) {
      if (++shown > 20) break;  // a notification, not a report
      field(k, detail_text(v), true);
    }
  } else if (!n.details.is_null()) {
    field("Details", dump(n.details), false);
  }
  nlohmann::json att = nlohmann::json::object();
  att["fallback"] = text;
  att["color"] = n.action == NotifyAction::kResolve ? "#2eb886"
                 : n.severity == "critical"         ? "#d00000"
                                                    : "#e8a317";
  att["fields"] = std::move(fields);
  att["footer"] = slack_escape("Haven on " + n.source);
  if (n.time > 0) att["ts"] = n.time / 1000000000;
  nlohmann::json body = nlohmann::json::object();
  body["text"] = text;
  body["attachments"] = nlohmann::json::array({std::move(att)});
  return body;
}

// RFC 3339 with milliseconds, as PagerDuty's examples give it.
std::string rfc3339_millis(TimeNs t) {
  std::string s = format_time(t);  // "...:SS.nnnnnnnnnZ"
  if (size_t dot = s.find('.'); dot != std::string::npos && s.size() >= dot + 4) {
    s = s.substr(0, dot + 4) + "Z";
  }
  return s;
}

std::string pagerduty_severity(const std::string& s) {
  if (s == "critical" || s == "warning" || s == "error" || s == "info") return s;
  return "error";
}

nlohmann::json pagerduty_body(const ChannelConfig& c, const Notification& n) {
  nlohmann::json body = nlohmann::json::object();
  body["routing_key"] = c.routing_key.reveal();
  body["event_action"] = action_name(n.action);
  body["dedup_key"] = n.dedup_key.empty() ? n.alert_key : n.dedup_key;
  if (n.action == NotifyAction::kResolve) return body;  // all a resolve takes
  nlohmann::json payload = nlohmann::json::object();
  payload["summary"] = one_line(n.summary, 1000);  // PagerDuty's limit is 1024
  payload["source"] = n.source.empty() ? "haven" : n.source;
  payload["severity"] = pagerduty_severity(n.severity);
  if (n.time != 0) payload["timestamp"] = rfc3339_millis(n.time);
  payload["component"] = "haven";
  if (!n.kind.empty()) payload["class"] = n.kind;
  nlohmann::json details = n.details.is_object() ? n.details : nlohmann::json::object();
  if (!n.details.is_object() && !n.details.is_null()) details["details"] = n.details;
  if (n.escalation_level > 0) details["escalation_level"] = n.escalation_level;
  payload["custom_details"] = std::move(details);
  body["payload"] = std::move(payload);
  body["client"] = "Haven";
  return body;
}

// The id goes into a header line: it must be one.
Status check_id(const ChannelConfig& c, const Notification& n) {
  if (n.id.empty()) return fail(c, Code::kInvalidArgument, "the notification has no id");
  for (char ch : n.id) {
    const auto u = static_cast<unsigned char>(ch);
    if (u < 0x21 || u == 0x7f) {
      return fail(c, Code::kInvalidArgument,
                  "the notification id holds a space or control character");
    }
  }
  return ok_status();
}

Status deliver_http(const ChannelConfig& c, const Notification& n) {
  HAVEN_TRY(check_id(c, n));
  const bool pd = c.type == ChannelType::kPagerDuty;
  const std::string url = pd && c.url.empty() ? std::string(kPagerDutyUrl) : c.url.reveal();
  HAVEN_ASSIGN(Endpoint ep, parse_endpoint(c, url, {"https", "http"}, "url"));
  std::vector<std::string> secrets = ep.secret_parts;
  if (!c.routing_key.empty()) secrets.push_back(c.routing_key.reveal());
  std::vector<Header> headers;
  std::string body;
  switch (c.type) {
    case ChannelType::kWebhook:
      body = dump(n.to_json());
      headers.emplace_back("Idempotency-Key", n.id);
      break;
    case ChannelType::kSlack:
      body = dump(slack_body(n));
      headers.emplace_back("Idempotency-Key", n.id);
      break;
    case ChannelType::kPagerDuty:
      if (c.routing_key.empty()) return fail(c, Code::kInvalidArgument, "no routing_key given");
      if (n.alert_key.empty()) {
        return fail(c, Code::kInvalidArgument, "the notification has no alert key (dedup_key)");
      }
      body = dump(pagerduty_body(c, n));
      break;
    default:
      return fail(c, Code::kInternal, "not an HTTP channel");
  }
  Status st = post_json(c, url, ep, body, std::move(headers), secrets);
  // The body holds the routing key: not left behind in freed memory.
  std::fill(body.begin(), body.end(), '\0');
  return st;
}

// ---- e-mail ----------------------------------------------------------------------------------

bool is_ascii(std::string_view s) {
  for (char ch : s) {
    if (static_cast<unsigned char>(ch) >= 0x80) return false;
  }
  return true;
}

// A header value: ASCII as it is, anything else as RFC 2047 encoded words of at most 75
// characters, folded onto continuation lines, never splitting a UTF-8 sequence.
std::string header_text(const std::string& s) {
  if (is_ascii(s)) return s;
  std::string out;
  size_t i = 0;
  while (i < s.size()) {
    size_t end = std::min(s.size(), i + 45);  // 45 bytes: 60 base64 characters
    while (end < s.size() && end > i + 1 && (static_cast<unsigned char>(s[end]) & 0xC0) == 0x80) {
      end--;
    }
    if (!out.empty()) out += "\r\n ";
    out += "=?UTF-8?B?" + base64(std::string_view(s).substr(i, end - i)) + "?=";
    i = end;
  }
  return out;
}

// A mailbox as the envelope and headers take it: a bare address (local@domain), nothing that
// could end a header line or smuggle in another recipient.
bool plain_address(const std::string& a) {
  const size_t at = a.rfind('@');
  if (at == std::string::npos || at == 0 || at + 1 == a.size() || a.size() > 254) return false;
  for (char ch : a) {
    const auto u = static_cast<unsigned char>(ch);
    if (u <= 0x20 || u == 0x7f || ch == '<' || ch == '>' || ch == ',' || ch == ';' || ch == '"' ||
        ch == '(' || ch == ')' || ch == '\\') {
      return false;
    }
  }
  return true;
}

// The Message-ID's left part: the id with anything outside RFC 5322's atext (and the dot,
// which must not lead, trail or double) as %XX, so distinct ids stay distinct.
std::string msg_id_part(const std::string& id) {
  static const char* kHex = "0123456789ABCDEF";
  std::string out;
  for (char ch : id) {
    const auto u = static_cast<unsigned char>(ch);
    if ((u >= 'A' && u <= 'Z') || (u >= 'a' && u <= 'z') || (u >= '0' && u <= '9') ||
        std::strchr("-_+=/!#$&'*^`{|}~?", ch) != nullptr) {
      out += ch;
    } else {
      out += '%';
      out += kHex[u >> 4];
      out += kHex[u & 15];
    }
  }
  return out;
}

// The RFC 5322 message: headers, then a plain-text body (7bit when it is ASCII with short
// lines, else base64), CRLF line ends throughout.
std::string email_message(const ChannelConfig& c, const Notification& n) {
  const bool resolved = n.action == NotifyAction::kResolve;
  const std::string summary = one_line(n.summary, 900);
  const std::string subject = "[Haven] " +
                              (resolved ? std::string("RESOLVED")
                                        : upper(n.severity.empty() ? "alert" : n.severity)) +
                              ": " + summary;
  std::string text;
  auto line = [&](const std::string& s) { text += s + "\r\n"; };
  line((resolved ? "Resolved: " : "Alert: ") + summary);
  line("");
  line("Alert key:        " + n.alert_key);
  line("Event:            " + n.kind);
  line("Severity:         " + n.severity);
  line("Action:           " + std::string(action_name(n.action)));
  line(std::string(resolved ? "Resolved at:      " : "Raised at:        ") + format_time(n.time));
  if (n.escalation_level > 0) line("Escalation level: " + std::to_string(n.escalation_level));
  line("Source:           " + n.source);
  if (n.details.is_object() && !n.details.empty()) {
    line("");
    line("Details:");
    for (const auto& [k, v] : n.details.items()) {
      std::string value = detail_text(v);
      for (size_t p; (p = value.find('\n')) != std::string::npos;) value.replace(p, 1, " ");
      line("  " + k + ": " + one_line(value));
    }
  } else if (!n.details.is_null() && !n.details.empty()) {
    line("");
    line("Details: " + dump(n.details));
  }
  line("");
  line("-- ");
  line("Haven, notification " + n.id);

  bool seven_bit = is_ascii(text);
  for (size_t start = 0; seven_bit && start < text.size();) {
    size_t end = text.find("\r\n", start);
    if (end - start > 998) seven_bit = false;
    start = end + 2;
  }
  std::string to;
  for (const auto& r : c.to) to += (to.empty() ? "" : ", ") + r;
  std::string date = http::format_http_date(now());  // "... GMT"
  date.replace(date.size() - 3, 3, "+0000");

  std::string m;
  m += "Date: " + date + "\r\n";
  m += "From: " + c.from + "\r\n";
  m += "To: " + to + "\r\n";
  m += "Subject: " + header_text(subject) + "\r\n";
  m += "Message-ID: <" + msg_id_part(n.id) + "@haven>\r\n";
  m += "Auto-Submitted: auto-generated\r\n";  // RFC 3834: no auto-replies, please
  m += "X-Haven-Alert-Key: " + header_text(one_line(n.alert_key, 500)) + "\r\n";
  m += "MIME-Version: 1.0\r\n";
  m += "Content-Type: text/plain; charset=utf-8\r\n";
  if (seven_bit) {
    m += "Content-Transfer-Encoding: 7bit\r\n\r\n" + text;
  } else {
    m += "Content-Transfer-Encoding: base64\r\n\r\n";
    const std::string b = base64(text);
    for (size_t i = 0; i < b.size(); i += 76) m += b.substr(i, 76) + "\r\n";
  }
  return m;
}

struct Upload {
  const std::string* data;
  size_t pos = 0;
};

size_t read_message(char* buf, size_t size, size_t nitems, void* ud) {
  auto* u = static_cast<Upload*>(ud);
  const size_t take = std::min(size * nitems, u->data->size() - u->pos);
  if (take > 0) std::memcpy(buf, u->data->data() + u->pos, take);
  u->pos += take;
  return take;
}

Status deliver_email(const ChannelConfig& c, const Notification& n) {
  HAVEN_TRY(check_id(c, n));
  HAVEN_ASSIGN(Endpoint ep, parse_endpoint(c, c.smtp_url, {"smtp", "smtps"}, "smtp_url"));
  if (!plain_address(c.from)) {
    return fail(c, Code::kInvalidArgument,
                "from: \"" + one_line(c.from, 100) + "\" is not a bare address (local@domain)");
  }
  if (c.to.empty()) return fail(c, Code::kInvalidArgument, "to: no recipient given");
  for (const auto& r : c.to) {
    if (!plain_address(r)) {
      return fail(c, Code::kInvalidArgument,
                  "to: \"" + one_line(r, 100) + "\" is not a bare address (local@domain)");
    }
  }
  std::vector<std::string> secrets = ep.secret_parts;
  if (!c.password.empty()) secrets.push_back(c.password.reveal());
  HAVEN_TRY(current_cancel().check());  // nothing is sent under a cancelled token

  const std::string message = email_message(c, n);
  const std::string what = label(c) + ": " + ep.shown;
  // A handle of its own, not the HTTP layer's per-thread one: an SMTP connection carries its
  // login, and a notification is rare enough to pay for a fresh connection.
  std::unique_ptr<CURL, void (*)(CURL*)> handle(curl::easy_init(), curl::easy_cleanup);
  CURL* h = handle.get();
  if (h == nullptr) return curl_missing(c);
  struct curl_slist* rcpt = nullptr;
  for (const auto& r : c.to) rcpt = curl::slist_append(rcpt, ("<" + r + ">").c_str());
  std::unique_ptr<curl_slist, void (*)(curl_slist*)> rcpt_guard(rcpt, curl::slist_free_all);
  Upload up{&message, 0};
  char errbuf[CURL_ERROR_SIZE] = {0};
  const std::string from = "<" + c.from + ">";
  curl::easy_setopt(h, CURLOPT_URL, c.smtp_url.c_str());
  curl::easy_setopt(h, CURLOPT_PROTOCOLS_STR, "smtp,smtps");
  curl::easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
  curl::easy_setopt(h, CURLOPT_ERRORBUFFER, errbuf);
  curl::easy_setopt(h, CURLOPT_TIMEOUT_MS, static_cast<long>(c.timeout.count()));
  // TLS before anything else, or no mail: with CURLUSESSL_ALL libcurl gives up
  // (CURLE_USE_SSL_FAILED) when the server offers no STARTTLS, before AUTH and MAIL FROM.
  curl::easy_setopt(h, CURLOPT_USE_SSL, static_cast<long>(c.starttls ? CURLUSESSL_ALL : CURLUSESSL_TRY));
  if (!c.ca_file.empty()) curl::easy_setopt(h, CURLOPT_CAINFO, c.ca_file.c_str());
  if (!c.username.empty()) {
    curl::easy_setopt(h, CURLOPT_USERNAME, c.username.c_str());
    curl::easy_setopt(h, CURLOPT_PASSWORD, c.password.reveal().c_str());
  }
  curl::easy_setopt(h, CURLOPT_MAIL_FROM, from.c_str());
  curl::easy_setopt(h, CURLOPT_MAIL_RCPT, rcpt);
  curl::easy_setopt(h, CURLOPT_UPLOAD, 1L);
  curl::easy_setopt(h, CURLOPT_READFUNCTION, read_message);
  curl::easy_setopt(h, CURLOPT_READDATA, &up);
  curl::easy_setopt(h, CURLOPT_INFILESIZE_LARGE, static_cast<curl_off_t>(message.size()));
  http::abort_on_cancel(h);
  const CURLcode rc = curl::easy_perform(h);
  long reply = 0;
  curl::easy_getinfo(h, CURLINFO_RESPONSE_CODE, &reply);
  curl::easy_setopt(h, CURLOPT_ERRORBUFFER, nullptr);
  if (rc == CURLE_OK) return ok_status();
  if (auto cancelled = http::cancelled_transfer(rc)) return *cancelled;

  std::string detail = curl::easy_strerror(rc);
  if (errbuf[0] != '\0' && std::strcmp(errbuf, detail.c_str()) != 0) {
    detail += " (" + one_line(errbuf, kExcerpt) + ")";
  }
  if (reply > 0) detail += " (last SMTP reply " + std::to_string(reply) + ")";
  auto error = [&](Code code, const std::string& msg) {
    return Error(code, http::redact(what + ": " + msg, &secrets));
  };
  if (rc == CURLE_USE_SSL_FAILED) {
    return error(Code::kInvalidArgument,
                 "the server offers no STARTTLS; refusing to send (or log in) in clear because "
                 "starttls is on: " + detail);
  }
  if (reply >= 400 && reply < 500) return error(Code::kTransient, detail);
  if (rc == CURLE_LOGIN_DENIED) {
    return error(Code::kPermissionDenied, "the server refused the login of user '" +
                                              one_line(c.username, 100) + "': " + detail);
  }
  if (reply >= 500 && reply < 600) return error(Code::kInvalidArgument, detail);
  Error e = http::classify_curl_error(rc, what);
  std::string msg = e.message();
  if (errbuf[0] != '\0' && std::strcmp(errbuf, curl::easy_strerror(rc)) != 0) {
    msg += " (" + one_line(errbuf, kExcerpt) + ")";
  }
  if (rc == CURLE_PEER_FAILED_VERIFICATION || rc == CURLE_SSL_CACERT_BADFILE) {
    msg += " (give the channel's ca_file to trust the server's CA)";
  }
  return Error(e.code(), http::redact(std::move(msg), &secrets));
}

// ---- command ---------------------------------------------------------------------------------

// Blocks SIGPIPE on this thread while the notification is written to a command that may have
// exited already, so the write fails with EPIPE instead of killing the process; a SIGPIPE the
// writes raised is taken before the mask is restored. Only this thread's mask changes.
class SigpipeBlock {
 public:
  SigpipeBlock() {
    sigemptyset(&pipe_);
    sigaddset(&pipe_, SIGPIPE);
    pthread_sigmask(SIG_BLOCK, &pipe_, &old_);
    sigset_t pending;
    sigemptyset(&pending);
    sigpending(&pending);
    was_pending_ = sigismember(&pending, SIGPIPE) == 1;
  }
  ~SigpipeBlock() {
    if (!was_pending_) {
      sigset_t pending;
      sigemptyset(&pending);
      sigpending(&pending);
      if (sigismember(&pending, SIGPIPE) == 1) {
        struct timespec zero = {0, 0};
        while (sigtimedwait(&pipe_, nullptr, &zero) < 0 && errno == EINTR) {
        }
      }
    }
    pthread_sigmask(SIG_SETMASK, &old_, nullptr);
  }
  SigpipeBlock(const SigpipeBlock&) = delete;
  SigpipeBlock& operator=(const SigpipeBlock&) = delete;

 private:
  sigset_t pipe_;
  sigset_t old_;
  bool was_pending_ = false;
};

struct Fd {
  int fd = -1;
  explicit Fd(int f = -1) : fd(f) {}
  ~Fd() { reset(); }
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  void reset() {
    if (fd >= 0) ::close(fd);
    fd = -1;
  }
};

// The last line the command wrote to stderr (captured in a memfd: no pipe to drain, so a
// command that writes much cannot block on it), for the failure message.
std::string last_stderr_line(int fd) {
  if (fd < 0) return "";
  const off_t size = ::lseek(fd, 0, SEEK_END);
  if (size <= 0) return "";
  const off_t from = size > 4096 ? size - 4096 : 0;
  std::string buf(static_cast<size_t>(size - from), '\0');
  const ssize_t n = ::pread(fd, buf.data(), buf.size(), from);
  if (n <= 0) return "";
  buf.resize(static_cast<size_t>(n));
  while (!buf.empty() && (buf.back() == '\n' || buf.back() == '\r' || buf.back() == ' ')) {
    buf.pop_back();
  }
  if (size_t nl = buf.find_last_of('\n'); nl != std::string::npos) buf.erase(0, nl + 1);
  return one_line(buf, kExcerpt);
}

std::string seconds_text(std::chrono::milliseconds d) {
  char buf[32];
  snprintf(buf, sizeof buf, "%.1f s", static_cast<double>(d.count()) / 1000.0);
  return buf;
}

Status deliver_command(const ChannelConfig& c, const Notification& n) {
  if (c.command.empty() || c.command[0].empty()) {
    return fail(c, Code::kInvalidArgument, "no command given");
  }
  HAVEN_TRY(current_cancel().check());
  // Only the program's name in messages: its arguments may hold a token.
  const std::string program = c.command[0];
  const std::string input = dump(n.to_json()) + "\n";

  // This attempt's token: cancelled by the caller's (current) token or when the timeout
  // passes, whichever comes first; Subprocess::wait() then stops the command.
  CancelToken attempt;
  const CancelToken parent = current_cancel();
  const CancelToken::Registration follow = parent.on_cancel([attempt, parent] {
    Status why = parent.check();
    attempt.cancel(why.ok() ? Error(Code::kCancelled, "cancelled") : why.error());
  });

  int p[2];
  if (::pipe2(p, O_CLOEXEC) != 0) return errno_error(label(c) + ": pipe", errno);
  Fd read_end(p[0]), write_end(p[1]);
  ::fcntl(write_end.fd, F_SETFL, ::fcntl(write_end.fd, F_GETFL) | O_NONBLOCK);
  Fd err(::memfd_create("haven-alert-command-stderr", MFD_CLOEXEC));

  SpawnOptions opts;
  opts.argv = c.command;
  opts.stdin_fd = read_end.fd;
  opts.stdout_fd = -1;
  opts.stderr_fd = err.fd >= 0 ? err.fd : -1;
  opts.own_process_group = true;  // a timeout stops what a shell script started, too
  // Not the server's environment (repository passwords and credentials may be in it).
  opts.env = std::vector<std::string>{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
                                      "LANG=C.UTF-8", "HAVEN_ALERT=1"};
  auto spawned = Subprocess::spawn(opts);
  if (!spawned.ok()) {
    // Not found or not executable: trying again will not help. (fork or pipe failing may.)
    const Error& e = spawned.error();
    return fail(c, e.code() == Code::kNotFound ? Code::kInvalidArgument : e.code(), e.message());
  }
  Subprocess child = std::move(spawned).value();
  read_end.reset();  // the child has it; ours would keep the pipe open after the child exits

  CancelToken done;
  std::thread timer([&attempt, &done, &c] {
    if (!done.sleep_for(c.timeout)) {
      attempt.cancel(Error(Code::kTransient, "timed out after " + seconds_text(c.timeout)));
    }
  });
  struct Joiner {
    CancelToken& done;
    std::thread& t;
    ~Joiner() {
      done.cancel();
      t.join();
    }
  } joiner{done, timer};

  {
    SigpipeBlock block;
    size_t off = 0;
    while (off < input.size() && !attempt.cancelled()) {
      const ssize_t w = ::write(write_end.fd, input.data() + off, input.size() - off);
      if (w > 0) {
        off += static_cast<size_t>(w);
      } else if (w < 0 && (errno == EAGAIN || errno == EINTR)) {
        struct pollfd pfd = {write_end.fd, POLLOUT, 0};
        (void)::poll(&pfd, 1, 50);
      } else {
        break;  // EPIPE: the command does not read its stdin; its exit status decides
      }
    }
  }
  write_end.reset();  // end of input

  // The arguments may carry a token: never quoted back from what the command printed.
  std::vector<std::string> arg_secrets(c.command.begin() + (c.command.empty() ? 0 : 1), c.command.end());
  auto stderr_line = [&] { return http::redact(last_stderr_line(err.fd), &arg_secrets); };
  auto waited = child.wait(attempt);
  if (!waited.ok()) {
    const Error& e = waited.error();
    std::string msg = program + " " + e.message();
    if (e.code() == Code::kTransient) msg += " and was stopped";
    if (std::string line = stderr_line(); !line.empty()) msg += ": " + line;
    return fail(c, e.code(), msg);
  }
  if (*waited != 0) {
    std::string msg = program + " " + describe_exit(*waited);
    if (std::string line = stderr_line(); !line.empty()) msg += ": " + line;
    return fail(c, Code::kTransient, msg);
  }
  return ok_status();
}

}  // namespace

Status deliver(const ChannelConfig& channel, const Notification& n) {
  if (channel.timeout.count() <= 0) {
    return fail(channel, Code::kInvalidArgument, "timeout must be positive");
  }
  switch (channel.type) {
    case ChannelType::kWebhook:
    case ChannelType::kSlack:
    case ChannelType::kPagerDuty:
      return deliver_http(channel, n);
    case ChannelType::kEmail:
      return deliver_email(channel, n);
    case ChannelType::kCommand:
      return deliver_command(channel, n);
  }
  return fail(channel, Code::kInternal, "unknown channel type");
}

}  // namespace haven::monitor
