// One libpq connection layer. libpq's header stays in the .cpp.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "engine/core/instance.hpp"

struct pg_conn;

namespace pgforge::pg {

// True when the server at this socket directory and port accepts connections (PQping). The
// role named is the one the server sees; a role it cannot authenticate leaves a FATAL line in
// the server's log, so name the instance's superuser.
bool accepting_connections(const std::string& host, int port, const std::string& user);

using Row = std::vector<std::optional<std::string>>;

struct QueryResult {
    std::vector<std::string> columns;
    std::vector<Row> rows;
};

class Connection {
  public:
    // Connects to the instance through its unix socket as its superuser (peer authentication
    // with the ident map pgforge writes). Throws Error naming the instance on failure.
    Connection(const Instance& instance, const std::string& dbname = "postgres");
    ~Connection();
    Connection(const Connection&) = delete;
    Connection& operator=(const Connection&) = delete;

    // Runs one statement with parameters sent separately (never pasted into the text).
    QueryResult exec(const std::string& sql, const std::vector<std::string>& params = {});
    std::string quote_identifier(const std::string& name);
    std::string quote_literal(const std::string& value);
    int server_version() const;

  private:
    pg_conn* conn_ = nullptr;
    std::string who_;
};

}  // namespace pgforge::pg
