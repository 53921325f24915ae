// config/secret.h — Secret, the string type of every credential and password haven.yaml
// resolves (a location's repository password, its S3 or Azure credentials).
//
// A Secret shows itself only through reveal(), which the code that hands the value to a backend
// or a key derivation calls. Everything else prints "***": operator<< (and so gtest's failure
// messages), to_string(), and nlohmann's JSON conversion. The config module never puts a
// revealed value into a message, a diagnostic or a JSON document (tests/config plant a
// recognisable secret and search every output for it).
//
// The value is overwritten before its memory is released (destruction, assignment, move).
// Thread-safety: a const Secret may be read from several threads; it is a plain value.
#pragma once

#include <iosfwd>
#include <string>
#include <utility>

#include <nlohmann/json_fwd.hpp>

namespace haven::config {

// What every redacted value is shown as.
inline constexpr const char* kRedacted = "***";

class Secret {
 public:
  Secret() = default;
  explicit Secret(std::string value) : value_(std::move(value)) {}
  Secret(const Secret& other) : value_(other.value_) {}
  Secret(Secret&& other) noexcept;
  Secret& operator=(const Secret& other);
  Secret& operator=(Secret&& other) noexcept;
  ~Secret();

  // The value itself: only for handing it to what needs it (a backend's settings, a KDF).
  const std::string& reveal() const { return value_; }
  bool empty() const { return value_.empty(); }

  // Compares the values in constant time (for equal lengths).
  friend bool operator==(const Secret& a, const Secret& b);

 private:
  void wipe();
  std::string value_;
};

// "***", whatever the value.
std::string to_string(const Secret& secret);
std::ostream& operator<<(std::ostream& os, const Secret& secret);
// The JSON string "***". There is deliberately no from_json: a secret never arrives in JSON.
void to_json(nlohmann::json& j, const Secret& secret);

}  // namespace haven::config
