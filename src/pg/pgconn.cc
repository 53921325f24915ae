#include "pg/pgconn.h"

#include <type_traits>

#include "util/shared_library.h"

namespace haven::pg {

namespace {
std::string trim(std::string s) {
  while (!s.empty() && (s.back() == '\n' || s.back() == ' ')) s.pop_back();
  return s;
}

// The libpq functions used here, from the library opened at first use.
struct Pq {
  decltype(&::PQconnectdb) connectdb = nullptr;
  decltype(&::PQsetNoticeProcessor) set_notice_processor = nullptr;
  decltype(&::PQstatus) status = nullptr;
  decltype(&::PQerrorMessage) error_message = nullptr;
  decltype(&::PQfinish) finish = nullptr;
  decltype(&::PQexecParams) exec_params = nullptr;
  decltype(&::PQresultStatus) result_status = nullptr;
  decltype(&::PQresultErrorMessage) result_error_message = nullptr;
  decltype(&::PQntuples) ntuples = nullptr;
  decltype(&::PQnfields) nfields = nullptr;
  decltype(&::PQgetisnull) getisnull = nullptr;
  decltype(&::PQgetvalue) getvalue = nullptr;
  decltype(&::PQclear) clear = nullptr;
  Status loaded;
};

const Pq& pq() {
  static const Pq p = [] {
    static SharedLibrary lib("libpq.so.5", "libpq5");
    Pq x;
    auto get = [&](auto& fn, const char* name) { fn = reinterpret_cast<std::remove_reference_t<decltype(fn)>>(lib.symbol(name)); };
    get(x.connectdb, "PQconnectdb");
    get(x.set_notice_processor, "PQsetNoticeProcessor");
    get(x.status, "PQstatus");
    get(x.error_message, "PQerrorMessage");
    get(x.finish, "PQfinish");
    get(x.exec_params, "PQexecParams");
    get(x.result_status, "PQresultStatus");
    get(x.result_error_message, "PQresultErrorMessage");
    get(x.ntuples, "PQntuples");
    get(x.nfields, "PQnfields");
    get(x.getisnull, "PQgetisnull");
    get(x.getvalue, "PQgetvalue");
    get(x.clear, "PQclear");
    x.loaded = lib.status();
    return x;
  }();
  return p;
}
}  // namespace

void Connection::Close::operator()(PGconn* c) const { pq().finish(c); }

Result<Connection> Connection::open(const std::string& conninfo) {
  const Pq& api = pq();
  if (!api.loaded.ok()) return api.loaded.error().with_context("cannot connect to PostgreSQL");
  Connection c;
  c.conn_.reset(api.connectdb(conninfo.c_str()));
  if (!c.conn_) return Error(Error::Code::kIo, "PostgreSQL: out of memory connecting");
  // Server notices ("all required WAL segments have been archived") are not for the user.
  api.set_notice_processor(c.conn_.get(), [](void*, const char*) {}, nullptr);
  if (api.status(c.conn_.get()) != CONNECTION_OK) {
    return Error(Error::Code::kIo, "cannot connect to PostgreSQL: " + trim(api.error_message(c.conn_.get())) +
                                       " (give the connection with --conninfo or the PG* environment variables)");
  }
  return c;
}

Result<Connection::Rows> Connection::rows(const std::string& sql, const std::vector<std::string>& params) {
  std::vector<const char*> values;
  for (const auto& p : params) values.push_back(p.c_str());
  const Pq& api = pq();  // loaded: this connection was opened
  struct Clear {
    void operator()(PGresult* r) const { pq().clear(r); }
  };
  std::unique_ptr<PGresult, Clear> res(api.exec_params(conn_.get(), sql.c_str(), static_cast<int>(values.size()),
                                                    nullptr, values.data(), nullptr, nullptr, 0));
  auto status = res ? api.result_status(res.get()) : PGRES_FATAL_ERROR;
  if (status != PGRES_TUPLES_OK && status != PGRES_COMMAND_OK) {
    std::string msg = res ? api.result_error_message(res.get()) : api.error_message(conn_.get());
    return Error(Error::Code::kIo, "PostgreSQL: " + trim(msg));
  }
  Rows out;
  int n = api.ntuples(res.get()), cols = api.nfields(res.get());
  for (int i = 0; i < n; i++) {
    std::vector<std::string> row;
    for (int j = 0; j < cols; j++) row.emplace_back(api.getisnull(res.get(), i, j) ? "" : api.getvalue(res.get(), i, j));
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
