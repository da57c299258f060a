#include "engine/pg/connection.hpp"

#include <libpq-fe.h>

#include <memory>

#include "engine/core/error.hpp"

namespace pgforge::pg {

bool accepting_connections(const std::string& host, int port, const std::string& user) {
    std::string p = std::to_string(port);
    const char* keys[] = {"host", "port", "dbname", "user", "connect_timeout", nullptr};
    const char* values[] = {host.c_str(), p.c_str(), "postgres", user.c_str(), "2", nullptr};
    return PQpingParams(keys, values, 0) == PQPING_OK;
}

Connection::Connection(const Instance& i, const std::string& dbname)
    : who_("instance " + i.qualified_name()) {
    std::string host = i.socket_dir.string();
    std::string port = std::to_string(i.port);
    const char* keys[] = {"host", "port", "dbname", "user", "application_name", nullptr};
    const char* values[] = {host.c_str(),        port.c_str(), dbname.c_str(),
                            i.superuser.c_str(), "pgforge",    nullptr};
    conn_ = PQconnectdbParams(keys, values, 0);
    if (PQstatus(conn_) != CONNECTION_OK) {
        std::string message = conn_ ? PQerrorMessage(conn_) : "out of memory";
        PQfinish(conn_);
        conn_ = nullptr;
        while (!message.empty() && message.back() == '\n') message.pop_back();
        throw Error(Exit::failure, "cannot connect to " + who_ + ": " + message,
                    "check that it is running: pgforge instance status " + i.qualified_name());
    }
}

Connection::~Connection() {
    PQfinish(conn_);
}

QueryResult Connection::exec(const std::string& sql, const std::vector<std::string>& params) {
    std::vector<const char*> values;
    for (const auto& p : params) values.push_back(p.c_str());
    std::unique_ptr<PGresult, decltype(&PQclear)> res(
        PQexecParams(conn_, sql.c_str(), static_cast<int>(values.size()), nullptr, values.data(),
                     nullptr, nullptr, 0),
        &PQclear);
    auto status = PQresultStatus(res.get());
    if (status != PGRES_TUPLES_OK && status != PGRES_COMMAND_OK) {
        std::string message = PQresultErrorMessage(res.get());
        while (!message.empty() && message.back() == '\n') message.pop_back();
        throw Error(Exit::failure, who_ + ": " + message);
    }
    QueryResult r;
    int ncols = PQnfields(res.get());
    for (int c = 0; c < ncols; ++c) r.columns.emplace_back(PQfname(res.get(), c));
    for (int row = 0; row < PQntuples(res.get()); ++row) {
        Row values_row;
        for (int c = 0; c < ncols; ++c) {
            if (PQgetisnull(res.get(), row, c))
                values_row.emplace_back(std::nullopt);
            else
                values_row.emplace_back(PQgetvalue(res.get(), row, c));
        }
        r.rows.push_back(std::move(values_row));
    }
    return r;
}

std::string Connection::quote_identifier(const std::string& name) {
    std::unique_ptr<char, decltype(&PQfreemem)> q(
        PQescapeIdentifier(conn_, name.c_str(), name.size()), &PQfreemem);
    if (!q) throw Error(Exit::failure, who_ + ": " + PQerrorMessage(conn_));
    return q.get();
}

std::string Connection::quote_literal(const std::string& value) {
    std::unique_ptr<char, decltype(&PQfreemem)> q(
        PQescapeLiteral(conn_, value.c_str(), value.size()), &PQfreemem);
    if (!q) throw Error(Exit::failure, who_ + ": " + PQerrorMessage(conn_));
    return q.get();
}

int Connection::server_version() const {
    return PQserverVersion(conn_);
}

}  // namespace pgforge::pg
