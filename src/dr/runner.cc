#include "dr/runner.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <condition_variable>
#include <fstream>
#include <map>
#include <mutex>
#include <random>
#include <regex>
#include <sstream>
#include <thread>

#include "dr/checks.h"
#include "dr/sandbox.h"
#include "ops/ops.h"
#include "ops/pg.h"
#include "ops/restore.h"
#include "pg/pgconn.h"
#include "util/cancel.h"
#include "util/subprocess.h"

namespace haven::dr {

namespace {

using config::HealthCheck;
using config::PlanStep;
using Clock = std::chrono::steady_clock;

double seconds_between(TimeNs a, TimeNs b) { return static_cast<double>(b - a) / 1e9; }

std::string random_id() {
  std::random_device rd;
  std::ostringstream os;
  os << "drill-" << std::hex << rd() << rd();
  return os.str();
}

std::string tail(const std::string& file, size_t lines) {
  std::ifstream in(file);
  std::vector<std::string> all;
  for (std::string l; std::getline(in, l);) all.push_back(l);
  std::string out;
  for (size_t i = all.size() > lines ? all.size() - lines : 0; i < all.size(); i++) {
    out += all[i] + "\n";
  }
  return out;
}

// A token cancelled by the caller's token or after `timeout`, whichever comes first.
class Deadline {
 public:
  Deadline(std::chrono::seconds timeout, std::string what)
      : from_caller_(current_cancel().on_cancel([t = token_] { t.cancel(); })) {
    timer_ = std::thread([t = token_, done = done_, timeout, what = std::move(what)] {
      if (!done.sleep_for(timeout)) {
        t.cancel(Error(Error::Code::kTransient,
                       what + " timed out after " + std::to_string(timeout.count()) + " s"));
      }
    });
  }
  ~Deadline() {
    done_.cancel();
    timer_.join();
  }
  const CancelToken& token() const { return token_; }

 private:
  CancelToken token_, done_;
  CancelToken::Registration from_caller_;
  std::thread timer_;
};

struct StepState {
  const PlanStep* step = nullptr;
  StepOutcome out;
  std::string dir;       // restore_postgres: its directory (data and socket inside)
  std::string host;      // restore_postgres: the socket directory
  std::string conninfo;  // restore_postgres
  // restore_files: what the checksum compares.
  std::shared_ptr<repo::Repository> repo;
  ops::RestoreRequest request;
  std::unique_ptr<Subprocess> service;
  bool started = false, done = false;
};

nlohmann::json opt_time(const std::optional<TimeNs>& t) {
  return t ? nlohmann::json(format_time(*t)) : nlohmann::json(nullptr);
}
nlohmann::json opt_num(const std::optional<double>& v) {
  return v ? nlohmann::json(*v) : nlohmann::json(nullptr);
}

// The production places of a configuration and plan: paths a drill must not name.
std::vector<std::string> production_paths(const config::Config& cfg, const config::DrPlan& plan) {
  std::vector<std::string> out;
  for (const auto& p : cfg.policies) {
    for (const auto& s : p.sources) out.push_back(s);
    if (p.database) out.push_back(p.database->pgdata);
  }
  for (const auto& s : plan.steps) {
    if (!s.target.empty()) out.push_back(s.target);
  }
  for (auto& p : out) {
    while (p.size() > 1 && p.back() == '/') p.pop_back();
  }
  std::erase_if(out, [](const std::string& p) { return p.empty() || p == "/"; });
  return out;
}

std::set<int> production_ports(const config::Config& cfg, const config::DrPlan& plan) {
  std::set<int> out;
  static const std::regex kw(R"((?:^|\s)port\s*=\s*(\d+))");
  static const std::regex uri(R"(^postgres(?:ql)?://[^/?]*:(\d+))");
  for (const auto& p : cfg.policies) {
    if (!p.database) continue;
    std::smatch m;
    const std::string& ci = p.database->conninfo;
    if (std::regex_search(ci, m, kw) || std::regex_search(ci, m, uri)) {
      out.insert(std::stoi(m[1]));
    } else {
      out.insert(5432);  // libpq's default
    }
  }
  for (const auto& s : plan.steps) {
    if (s.port > 0) out.insert(s.port);
  }
  return out;
}

bool names_path(const std::string& text, const std::string& path) {
  for (size_t at = text.find(path); at != std::string::npos; at = text.find(path, at + 1)) {
    const char before = at == 0 ? ' ' : text[at - 1];
    const size_t end = at + path.size();
    const char after = end >= text.size() ? ' ' : text[end];
    const bool starts = std::string(" \t'\"=:;(").find(before) != std::string::npos;
    const bool ends = std::string(" \t'\"/;)&|").find(after) != std::string::npos;
    if (starts && ends) return true;
  }
  return false;
}

bool names_port(const std::string& text, int port) {
  const std::regex re("(:|port\\s*=\\s*|-p\\s*|--port[= ]\\s*)" + std::to_string(port) + "(?![0-9])");
  return std::regex_search(text, re);
}

std::vector<std::pair<std::string, std::string>> plan_texts(const config::DrPlan& plan) {
  std::vector<std::pair<std::string, std::string>> out;  // (where, text)
  auto add_check = [&](const std::string& where, const HealthCheck& c) {
    out.emplace_back(where, c.target);
    if (!c.conninfo.empty()) out.emplace_back(where, c.conninfo);
  };
  for (const auto& s : plan.steps) {
    const std::string where = "step '" + s.name + "'";
    if (!s.command.empty()) out.emplace_back(where, s.command);
    if (s.wait) add_check(where, *s.wait);
    if (s.check) add_check(where, *s.check);
  }
  for (const auto* list : {&plan.prerequisites, &plan.validation}) {
    for (const auto& v : *list) {
      for (const auto& c : v.checks) add_check("validation '" + v.name + "'", c);
    }
  }
  return out;
}

class Run {
 public:
  Run(const config::Config& cfg, const config::DrPlan& plan, const RunOptions& opt,
      const EventTarget& events)
      : cfg_(cfg), plan_(plan), opt_(opt), rep_(events, OpKind::kDr) {}

  Result<RunResult> run();

 private:
  Status prepare();
  void run_steps();
  void run_step(StepState& st);
  Status do_restore_files(StepState& st);
  Status do_restore_postgres(StepState& st);
  Status do_command(StepState& st, const std::chrono::seconds timeout);
  Status do_check_step(StepState& st);
  ValidationOutcome validate(const config::ValidationStep& v, bool after_steps);
  CheckOutcome checksum(const std::string& step);
  std::string substitute(const std::string& text, const StepState* self);
  HealthCheck substitute(const HealthCheck& c, const StepState* self);
  void finish_services();

  const config::Config& cfg_;
  const config::DrPlan& plan_;
  const RunOptions& opt_;
  Reporter rep_;
  RunResult result_;
  std::optional<Sandbox> sandbox_;
  std::string workdir_;
  std::map<std::string, StepState> states_;
  std::set<int> avoid_ports_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::map<std::string, CheckOutcome> checksum_passed_;
  std::mutex checksum_mu_;
};

std::string Run::substitute(const std::string& text, const StepState* self) {
  std::string out;
  size_t i = 0;
  while (true) {
    size_t open = text.find("${", i);
    if (open == std::string::npos) break;
    size_t close = text.find('}', open);
    if (close == std::string::npos) break;
    out += text.substr(i, open - i);
    const std::string inner = text.substr(open + 2, close - open - 2);
    std::string value = "${" + inner + "}";
    if (inner == "sandbox") {
      value = workdir_;
    } else if (inner == "port" && self != nullptr) {
      value = std::to_string(self->out.port);
    } else if (size_t dot = inner.rfind('.'); dot != std::string::npos) {
      auto it = states_.find(inner.substr(0, dot));
      const std::string field = inner.substr(dot + 1);
      if (it != states_.end()) {
        const StepState& s = it->second;
        if (field == "path") value = s.out.path;
        else if (field == "port") value = std::to_string(s.out.port);
        else if (field == "host") value = s.host;
        else if (field == "conninfo") value = s.conninfo;
      }
    }
    out += value;
    i = close + 1;
  }
  return out + text.substr(i);
}

HealthCheck Run::substitute(const HealthCheck& c, const StepState* self) {
  HealthCheck out = c;
  out.target = substitute(c.target, self);
  out.conninfo = substitute(c.conninfo, self);
  out.expect = substitute(c.expect, self);
  out.expect_body = substitute(c.expect_body, self);
  return out;
}

Status Run::prepare() {
  if (opt_.mode == Mode::kDrill) HAVEN_TRY(check_drill_safe(cfg_, plan_));
  if (opt_.sandbox_root.empty()) {
    return Error(Error::Code::kInvalidArgument, "dr: no directory for the run's sandbox was given");
  }
  avoid_ports_ = production_ports(cfg_, plan_);
  if (auto removed = clean_leftovers(opt_.sandbox_root); removed.ok() && !removed->empty()) {
    for (const auto& d : *removed) rep_.warning("", "removed the sandbox of a drill that was killed: " + d);
    if (opt_.on_cleaned) opt_.on_cleaned(*removed);
  }
  HAVEN_ASSIGN(Sandbox sb, Sandbox::create(opt_.sandbox_root,
                                           opt_.run_id.empty() ? random_id() : opt_.run_id));
  sandbox_.emplace(std::move(sb));
  workdir_ = sandbox_->path();
  result_.sandbox = workdir_;
  if (opt_.on_sandbox) opt_.on_sandbox(workdir_);
  // Every step's place and port, known before any runs (later steps and validations refer to
  // them).
  for (const auto& s : plan_.steps) {
    StepState st;
    st.step = &s;
    st.out.name = s.name;
    st.out.kind = std::string(config::name(s.kind));
    st.out.status = "not_run";
    const bool real = opt_.mode == Mode::kReal;
    if (s.kind == PlanStep::Kind::kRestoreFiles) {
      st.out.path = real && !s.target.empty() ? s.target : workdir_ + "/" + s.name;
    } else if (s.kind == PlanStep::Kind::kRestorePostgres) {
      st.dir = workdir_ + "/" + s.name;
      st.out.path = real && !s.target.empty() ? s.target : st.dir + "/data";
      st.host = real ? "" : st.dir + "/socket";
    }
    if (s.kind == PlanStep::Kind::kRestorePostgres || s.kind == PlanStep::Kind::kCommand) {
      if (real && s.port > 0) {
        st.out.port = s.port;
      } else {
        HAVEN_ASSIGN(st.out.port, free_port(avoid_ports_));
      }
      avoid_ports_.insert(st.out.port);
    }
    if (s.kind == PlanStep::Kind::kRestorePostgres) {
      st.conninfo = (st.host.empty() ? "" : "host=" + st.host + " ") +
                    "port=" + std::to_string(st.out.port) + " user=postgres dbname=postgres";
    }
    states_.emplace(s.name, std::move(st));
  }
  return ok_status();
}

CheckOutcome Run::checksum(const std::string& step) {
  {
    std::lock_guard lock(checksum_mu_);
    auto it = checksum_passed_.find(step);
    if (it != checksum_passed_.end()) return it->second;
  }
  auto it = states_.find(step);
  if (it == states_.end() || !it->second.repo || it->second.out.status != "completed") {
    return {false, "step '" + step + "' restored nothing to compare"};
  }
  StepState& st = it->second;
  NullSink quiet;
  auto cmp = ops::compare(*st.repo, st.request, quiet);
  if (!cmp.ok()) return {false, cmp.error().message()};
  const auto& c = cmp->comparison;
  if (!c.clean()) {
    std::string first = c.differences.empty()
                            ? ""
                            : ": " + c.differences[0].path + " " + c.differences[0].problem;
    return {false, std::to_string(c.missing) + " missing, " + std::to_string(c.differ) +
                       " different, " + std::to_string(c.unreadable) + " unreadable" + first};
  }
  CheckOutcome ok{true, std::to_string(c.files) + " files, " + std::to_string(c.bytes) +
                            " bytes match snapshot " + repo::short_hex(cmp->snapshot_id)};
  std::lock_guard lock(checksum_mu_);
  checksum_passed_[step] = ok;
  return ok;
}

// The snapshot a restore_files step restores: an ID as given, else the policy's newest (at or
// before `at`): snapshots the server tagged policy:<name>, or, when there are none, those of
// exactly the policy's sources (backups made with the CLI).
Result<std::string> choose_snapshot(repo::Repository& repo, const config::Policy& policy,
                                    const PlanStep& s) {
  if (s.at.empty() && s.snapshot != "latest") return s.snapshot;
  std::optional<TimeNs> at;
  if (!s.at.empty()) {
    at = parse_time(s.at);
    if (!at) {
      return Error(Error::Code::kInvalidArgument,
                   "step '" + s.name + "': at '" + s.at +
                       "' is not a time: use RFC 3339 (2026-11-21T10:00:00Z) or 'YYYY-MM-DD HH:MM[:SS]'");
    }
  }
  NullSink quiet;
  HAVEN_ASSIGN(auto all, ops::list_snapshots(repo, quiet));
  std::set<std::string> sources(policy.sources.begin(), policy.sources.end());
  const std::string tag = "policy:" + policy.name;
  std::optional<std::pair<repo::Id, TimeNs>> tagged, by_paths;
  for (const auto& [id, snap] : all) {
    if (at && snap.time > *at) continue;
    const bool has_tag = std::find(snap.tags.begin(), snap.tags.end(), tag) != snap.tags.end();
    std::set<std::string> paths(snap.paths.begin(), snap.paths.end());
    if (has_tag && (!tagged || snap.time >= tagged->second)) tagged = {id, snap.time};
    if (paths == sources && (!by_paths || snap.time >= by_paths->second)) by_paths = {id, snap.time};
  }
  auto pick = tagged ? tagged : by_paths;
  if (!pick) {
    return Error(Error::Code::kNotFound,
                 "the repository holds no snapshot of policy '" + policy.name + "'" +
                     (at ? " at or before " + s.at : std::string("")) +
                     " (none tagged " + tag + " or of exactly its sources): back it up first");
  }
  return repo::hex(pick->first);
}

Status Run::do_restore_files(StepState& st) {
  const PlanStep& s = *st.step;
  const config::Policy* policy = cfg_.find_policy(s.policy);
  if (policy == nullptr) return Error(Error::Code::kNotFound, "policy '" + s.policy + "' is not defined");
  HAVEN_ASSIGN(st.repo, opt_.open_repository(*policy));
  HAVEN_ASSIGN(st.request.snapshot, choose_snapshot(*st.repo, *policy, s));
  st.request.target = st.out.path;
  st.request.includes = s.includes;
  // A prune or forget (a policy's retention after its backup) holds the repository for a
  // while: the step waits it out, within its own time, as a recovery at that moment would.
  st.request.lock_wait = std::chrono::seconds(s.timeout_seconds);
  NullSink quiet;
  const TimeNs t0 = now();
  HAVEN_ASSIGN(ops::RestoreResult r, ops::restore(*st.repo, st.request, quiet));
  st.out.restore_seconds = seconds_between(t0, now());
  st.out.details = {{"snapshot", repo::hex(r.snapshot_id)},
                    {"snapshot_time", format_time(r.snapshot.time)},
                    {"files", r.summary.files},
                    {"bytes", r.summary.bytes}};
  if (r.summary.errors > 0) {
    return Error(Error::Code::kIo, std::to_string(r.summary.errors) + " file(s) of snapshot " +
                                       repo::short_hex(r.snapshot_id) + " could not be restored");
  }
  st.out.recovered_time = r.snapshot.time;
  st.out.message = "snapshot " + repo::short_hex(r.snapshot_id) + " of " + format_time(r.snapshot.time) +
                   ": " + std::to_string(r.summary.files) + " files, " +
                   std::to_string(r.summary.bytes) + " bytes";
  st.out.target_time = s.at.empty() ? result_.started_at : parse_time(s.at).value_or(result_.started_at);
  return ok_status();
}

Status Run::do_restore_postgres(StepState& st) {
  const PlanStep& s = *st.step;
  const config::Policy* policy = cfg_.find_policy(s.policy);
  if (policy == nullptr) return Error(Error::Code::kNotFound, "policy '" + s.policy + "' is not defined");
  const config::Location* location = cfg_.find_location(policy->location);
  if (location == nullptr) return Error(Error::Code::kNotFound, "location '" + policy->location + "' is not defined");
  HAVEN_ASSIGN(auto repo, opt_.open_repository(*policy));
  if (::mkdir(st.dir.c_str(), 0711) != 0 && errno != EEXIST) return errno_error(st.dir, errno);
  ops::PgRestoreRequest r;
  r.target = st.out.path;
  r.latest = s.time.empty();
  r.time = s.time;
  r.port = st.out.port;
  r.wal_fetch_program = opt_.haven_program;
  std::string repository = location->repository;
  if (repository.starts_with("local:")) repository = repository.substr(6);
  r.repository = repository;
  r.start = true;
  r.wait_seconds = s.timeout_seconds;
  r.lock_wait = std::chrono::seconds(s.timeout_seconds);  // as restore_files
  NullSink quiet;
  const TimeNs t0 = now();
  HAVEN_ASSIGN(ops::PgRestoreResult restored, ops::pg_restore(*repo, r, quiet));
  const TimeNs t1 = now();
  st.out.restore_seconds = seconds_between(t0, t1);
  st.out.details = {{"base_backup", repo::hex(restored.restored.base.id)},
                    {"base_backup_end", format_time(restored.restored.base.stop_time)},
                    {"files", restored.restored.files},
                    {"bytes", restored.restored.bytes}};
  struct stat ds;
  if (::stat(st.out.path.c_str(), &ds) != 0) return errno_error(st.out.path, errno);
  if (opt_.mode == Mode::kDrill) {
    // The sandbox's own settings: a socket in the sandbox that only the cluster's user (and
    // root) can reach, no TCP listener, and an hba file that trusts that socket alone. A
    // cluster laid out as Debian's (its configuration in /etc) gets an empty postgresql.conf.
    if (::mkdir(st.host.c_str(), 0700) != 0) return errno_error(st.host, errno);
    if (::geteuid() == 0) (void)::chown(st.host.c_str(), ds.st_uid, ds.st_gid);
    const std::string hba = st.dir + "/pg_hba.conf";
    HAVEN_TRY(write_owned_file(hba, "local all all trust\n", false, ds.st_uid, ds.st_gid, 0600));
    const std::string conf = st.out.path + "/postgresql.conf";
    if (::access(conf.c_str(), F_OK) != 0) {
      HAVEN_TRY(write_owned_file(conf, "", false, ds.st_uid, ds.st_gid, 0600));
    }
    HAVEN_TRY(write_owned_file(st.out.path + "/postgresql.auto.conf",
                          "# Added by haven dr drill: the sandbox\n"
                          "unix_socket_directories = '" + st.host + "'\n"
                          "listen_addresses = ''\n"
                          "hba_file = '" + hba + "'\n"
                          "ident_file = ''\n"
                          "external_pid_file = ''\n",
                          true, ds.st_uid, ds.st_gid, 0600));
  }
  HAVEN_TRY(sandbox_->add_postgres(st.out.path));
  HAVEN_ASSIGN(ops::PgStartResult started, ops::pg_start(r, restored));
  (void)started;
  st.out.replay_seconds = seconds_between(t1, now());
  // The newest data recovered: the last commit replayed, else the base backup's end.
  st.out.recovered_time = restored.restored.base.stop_time;
  auto conn = pg::Connection::open(st.conninfo + " connect_timeout=10");
  if (conn.ok()) {
    auto v = conn->value(
        "SELECT COALESCE((extract(epoch FROM pg_last_xact_replay_timestamp()) * 1000000)::bigint"
        "::text, '')");
    if (v.ok() && !v->empty()) {
      st.out.recovered_time = static_cast<TimeNs>(std::stoll(*v)) * 1000;
      st.out.details["last_replayed_commit"] = format_time(*st.out.recovered_time);
    } else {
      st.out.details["last_replayed_commit"] = nullptr;
    }
  } else {
    st.out.details["rpo_note"] = "could not connect to read the last replayed commit: " +
                                 conn.error().message();
  }
  st.out.target_time = s.time.empty() ? result_.started_at : parse_time(s.time).value_or(result_.started_at);
  st.out.message = "base backup " + repo::short_hex(restored.restored.base.id) + ", " +
                   (st.out.details.contains("last_replayed_commit") &&
                            st.out.details["last_replayed_commit"].is_string()
                        ? "last replayed commit " + st.out.details["last_replayed_commit"].get<std::string>()
                        : std::string("no commit replayed after it")) +
                   "; port " + std::to_string(st.out.port);
  return ok_status();
}

Status Run::do_command(StepState& st, const std::chrono::seconds timeout) {
  const PlanStep& s = *st.step;
  const std::string log = workdir_ + "/" + s.name + ".log";
  int fd = ::open(log.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) return errno_error(log, errno);
  SpawnOptions so;
  so.argv = {"/bin/sh", "-c", "cd " + shell_quote(workdir_) + " && " + substitute(s.command, &st)};
  so.stdout_fd = fd;
  so.stderr_fd = fd;
  so.own_process_group = true;
  auto child = Subprocess::spawn(so);
  ::close(fd);
  if (!child.ok()) return child.error();
  if (!s.wait) {
    Deadline deadline(timeout, "step '" + s.name + "'");
    auto rc = child->wait(deadline.token());
    st.out.output = tail(log, 20);
    if (!rc.ok()) return rc.error();
    if (*rc != 0) return Error(Error::Code::kIo, "the command " + describe_exit(*rc));
    return ok_status();
  }
  // A service: kept running; done once its check passes.
  st.service = std::make_unique<Subprocess>(std::move(*child));
  HAVEN_TRY(sandbox_->add_process_group(st.service->pid()));
  const HealthCheck check = substitute(*s.wait, &st);
  const auto until = Clock::now() + std::chrono::seconds(s.wait_timeout_seconds);
  CheckOutcome last{false, "not tried"};
  while (true) {
    if (auto rc = st.service->try_wait()) {
      st.out.output = tail(log, 20);
      return Error(Error::Code::kIo, "the service " + describe_exit(*rc) +
                                         " before its check passed");
    }
    last = run_check(check, std::chrono::seconds(5), [&](const std::string& n) { return checksum(n); },
                     workdir_);
    if (last.passed) break;
    if (Clock::now() > until) {
      st.out.output = tail(log, 20);
      return Error(Error::Code::kTransient,
                   "the service did not pass " + config::describe(check) + " within " +
                       std::to_string(s.wait_timeout_seconds) + " s (last: " + last.message + ")");
    }
    if (current_cancel().sleep_for(opt_.poll_interval)) return current_cancel().check().error();
  }
  st.out.details["ready"] = last.message;
  st.out.message = "running on port " + std::to_string(st.out.port) + ", ready: " + last.message;
  return ok_status();
}

Status Run::do_check_step(StepState& st) {
  const HealthCheck c = substitute(*st.step->check, &st);
  CheckOutcome o = run_check(c, std::chrono::seconds(st.step->timeout_seconds),
                             [&](const std::string& n) { return checksum(n); }, workdir_);
  st.out.details["check"] = config::describe(c);
  if (!o.passed) return Error(Error::Code::kIo, config::describe(c) + ": " + o.message);
  st.out.message = o.message;
  return ok_status();
}

void Run::run_step(StepState& st) {
  const PlanStep& s = *st.step;
  st.out.started_at = now();
  Progress p;
  p.phase = "step:" + s.name;
  rep_.progress(p);
  Status status = ok_status();
  {
    Deadline deadline(std::chrono::seconds(s.timeout_seconds), "step '" + s.name + "'");
    CancelScope scope(deadline.token());
    switch (s.kind) {
      case PlanStep::Kind::kRestoreFiles: status = do_restore_files(st); break;
      case PlanStep::Kind::kRestorePostgres: status = do_restore_postgres(st); break;
      case PlanStep::Kind::kCommand:
        status = do_command(st, std::chrono::seconds(s.timeout_seconds));
        break;
      case PlanStep::Kind::kSql:
      case PlanStep::Kind::kChecksum: status = do_check_step(st); break;
      case PlanStep::Kind::kSwitch:
        if (opt_.mode == Mode::kDrill) {
          st.out.status = "skipped";
          st.out.message = "a drill never switches " + s.switch_kind + ": a recovery would run " +
                           substitute(s.command, &st);
        } else {
          status = do_command(st, std::chrono::seconds(s.timeout_seconds));
        }
        break;
    }
  }
  st.out.finished_at = now();
  st.out.seconds = seconds_between(st.out.started_at, st.out.finished_at);
  if (st.out.status == "skipped") {
    rep_.warning("", "step '" + s.name + "' skipped: " + st.out.message, {{"step", s.name}});
  } else if (status.ok()) {
    st.out.status = "completed";
    if (st.out.message.empty()) st.out.message = "done";
  } else {
    const bool cancelled = status.error().code() == Error::Code::kCancelled;
    st.out.status = cancelled ? "cancelled" : "failed";
    st.out.message = "step '" + s.name + "' " + (cancelled ? "was cancelled" : "failed") + ": " +
                     status.error().message();
    rep_.error("", st.out.message);
  }
}

void Run::run_steps() {
  std::vector<std::thread> threads;
  int running = 0;
  std::unique_lock lock(mu_);
  while (true) {
    bool progress = false;
    bool all_settled = true;
    for (const auto& s : plan_.steps) {
      StepState& st = states_.at(s.name);
      if (st.done) continue;
      if (st.started) {
        all_settled = false;
        continue;
      }
      bool ready = true, blocked = false;
      std::string blocker;
      for (const auto& d : s.depends_on) {
        const StepState& dep = states_.at(d);
        if (!dep.done) {
          ready = false;
        } else if (dep.out.status != "completed" && dep.out.status != "skipped") {
          blocked = true;
          blocker = d;
        }
      }
      if (blocked || current_cancel().cancelled()) {
        st.done = true;
        st.out.status = "not_run";
        st.out.message = blocked ? "not run: step '" + blocker + "' did not complete"
                                 : "not run: the run was cancelled";
        progress = true;
        continue;
      }
      all_settled = false;
      if (!ready || running >= std::max(1, opt_.max_parallel)) continue;
      st.started = true;
      running++;
      progress = true;
      threads.emplace_back([this, &st, &running, token = current_cancel()] {
        CancelScope scope(token);
        run_step(st);
        std::lock_guard l(mu_);
        st.done = true;
        running--;
        cv_.notify_all();
      });
    }
    if (all_settled) break;
    if (!progress) cv_.wait(lock);
  }
  lock.unlock();
  for (auto& t : threads) t.join();
}

ValidationOutcome Run::validate(const config::ValidationStep& v, bool after_steps) {
  ValidationOutcome out;
  out.name = v.name;
  out.threshold = v.threshold;
  Progress p;
  p.phase = (after_steps ? "validation:" : "prerequisite:") + v.name;
  rep_.progress(p);
  const auto start = Clock::now();
  const auto until = start + std::chrono::seconds(v.timeout_seconds);
  std::vector<HealthCheck> checks;
  for (const auto& c : v.checks) checks.push_back(substitute(c, nullptr));
  while (true) {
    out.checks.clear();
    out.passed_checks = 0;
    for (const auto& c : checks) {
      auto left = std::chrono::duration_cast<std::chrono::milliseconds>(until - Clock::now());
      CheckOutcome o = run_check(c, std::clamp(left, std::chrono::milliseconds(500),
                                               std::chrono::milliseconds(10000)),
                                 [&](const std::string& n) { return checksum(n); }, workdir_);
      out.checks.push_back({config::describe(c), o.passed, o.message});
      if (o.passed) out.passed_checks++;
    }
    if (out.passed_checks >= v.threshold) {
      out.passed = true;
      out.passed_at = now();
      break;
    }
    if (Clock::now() >= until || current_cancel().sleep_for(opt_.poll_interval)) break;
  }
  out.seconds = std::chrono::duration<double>(Clock::now() - start).count();
  rep_.validated(out.to_json());
  return out;
}

void Run::finish_services() {
  for (auto& [name, st] : states_) {
    if (!st.service) continue;
    if (opt_.mode == Mode::kReal) {
      (void)st.service->release();  // the recovered service runs on
    } else {
      st.service->send_signal(SIGTERM);
      (void)st.service->wait(CancelToken(), std::chrono::milliseconds(2000));
    }
    st.service.reset();
  }
}

Result<RunResult> Run::run() {
  result_.plan = plan_.name;
  result_.mode = opt_.mode;
  result_.started_at = now();
  result_.rto_target_seconds = plan_.rto.seconds();
  result_.rpo_target_seconds = plan_.rpo.seconds();
  rep_.started({{"plan", plan_.name}, {"mode", opt_.mode == Mode::kDrill ? "drill" : "real"}});
  Status prepared = prepare();
  if (!prepared.ok()) {
    rep_.failed(prepared.error());
    return prepared.error();
  }
  // Prerequisites: every one must pass before anything is restored.
  bool prerequisites_ok = true;
  for (const auto& v : plan_.prerequisites) {
    result_.prerequisites.push_back(validate(v, false));
    if (!result_.prerequisites.back().passed) {
      prerequisites_ok = false;
      result_.error = "prerequisite '" + v.name + "' did not pass: nothing was restored";
      break;
    }
  }
  TimeNs steps_end = now();
  if (prerequisites_ok) {
    run_steps();
    steps_end = now();
    result_.steps_ok = true;
    for (const auto& s : plan_.steps) {
      const StepOutcome& o = states_.at(s.name).out;
      if (o.status != "completed" && o.status != "skipped") {
        result_.steps_ok = false;
        if (result_.error.empty() && o.status != "not_run") result_.error = o.message;
      }
    }
  } else {
    for (const auto& s : plan_.steps) states_.at(s.name).out.message = "not run: a prerequisite failed";
  }
  for (const auto& s : plan_.steps) {
    const StepOutcome& o = states_.at(s.name).out;
    result_.steps.push_back(o);
    result_.restore_seconds += o.restore_seconds.value_or(0);
    result_.replay_seconds += o.replay_seconds.value_or(0);
    if (o.target_time && o.recovered_time) {
      double rpo = std::max(0.0, seconds_between(*o.recovered_time, *o.target_time));
      result_.rpo_seconds = std::max(result_.rpo_seconds.value_or(0), rpo);
    }
  }
  if (result_.steps_ok && !current_cancel().cancelled()) {
    const TimeNs v0 = now();
    result_.validations_ok = true;
    TimeNs last_pass = steps_end;
    for (const auto& v : plan_.validation) {
      result_.validations.push_back(validate(v, true));
      const auto& o = result_.validations.back();
      if (!o.passed) {
        result_.validations_ok = false;
        if (result_.error.empty()) {
          std::string failing;
          for (const auto& c : o.checks) {
            if (!c.passed) failing += (failing.empty() ? "" : "; ") + c.check + ": " + c.message;
          }
          result_.error = "validation '" + v.name + "' failed: " + std::to_string(o.passed_checks) +
                          " of " + std::to_string(o.threshold) + " checks needed passed within " +
                          std::to_string(v.timeout_seconds) + " s (" + failing + ")";
        }
        break;
      }
      last_pass = std::max(last_pass, o.passed_at);
    }
    result_.validation_seconds = seconds_between(v0, now());
    if (result_.validations_ok) result_.rto_seconds = seconds_between(result_.started_at, last_pass);
  }
  result_.cancelled = current_cancel().cancelled();
  if (result_.cancelled && result_.error.empty()) result_.error = "the run was cancelled";
  result_.rto_met = result_.rto_seconds && *result_.rto_seconds <= result_.rto_target_seconds;
  const bool restored_any = std::any_of(result_.steps.begin(), result_.steps.end(), [](const StepOutcome& o) {
    return o.kind == "restore_files" || o.kind == "restore_postgres";
  });
  result_.rpo_met = result_.rpo_seconds ? *result_.rpo_seconds <= result_.rpo_target_seconds
                                        : !restored_any && result_.steps_ok;
  result_.success = result_.steps_ok && result_.validations_ok && result_.rto_met &&
                    result_.rpo_met && !result_.cancelled;
  if (result_.error.empty() && !result_.success) {
    if (!result_.rto_met) {
      result_.error = "the RTO target was missed";
    } else if (!result_.rpo_met) {
      result_.error = "the RPO target was missed";
    }
  }
  // Clean-up, also after a failure or a cancellation.
  finish_services();
  if (opt_.mode == Mode::kDrill) {
    Status removed = sandbox_->destroy();
    if (!removed.ok()) rep_.warning("", "clean-up: " + removed.error().message());
  } else {
    sandbox_->release();
  }
  result_.finished_at = now();
  if (result_.cancelled) {
    rep_.failed(Error(Error::Code::kCancelled, "cancelled"));
  } else {
    rep_.completed(result_.to_json());
  }
  return result_;
}

}  // namespace

nlohmann::json StepOutcome::to_json() const {
  return {{"name", name},
          {"kind", kind},
          {"status", status},
          {"started_at", started_at ? nlohmann::json(format_time(started_at)) : nlohmann::json(nullptr)},
          {"finished_at", finished_at ? nlohmann::json(format_time(finished_at)) : nlohmann::json(nullptr)},
          {"seconds", seconds},
          {"message", message},
          {"output", output},
          {"path", path},
          {"port", port},
          {"target_time", opt_time(target_time)},
          {"recovered_time", opt_time(recovered_time)},
          {"restore_seconds", opt_num(restore_seconds)},
          {"replay_seconds", opt_num(replay_seconds)},
          {"details", details}};
}

nlohmann::json ValidationOutcome::to_json() const {
  nlohmann::json checks_j = nlohmann::json::array();
  for (const auto& c : checks) {
    checks_j.push_back({{"check", c.check}, {"passed", c.passed}, {"message", c.message}});
  }
  return {{"name", name},
          {"passed", passed},
          {"passed_checks", passed_checks},
          {"threshold", threshold},
          {"seconds", seconds},
          {"checks", checks_j}};
}

nlohmann::json RunResult::to_json() const {
  nlohmann::json steps_j = nlohmann::json::array(), val = nlohmann::json::array(),
                 pre = nlohmann::json::array();
  for (const auto& s : steps) steps_j.push_back(s.to_json());
  for (const auto& v : validations) val.push_back(v.to_json());
  for (const auto& v : prerequisites) pre.push_back(v.to_json());
  return {{"plan", plan},
          {"mode", mode == Mode::kDrill ? "drill" : "real"},
          {"started_at", format_time(started_at)},
          {"finished_at", finished_at ? nlohmann::json(format_time(finished_at)) : nlohmann::json(nullptr)},
          {"rto_seconds", opt_num(rto_seconds)},
          {"rpo_seconds", opt_num(rpo_seconds)},
          {"rto_target_seconds", rto_target_seconds},
          {"rpo_target_seconds", rpo_target_seconds},
          {"rto_met", rto_met},
          {"rpo_met", rpo_met},
          {"steps_ok", steps_ok},
          {"validations_ok", validations_ok},
          {"success", success},
          {"cancelled", cancelled},
          {"error", error},
          {"restore_seconds", restore_seconds},
          {"replay_seconds", replay_seconds},
          {"validation_seconds", validation_seconds},
          {"prerequisites", pre},
          {"steps", steps_j},
          {"validations", val}};
}

Status check_drill_safe(const config::Config& config, const config::DrPlan& plan) {
  const auto paths = production_paths(config, plan);
  const auto ports = production_ports(config, plan);
  for (const auto& [where, text] : plan_texts(plan)) {
    for (const auto& p : paths) {
      if (names_path(text, p)) {
        return Error(Error::Code::kInvalidArgument,
                     "plan '" + plan.name + "': " + where + " names the production path " + p +
                         ", which a drill must never touch: use ${STEP.path} or ${sandbox} for "
                         "what the drill restored");
      }
    }
    for (int port : ports) {
      if (names_port(text, port)) {
        return Error(Error::Code::kInvalidArgument,
                     "plan '" + plan.name + "': " + where + " names the production port " +
                         std::to_string(port) +
                         ", which a drill must never use: use ${port} or ${STEP.port}");
      }
    }
  }
  return ok_status();
}

Result<RunResult> run_plan(const config::Config& config, const config::DrPlan& plan,
                           const RunOptions& options, const EventTarget& events) {
  if (!options.open_repository) {
    return Error(Error::Code::kInvalidArgument, "dr: no way to open repositories was given");
  }
  Run run(config, plan, options, events);
  return run.run();
}

}  // namespace haven::dr
