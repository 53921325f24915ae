// config/reader.cc — the diagnostics collector, the typed readers and Fields (decode.h).
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstring>

#include "config/decode.h"

namespace haven::config::detail {

std::string styled(std::string_view key, KeyStyle style) {
  if (style == KeyStyle::kSnake) return std::string(key);
  std::string out;
  bool upper = false;
  for (char c : key) {
    if (c == '_') {
      upper = true;
      continue;
    }
    out += upper ? static_cast<char>(std::toupper(static_cast<unsigned char>(c))) : c;
    upper = false;
  }
  return out;
}

std::string join_path(const std::string& base, std::string_view key) {
  return base.empty() ? std::string(key) : base + "." + std::string(key);
}

std::string index_path(const std::string& base, size_t i) {
  return base + "[" + std::to_string(i) + "]";
}

namespace {

std::string shorten(std::string_view text) {
  constexpr size_t kMax = 60;
  if (text.size() > kMax) return std::string(text.substr(0, kMax - 3)) + "...";
  return std::string(text);
}

}  // namespace

std::string quote(std::string_view text) { return "'" + shorten(text) + "'"; }

// --- Problems ---

void Problems::add(const Node& at, const std::string& path, std::string message,
                   std::string fix) {
  add(at.line, at.column, path, std::move(message), std::move(fix));
}

void Problems::add(int line, int column, const std::string& path, std::string message,
                   std::string fix) {
  list_.push_back(Diagnostic{file_, line, column, path, std::move(message), std::move(fix)});
}

SourceMark Problems::mark(const Node& at, const std::string& path) const {
  return SourceMark{file_, at.line, at.column, path};
}

std::vector<Diagnostic> Problems::take() {
  std::stable_sort(list_.begin(), list_.end(), [](const Diagnostic& a, const Diagnostic& b) {
    return std::pair(a.line, a.column) < std::pair(b.line, b.column);
  });
  return std::move(list_);
}

std::string Problems::describe(const Node& n) const {
  switch (n.kind) {
    case Node::Kind::kNull:
      return "nothing";
    case Node::Kind::kMap:
      return style_ == KeyStyle::kSnake ? "a mapping" : "an object";
    case Node::Kind::kList:
      return style_ == KeyStyle::kSnake ? "a list" : "an array";
    case Node::Kind::kString:
      if (!n.plain) return "the string \"" + shorten(n.text) + "\"";
      return quote(n.text);
    default:
      return quote(n.text);
  }
}

// --- single values ---

namespace {

void no_value(Problems& p, const Node& n, const std::string& path) {
  p.add(n, path, "has no value", "give a value, or remove the key to take the default");
}

// A quoted "7" where a number goes, a quoted "true" where a boolean goes.
bool quoted_but_typed(const Node& n, Node::Kind wanted) {
  if (n.kind != Node::Kind::kString || n.plain) return false;
  if (wanted == Node::Kind::kBool) {
    return n.text == "true" || n.text == "false";
  }
  if (n.text.empty()) return false;
  size_t i = (n.text[0] == '-' || n.text[0] == '+') ? 1 : 0;
  if (i == n.text.size()) return false;
  return std::all_of(n.text.begin() + static_cast<ptrdiff_t>(i), n.text.end(),
                     [](char c) { return c >= '0' && c <= '9'; });
}

std::string range_words(int64_t min, int64_t max) {
  if (max >= kNoMax) return ">= " + std::to_string(min);
  return "from " + std::to_string(min) + " to " + std::to_string(max);
}

}  // namespace

std::optional<std::string> read_string(Problems& p, const Node& n, const std::string& path) {
  if (n.kind == Node::Kind::kString) return n.text;
  if (n.plain && n.is_scalar() && n.kind != Node::Kind::kNull) return n.text;
  if (n.kind == Node::Kind::kNull) {
    no_value(p, n, path);
  } else {
    p.add(n, path, "must be a string, not " + p.describe(n));
  }
  return std::nullopt;
}

std::optional<int64_t> read_int(Problems& p, const Node& n, const std::string& path,
                                int64_t min, int64_t max) {
  if (n.kind == Node::Kind::kNull) {
    no_value(p, n, path);
    return std::nullopt;
  }
  const std::string wanted = "must be a whole number " + range_words(min, max);
  if (n.kind == Node::Kind::kInt && n.integer >= min && n.integer <= max) return n.integer;
  if (quoted_but_typed(n, Node::Kind::kInt)) {
    p.add(n, path, wanted + ", not " + p.describe(n), "remove the quotes");
  } else {
    p.add(n, path, wanted + ", not " + p.describe(n));
  }
  return std::nullopt;
}

std::optional<bool> read_bool(Problems& p, const Node& n, const std::string& path) {
  if (n.kind == Node::Kind::kBool) return n.boolean;
  if (n.kind == Node::Kind::kNull) {
    no_value(p, n, path);
  } else if (quoted_but_typed(n, Node::Kind::kBool)) {
    p.add(n, path, "must be true or false, not " + p.describe(n), "remove the quotes");
  } else {
    p.add(n, path, "must be true or false, not " + p.describe(n));
  }
  return std::nullopt;
}

std::optional<std::vector<std::string>> read_strings(Problems& p, const Node& n,
                                                     const std::string& path) {
  if (n.kind == Node::Kind::kNull) {
    no_value(p, n, path);
    return std::nullopt;
  }
  if (n.kind != Node::Kind::kList) {
    std::string fix;
    if (n.is_scalar()) {
      fix = p.style() == KeyStyle::kSnake ? "write it as a list: [" + n.text + "]"
                                          : "write it as an array: [\"" + n.text + "\"]";
    }
    const char* list = p.style() == KeyStyle::kSnake ? "a list" : "an array";
    p.add(n, path, std::string("must be ") + list + " of strings, not " + p.describe(n), fix);
    return std::nullopt;
  }
  std::vector<std::string> out;
  bool ok = true;
  for (size_t i = 0; i < n.items.size(); i++) {
    auto s = read_string(p, n.items[i], index_path(path, i));
    if (s) {
      out.push_back(*s);
    } else {
      ok = false;
    }
  }
  if (!ok) return std::nullopt;
  return out;
}

std::optional<size_t> read_choice(Problems& p, const Node& n, const std::string& path,
                                  const std::vector<std::string>& choices) {
  std::string all;
  for (const auto& c : choices) all += (all.empty() ? "" : "|") + c;
  if (n.kind == Node::Kind::kNull) {
    no_value(p, n, path);
    return std::nullopt;
  }
  if (n.kind == Node::Kind::kString || (n.plain && n.is_scalar())) {
    for (size_t i = 0; i < choices.size(); i++) {
      if (n.text == choices[i]) return i;
    }
    auto guess = did_you_mean(n.text, choices);
    p.add(n, path, "must be one of " + all + ", not " + quote(n.text),
          guess ? "did you mean '" + *guess + "'?" : "write one of the values listed");
    return std::nullopt;
  }
  p.add(n, path, "must be one of " + all + ", not " + p.describe(n));
  return std::nullopt;
}

// --- Fields ---

Fields::Fields(Problems& p, const Node& map, std::string path) : p_(p), path_(std::move(path)) {
  if (map.kind == Node::Kind::kMap) {
    map_ = &map;
    return;
  }
  const std::string kind = p.style() == KeyStyle::kSnake ? "a mapping" : "an object";
  if (map.kind == Node::Kind::kNull) {
    p.add(map, path_, "has no value",
          p.style() == KeyStyle::kSnake
              ? "give its keys on the lines below it, indented, or remove it"
              : "give an object, or leave the key out");
  } else {
    p.add(map, path_, "must be " + kind + " of keys and values, not " + p.describe(map));
  }
}

std::string Fields::path(std::string_view key) const { return join_path(path_, p_.key(key)); }

const Node* Fields::get(std::string_view key) {
  std::string k = p_.key(key);
  if (std::find(known_.begin(), known_.end(), k) == known_.end()) known_.push_back(k);
  if (map_ == nullptr) return nullptr;
  for (const auto& [name, value] : map_->entries) {
    if (name.text == k) return &value;
  }
  return nullptr;
}

void Fields::missing(std::string_view key, std::string fix) {
  if (map_ == nullptr) return;
  p_.add(*map_, path(key), "required, but missing", std::move(fix));
}

std::optional<std::string> Fields::string(std::string_view key) {
  const Node* n = get(key);
  return n ? read_string(p_, *n, path(key)) : std::nullopt;
}

std::optional<std::string> Fields::required_string(std::string_view key, std::string fix) {
  const Node* n = get(key);
  if (n == nullptr) {
    missing(key, std::move(fix));
    return std::nullopt;
  }
  return read_string(p_, *n, path(key));
}

std::optional<int64_t> Fields::integer(std::string_view key, int64_t min, int64_t max) {
  const Node* n = get(key);
  return n ? read_int(p_, *n, path(key), min, max) : std::nullopt;
}

std::optional<bool> Fields::boolean(std::string_view key) {
  const Node* n = get(key);
  return n ? read_bool(p_, *n, path(key)) : std::nullopt;
}

std::optional<std::vector<std::string>> Fields::strings(std::string_view key) {
  const Node* n = get(key);
  return n ? read_strings(p_, *n, path(key)) : std::nullopt;
}

void Fields::finish() {
  if (map_ == nullptr) return;
  for (const auto& [key, value] : map_->entries) {
    if (std::find(known_.begin(), known_.end(), key.text) != known_.end()) continue;
    auto guess = did_you_mean(key.text, known_);
    std::string fix;
    if (guess) {
      fix = "did you mean '" + *guess + "'?";
    } else {
      std::string all;
      for (const auto& k : known_) all += (all.empty() ? "" : ", ") + k;
      fix = "remove it; the keys here are " + all;
    }
    p_.add(key, join_path(path_, key.text), "unknown key " + quote(key.text), fix);
  }
}

// --- shared checks ---

bool valid_name(std::string_view name) {
  if (name.empty() || name.size() > 255 || name[0] == '.' || name[0] == '-') return false;
  return std::all_of(name.begin(), name.end(), [](char c) {
    return std::isalnum(static_cast<unsigned char>(c)) || c == '.' || c == '_' || c == '-';
  });
}

void check_name(Problems& p, const Node& at, const std::string& path, const std::string& name,
                std::string_view what) {
  if (valid_name(name)) return;
  p.add(at, path,
        "must be 1 to 255 letters, digits, '.', '_' or '-', not starting with '.' or '-', not " +
            quote(name),
        "a " + std::string(what) + "'s name appears in URLs and file names: e.g. 'etc-daily'");
}

bool check_absolute(Problems& p, const Node& at, const std::string& path,
                    const std::string& value, std::string_view example) {
  if (!value.empty() && value[0] == '/') return true;
  p.add(at, path, "must be an absolute path, not " + quote(value),
        "write the whole path, e.g. " + std::string(example));
  return false;
}

int open_named_file(Problems& p, const Node& at, const std::string& path,
                    const std::string& file, const std::string& fix_missing) {
  // O_NONBLOCK: a FIFO without a writer must not hang the loader.
  int fd = ::open(file.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY);
  if (fd < 0) {
    int err = errno;
    if (err == ENOENT || err == ENOTDIR) {
      p.add(at, path, quote(file) + " does not exist", fix_missing);
    } else if (err == EACCES || err == EPERM) {
      p.add(at, path, quote(file) + " cannot be read: permission denied",
            "make it readable by the user the server runs as (and by nobody else: chmod 600)");
    } else {
      p.add(at, path, quote(file) + " cannot be read: " + std::strerror(err));
    }
    return -1;
  }
  struct stat st;
  if (::fstat(fd, &st) != 0) {
    int err = errno;
    ::close(fd);
    p.add(at, path, quote(file) + " cannot be read: " + std::strerror(err));
    return -1;
  }
  if (S_ISDIR(st.st_mode)) {
    ::close(fd);
    p.add(at, path, quote(file) + " is a directory, not a file", "give the path of a file");
    return -1;
  }
  // Blocking reads from here on (O_NONBLOCK only kept open() from waiting on a FIFO).
  ::fcntl(fd, F_SETFL, ::fcntl(fd, F_GETFL) & ~O_NONBLOCK);
  return fd;
}

}  // namespace haven::config::detail
