#include "repo/snapshot.h"

#include <sys/stat.h>

#include <cstring>

#include "repo/cbor.h"

namespace haven::repo {

using nlohmann::json;

namespace {
json::binary_t bin(const Id& id) { return json::binary_t(std::vector<uint8_t>(id.begin(), id.end())); }
json::binary_t bin(const std::string& s) { return json::binary_t(std::vector<uint8_t>(s.begin(), s.end())); }

Id get_id(const json& v) {
  const auto& b = v.get_binary();
  if (b.size() != 32) throw json::type_error::create(302, "id must be 32 bytes", nullptr);
  Id id;
  std::memcpy(id.data(), b.data(), 32);
  return id;
}
std::string get_bytes(const json& v) {
  const auto& b = v.get_binary();
  return std::string(b.begin(), b.end());
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

Bytes encode_tree(const Tree& t) {
  json nodes = json::array();
  for (const auto& n : t.nodes) {
    json j;
    j["name"] = bin(n.name);
    j["type"] = static_cast<int>(n.type);
    j["mode"] = n.mode;
    j["uid"] = n.uid;
    j["gid"] = n.gid;
    if (!n.user.empty()) j["user"] = n.user;
    if (!n.group.empty()) j["group"] = n.group;
    j["mtime"] = n.mtime;
    j["atime"] = n.atime;
    j["ctime"] = n.ctime;
    j["size"] = n.size;
    j["inode"] = n.inode;
    j["device"] = n.device;
    j["links"] = n.links;
    if (n.rdev) j["rdev"] = n.rdev;
    if (!n.link_target.empty()) j["link_target"] = bin(n.link_target);
    if (!n.xattrs.empty()) {
      json x = json::array();
      for (const auto& [k, v] : n.xattrs) x.push_back({bin(k), bin(v)});
      j["xattrs"] = x;
    }
    if (!n.content.empty()) {
      json c = json::array();
      for (const auto& id : n.content) c.push_back(bin(id));
      j["content"] = c;
    }
    if (n.subtree) j["subtree"] = bin(*n.subtree);
    nodes.push_back(std::move(j));
  }
  json root;
  root["nodes"] = nodes;
  return json::to_cbor(root);
}

Result<Tree> decode_tree(ByteView body, const std::string& what) {
  try {
    json root = cbor::parse(body);
    Tree t;
    for (const auto& j : root.at("nodes")) {
      Node n;
      n.name = get_bytes(j.at("name"));
      int type = cbor::get_int<int>(j.at("type"));
      if (type < 0 || type > static_cast<int>(Node::Type::kSocket)) {
        return Error(Error::Code::kCorrupt, what + ": unknown node type");
      }
      n.type = static_cast<Node::Type>(type);
      n.mode = cbor::get_int<uint32_t>(j.at("mode"));
      n.uid = cbor::get_int<uint32_t>(j.at("uid"));
      n.gid = cbor::get_int<uint32_t>(j.at("gid"));
      n.user = j.value("user", "");
      n.group = j.value("group", "");
      n.mtime = cbor::get_int<TimeNs>(j.at("mtime"));
      n.atime = cbor::get_int_or<TimeNs>(j, "atime", 0);
      n.ctime = cbor::get_int_or<TimeNs>(j, "ctime", 0);
      n.size = cbor::get_int<uint64_t>(j.at("size"));
      n.inode = cbor::get_int_or<uint64_t>(j, "inode", 0);
      n.device = cbor::get_int_or<uint64_t>(j, "device", 0);
      n.links = cbor::get_int_or<uint64_t>(j, "links", 0);
      n.rdev = cbor::get_int_or<uint64_t>(j, "rdev", 0);
      if (j.contains("link_target")) n.link_target = get_bytes(j["link_target"]);
      if (j.contains("xattrs")) {
        for (const auto& x : j["xattrs"]) n.xattrs.emplace_back(get_bytes(x.at(0)), get_bytes(x.at(1)));
      }
      if (j.contains("content")) {
        for (const auto& c : j["content"]) n.content.push_back(get_id(c));
      }
      if (j.contains("subtree")) n.subtree = get_id(j["subtree"]);
      t.nodes.push_back(std::move(n));
    }
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
