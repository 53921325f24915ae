// config/tree.cc — haven.yaml (yaml-cpp) and a policy's JSON (nlohmann) into the one Node
// tree the decoders read. yaml-cpp's and nlohmann's exceptions stop here.
#include <charconv>
#include <sstream>
#include <map>
#include <string_view>

#include <nlohmann/json.hpp>
#include <yaml-cpp/eventhandler.h>
#include <yaml-cpp/yaml.h>

#include "config/decode.h"

namespace haven::config::detail {

namespace {

bool is_core_bool(const std::string& s, bool& value) {
  if (s == "true" || s == "True" || s == "TRUE") {
    value = true;
    return true;
  }
  if (s == "false" || s == "False" || s == "FALSE") {
    value = false;
    return true;
  }
  return false;
}

// Skips the digits at s[i...]; returns how many there were.
size_t skip_digits(std::string_view s, size_t& i) {
  size_t start = i;
  while (i < s.size() && s[i] >= '0' && s[i] <= '9') i++;
  return i - start;
}

// [-+]?[0-9]+
bool is_core_int(std::string_view s) {
  size_t i = (!s.empty() && (s[0] == '-' || s[0] == '+')) ? 1 : 0;
  return skip_digits(s, i) > 0 && i == s.size();
}

// [-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?, [-+]?.inf, .nan (in their three cases)
bool is_core_float(std::string_view s) {
  for (std::string_view special : {".inf", ".Inf", ".INF", "+.inf", "+.Inf", "+.INF", "-.inf",
                                   "-.Inf", "-.INF", ".nan", ".NaN", ".NAN"}) {
    if (s == special) return true;
  }
  size_t i = (!s.empty() && (s[0] == '-' || s[0] == '+')) ? 1 : 0;
  size_t digits = skip_digits(s, i);
  if (i < s.size() && s[i] == '.') {
    i++;
    size_t fraction = skip_digits(s, i);
    if (digits == 0 && fraction == 0) return false;
  } else if (digits == 0) {
    return false;
  }
  if (i < s.size() && (s[i] == 'e' || s[i] == 'E')) {
    i++;
    if (i < s.size() && (s[i] == '-' || s[i] == '+')) i++;
    if (skip_digits(s, i) == 0) return false;
  }
  return i == s.size();
}

// YAML 1.2 core schema: decimal integers and floats (hex and octal stay strings: a number
// reader then says they are not whole numbers).
void type_plain_scalar(Node& n) {
  n.kind = Node::Kind::kString;
  if (is_core_bool(n.text, n.boolean)) {
    n.kind = Node::Kind::kBool;
  } else if (is_core_int(n.text)) {
    const char* b = n.text.data() + (n.text[0] == '+' ? 1 : 0);
    const char* e = n.text.data() + n.text.size();
    auto [ptr, ec] = std::from_chars(b, e, n.integer);
    // Too large for 64 bits: still a number, just not one any key accepts.
    n.kind = (ec == std::errc() && ptr == e) ? Node::Kind::kInt : Node::Kind::kFloat;
  } else if (is_core_float(n.text)) {
    n.kind = Node::Kind::kFloat;
  }
}

void set_mark(Node& n, const YAML::Mark& m) {
  if (m.is_null()) return;
  n.line = m.line + 1;
  n.column = m.column + 1;
}

Node from_yaml(const YAML::Node& y, Problems& p, const std::string& path) {
  Node n;
  set_mark(n, y.Mark());
  switch (y.Type()) {
    case YAML::NodeType::Undefined:
    case YAML::NodeType::Null:
      n.kind = Node::Kind::kNull;
      break;
    case YAML::NodeType::Scalar:
      n.text = y.Scalar();
      // "?" is the tag of a plain scalar; "!" of a quoted or block one; an explicit !!str too.
      if (y.Tag() == "!" || y.Tag() == "tag:yaml.org,2002:str") {
        n.kind = Node::Kind::kString;
      } else {
        n.plain = true;
        type_plain_scalar(n);
      }
      break;
    case YAML::NodeType::Sequence:
      n.kind = Node::Kind::kList;
      for (const auto& item : y) {
        n.items.push_back(from_yaml(item, p, index_path(path, n.items.size())));
      }
      break;
    case YAML::NodeType::Map: {
      n.kind = Node::Kind::kMap;
      std::map<std::string, int> first_line;
      for (auto it = y.begin(); it != y.end(); ++it) {
        Node key;
        set_mark(key, it->first.Mark());
        if (!it->first.IsScalar()) {
          p.add(key, path, "a key must be a plain name, not a list or a mapping",
                "write the key as a word followed by ':'");
          continue;
        }
        key.kind = Node::Kind::kString;
        key.text = it->first.Scalar();
        Node value = from_yaml(it->second, p, join_path(path, key.text));
        // yaml-cpp places an empty value where the next line starts: say the key instead.
        if (value.kind == Node::Kind::kNull) {
          value.line = key.line;
          value.column = key.column;
        }
        auto [pos, fresh] = first_line.emplace(key.text, key.line);
        if (!fresh) {
          p.add(key, join_path(path, key.text),
                "duplicate key " + quote(key.text) + " (first given at line " +
                    std::to_string(pos->second) + ")",
                "keep one of them");
          continue;
        }
        n.entries.emplace_back(std::move(key), std::move(value));
      }
      break;
    }
  }
  return n;
}

// Whether line `line` (1-based) of `text` has a tab in its indentation.
bool tab_indented(const std::string& text, int line) {
  size_t at = 0;
  for (int i = 1; i < line && at != std::string::npos; i++) {
    at = text.find('\n', at);
    if (at != std::string::npos) at++;
  }
  if (at == std::string::npos) return false;
  for (; at < text.size() && (text[at] == ' ' || text[at] == '\t'); at++) {
    if (text[at] == '\t') return true;
  }
  return false;
}

// Where each document starts, from a parse that builds nothing. It stops after the second
// document: yaml-cpp 0.7's LoadAll() never ends on some malformed input ("," alone: the parser
// reports an empty document again and again without moving on, yaml-cpp PR #1319), so Haven
// never asks for more than two.
class DocumentStarts : public YAML::EventHandler {
 public:
  void OnDocumentStart(const YAML::Mark& mark) override { starts.push_back(mark); }
  void OnDocumentEnd() override {}
  void OnNull(const YAML::Mark&, YAML::anchor_t) override {}
  void OnAlias(const YAML::Mark&, YAML::anchor_t) override {}
  void OnScalar(const YAML::Mark&, const std::string&, YAML::anchor_t, const std::string&) override {}
  void OnSequenceStart(const YAML::Mark&, const std::string&, YAML::anchor_t, YAML::EmitterStyle::value) override {}
  void OnSequenceEnd() override {}
  void OnMapStart(const YAML::Mark&, const std::string&, YAML::anchor_t, YAML::EmitterStyle::value) override {}
  void OnMapEnd() override {}
  std::vector<YAML::Mark> starts;
};

}  // namespace

std::optional<Node> node_from_yaml(const std::string& text, Problems& p) {
  std::vector<YAML::Node> docs;
  try {
    std::istringstream in(text);
    YAML::Parser parser(in);
    DocumentStarts probe;
    if (parser.HandleNextDocument(probe)) (void)parser.HandleNextDocument(probe);
    if (probe.starts.size() >= 2 && probe.starts[1].pos <= probe.starts[0].pos) {
      // The parser did not move: the text at that point is no YAML it can read.
      const YAML::Mark& m = probe.starts[0];
      p.add(m.line + 1, m.column + 1, "", "YAML syntax error: unexpected text that starts no value",
            "check for a stray ',' or bracket near this point; a value starting with ',' must be quoted");
      return std::nullopt;
    }
    if (!probe.starts.empty()) docs.push_back(YAML::Load(text));  // the first document only
    if (probe.starts.size() >= 2) {
      Node second;
      set_mark(second, probe.starts[1]);
      p.add(second, "", "a second YAML document: haven.yaml holds one",
            "remove the '---' line and merge what follows into the first document");
      return std::nullopt;
    }
  } catch (const YAML::Exception& e) {
    int line = e.mark.is_null() ? 0 : e.mark.line + 1;
    int column = e.mark.is_null() ? 0 : e.mark.column + 1;
    // The classics: an unquoted cron expression starting with '*' reads as a YAML alias; a
    // tab in the indentation confuses the parser about the structure.
    std::string fix =
        "check the indentation (spaces, not tabs), the ':' after each key and the closing "
        "brackets and quotes near this point";
    if (e.msg.find("alias") != std::string::npos || e.msg.find("anchor") != std::string::npos) {
      fix = "a value starting with '*' must be quoted, e.g. cron: \"*/30 * * * *\" (an "
            "unquoted * starts a YAML alias)";
    } else if (line > 0 && tab_indented(text, line)) {
      fix = "indent with spaces: line " + std::to_string(line) + " is indented with a tab";
    }
    p.add(line, column, "", "YAML syntax error: " + e.msg, fix);
    return std::nullopt;
  }
  if (docs.empty()) return Node{};
  try {
    return from_yaml(docs[0], p, "");
  } catch (const YAML::Exception& e) {  // not expected: reading a loaded tree does not throw
    p.add(0, 0, "", std::string("YAML error: ") + e.what());
    return std::nullopt;
  }
}

Node node_from_json(const nlohmann::json& j) {
  Node n;
  using T = nlohmann::json::value_t;
  switch (j.type()) {
    case T::null:
    case T::discarded:
      n.kind = Node::Kind::kNull;
      break;
    case T::boolean:
      n.kind = Node::Kind::kBool;
      n.boolean = j.get<bool>();
      n.text = n.boolean ? "true" : "false";
      break;
    case T::number_integer:
      n.kind = Node::Kind::kInt;
      n.integer = j.get<int64_t>();
      n.text = j.dump();
      break;
    case T::number_unsigned: {
      uint64_t u = j.get<uint64_t>();
      n.text = j.dump();
      if (u <= static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) {
        n.kind = Node::Kind::kInt;
        n.integer = static_cast<int64_t>(u);
      } else {
        n.kind = Node::Kind::kFloat;
      }
      break;
    }
    case T::number_float:
      n.kind = Node::Kind::kFloat;
      n.text = j.dump();
      break;
    case T::string:
      n.kind = Node::Kind::kString;
      n.text = j.get<std::string>();
      break;
    case T::binary:
      n.kind = Node::Kind::kString;
      n.text = "(binary)";
      break;
    case T::object:
      n.kind = Node::Kind::kMap;
      for (const auto& [k, v] : j.items()) {
        Node key;
        key.kind = Node::Kind::kString;
        key.text = k;
        n.entries.emplace_back(std::move(key), node_from_json(v));
      }
      break;
    case T::array:
      n.kind = Node::Kind::kList;
      for (const auto& v : j) n.items.push_back(node_from_json(v));
      break;
  }
  return n;
}

}  // namespace haven::config::detail
