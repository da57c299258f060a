#include "engine/pg/connection.hpp"

#include <chrono>
#include <filesystem>
#include <memory>
#include <thread>

#include "engine/core/log.hpp"
#include "engine/pg/libpq.hpp"
#include "engine/pg/postmaster_pid.hpp"

namespace fs = std::filesystem;

namespace pgforge::pg {

namespace {

std::string chomp(std::string s) {
    while (!s.empty() && (s.back() == '\n' || s.back() == ' ')) s.pop_back();
    return s;
}

// libpq's functions, loading it on first use (engine/pg/libpq.hpp).
const libpq::Functions& pq() {
    return libpq::functions();
}

using ResultPtr = std::unique_ptr<PGresult, decltype(&::PQclear)>;

}  // namespace

bool accepting_connections(const std::string& host, int port, const std::string& user) {
    std::string p = std::to_string(port);
    const char* keys[] = {"host", "port", "dbname", "user", "connect_timeout", nullptr};
    const char* values[] = {host.c_str(), p.c_str(), "postgres", user.c_str(), "2", nullptr};
    return pq().PQpingParams(keys, values, 0) == PQPING_OK;
}

void require_running(const Instance& i) {
    // A data directory this process cannot look into (another user's) is left to libpq.
    std::error_code ec;
    bool present = fs::exists(i.data_dir / "PG_VERSION", ec);
    if (ec) return;
    if (present) {
        auto pm = read_postmaster_pid(i.data_dir);
        if (pm && process_exists(pm->pid)) return;
    }
    throw Error(Exit::stopped, "instance " + i.qualified_name() + " is not running",
                "start it: pgforge instance start " + i.qualified_name());
}

Connection::Connection(const Instance& i, const std::string& dbname)
    : who_("instance " + i.qualified_name()), dbname_(dbname) {
    require_running(i);
    std::string host = i.socket_dir.string();
    std::string port = std::to_string(i.port);
    // expand_dbname = 0: a database name is a name, never a connection string.
    const char* keys[] = {"host", "port", "dbname", "user", "application_name", nullptr};
    const char* values[] = {host.c_str(),        port.c_str(), dbname.c_str(),
                            i.superuser.c_str(), "pgforge",    nullptr};
    conn_ = pq().PQconnectdbParams(keys, values, 0);
    if (pq().PQstatus(conn_) != CONNECTION_OK) {
        std::string message = conn_ ? pq().PQerrorMessage(conn_) : "out of memory";
        pq().PQfinish(conn_);
        conn_ = nullptr;
        throw Error(Exit::failure, "cannot connect to " + who_ + ": " + chomp(message),
                    "check that it is running: pgforge instance status " + i.qualified_name());
    }
    pq().PQsetNoticeProcessor(conn_, &Connection::notice_processor, this);
}

Connection::~Connection() {
    if (conn_) pq().PQfinish(conn_);
}

void Connection::notice_processor(void* self, const char* message) {
    auto* c = static_cast<Connection*>(self);
    std::string text = chomp(message ? message : "");
    if (c->notice_)
        c->notice_(text);
    else
        log::debug(c->who_ + " (" + c->dbname_ + "): " + text);
}

void Connection::on_notice(NoticeHandler handler) {
    notice_ = std::move(handler);
}

QueryResult Connection::take_result(PGresult* raw) {
    ResultPtr res(raw, pq().PQclear);
    auto status = pq().PQresultStatus(res.get());
    if (status == PGRES_COPY_IN || status == PGRES_COPY_OUT || status == PGRES_COPY_BOTH) {
        // Nothing here feeds or reads a COPY stream: end it and say so.
        res.reset();
        if (status == PGRES_COPY_OUT) {
            char* buffer = nullptr;
            while (pq().PQgetCopyData(conn_, &buffer, 0) > 0) pq().PQfreemem(buffer);
        } else if (status == PGRES_COPY_IN) {
            pq().PQputCopyEnd(conn_, "COPY is not supported here");
        }
        // What follows the COPY (its end, or the error we caused); a bounded wait, since a
        // COPY BOTH stream never ends this way.
        for (int k = 0; k < 16; ++k) {
            PGresult* rest = pq().PQgetResult(conn_);
            if (!rest) break;
            auto s = pq().PQresultStatus(rest);
            pq().PQclear(rest);
            if (s == PGRES_COPY_BOTH) break;
        }
        throw SqlError(who_ + ": COPY FROM STDIN and COPY TO STDOUT are not supported here",
                       "0A000", "COPY FROM STDIN and COPY TO STDOUT are not supported here");
    }
    if (status != PGRES_TUPLES_OK && status != PGRES_COMMAND_OK && status != PGRES_EMPTY_QUERY) {
        std::string message =
            res ? pq().PQresultErrorMessage(res.get()) : pq().PQerrorMessage(conn_);
        const char* state = res ? pq().PQresultErrorField(res.get(), PG_DIAG_SQLSTATE) : nullptr;
        const char* primary =
            res ? pq().PQresultErrorField(res.get(), PG_DIAG_MESSAGE_PRIMARY) : nullptr;
        const char* detail =
            res ? pq().PQresultErrorField(res.get(), PG_DIAG_MESSAGE_DETAIL) : nullptr;
        message = chomp(message);
        throw SqlError(who_ + ": " + message, state ? state : "", primary ? primary : message,
                       detail ? detail : "");
    }
    QueryResult r;
    r.command = pq().PQcmdStatus(res.get());
    int ncols = pq().PQnfields(res.get());
    for (int c = 0; c < ncols; ++c) {
        r.columns.emplace_back(pq().PQfname(res.get(), c));
        r.types.push_back(pq().PQftype(res.get(), c));
    }
    int nrows = pq().PQntuples(res.get());
    r.rows.reserve(nrows);
    for (int row = 0; row < nrows; ++row) {
        Row values_row;
        values_row.reserve(ncols);
        for (int c = 0; c < ncols; ++c) {
            if (pq().PQgetisnull(res.get(), row, c))
                values_row.emplace_back(std::nullopt);
            else
                values_row.emplace_back(std::string(pq().PQgetvalue(res.get(), row, c),
                                                    pq().PQgetlength(res.get(), row, c)));
        }
        r.rows.push_back(std::move(values_row));
    }
    return r;
}

QueryResult Connection::exec(const std::string& sql, const std::vector<std::string>& params) {
    std::vector<const char*> values;
    values.reserve(params.size());
    for (const auto& p : params) values.push_back(p.c_str());
    return take_result(pq().PQexecParams(conn_, sql.c_str(), static_cast<int>(values.size()),
                                         nullptr, values.data(), nullptr, nullptr, 0));
}

QueryResult Connection::exec_script(const std::string& sql) {
    return take_result(pq().PQexec(conn_, sql.c_str()));
}

std::string Connection::quote_identifier(const std::string& name) {
    std::unique_ptr<char, decltype(&::PQfreemem)> q(
        pq().PQescapeIdentifier(conn_, name.c_str(), name.size()), pq().PQfreemem);
    if (!q) throw Error(Exit::failure, who_ + ": " + chomp(pq().PQerrorMessage(conn_)));
    return q.get();
}

std::string Connection::quote_literal(const std::string& value) {
    std::unique_ptr<char, decltype(&::PQfreemem)> q(
        pq().PQescapeLiteral(conn_, value.c_str(), value.size()), pq().PQfreemem);
    if (!q) throw Error(Exit::failure, who_ + ": " + chomp(pq().PQerrorMessage(conn_)));
    return q.get();
}

int Connection::server_version() const {
    return pq().PQserverVersion(conn_);
}

std::string Connection::encrypt_password(const std::string& password, const std::string& role) {
    // The algorithm is named: libpq computes the verifier without asking the server.
    std::unique_ptr<char, decltype(&::PQfreemem)> v(
        pq().PQencryptPasswordConn(conn_, password.c_str(), role.c_str(), "scram-sha-256"),
        pq().PQfreemem);
    if (!v)
        throw Error(Exit::failure, "cannot encrypt the password of role " + role + ": " +
                                       chomp(pq().PQerrorMessage(conn_)));
    return v.get();
}

std::string array_literal(const std::vector<std::string>& values) {
    std::string out = "{";
    for (size_t k = 0; k < values.size(); ++k) {
        if (k) out += ',';
        out += '"';
        for (char c : values[k]) {
            if (c == '"' || c == '\\') out += '\\';
            out += c;
        }
        out += '"';
    }
    return out + "}";
}

std::string conninfo_value(const std::string& value) {
    std::string out = "'";
    for (char c : value) {
        if (c == '\'' || c == '\\') out += '\\';
        out += c;
    }
    return out + "'";
}

bool drop_physical_slot(const Instance& instance, const std::string& slot, double timeout) {
    Connection c(instance);
    auto until = std::chrono::steady_clock::now() + std::chrono::duration<double>(timeout);
    for (;;) {
        auto r = c.exec(
            "SELECT active FROM pg_replication_slots WHERE slot_name = $1 AND slot_type = "
            "'physical'",
            {slot});
        if (r.rows.empty()) return false;
        // A slot in use (a walsender not gone yet) cannot be dropped: wait for it.
        if (r.rows[0][0] && *r.rows[0][0] == "t" && std::chrono::steady_clock::now() < until) {
            std::this_thread::sleep_for(std::chrono::milliseconds(50));
            continue;
        }
        c.exec("SELECT pg_drop_replication_slot($1)", {slot});
        return true;
    }
}

std::vector<std::pair<std::string, std::string>> parse_conninfo(const std::string& text) {
    char* error = nullptr;
    PQconninfoOption* options = pq().PQconninfoParse(text.c_str(), &error);
    if (!options) {
        std::string why = error ? chomp(error) : "out of memory";
        if (error) pq().PQfreemem(error);
        throw Error(Exit::usage, "cannot read the connection string: " + why,
                    "give host=HOST port=PORT ... or a postgresql:// URI");
    }
    std::vector<std::pair<std::string, std::string>> out;
    for (PQconninfoOption* o = options; o->keyword; ++o)
        if (o->val) out.emplace_back(o->keyword, o->val);
    pq().PQconninfoFree(options);
    return out;
}

}  // namespace pgforge::pg
