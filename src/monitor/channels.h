// monitor/channels.h — where alert notifications go: a generic JSON webhook, a Slack-compatible
// webhook, PagerDuty's Events API v2, e-mail over SMTP (libcurl; STARTTLS and AUTH), and a
// command. One function, deliver(), sends one notification through one channel.
//
// Delivery is at-least-once per call and the caller (monitor/alerts.h) makes it exactly-once in
// practice: each notification has an id that stays the same across retries and reaches the
// receiver (the webhook's "Idempotency-Key" header and "id" field, the e-mail's Message-ID,
// PagerDuty's dedup_key is the alert's key, so a repeated trigger is folded by PagerDuty), and
// the caller records a delivery as done the moment deliver() returns OK and never sends it again.
//
// What each channel sends:
//   webhook    POST Notification::to_json(), header "Idempotency-Key: <id>"; any 2xx delivers.
//   slack      POST {"text": "[CRITICAL] summary" (+ " (resolved)"), "attachments": [fields]},
//              with the same Idempotency-Key header.
//   pagerduty  POST an Events API v2 event: routing_key, event_action (trigger|resolve),
//              dedup_key = alert_key, and for a trigger the payload (summary, source, severity,
//              timestamp, custom_details = details); PagerDuty answers 202.
//   email      one RFC 5322 message (Date, From, To, Subject "[Haven] CRITICAL: summary" or
//              "[Haven] RESOLVED: summary", Message-ID <id@haven>) with a text body of the details.
//   command    argv run without a shell, the notification's JSON (one line) on its stdin; exit
//              0 delivers. It runs in a process group of its own, stopped (SIGTERM, then
//              SIGKILL) on timeout or cancellation.
// No attempt takes longer than `timeout` (plus a command's 0.5 s grace to stop).
//
// Errors: kTransient when trying again later may succeed (connection refused, a timeout, HTTP
// 408, 429 or 5xx, an SMTP 4xx reply, a command that exits non-zero or times out);
// kInvalidArgument when it never will (any other HTTP status, a redirect included: none is
// followed; a bad URL or address; an SMTP 5xx reply; starttls on and a server without
// STARTTLS; a command that cannot be run); kPermissionDenied when the SMTP server refuses the
// login; kCancelled when this thread's current token (util/cancel.h) fires, before anything is
// sent or during the attempt; kIo for an untrusted certificate. The message names the channel
// ("alert channel 'oncall' (webhook): POST https://hooks.example.com:443: HTTP 400: ...") and
// never contains a secret: a URL shows only scheme://host:port (its user info, path and query
// may hold a token), and the routing key and SMTP password are never quoted, also when a
// receiver's answer (quoted up to 200 bytes) echoes them. A command's message names only its
// program (argv[0], whose arguments may hold a token) and quotes its last stderr line.
//
// Thread-safety: deliver() may run on several threads at once.
#pragma once

#include <chrono>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "config/secret.h"
#include "util/clock.h"
#include "util/error.h"

namespace haven::monitor {

enum class ChannelType { kWebhook, kSlack, kPagerDuty, kEmail, kCommand };
// "webhook" "slack" "pagerduty" "email" "command"
const char* channel_type_name(ChannelType t);

struct ChannelConfig {
  std::string name;  // as configured; named in every message
  ChannelType type = ChannelType::kWebhook;
  // webhook, slack: the URL to POST to. pagerduty: the Events API v2 endpoint (default
  // https://events.pagerduty.com/v2/enqueue; tests point it at loopback).
  // A URL may embed a token (Slack's do): it is a Secret.
  config::Secret url;
  config::Secret routing_key;  // pagerduty: the integration's routing key
  // email: smtp://host:port (STARTTLS when the server offers it; required if starttls is true)
  // or smtps://host:port (TLS from the start).
  std::string smtp_url;
  bool starttls = true;        // email: refuse to send (and to authenticate) in clear
  std::string ca_file;         // email, https URLs: a CA bundle to trust; "" = the system's
  std::string username;        // email: AUTH user; "" = no AUTH
  config::Secret password;     // email: AUTH password
  std::string from;            // email: the envelope and header sender
  std::vector<std::string> to; // email: recipients, at least one
  // command: argv; the notification's JSON is its stdin (everything is in it). It runs with an
  // environment of its own (PATH, LANG=C.UTF-8, HAVEN_ALERT=1), never the server's, which may
  // hold credentials; what it prints on stderr is quoted with its arguments redacted.
  std::vector<std::string> command;
  std::chrono::milliseconds timeout{10000};  // per attempt; must be positive
};

enum class NotifyAction { kTrigger, kResolve };
const char* action_name(NotifyAction a);  // "trigger" "resolve"

struct Notification {
  std::string id;         // unique per (alert, action, escalation level, channel); kept across retries
  std::string alert_key;  // the alert's deduplication key ("missed_schedule/nightly")
  // PagerDuty's dedup_key (the incident); empty: alert_key. The server gives each alert its
  // own, so a new alert with an old key is a new incident.
  std::string dedup_key;
  NotifyAction action = NotifyAction::kTrigger;
  std::string severity;   // "warning" | "critical" (PagerDuty: the same names)
  std::string kind;       // the event name: "alert:rpo-critical", "alert:missed-schedule"...
  std::string summary;    // one line for a person
  TimeNs time = 0;        // when the alert was raised (trigger) or resolved (resolve)
  int escalation_level = 0;
  nlohmann::json details = nlohmann::json::object();  // the monitor's figures
  std::string source = "haven";  // PagerDuty payload.source: the server's host name

  // The generic webhook's body (and the command's stdin):
  // {"id","alert_key","action","severity","kind","summary","time" (RFC 3339),
  //  "escalation_level","details","source"}
  nlohmann::json to_json() const;
};

// Sends `n` through `channel` once. See the header comment for errors.
Status deliver(const ChannelConfig& channel, const Notification& n);

}  // namespace haven::monitor
