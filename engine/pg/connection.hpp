// One libpq connection layer. libpq's header stays in the .cpp; libpq itself is loaded when
// the first connection is made (engine/pg/libpq.hpp), so including this costs nothing at start-up.
//
// Every connection goes through the instance's unix socket, to its port, as its superuser (peer
// authentication with the ident map pgforge writes): no password is ever given to libpq, put
// in argv or in the environment. Identifiers and literals go through libpq's escaping
// (quote_identifier, quote_literal) or are sent as bound parameters (exec's params).
#pragma once

#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "engine/core/error.hpp"
#include "engine/core/instance.hpp"

struct pg_conn;
struct pg_result;

namespace pgforge::pg {

// True when the server at this socket directory and port accepts connections (PQping). The
// role named is the one the server sees; a role it cannot authenticate leaves a FATAL line in
// the server's log, so name the instance's superuser.
bool accepting_connections(const std::string& host, int port, const std::string& user);

// Throws Error(Exit::stopped, "instance NAME is not running") when postmaster.pid says no
// server runs for the instance's data directory. Cheap: reads one file, no connection.
void require_running(const Instance& instance);

using Row = std::vector<std::optional<std::string>>;

struct QueryResult {
    std::vector<std::string> columns;
    std::vector<Row> rows;
    std::vector<unsigned> types;  // the columns' type OIDs (pg_type.oid)
    std::string command;          // the command tag: "SELECT 1", "CREATE TABLE", ...
};

// An error the server reported for a statement; Error's code is Exit::failure, the SQLSTATE
// lets callers tell cases apart ("3D000" invalid_catalog_name, "55006" object_in_use, ...).
class SqlError : public Error {
  public:
    SqlError(std::string message, std::string sqlstate, std::string server_message,
             std::string detail = {})
        : Error(Exit::failure, std::move(message)),
          sqlstate_(std::move(sqlstate)),
          server_message_(std::move(server_message)),
          detail_(std::move(detail)) {}
    const std::string& sqlstate() const { return sqlstate_; }
    // The server's primary message alone, without "ERROR:" nor the instance's name.
    const std::string& server_message() const { return server_message_; }
    // The server's DETAIL line, when it sent one.
    const std::string& detail() const { return detail_; }

  private:
    std::string sqlstate_;
    std::string server_message_;
    std::string detail_;
};

// NOTICE, WARNING, INFO... messages the server sends while a statement runs, one line each
// without the trailing newline ("NOTICE:  relation \"t\" already exists, skipping").
using NoticeHandler = std::function<void(const std::string& message)>;

class Connection {
  public:
    // Connects to the instance through its unix socket as its superuser (peer authentication
    // with the ident map pgforge writes). Throws Error(Exit::stopped) when the instance is not
    // running (require_running), Error naming the instance when the connection fails.
    Connection(const Instance& instance, const std::string& dbname = "postgres");
    ~Connection();
    Connection(const Connection&) = delete;
    Connection& operator=(const Connection&) = delete;

    // Runs one statement with parameters sent separately (never pasted into the text).
    QueryResult exec(const std::string& sql, const std::vector<std::string>& params = {});
    // Runs a script (one or more statements, simple query protocol, as psql -c does) and
    // returns the last statement's result. For SQL given by a user; pgforge's own statements
    // go through exec.
    QueryResult exec_script(const std::string& sql);
    std::string quote_identifier(const std::string& name);
    std::string quote_literal(const std::string& value);
    int server_version() const;
    // The SCRAM-SHA-256 verifier of a role's password, computed here by libpq
    // (PQencryptPasswordConn): the password itself never reaches the server.
    std::string encrypt_password(const std::string& password, const std::string& role);
    const std::string& dbname() const { return dbname_; }

    // Where notices go; by default they are logged at debug level.
    void on_notice(NoticeHandler handler);

  private:
    static void notice_processor(void* self, const char* message);
    QueryResult take_result(::pg_result* res);

    pg_conn* conn_ = nullptr;
    std::string who_;
    std::string dbname_;
    NoticeHandler notice_;
};

// A text[] parameter for exec: {"a","b\"c"} as PostgreSQL's array input reads it.
std::string array_literal(const std::vector<std::string>& values);

// A value for a libpq connection string ("dbname='a b'"), for programs given -d CONNINFO:
// any database name, even one with '=', spaces or quotes, reaches them unchanged.
std::string conninfo_value(const std::string& value);

// Drops the physical replication slot `slot` of the running instance when it has it, once its
// walsender has let it go (waiting up to `timeout` seconds). Returns whether it was dropped.
bool drop_physical_slot(const Instance& instance, const std::string& slot, double timeout = 5);

// The keywords a connection string ("host=db1 port=5432", a postgresql:// URI) sets, in libpq's
// order, parsed by libpq. Error(Exit::usage) naming the problem (never echoing the text, which
// may hold a password) when libpq refuses it.
std::vector<std::pair<std::string, std::string>> parse_conninfo(const std::string& text);

}  // namespace pgforge::pg
