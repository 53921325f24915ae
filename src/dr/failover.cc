#include "dr/failover.h"

#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <fstream>

#include "dr/sandbox.h"
#include "ops/pg.h"
#include "pg/pgconn.h"
#include "pg/server.h"
#include "util/cancel.h"

namespace haven::dr {

namespace {

std::string segment_name(uint32_t timeline, uint64_t lsn) {
  const uint64_t seg = lsn / (16u << 20);
  char buf[32];
  std::snprintf(buf, sizeof buf, "%08X%08X%08X", timeline, static_cast<uint32_t>(seg / 256),
                static_cast<uint32_t>(seg % 256));
  return buf;
}

std::optional<uint64_t> parse_lsn(const std::string& s) {
  size_t slash = s.find('/');
  if (slash == std::string::npos) return std::nullopt;
  try {
    return (std::stoull(s.substr(0, slash), nullptr, 16) << 32) | std::stoull(s.substr(slash + 1), nullptr, 16);
  } catch (...) {
    return std::nullopt;
  }
}

}  // namespace

nlohmann::json StandbyStatus::to_json() const {
  return {{"running", running},
          {"in_recovery", in_recovery},
          {"replay_lsn", replay_lsn},
          {"last_replayed", last_replayed ? nlohmann::json(format_time(*last_replayed)) : nlohmann::json(nullptr)},
          {"replayed_segment", replayed_segment},
          {"newest_archived", newest_archived},
          {"lag_seconds", lag_seconds ? nlohmann::json(*lag_seconds) : nlohmann::json(nullptr)},
          {"error", error}};
}

FailoverWatch::FailoverWatch(std::shared_ptr<const config::Config> config, config::Failover failover,
                             FailoverOptions options)
    : config_(std::move(config)), failover_(std::move(failover)), options_(std::move(options)) {}

FailoverWatch::~FailoverWatch() { stop(); }

std::string FailoverWatch::standby_conninfo() const {
  // The socket directory is line 5 of postmaster.pid.
  std::string host;
  std::ifstream in(failover_.standby->data_directory + "/postmaster.pid");
  std::string line;
  for (int i = 0; i < 5 && std::getline(in, line); i++) {
    if (i == 4) host = line;
  }
  std::string ci = "port=" + std::to_string(failover_.standby->port) + " user=postgres dbname=postgres connect_timeout=5";
  if (!host.empty()) ci = "host=" + host + " " + ci;
  return ci;
}

CheckOutcome FailoverWatch::probe() {
  const auto timeout = std::chrono::milliseconds(
      std::min<int64_t>(10000, std::max<int64_t>(500, failover_.health_check_interval_seconds * 1000)));
  CheckOutcome o = run_check(failover_.probe, timeout,
                             [](const std::string&) { return CheckOutcome{false, "no checksum in a probe"}; },
                             "/");
  bool declare = false, act = false, recovered = false;
  int count = 0;
  {
    std::lock_guard lock(mu_);
    probes_++;
    last_message_ = o.message;
    if (o.passed) {
      recovered = declared_ && !failed_over_;
      if (recovered) declared_ = false;
      consecutive_ = 0;
    } else {
      consecutive_++;
      failures_total_++;
      count = consecutive_;
      if (consecutive_ == failover_.failure_threshold && !declared_) {
        declare = true;
        declared_ = true;
        declared_at_ = options_.clock();
        act = failover_.auto_failover && !failed_over_ && !failing_over_;
        if (act) failing_over_ = true;
      }
    }
  }
  const std::string key = "failover/" + failover_.name;
  if (!o.passed) {
    if (options_.note) {
      options_.note("failover:probe-failed", {{"failover", failover_.name}, {"consecutive", count},
                                              {"threshold", failover_.failure_threshold},
                                              {"message", o.message}});
    }
  }
  if (declare) {
    const std::string summary = "failover " + failover_.name + ": the primary (region " +
                                failover_.regions[0] + ") failed " + std::to_string(count) +
                                " probes in a row (" + config::describe(failover_.probe) + ": " +
                                o.message + ")" +
                                (failover_.auto_failover ? "; failing over to " + failover_.region
                                                         : "; waiting for an operator to fail over");
    if (options_.note) {
      options_.note("failover:primary-failed", {{"failover", failover_.name}, {"consecutive", count},
                                                {"auto_failover", failover_.auto_failover},
                                                {"message", o.message}});
    }
    if (options_.catalog != nullptr) {
      catalog::AlertRow a;
      a.alert_key = key;
      a.kind = "alert:failover-primary-failed";
      a.severity = catalog::AlertSeverity::kCritical;
      a.summary = summary;
      a.details = {{"failover", failover_.name}, {"probes_failed", count}, {"message", o.message}};
      auto raised = options_.catalog->raise_alert(a);
      if (raised.ok() && raised->created) {
        for (const auto& ch : failover_.channels) {
          catalog::NotificationRow n;
          n.alert_id = raised->alert.id;
          n.channel = ch;
          (void)options_.catalog->enqueue_notification(n);
        }
      }
    }
  }
  if (recovered) {
    if (options_.note) options_.note("failover:primary-recovered", {{"failover", failover_.name}});
    if (options_.catalog != nullptr) {
      auto open = options_.catalog->find_unresolved_alert(key);
      if (open.ok() && *open) {
        (void)options_.catalog->resolve_alert((*open)->id, options_.clock(),
                                              {{"resolution", "the primary answers its probe again"}});
      }
    }
  }
  if (act) {
    auto r = fail_over("auto-failover");
    std::lock_guard lock(mu_);
    failing_over_ = false;
    if (!r.ok()) {
      report_ = {{"error", r.error().message()}};
      if (options_.note) options_.note("failover:failed", {{"failover", failover_.name}, {"error", r.error().message()}});
    }
  }
  return o;
}

Status FailoverWatch::take_lease(const std::string& by) {
  HAVEN_ASSIGN(auto repo, options_.open_location(failover_.lease_location));
  const storage::ObjectName name{storage::ObjectType::kLease, failover_.name};
  nlohmann::json lease = {{"failover", failover_.name}, {"holder", options_.holder},
                          {"region", failover_.region}, {"by", by},
                          {"acquired_at", format_time(options_.clock())}};
  const std::string text = lease.dump();
  Status saved = repo->backend().save(name, ByteView(reinterpret_cast<const uint8_t*>(text.data()), text.size()));
  if (saved.ok()) return ok_status();
  if (saved.error().code() != Error::Code::kAlreadyExists) return saved.error().with_context("taking the failover lease");
  auto held = repo->backend().load(name);
  if (!held.ok()) return held.error().with_context("reading the failover lease");
  auto j = nlohmann::json::parse(std::string(held->begin(), held->end()), nullptr, false);
  const std::string holder = j.is_object() ? j.value("holder", "?") : "?";
  if (holder == options_.holder) return ok_status();
  return Error(Error::Code::kAlreadyExists,
               "failover " + failover_.name + ": " + holder + " (region " +
                   (j.is_object() ? j.value("region", "?") : "?") + ") holds the lease since " +
                   (j.is_object() ? j.value("acquired_at", "?") : "?") +
                   ": only one region fails over (remove " + storage::object_path(name) +
                   " from the repository once the regions are back in step)");
}

Result<nlohmann::json> FailoverWatch::fail_over(const std::string& by) {
  const TimeNs started = options_.clock();
  HAVEN_TRY(take_lease(by));
  nlohmann::json report = {{"failover", failover_.name}, {"mode", config::name(failover_.mode)},
                           {"region", failover_.region}, {"holder", options_.holder}, {"by", by},
                           {"started_at", format_time(started)}};
  if (options_.note) options_.note("failover:started", report);
  if (failover_.mode == config::FailoverMode::kWarmStandby && failover_.standby) {
    StandbyStatus before = standby_status();
    report["standby_before"] = before.to_json();
    if (!before.running) {
      return Error(Error::Code::kIo, "failover " + failover_.name + ": the standby in " +
                                         failover_.standby->data_directory + " is not running" +
                                         (before.error.empty() ? "" : " (" + before.error + ")"));
    }
    const TimeNs t0 = options_.clock();
    HAVEN_TRY(pg::promote(failover_.standby->data_directory, "", std::chrono::seconds(300)));
    report["promote_seconds"] = static_cast<double>(options_.clock() - t0) / 1e9;
    // The data lost is what the primary committed after the newest archived segment: the
    // standby replayed up to its last commit.
    if (before.last_replayed) {
      report["last_replayed_commit"] = format_time(*before.last_replayed);
      if (declared_at_) {
        report["data_loss_window_seconds"] = static_cast<double>(*declared_at_ - *before.last_replayed) / 1e9;
      }
    }
    report["newest_archived_segment"] = before.newest_archived;
  }
  if (!failover_.plan.empty()) {
    if (!options_.run_plan) return Error(Error::Code::kInvalidArgument, "failover: plans cannot run here");
    HAVEN_ASSIGN(std::string id, options_.run_plan(failover_.plan, "failover " + failover_.name + " by " + by));
    report["plan_execution"] = id;
  }
  if (!failover_.dns_command.empty()) {
    config::HealthCheck hook;
    hook.kind = config::HealthCheck::Kind::kCommand;
    hook.target = failover_.dns_command;
    CheckOutcome o = run_check(hook, std::chrono::seconds(120),
                               [](const std::string&) { return CheckOutcome{}; }, "/");
    report["dns"] = o.message;
    if (!o.passed) return Error(Error::Code::kIo, "failover " + failover_.name + ": the DNS hook failed: " + o.message);
  }
  report["seconds"] = static_cast<double>(options_.clock() - started) / 1e9;
  {
    std::lock_guard lock(mu_);
    failed_over_ = true;
    report_ = report;
  }
  if (options_.note) options_.note("failover:completed", report);
  return report;
}

Status FailoverWatch::ensure_standby() {
  if (!failover_.standby) return ok_status();
  const config::Standby& sb = *failover_.standby;
  if (pg::running_postmaster(sb.data_directory)) return ok_status();
  struct stat st;
  if (::stat((sb.data_directory + "/PG_VERSION").c_str(), &st) == 0) {
    // Restored before (the server restarted): start it again.
    return pg::start_server(sb.data_directory, "", std::chrono::seconds(120));
  }
  const config::Policy* policy = config_->find_policy(sb.policy);
  if (policy == nullptr) return Error(Error::Code::kNotFound, "standby: policy '" + sb.policy + "' is not defined");
  const config::Location* location = config_->find_location(policy->location);
  if (location == nullptr) return Error(Error::Code::kNotFound, "standby: location '" + policy->location + "' is not defined");
  HAVEN_ASSIGN(auto repo, options_.open_location(policy->location));
  ops::PgRestoreRequest r;
  r.target = sb.data_directory;
  r.latest = true;
  r.port = sb.port;
  r.wal_fetch_program = options_.haven_program;
  r.repository = location->repository.starts_with("local:") ? location->repository.substr(6) : location->repository;
  NullSink quiet;
  HAVEN_ASSIGN(auto restored, ops::pg_restore(*repo, r, quiet));
  (void)restored;
  // A standby, not a recovery to an end: standby.signal, following the newest timeline.
  struct stat ds;
  if (::stat(sb.data_directory.c_str(), &ds) != 0) return errno_error(sb.data_directory, errno);
  ::unlink((sb.data_directory + "/recovery.signal").c_str());
  HAVEN_TRY(write_owned_file(sb.data_directory + "/standby.signal", "", false, ds.st_uid, ds.st_gid, 0600));
  HAVEN_TRY(write_owned_file(sb.data_directory + "/postgresql.auto.conf",
                             "# Added by haven: a warm standby (failover " + failover_.name + ")\n"
                             "recovery_target_timeline = 'latest'\nhot_standby = on\n",
                             true, ds.st_uid, ds.st_gid, 0600));
  HAVEN_TRY(pg::start_server(sb.data_directory, "", std::chrono::seconds(300)));
  if (options_.note) {
    options_.note("failover:standby-started", {{"failover", failover_.name}, {"data_directory", sb.data_directory},
                                               {"port", sb.port}});
  }
  return ok_status();
}

StandbyStatus FailoverWatch::standby_status() {
  StandbyStatus s;
  if (!failover_.standby) {
    s.error = "this failover keeps no standby";
    return s;
  }
  s.running = pg::running_postmaster(failover_.standby->data_directory).has_value();
  if (!s.running) {
    s.error = "not running";
    return s;
  }
  auto conn = pg::Connection::open(standby_conninfo());
  if (!conn.ok()) {
    s.error = conn.error().message();
    return s;
  }
  auto rows = conn->rows(
      "SELECT pg_is_in_recovery()::text, COALESCE(pg_last_wal_replay_lsn()::text, ''), "
      "COALESCE((extract(epoch FROM pg_last_xact_replay_timestamp()) * 1000000)::bigint::text, ''), "
      "(SELECT timeline_id::text FROM pg_control_checkpoint())");
  if (!rows.ok() || rows->empty()) {
    s.error = rows.ok() ? "no answer" : rows.error().message();
    return s;
  }
  const auto& r = (*rows)[0];
  s.in_recovery = r[0] == "true";
  s.replay_lsn = r[1];
  if (!r[2].empty()) s.last_replayed = static_cast<TimeNs>(std::stoll(r[2])) * 1000;
  if (auto lsn = parse_lsn(s.replay_lsn)) {
    s.replayed_segment = segment_name(static_cast<uint32_t>(std::stoul(r[3].empty() ? "1" : r[3])), *lsn);
  }
  if (s.last_replayed) s.lag_seconds = static_cast<double>(options_.clock() - *s.last_replayed) / 1e9;
  const config::Policy* policy = config_->find_policy(failover_.standby->policy);
  if (policy != nullptr) {
    if (auto repo = options_.open_location(policy->location); repo.ok()) {
      std::string newest;
      (void)(*repo)->backend().list(storage::ObjectType::kWal, [&](const storage::ObjectInfo& i) {
        if (i.name.name.size() == 24 && i.name.name > newest) newest = i.name.name;
      });
      s.newest_archived = newest;
    }
  }
  return s;
}

nlohmann::json FailoverWatch::state() const {
  std::lock_guard lock(mu_);
  return {{"name", failover_.name},
          {"mode", config::name(failover_.mode)},
          {"auto_failover", failover_.auto_failover},
          {"regions", failover_.regions},
          {"region", failover_.region},
          {"failure_threshold", failover_.failure_threshold},
          {"health_check_interval", failover_.health_check_interval_seconds},
          {"probes", probes_},
          {"consecutive_failures", consecutive_},
          {"failures_total", failures_total_},
          {"primary_failed", declared_},
          {"declared_at", declared_at_ ? nlohmann::json(format_time(*declared_at_)) : nlohmann::json(nullptr)},
          {"failed_over", failed_over_},
          {"last_probe", last_message_},
          {"report", report_}};
}

void FailoverWatch::start() {
  std::lock_guard lock(mu_);
  if (thread_.joinable()) return;
  stop_ = false;
  thread_ = std::thread([this] {
    const auto interval = options_.interval.count() > 0
                              ? options_.interval
                              : std::chrono::milliseconds(failover_.health_check_interval_seconds * 1000LL);
    bool standby_ok = !failover_.standby;
    std::unique_lock lock(mu_);
    while (!stop_) {
      lock.unlock();
      if (!standby_ok && !failed_over_) {
        Status s = ensure_standby();
        standby_ok = s.ok();
        if (!s.ok() && options_.note) {
          options_.note("failover:standby-failed", {{"failover", failover_.name}, {"error", s.error().message()}});
        }
      }
      probe();
      lock.lock();
      cv_.wait_for(lock, interval, [this] { return stop_; });
    }
  });
}

void FailoverWatch::stop() {
  std::thread t;
  {
    std::lock_guard lock(mu_);
    stop_ = true;
    t = std::move(thread_);
  }
  cv_.notify_all();
  if (t.joinable()) t.join();
}

}  // namespace haven::dr
