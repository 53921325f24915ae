#include "config/secret.h"

#include <ostream>

#include <nlohmann/json.hpp>

#include "util/bytes.h"

namespace haven::config {

Secret::Secret(Secret&& other) noexcept : value_(other.value_) { other.wipe(); }

Secret& Secret::operator=(const Secret& other) {
  if (this != &other) {
    wipe();
    value_ = other.value_;
  }
  return *this;
}

Secret& Secret::operator=(Secret&& other) noexcept {
  if (this != &other) {
    wipe();
    // Copied, then wiped at the source: a moved-from std::string may keep its bytes in its
    // small-string buffer, which wipe() could no longer reach.
    value_ = other.value_;
    other.wipe();
  }
  return *this;
}

Secret::~Secret() { wipe(); }

void Secret::wipe() {
  if (!value_.empty()) secure_zero(value_.data(), value_.size());
  value_.clear();
}

bool operator==(const Secret& a, const Secret& b) {
  if (a.value_.size() != b.value_.size()) return false;
  return equal_constant_time(as_bytes(a.value_), as_bytes(b.value_));
}

std::string to_string(const Secret&) { return kRedacted; }

std::ostream& operator<<(std::ostream& os, const Secret&) { return os << kRedacted; }

void to_json(nlohmann::json& j, const Secret&) { j = kRedacted; }

}  // namespace haven::config
