#include "repo/snapshot.h"

#include <sys/stat.h>

#include <cstring>

#include "repo/cbor.h"

namespace haven::repo {

using nlohmann::json;

namespace {
json::binary_t bin(const Id& id) { return json::binary_t(std::vector<uint8_t>(id.begin(), id.end())); }

Id get_id(const json& v) {
  const auto& b = v.get_binary();
  if (b.size() != 32) throw json::type_error::create(302, "id must be 32 bytes", nullptr);
  Id id;
  std::memcpy(id.data(), b.data(), 32);
  return id;
}
}  // namespace

std::optional<Node::Type> node_type_of_mode(uint32_t st_mode) {
  switch (st_mode & S_IFMT) {
    case S_IFREG: return Node::Type::kFile;
    case S_IFDIR: return Node::Type::kDir;
    case S_IFLNK: return Node::Type::kSymlink;
    case S_IFIFO: return Node::Type::kFifo;
    case S_IFCHR: return Node::Type::kCharDev;
    case S_IFBLK: return Node::Type::kBlockDev;
    case S_IFSOCK: return Node::Type::kSocket;
  }
  return std::nullopt;
}

const char* node_type_name(Node::Type t) {
  switch (t) {
    case Node::Type::kFile: return "file";
    case Node::Type::kDir: return "dir";
    case Node::Type::kSymlink: return "symlink";
    case Node::Type::kFifo: return "fifo";
    case Node::Type::kCharDev: return "chardev";
    case Node::Type::kBlockDev: return "blockdev";
    case Node::Type::kSocket: return "socket";
  }
  return "?";
}

Bytes encode_snapshot(const Snapshot& s) {
  json j;
  j["time"] = s.time;
  j["end_time"] = s.end_time;
  j["tree"] = bin(s.tree);
  j["paths"] = s.paths;
  if (!s.names.empty()) j["names"] = s.names;
  j["hostname"] = s.hostname;
  j["username"] = s.username;
  j["tags"] = s.tags;
  j["strategy"] = s.strategy;
  if (s.parent) j["parent"] = bin(*s.parent);
  j["stats"] = s.stats;
  j["program_version"] = s.program_version;
  if (!s.meta.empty()) j["meta"] = s.meta;
  return json::to_cbor(j);
}

Result<Snapshot> decode_snapshot(ByteView body, const std::string& what) {
  try {
    json j = cbor::parse(body);
    Snapshot s;
    s.time = cbor::get_int<TimeNs>(j.at("time"));
    s.end_time = cbor::get_int_or<TimeNs>(j, "end_time", 0);
    s.tree = get_id(j.at("tree"));
    s.paths = j.at("paths").get<std::vector<std::string>>();
    s.names = j.value("names", std::vector<std::string>{});
    if (!s.names.empty() && s.names.size() != s.paths.size()) {
      return Error(Error::Code::kCorrupt, what + ": malformed snapshot (names and paths differ in number)");
    }
    s.hostname = j.value("hostname", "");
    s.username = j.value("username", "");
    s.tags = j.value("tags", std::vector<std::string>{});
    s.strategy = j.value("strategy", "");
    if (j.contains("parent")) s.parent = get_id(j["parent"]);
    if (auto it = j.find("stats"); it != j.end()) {
      for (const auto& [k, v] : it->items()) s.stats[k] = cbor::get_int<uint64_t>(v);
    }
    s.program_version = j.value("program_version", "");
    s.meta = j.value("meta", std::map<std::string, std::string>{});
    return s;
  } catch (const json::exception& e) {
    return Error(Error::Code::kCorrupt, what + ": malformed snapshot");
  }
}

// Trees are written and read without a DOM (cbor::Writer, cbor::Reader): one per directory in
// every backup, restore and check. The bytes are what json::to_cbor wrote for the same node
// objects before (keys in std::string order, shortest heads), so a tree's ID did not change.
Bytes encode_tree(const Tree& t) {
  Bytes out;
  out.reserve(64 + t.nodes.size() * 160);
  cbor::Writer w(out);
  w.map(1);
  w.text("nodes");
  w.array(t.nodes.size());
  for (const auto& n : t.nodes) {
    size_t fields = 12 + !n.user.empty() + !n.group.empty() + (n.rdev != 0) + !n.link_target.empty() +
                    !n.xattrs.empty() + !n.content.empty() + n.subtree.has_value();
    w.map(fields);
    w.text("atime");
    w.sint(n.atime);
    if (!n.content.empty()) {
      w.text("content");
      w.array(n.content.size());
      for (const auto& c : n.content) {
        if (c.whole()) {
          w.bytes(ByteView(c.id.data(), c.id.size()));
        } else {
          w.array(3);
          w.bytes(ByteView(c.id.data(), c.id.size()));
          w.uint(c.offset);
          w.uint(c.length);
        }
      }
    }
    w.text("ctime");
    w.sint(n.ctime);
    w.text("device");
    w.uint(n.device);
    w.text("gid");
    w.uint(n.gid);
    if (!n.group.empty()) {
      w.text("group");
      w.text(n.group);
    }
    w.text("inode");
    w.uint(n.inode);
    if (!n.link_target.empty()) {
      w.text("link_target");
      w.bytes(n.link_target);
    }
    w.text("links");
    w.uint(n.links);
    w.text("mode");
    w.uint(n.mode);
    w.text("mtime");
    w.sint(n.mtime);
    w.text("name");
    w.bytes(n.name);
    if (n.rdev) {
      w.text("rdev");
      w.uint(n.rdev);
    }
    w.text("size");
    w.uint(n.size);
    if (n.subtree) {
      w.text("subtree");
      w.bytes(ByteView(n.subtree->data(), n.subtree->size()));
    }
    w.text("type");
    w.sint(static_cast<int>(n.type));
    w.text("uid");
    w.uint(n.uid);
    if (!n.user.empty()) {
      w.text("user");
      w.text(n.user);
    }
    if (!n.xattrs.empty()) {
      w.text("xattrs");
      w.array(n.xattrs.size());
      for (const auto& [k, v] : n.xattrs) {
        w.array(2);
        w.bytes(k);
        w.bytes(v);
      }
    }
  }
  return out;
}

namespace {
Id read_id(cbor::Reader& r) {
  ByteView b = r.bytes();
  if (b.size() != 32) throw json::type_error::create(302, "id must be 32 bytes", nullptr);
  Id id;
  std::memcpy(id.data(), b.data(), 32);
  return id;
}
std::string read_bytes(cbor::Reader& r) {
  ByteView b = r.bytes();
  return std::string(reinterpret_cast<const char*>(b.data()), b.size());
}

// One node: a map whose keys may come in any order (a later duplicate wins, as in a DOM);
// unknown keys are skipped, missing required ones refused.
Node read_node(cbor::Reader& r) {
  Node n;
  enum : unsigned { kName = 1, kType = 2, kMode = 4, kUid = 8, kGid = 16, kMtime = 32, kSize = 64 };
  unsigned have = 0;
  size_t fields = r.map();
  for (size_t f = 0; f < fields; f++) {
    std::string_view k = r.text();
    if (k == "name") {
      n.name = read_bytes(r);
      have |= kName;
    } else if (k == "type") {
      int type = r.integer<int>();
      if (type < 0 || type > static_cast<int>(Node::Type::kSocket)) {
        throw json::type_error::create(302, "unknown node type", nullptr);
      }
      n.type = static_cast<Node::Type>(type);
      have |= kType;
    } else if (k == "mode") {
      n.mode = r.integer<uint32_t>();
      have |= kMode;
    } else if (k == "uid") {
      n.uid = r.integer<uint32_t>();
      have |= kUid;
    } else if (k == "gid") {
      n.gid = r.integer<uint32_t>();
      have |= kGid;
    } else if (k == "user") {
      n.user = std::string(r.text());
    } else if (k == "group") {
      n.group = std::string(r.text());
    } else if (k == "mtime") {
      n.mtime = r.integer<TimeNs>();
      have |= kMtime;
    } else if (k == "atime") {
      n.atime = r.integer<TimeNs>();
    } else if (k == "ctime") {
      n.ctime = r.integer<TimeNs>();
    } else if (k == "size") {
      n.size = r.integer<uint64_t>();
      have |= kSize;
    } else if (k == "inode") {
      n.inode = r.integer<uint64_t>();
    } else if (k == "device") {
      n.device = r.integer<uint64_t>();
    } else if (k == "links") {
      n.links = r.integer<uint64_t>();
    } else if (k == "rdev") {
      n.rdev = r.integer<uint64_t>();
    } else if (k == "link_target") {
      n.link_target = read_bytes(r);
    } else if (k == "xattrs") {
      size_t count = r.array();
      n.xattrs.clear();
      for (size_t i = 0; i < count; i++) {
        if (r.array() != 2) throw json::type_error::create(302, "an xattr is a pair", nullptr);
        std::string key = read_bytes(r);
        n.xattrs.emplace_back(std::move(key), read_bytes(r));
      }
    } else if (k == "content") {
      size_t count = r.array();
      n.content.clear();
      n.content.reserve(count);
      for (size_t i = 0; i < count; i++) {
        if (!r.next_is_array()) {
          n.content.push_back(read_id(r));
          continue;
        }
        // A slice: [blob ID, offset, length], length > 0.
        if (r.array() != 3) throw json::type_error::create(302, "a content slice is a triple", nullptr);
        Id id = read_id(r);
        uint32_t off = r.integer<uint32_t>();
        uint32_t len = r.integer<uint32_t>();
        if (len == 0) throw json::type_error::create(302, "a content slice is empty", nullptr);
        n.content.emplace_back(id, off, len);
      }
    } else if (k == "subtree") {
      n.subtree = read_id(r);
    } else {
      r.skip(2);
    }
  }
  if (have != (kName | kType | kMode | kUid | kGid | kMtime | kSize)) {
    throw json::type_error::create(302, "a required node field is missing", nullptr);
  }
  return n;
}
}  // namespace

Result<Tree> decode_tree(ByteView body, const std::string& what) {
  try {
    cbor::Reader r(body);
    Tree t;
    bool nodes = false;
    size_t fields = r.map();
    for (size_t f = 0; f < fields; f++) {
      if (r.text() != "nodes") {
        r.skip(1);
        continue;
      }
      size_t count = r.array();
      t.nodes.clear();
      t.nodes.reserve(count);
      for (size_t i = 0; i < count; i++) t.nodes.push_back(read_node(r));
      nodes = true;
    }
    if (!nodes || !r.at_end()) return Error(Error::Code::kCorrupt, what + ": malformed tree");
    return t;
  } catch (const json::exception&) {
    return Error(Error::Code::kCorrupt, what + ": malformed tree");
  }
}

Bytes encode_lock(const Lock& l) {
  json j = {{"time", l.time},         {"refreshed", l.refreshed}, {"hostname", l.hostname},
            {"username", l.username}, {"pid", l.pid},             {"exclusive", l.exclusive}};
  return json::to_cbor(j);
}

Result<Lock> decode_lock(ByteView body, const std::string& what) {
  try {
    json j = cbor::parse(body);
    Lock l;
    l.time = cbor::get_int<TimeNs>(j.at("time"));
    l.refreshed = cbor::get_int<TimeNs>(j.at("refreshed"));
    l.hostname = j.at("hostname").get<std::string>();
    l.username = j.value("username", "");
    l.pid = cbor::get_int<int64_t>(j.at("pid"));
    l.exclusive = j.at("exclusive").get<bool>();
    return l;
  } catch (const json::exception&) {
    return Error(Error::Code::kCorrupt, what + ": malformed lock");
  }
}

namespace {
bool valid_utf8(const std::vector<uint8_t>& b) {
  size_t i = 0;
  while (i < b.size()) {
    uint8_t c = b[i];
    int n = c < 0x80 ? 0 : (c >> 5) == 6 ? 1 : (c >> 4) == 14 ? 2 : (c >> 3) == 30 ? 3 : -1;
    if (n < 0 || i + n >= b.size() + (n == 0 ? 1 : 0)) return false;
    for (int k = 1; k <= n; k++) {
      if ((b[i + k] >> 6) != 2) return false;
    }
    i += n + 1;
  }
  return true;
}

json readable(const json& v) {
  if (v.is_binary()) {
    const auto& b = v.get_binary();
    if (b.size() == 32) return to_hex(ByteView(b.data(), b.size()));
    if (valid_utf8(b)) return std::string(b.begin(), b.end());
    return "hex:" + to_hex(ByteView(b.data(), b.size()));
  }
  if (v.is_array()) {
    json out = json::array();
    for (const auto& x : v) out.push_back(readable(x));
    return out;
  }
  if (v.is_object()) {
    json out = json::object();
    for (auto it = v.begin(); it != v.end(); ++it) out[it.key()] = readable(it.value());
    return out;
  }
  return v;
}
}  // namespace

std::string cbor_to_json_text(ByteView body) {
  try {
    return readable(cbor::parse(body)).dump(2, ' ', false, json::error_handler_t::replace);
  } catch (const json::exception&) {
    return "\"(not CBOR)\"";
  }
}

}  // namespace haven::repo
