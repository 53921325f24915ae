#include "pg/validate.h"

namespace haven::pg {

Result<std::map<std::string, uint64_t>> count_rows(Connection& conn) {
  HAVEN_ASSIGN(auto tables, conn.rows(
      "SELECT quote_ident(n.nspname) || '.' || quote_ident(c.relname), n.nspname || '.' || c.relname "
      "FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
      "WHERE c.relkind IN ('r', 'p') AND NOT c.relispartition "
      "AND n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg_toast%' "
      "AND n.nspname NOT LIKE 'pg_temp%' ORDER BY 2"));
  std::map<std::string, uint64_t> out;
  for (const auto& t : tables) {
    HAVEN_ASSIGN(auto n, conn.value("SELECT count(*) FROM " + t[0]));
    out[t[1]] = std::stoull(n);
  }
  return out;
}

Result<Validation> validate(Connection& conn, const std::map<std::string, uint64_t>& recorded) {
  Validation v;
  HAVEN_TRY(conn.value("SELECT 1"));
  HAVEN_ASSIGN(v.rows, count_rows(conn));

  // Foreign keys: rows of the referencing table whose key (all columns non-null) has no match.
  HAVEN_ASSIGN(auto fks, conn.rows(
      "SELECT c.conname, quote_ident(sn.nspname) || '.' || quote_ident(s.relname), "
      "quote_ident(tn.nspname) || '.' || quote_ident(t.relname), "
      "(SELECT string_agg(quote_ident(a.attname), E'\\x01' ORDER BY k.i) FROM unnest(c.conkey) WITH ORDINALITY k(n, i) "
      " JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = k.n), "
      "(SELECT string_agg(quote_ident(a.attname), E'\\x01' ORDER BY k.i) FROM unnest(c.confkey) WITH ORDINALITY k(n, i) "
      " JOIN pg_attribute a ON a.attrelid = c.confrelid AND a.attnum = k.n) "
      "FROM pg_constraint c JOIN pg_class s ON s.oid = c.conrelid JOIN pg_namespace sn ON sn.oid = s.relnamespace "
      "JOIN pg_class t ON t.oid = c.confrelid JOIN pg_namespace tn ON tn.oid = t.relnamespace "
      "WHERE c.contype = 'f' ORDER BY 1"));
  for (const auto& fk : fks) {
    v.foreign_keys++;
    // (a,b) in child must exist in parent; rows with a NULL in the key are exempt (MATCH SIMPLE).
    // p.cols = c.cols, column by column.
    std::vector<std::string> child, parent;
    auto split = [](const std::string& s) {
      std::vector<std::string> out;
      size_t start = 0;
      for (size_t i = 0; i <= s.size(); i++) {
        if (i == s.size() || s[i] == '\x01') {  // a quoted name may hold a comma
          out.push_back(s.substr(start, i - start));
          start = i + 1;
        }
      }
      return out;
    };
    child = split(fk[3]);
    parent = split(fk[4]);
    std::string pc, cc;
    for (size_t i = 0; i < child.size() && i < parent.size(); i++) {
      pc += (i ? ",p." : "p.") + parent[i];
      cc += (i ? ",c." : "c.") + child[i];
    }
    std::string sql = "SELECT count(*) FROM " + fk[1] + " c WHERE ROW(" + cc + ") IS NOT NULL AND NOT EXISTS (SELECT 1 FROM " +
          fk[2] + " p WHERE ROW(" + pc + ") = ROW(" + cc + "))";
    HAVEN_ASSIGN(auto bad, conn.value(sql));
    if (bad != "0") v.failures.push_back("foreign key " + fk[0] + " on " + fk[1] + ": " + bad + " row(s) reference missing rows of " + fk[2]);
  }

  // B-tree indexes with amcheck (contrib; creating the extension needs a superuser).
  auto have = conn.value("SELECT count(*) FROM pg_available_extensions WHERE name = 'amcheck'");
  bool amcheck = have.ok() && *have != "0" && conn.rows("CREATE EXTENSION IF NOT EXISTS amcheck").ok();
  if (!amcheck) {
    v.notes.push_back("indexes not checked: the amcheck extension is not available (or not creatable by this user)");
  } else {
    HAVEN_ASSIGN(auto idx, conn.rows(
        "SELECT c.oid::text, quote_ident(n.nspname) || '.' || quote_ident(c.relname) FROM pg_index i "
        "JOIN pg_class c ON c.oid = i.indexrelid JOIN pg_namespace n ON n.oid = c.relnamespace "
        "JOIN pg_am am ON am.oid = c.relam WHERE am.amname = 'btree' AND i.indisvalid AND i.indisready "
        "AND c.relpersistence <> 't' ORDER BY 2"));
    for (const auto& i : idx) {
      auto r = conn.rows("SELECT bt_index_check($1::oid)", {i[0]});
      v.indexes_checked++;
      if (!r.ok()) v.failures.push_back("index " + i[1] + ": " + r.error().message());
    }
  }

  // Pages that failed their checksum since the server started (data_checksums on).
  auto sums = conn.value("SELECT coalesce(sum(checksum_failures), 0)::text FROM pg_stat_database");
  if (sums.ok() && *sums != "0") v.failures.push_back(*sums + " page checksum failure(s) reported by the server");

  for (const auto& [table, n] : recorded) {
    v.tables_compared++;
    auto it = v.rows.find(table);
    if (it == v.rows.end()) {
      v.tables_differing++;
      v.notes.push_back("table " + table + " (" + std::to_string(n) + " rows at backup time) is not there");
    } else if (it->second != n) {
      v.tables_differing++;
      v.notes.push_back("table " + table + ": " + std::to_string(it->second) + " rows, " + std::to_string(n) +
                        " at backup time");
    }
  }
  return v;
}

}  // namespace haven::pg
