// catalog/catalog.cc — what every Catalog implementation shares: the validation of rows before
// they are written. (The SQLite implementation is sqlite_catalog.cc.)
#include "catalog/catalog.h"

#include <cmath>
#include <string_view>

namespace haven::catalog {
namespace {

constexpr size_t kNameMax = 255;  // the seed's VARCHAR(255)
constexpr size_t kShortMax = 50;  // VARCHAR(50): regions, storage classes, time zones
constexpr size_t kCronMax = 100;  // VARCHAR(100)

Error invalid(std::string_view what, std::string_view field, std::string_view rule) {
  return Error(Error::Code::kInvalidArgument,
               std::string(what) + ": " + std::string(field) + " " + std::string(rule));
}

// Collects the first violation; `ok()` until one is found.
class Checker {
 public:
  explicit Checker(std::string what) : what_(std::move(what)) {}

  void nonempty(std::string_view field, const std::string& v, size_t max) {
    if (v.empty()) fail(field, "must not be empty");
    length(field, v, max);
  }
  void length(std::string_view field, const std::string& v, size_t max) {
    if (v.size() > max) fail(field, "must be at most " + std::to_string(max) + " characters");
  }
  void optional_nonempty(std::string_view field, const std::optional<std::string>& v) {
    if (v && v->empty()) fail(field, "must not be empty when set (leave it unset instead)");
  }
  template <typename T>
  void at_least(std::string_view field, T v, T min) {
    if (v < min)
      fail(field, "must be at least " + std::to_string(min) + ", not " + std::to_string(v));
  }
  template <typename T>
  void at_least(std::string_view field, const std::optional<T>& v, T min) {
    if (v) at_least(field, *v, min);
  }
  void rate(std::string_view field, const std::optional<double>& v) {
    if (v && (!std::isfinite(*v) || *v < 0)) fail(field, "must be a finite number >= 0");
  }
  void time(std::string_view field, const std::optional<TimeNs>& v) {
    if (v && *v < 0) fail(field, "must not be before 1970");
  }
  void object(std::string_view field, const nlohmann::json& v) {
    if (!v.is_object()) fail(field, "must be a JSON object, not " + std::string(v.type_name()));
  }
  void object_or_null(std::string_view field, const nlohmann::json& v) {
    if (!v.is_null() && !v.is_object()) {
      fail(field, "must be a JSON object or null, not " + std::string(v.type_name()));
    }
  }
  void structured_or_null(std::string_view field, const nlohmann::json& v) {
    if (!v.is_null() && !v.is_object() && !v.is_array()) {
      fail(field, "must be a JSON object, an array or null, not " + std::string(v.type_name()));
    }
  }
  void not_discarded(std::string_view field, const nlohmann::json& v) {
    if (v.is_discarded()) fail(field, "is not a JSON value");
  }
  void strings(std::string_view field, const std::vector<std::string>& v, size_t max) {
    for (const auto& s : v) {
      if (s.empty() || s.size() > max) {
        fail(field,
             "must hold non-empty entries of at most " + std::to_string(max) + " characters");
        return;
      }
    }
  }
  void snapshot(std::string_view field, const std::optional<std::string>& v) {
    if (v && !normalize_snapshot_id(*v)) {
      fail(field, "must be a snapshot ID: 1 to 64 hex digits, not '" + v->substr(0, 80) + "'");
    }
  }

  Status status() const {
    if (error_) return *error_;
    return ok_status();
  }

 private:
  void fail(std::string_view field, const std::string& rule) {
    if (!error_) error_ = invalid(what_, field, rule);
  }
  std::string what_;
  std::optional<Error> error_;
};

}  // namespace

std::optional<std::string> normalize_snapshot_id(const std::string& hex) {
  if (hex.empty() || hex.size() > 64) return std::nullopt;
  std::string out = hex;
  for (char& c : out) {
    if (c >= 'A' && c <= 'F') c = static_cast<char>(c - 'A' + 'a');
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return std::nullopt;
  }
  return out;
}

Status validate(const PolicyRow& r) {
  Checker c("policy '" + r.name.substr(0, kNameMax) + "'");
  c.nonempty("name", r.name, kNameMax);
  c.length("schedule_cron", r.schedule_cron, kCronMax);
  c.nonempty("timezone", r.timezone, kShortMax);
  c.at_least("retention_daily", r.retention_daily, 0);
  c.at_least("retention_weekly", r.retention_weekly, 0);
  c.at_least("retention_monthly", r.retention_monthly, 0);
  c.at_least("retention_yearly", r.retention_yearly, 0);
  c.at_least("max_parallel_jobs", r.max_parallel_jobs, 1);
  c.at_least("bandwidth_limit_mbps", r.bandwidth_limit_mbps, 1);
  c.structured_or_null("resource_filters", r.resource_filters);
  c.object("spec", r.spec);
  c.optional_nonempty("location_id", r.location_id);
  c.optional_nonempty("description", r.description);
  return c.status();
}

Status validate(const LocationRow& r) {
  Checker c("storage location '" + r.name.substr(0, kNameMax) + "'");
  c.nonempty("name", r.name, kNameMax);
  c.nonempty("primary_region", r.primary_region, kShortMax);
  c.strings("secondary_regions", r.secondary_regions, kShortMax);
  c.object("connection_config", r.connection_config);
  c.nonempty("storage_class", r.storage_class, kShortMax);
  c.at_least("total_capacity_gb", r.total_capacity_gb, int64_t{0});
  c.at_least("used_capacity_gb", r.used_capacity_gb, int64_t{0});
  c.at_least("max_throughput_mbps", r.max_throughput_mbps, int64_t{0});
  c.structured_or_null("access_controls", r.access_controls);
  c.strings("data_residency_requirements", r.data_residency_requirements, kNameMax);
  c.strings("compliance_certifications", r.compliance_certifications, kNameMax);
  c.time("last_health_check", r.last_health_check);
  return c.status();
}

Status validate(const ExecutionRow& r) {
  Checker c("backup execution" +
            (r.execution_id.empty() ? "" : " '" + r.execution_id.substr(0, kNameMax) + "'"));
  c.length("execution_id", r.execution_id, kNameMax);
  c.optional_nonempty("policy_id", r.policy_id);
  c.at_least("started_at", r.started_at, TimeNs{0});
  c.time("completed_at", r.completed_at);
  c.at_least("backup_size_bytes", r.backup_size_bytes, int64_t{0});
  c.at_least("compressed_size_bytes", r.compressed_size_bytes, int64_t{0});
  c.at_least("files_backed_up", r.files_backed_up, int64_t{0});
  c.at_least("duration_seconds", r.duration_seconds, int64_t{0});
  c.rate("transfer_rate_mbps", r.transfer_rate_mbps);
  c.nonempty("backup_location", r.backup_location, 4096);
  c.nonempty("storage_class", r.storage_class, kShortMax);
  c.time("integrity_check_completed_at", r.integrity_check_completed_at);
  c.at_least("retry_count", r.retry_count, 0);
  c.snapshot("snapshot_id", r.snapshot_id);
  c.time("scheduled_for", r.scheduled_for);
  c.optional_nonempty("server_instance", r.server_instance);
  return c.status();
}

Status validate(const RestoreRow& r) {
  Checker c("restore" +
            (r.request_id.empty() ? "" : " '" + r.request_id.substr(0, kNameMax) + "'"));
  c.length("request_id", r.request_id, kNameMax);
  c.optional_nonempty("source_backup_id", r.source_backup_id);
  c.snapshot("snapshot_id", r.snapshot_id);
  c.time("point_in_time", r.point_in_time);
  c.nonempty("target_location", r.target_location, 4096);
  c.structured_or_null("restore_scope", r.restore_scope);
  c.structured_or_null("restore_options", r.restore_options);
  c.at_least("started_at", r.started_at, TimeNs{0});
  c.time("completed_at", r.completed_at);
  c.rate("data_restored_gb", r.data_restored_gb);
  c.at_least("duration_seconds", r.duration_seconds, int64_t{0});
  c.rate("restore_rate_mbps", r.restore_rate_mbps);
  c.structured_or_null("validation_results", r.validation_results);
  c.at_least("retry_count", r.retry_count, 0);
  c.object("request", r.request);
  c.optional_nonempty("server_instance", r.server_instance);
  return c.status();
}

Status validate(const EventRow& r) {
  Checker c("event '" + r.kind.substr(0, 100) + "'");
  c.nonempty("kind", r.kind, 100);
  c.at_least("time", r.time, TimeNs{0});
  c.optional_nonempty("operation_id", r.operation_id);
  c.not_discarded("payload", r.payload);
  return c.status();
}

Status validate_token(const std::string& name, const std::string& token_hash) {
  Checker c("API token '" + name.substr(0, kNameMax) + "'");
  c.nonempty("name", name, kNameMax);
  c.nonempty("token_hash", token_hash, 512);
  return c.status();
}

Status validate(const MonitorRow& r) {
  Checker c("monitor '" + r.monitor_name.substr(0, kNameMax) + "'");
  c.nonempty("monitor_name", r.monitor_name, kNameMax);
  c.structured_or_null("resource_filters", r.resource_filters);
  c.at_least("check_frequency_minutes", r.check_frequency_minutes, 1);
  c.structured_or_null("warning_threshold", r.warning_threshold);
  c.structured_or_null("critical_threshold", r.critical_threshold);
  c.strings("alert_channels", r.alert_channels, kNameMax);
  c.structured_or_null("escalation_policy", r.escalation_policy);
  return c.status();
}

Status validate(const AlertRow& r) {
  Checker c("alert '" + r.alert_key.substr(0, kNameMax) + "'");
  c.nonempty("alert_key", r.alert_key, 1024);
  c.nonempty("kind", r.kind, 100);
  c.optional_nonempty("monitor_id", r.monitor_id);
  c.optional_nonempty("policy_id", r.policy_id);
  c.length("summary", r.summary, 4096);
  c.object("details", r.details);
  c.time("acknowledged_at", r.acknowledged_at);
  c.optional_nonempty("acknowledged_by", r.acknowledged_by);
  c.time("resolved_at", r.resolved_at);
  c.at_least("escalation_level", r.escalation_level, 0);
  c.time("escalated_at", r.escalated_at);
  return c.status();
}

}  // namespace haven::catalog
