#include "storage/backend.h"

#include <cstring>

#include "storage/azure.h"
#include "storage/local.h"
#include "storage/retry.h"
#include "storage/s3.h"

namespace haven::storage {

const char* type_dir(ObjectType t) {
  switch (t) {
    case ObjectType::kConfig: return "config";
    case ObjectType::kKey: return "keys";
    case ObjectType::kData: return "data";
    case ObjectType::kIndex: return "index";
    case ObjectType::kSnapshot: return "snapshots";
    case ObjectType::kLock: return "locks";
    case ObjectType::kWal: return "wal";
    case ObjectType::kLease: return "leases";
  }
  return "?";
}

const char* type_label(ObjectType t) {
  switch (t) {
    case ObjectType::kConfig: return "config";
    case ObjectType::kKey: return "key";
    case ObjectType::kData: return "pack";
    case ObjectType::kIndex: return "index";
    case ObjectType::kSnapshot: return "snapshot";
    case ObjectType::kLock: return "lock";
    case ObjectType::kWal: return "WAL file";
    case ObjectType::kLease: return "lease";
  }
  return "?";
}

Status check_object_name(const ObjectName& name) {
  if (name.type == ObjectType::kConfig) {
    if (name.name == "config") return ok_status();
    return Error(Error::Code::kInvalidArgument,
                 "invalid config object name '" + name.name + "' (must be \"config\")");
  }
  bool bad = name.name.empty() || name.name[0] == '.' ||
             name.name.find_first_of(std::string("/\0", 2)) != std::string::npos ||
             (name.type == ObjectType::kData && name.name.size() < 2);
  if (bad) {
    return Error(Error::Code::kInvalidArgument, "invalid " + std::string(type_label(name.type)) +
                                                    " object name '" + name.name + "'");
  }
  return ok_status();
}

std::string object_path(const ObjectName& name) {
  switch (name.type) {
    case ObjectType::kConfig: return "config";
    case ObjectType::kData: return std::string("data/") + name.name.substr(0, 2) + "/" + name.name;
    default: return std::string(type_dir(name.type)) + "/" + name.name;
  }
}

std::optional<ObjectName> object_name_of_key(ObjectType type, std::string_view base,
                                             std::string_view key) {
  if (key.substr(0, base.size()) != base) return std::nullopt;
  std::string_view rel = key.substr(base.size());
  if (type == ObjectType::kConfig) {
    if (rel != "config") return std::nullopt;
    return ObjectName{type, "config"};
  }
  std::string_view dir = type_dir(type);
  if (rel.size() <= dir.size() || rel.substr(0, dir.size()) != dir || rel[dir.size()] != '/') {
    return std::nullopt;
  }
  std::string_view name = rel.substr(dir.size() + 1);
  if (type == ObjectType::kData) {
    // data/<xx>/<id>, where xx is the id's first two characters (load() and stat() look there).
    if (name.size() < 5 || name[2] != '/' || name.substr(3, 2) != name.substr(0, 2)) {
      return std::nullopt;
    }
    name = name.substr(3);
  }
  ObjectName out{type, std::string(name)};
  if (!check_object_name(out).ok()) return std::nullopt;
  return out;
}

std::string ObjectName::describe() const {
  if (type == ObjectType::kConfig) return "config";
  return std::string(type_label(type)) + " " + name;
}

namespace {
class BufferedWriter : public ObjectWriter {
 public:
  BufferedWriter(Backend& backend, ObjectName name) : backend_(backend), name_(std::move(name)) {}
  Status append(ByteView data) override {
    data_.insert(data_.end(), data.begin(), data.end());
    return ok_status();
  }
  uint64_t size() const override { return data_.size(); }
  Status commit() override { return backend_.save(name_, data_); }

 private:
  Backend& backend_;
  ObjectName name_;
  Bytes data_;
};
}  // namespace

Result<std::unique_ptr<ObjectWriter>> Backend::open_writer(const ObjectName& name) {
  return std::unique_ptr<ObjectWriter>(std::make_unique<BufferedWriter>(*this, name));
}

Status Backend::load_streaming(const ObjectName& name, uint64_t offset, std::span<uint8_t> out,
                               const std::function<void(size_t)>& arrived) {
  if (out.empty() || !streams_reads()) {
    HAVEN_TRY(load_into(name, offset, out));
    arrived(out.size());
    return ok_status();
  }
  size_t got = 0;
  return load_pieces(name, offset, out.size(), [&](ByteView piece) {
    std::memcpy(out.data() + got, piece.data(), piece.size());
    got += piece.size();
    arrived(got);
  });
}

Status Backend::load_pieces(const ObjectName& name, uint64_t offset, uint64_t length,
                            const std::function<void(ByteView)>& piece) {
  if (length == 0) return ok_status();
  HAVEN_ASSIGN(Bytes data, load(name, offset, length));
  if (data.size() != length) {
    return Error(Error::Code::kCorrupt, name.describe() + ": read " + std::to_string(data.size()) +
                                            " bytes at " + std::to_string(offset) + ", expected " +
                                            std::to_string(length));
  }
  piece(data);
  return ok_status();
}

Status Backend::discard(const ObjectName& name) {
  Status st = remove(name);
  if (!st.ok() && st.error().code() == Error::Code::kNotFound) return ok_status();
  return st;
}

Status Backend::load_into(const ObjectName& name, uint64_t offset, std::span<uint8_t> out) {
  size_t got = 0;
  return load_pieces(name, offset, out.size(), [&](ByteView piece) {
    std::memcpy(out.data() + got, piece.data(), piece.size());
    got += piece.size();
  });
}

std::string BackendSettings::get(const std::string& name) const {
  if (!lookup) return "";
  return lookup(name).value_or("");
}

BackendSettings BackendSettings::from_map(std::map<std::string, std::string> values) {
  BackendSettings s;
  s.lookup = [values = std::move(values)](const std::string& name) -> std::optional<std::string> {
    auto it = values.find(name);
    if (it == values.end() || it->second.empty()) return std::nullopt;
    return it->second;
  };
  return s;
}

// Object stores fail transiently (timeouts, resets, 5xx, throttling): every command reaches them
// through the retry decorator.
static Result<std::shared_ptr<Backend>> with_retries(Result<std::shared_ptr<Backend>> be) {
  if (!be.ok()) return be;
  return std::shared_ptr<Backend>(std::make_shared<RetryBackend>(*be));
}

Result<std::shared_ptr<Backend>> open_backend(const std::string& location,
                                              const BackendSettings& settings) {
  if (location.empty()) {
    return Error(Error::Code::kInvalidArgument,
                 "no repository given: pass --repo PATH or set HAVEN_REPOSITORY");
  }
  std::string path = location;
  if (settings.list_page_size < 0 || settings.list_page_size > 1000) {
    return Error(Error::Code::kInvalidArgument,
                 "listing page size " + std::to_string(settings.list_page_size) +
                     " is out of range (1 to 1000, or 0 for the service's default)");
  }
  if (location.rfind("s3:", 0) == 0) return with_retries(open_s3_backend(location.substr(3), settings));
  if (location.rfind("azure:", 0) == 0) return with_retries(open_azure_backend(location.substr(6), settings));
  if (location.rfind("local:", 0) == 0) {
    path = location.substr(6);
  } else {
    auto colon = location.find(':');
    auto slash = location.find('/');
    if (colon != std::string::npos && (slash == std::string::npos || colon < slash)) {
      return Error(Error::Code::kInvalidArgument,
                   "unknown repository location scheme in '" + location.substr(0, colon) +
                       ":': use a path, local:/path, s3:https://host/bucket/prefix, s3:bucket/prefix or azure:container/prefix");
    }
  }
  if (path.empty()) {
    return Error(Error::Code::kInvalidArgument, "empty repository path in '" + location + "'");
  }
  return std::shared_ptr<Backend>(std::make_shared<LocalBackend>(path));
}

}  // namespace haven::storage
