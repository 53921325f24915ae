// pg/pgconn.h — a small RAII wrapper around one libpq connection: text results only, errors as
// haven::Error. libpq reads the PG* environment variables and ~/.pgpass itself; its messages
// never contain the password. libpq is opened at the first connection (util/shared_library.h):
// commands that never connect do not load it.
#pragma once

#include <libpq-fe.h>

#include <memory>
#include <string>
#include <vector>

#include "util/error.h"

namespace haven::pg {

class Connection {
 public:
  // `conninfo`: a libpq connection string or URI; empty: libpq's defaults (PG* variables).
  static Result<Connection> open(const std::string& conninfo);

  using Rows = std::vector<std::vector<std::string>>;
  // Runs `sql` with text parameters $1…; returns every row (NULL as "").
  Result<Rows> rows(const std::string& sql, const std::vector<std::string>& params = {});
  // The first column of the first row; kNotFound if there is no row.
  Result<std::string> value(const std::string& sql, const std::vector<std::string>& params = {});

 private:
  struct Close {
    void operator()(PGconn* c) const;
  };
  std::unique_ptr<PGconn, Close> conn_;
};

}  // namespace haven::pg
