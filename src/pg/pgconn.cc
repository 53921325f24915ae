#include "pg/pgconn.h"

namespace haven::pg {

namespace {
std::string trim(std::string s) {
  while (!s.empty() && (s.back() == '\n' || s.back() == ' ')) s.pop_back();
  return s;
}
}  // namespace

Result<Connection> Connection::open(const std::string& conninfo) {
  Connection c;
  c.conn_.reset(PQconnectdb(conninfo.c_str()));
  if (!c.conn_) return Error(Error::Code::kIo, "PostgreSQL: out of memory connecting");
  // Server notices ("all required WAL segments have been archived") are not for the user.
  PQsetNoticeProcessor(c.conn_.get(), [](void*, const char*) {}, nullptr);
  if (PQstatus(c.conn_.get()) != CONNECTION_OK) {
    return Error(Error::Code::kIo, "cannot connect to PostgreSQL: " + trim(PQerrorMessage(c.conn_.get())) +
                                       " (give the connection with --conninfo or the PG* environment variables)");
  }
  return c;
}

Result<Connection::Rows> Connection::rows(const std::string& sql, const std::vector<std::string>& params) {
  std::vector<const char*> values;
  for (const auto& p : params) values.push_back(p.c_str());
  struct Clear {
    void operator()(PGresult* r) const { PQclear(r); }
  };
  std::unique_ptr<PGresult, Clear> res(PQexecParams(conn_.get(), sql.c_str(), static_cast<int>(values.size()),
                                                    nullptr, values.data(), nullptr, nullptr, 0));
  auto status = res ? PQresultStatus(res.get()) : PGRES_FATAL_ERROR;
  if (status != PGRES_TUPLES_OK && status != PGRES_COMMAND_OK) {
    std::string msg = res ? PQresultErrorMessage(res.get()) : PQerrorMessage(conn_.get());
    return Error(Error::Code::kIo, "PostgreSQL: " + trim(msg));
  }
  Rows out;
  int n = PQntuples(res.get()), cols = PQnfields(res.get());
  for (int i = 0; i < n; i++) {
    std::vector<std::string> row;
    for (int j = 0; j < cols; j++) row.emplace_back(PQgetisnull(res.get(), i, j) ? "" : PQgetvalue(res.get(), i, j));
    out.push_back(std::move(row));
  }
  return out;
}

Result<std::string> Connection::value(const std::string& sql, const std::vector<std::string>& params) {
  HAVEN_ASSIGN(Rows r, rows(sql, params));
  if (r.empty() || r[0].empty()) return Error(Error::Code::kNotFound, "PostgreSQL: no result for " + sql);
  return r[0][0];
}

}  // namespace haven::pg
