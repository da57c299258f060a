#include "engine/operations/databases.hpp"

#include <sys/stat.h>

#include <algorithm>
#include <atomic>
#include <cctype>
#include <chrono>
#include <ctime>
#include <mutex>
#include <set>
#include <sstream>
#include <thread>

#include "engine/core/error.hpp"
#include "engine/core/log.hpp"
#include "engine/core/text.hpp"
#include "engine/driver/cluster_driver.hpp"
#include "engine/operations/instances.hpp"

namespace fs = std::filesystem;

namespace pgforge::databases {

const char* to_string(State state) {
    return state == State::present ? "present" : "absent";
}

State parse_state(const std::string& text) {
    if (text == "present") return State::present;
    if (text == "absent") return State::absent;
    throw Error(Exit::usage, "state must be present or absent, not '" + text + "'");
}

namespace {

std::string in_instance(const Instance& i) {
    return "instance " + i.qualified_name();
}

Error not_found(const Instance& i, const std::string& name) {
    return Error(Exit::not_found,
                 "database " + name + " does not exist in instance " + i.qualified_name(),
                 "see the databases with: pgforge database list -i " + i.qualified_name());
}

// The server's refusal, with the exit status that says what kind of problem it is.
[[noreturn]] void rethrow(const pg::SqlError& e, const Instance& i, const std::string& db) {
    const std::string& s = e.sqlstate();
    std::string message = "database " + db + " in " + in_instance(i) + ": " + e.server_message();
    if (!e.detail().empty()) message += " (" + e.detail() + ")";
    if (s == "3D000") throw not_found(i, db);
    if (s == "55006")
        throw Error(Exit::conflict, message,
                    "other sessions use it: close them, or drop with --force (in a "
                    "description: force_drop: true; PostgreSQL 13+)");
    if (s == "42P04" || s == "42710") throw Error(Exit::conflict, message);
    if (s == "42704" || s == "58P01") throw Error(Exit::not_found, message);
    if (s.rfind("22", 0) == 0) throw Error(Exit::usage, message);
    throw Error(Exit::failure, message);
}

// Runs pgforge's own statements on one connection, translating the server's errors. In check
// mode, only records them.
struct Runner {
    pg::Connection& c;
    const Instance& i;
    const std::string& db;
    std::vector<std::string>& ran;
    bool check = false;

    void operator()(const std::string& sql) {
        if (check) {
            log::debug(in_instance(i) + ": would run " + sql);
            ran.push_back(sql);
            return;
        }
        log::debug(in_instance(i) + ": " + sql);
        try {
            c.exec(sql);
        } catch (const pg::SqlError& e) {
            rethrow(e, i, db);
        }
        ran.push_back(sql);
    }
};

pg::QueryResult query(pg::Connection& c, const Instance& i, const std::string& db,
                      const std::string& sql, const std::vector<std::string>& params = {}) {
    try {
        return c.exec(sql, params);
    } catch (const pg::SqlError& e) {
        rethrow(e, i, db);
    }
}

// ---- settings -------------------------------------------------------------------------------

// Settings whose values are lists of names, each quoted when it needs to be: the server stores
// `SET search_path TO 'a', '$user'` as `a, "$user"`. Their values are compared as lists.
bool list_quoted(const std::string& name) {
    static const std::set<std::string> names = {
        "search_path", "temp_tablespaces", "session_preload_libraries", "local_preload_libraries",
        "shared_preload_libraries"};
    return names.count(to_lower(name)) > 0;
}

std::vector<std::string> split_list(const std::string& value) {
    std::vector<std::string> out;
    std::string item;
    bool quoted = false, was_quoted = false;
    auto finish = [&] {
        if (!was_quoted) {
            size_t b = item.find_first_not_of(" \t\n");
            size_t e = item.find_last_not_of(" \t\n");
            item = b == std::string::npos ? "" : item.substr(b, e - b + 1);
        }
        out.push_back(item);
        item.clear();
        was_quoted = false;
    };
    for (size_t k = 0; k < value.size(); ++k) {
        char ch = value[k];
        if (quoted) {
            if (ch == '"' && k + 1 < value.size() && value[k + 1] == '"') {
                item += '"';
                ++k;
            } else if (ch == '"') {
                quoted = false;
            } else {
                item += ch;
            }
        } else if (ch == '"') {
            quoted = was_quoted = true;
            item.clear();
        } else if (ch == ',') {
            finish();
        } else if (!was_quoted) {
            item += ch;
        }
    }
    finish();
    return out;
}

bool same_value(const std::string& name, const std::string& a, const std::string& b) {
    return list_quoted(name) ? split_list(a) == split_list(b) : a == b;
}

// "work_mem", "myapp.level": each part quoted.
std::string setting_name_sql(pg::Connection& c, const std::string& name) {
    std::string out;
    size_t start = 0;
    for (;;) {
        size_t dot = name.find('.', start);
        out += c.quote_identifier(name.substr(start, dot - start));
        if (dot == std::string::npos) break;
        out += '.';
        start = dot + 1;
    }
    return out;
}

std::string setting_value_sql(pg::Connection& c, const std::string& name,
                              const std::string& value) {
    if (!list_quoted(name)) return c.quote_literal(value);
    std::string out;
    for (const auto& item : split_list(value)) {
        if (!out.empty()) out += ", ";
        out += c.quote_literal(item);
    }
    return out;
}

using SettingList = std::vector<std::pair<std::string, std::string>>;

const std::string* find_setting(const SettingList& current, const std::string& name) {
    std::string key = to_lower(name);
    for (const auto& [k, v] : current)
        if (to_lower(k) == key) return &v;
    return nullptr;
}

// ---- what is there --------------------------------------------------------------------------

struct Current {
    std::string owner;
    std::string tablespace;
    SettingList settings;
};

// One query for all the databases named.
std::map<std::string, Current> inspect(pg::Connection& c, const Instance& i,
                                       const std::vector<std::string>& names) {
    auto r = query(c, i, names.size() == 1 ? names[0] : "(several)",
                   "SELECT d.datname, pg_catalog.pg_get_userbyid(d.datdba), t.spcname, s.setting "
                   "FROM pg_catalog.pg_database d "
                   "JOIN pg_catalog.pg_tablespace t ON t.oid = d.dattablespace "
                   "LEFT JOIN pg_catalog.pg_db_role_setting rs "
                   "  ON rs.setdatabase = d.oid AND rs.setrole = 0 "
                   "LEFT JOIN LATERAL pg_catalog.unnest(rs.setconfig) WITH ORDINALITY "
                   "  AS s(setting, n) ON true "
                   "WHERE d.datname = ANY($1::text[]) ORDER BY d.datname, s.n",
                   {pg::array_literal(names)});
    std::map<std::string, Current> out;
    for (const auto& row : r.rows) {
        Current& cur = out[row[0].value_or("")];
        cur.owner = row[1].value_or("");
        cur.tablespace = row[2].value_or("");
        if (row[3]) {
            const std::string& s = *row[3];
            size_t eq = s.find('=');
            cur.settings.emplace_back(s.substr(0, eq),
                                      eq == std::string::npos ? "" : s.substr(eq + 1));
        }
    }
    return out;
}

void validate(const Database& d) {
    if (d.name.empty()) throw Error(Exit::usage, "a database needs a name");
    for (const auto& s : d.schemas)
        if (s.name.empty())
            throw Error(Exit::usage, "database " + d.name + ": a schema needs a name");
    for (const auto& e : d.extensions)
        if (e.name.empty())
            throw Error(Exit::usage, "database " + d.name + ": an extension needs a name");
    if (d.settings)
        for (const auto& [k, v] : *d.settings)
            if (k.empty() || k.find('=') != std::string::npos)
                throw Error(Exit::usage,
                            "database " + d.name + ": '" + k + "' is not a setting name");
    if (d.tablespace && d.tablespace->empty())
        throw Error(Exit::usage, "database " + d.name + ": an empty tablespace name");
    if (d.owner && d.owner->empty())
        throw Error(Exit::usage, "database " + d.name + ": an empty owner name");
}

std::string drop_sql(pg::Connection& c, const std::string& name, bool force, const Instance& i) {
    std::string sql = "DROP DATABASE " + c.quote_identifier(name);
    if (force) {
        if (c.server_version() < 130000)
            throw Error(Exit::usage,
                        "dropping with force needs PostgreSQL 13 or later (" + in_instance(i) +
                            " runs " + std::to_string(c.server_version() / 10000) + ")",
                        "close the sessions using it, then drop without --force");
        sql += " WITH (FORCE)";
    }
    return sql;
}

// Cluster-level statements: owner, tablespace, settings.
void alter_cluster_level(pg::Connection& c, const Database& d, const Current& cur, Runner& run) {
    std::string db = c.quote_identifier(d.name);
    if (d.owner && *d.owner != cur.owner)
        run("ALTER DATABASE " + db + " OWNER TO " + c.quote_identifier(*d.owner));
    if (d.tablespace && *d.tablespace != cur.tablespace)
        run("ALTER DATABASE " + db + " SET TABLESPACE " + c.quote_identifier(*d.tablespace));
    if (!d.settings) return;
    if (d.settings->empty()) {
        if (!cur.settings.empty()) run("ALTER DATABASE " + db + " RESET ALL");
        return;
    }
    for (const auto& [name, value] : *d.settings) {
        const std::string* now = find_setting(cur.settings, name);
        if (!value) {
            if (now) run("ALTER DATABASE " + db + " RESET " + setting_name_sql(c, name));
        } else if (!now || !same_value(name, *now, *value)) {
            run("ALTER DATABASE " + db + " SET " + setting_name_sql(c, name) + " TO " +
                setting_value_sql(c, name, *value));
        }
    }
}

// Check mode: the connection refuses to change anything, should a statement reach it.
void read_only(pg::Connection& c) {
    c.exec("SET default_transaction_read_only = on");
}

// Schemas and extensions, on a connection to the database itself. In check mode, a database
// still to be created (`is_new`) is compared as the copy of template1 CREATE DATABASE makes.
void apply_objects(const Instance& i, const Database& d, std::vector<std::string>& ran, bool check,
                   bool is_new) {
    if (d.schemas.empty() && d.extensions.empty()) return;
    pg::Connection c(i, check && is_new ? "template1" : d.name);
    if (check) read_only(c);
    Runner run{c, i, d.name, ran, check};
    std::vector<std::string> schema_names, extension_names;
    for (const auto& s : d.schemas) schema_names.push_back(s.name);
    for (const auto& e : d.extensions) extension_names.push_back(e.name);
    auto r = query(
        c, i, d.name,
        "SELECT 's', n.nspname, pg_catalog.pg_get_userbyid(n.nspowner), NULL "
        "FROM pg_catalog.pg_namespace n WHERE n.nspname = ANY($1::text[]) "
        "UNION ALL SELECT 'e', e.extname, n.nspname, e.extversion FROM pg_catalog.pg_extension e "
        "JOIN pg_catalog.pg_namespace n ON n.oid = e.extnamespace "
        "WHERE e.extname = ANY($2::text[])",
        {pg::array_literal(schema_names), pg::array_literal(extension_names)});
    std::map<std::string, std::string> schema_owner;
    std::map<std::string, std::pair<std::string, std::string>> extension;  // schema, version
    for (const auto& row : r.rows) {
        if (row[0] == std::optional<std::string>("s"))
            schema_owner[*row[1]] = row[2].value_or("");
        else
            extension[*row[1]] = {row[2].value_or(""), row[3].value_or("")};
    }
    for (const auto& s : d.schemas) {
        if (s.state != State::present) continue;
        auto it = schema_owner.find(s.name);
        if (it == schema_owner.end()) {
            run("CREATE SCHEMA " + c.quote_identifier(s.name) +
                (s.owner ? " AUTHORIZATION " + c.quote_identifier(*s.owner) : ""));
            schema_owner[s.name] = s.owner.value_or("");
        } else if (s.owner && *s.owner != it->second) {
            run("ALTER SCHEMA " + c.quote_identifier(s.name) + " OWNER TO " +
                c.quote_identifier(*s.owner));
        }
    }
    for (const auto& e : d.extensions) {
        auto it = extension.find(e.name);
        std::string name = c.quote_identifier(e.name);
        if (e.state == State::absent) {
            if (it != extension.end()) {
                run("DROP EXTENSION " + name);
                extension.erase(it);
            }
            continue;
        }
        if (it == extension.end()) {
            run("CREATE EXTENSION IF NOT EXISTS " + name +
                (e.schema ? " SCHEMA " + c.quote_identifier(*e.schema) : "") +
                (e.version ? " VERSION " + c.quote_literal(*e.version) : "") + " CASCADE");
            continue;
        }
        if (e.schema && *e.schema != it->second.first)
            run("ALTER EXTENSION " + name + " SET SCHEMA " + c.quote_identifier(*e.schema));
        if (e.version && *e.version != it->second.second)
            run("ALTER EXTENSION " + name + " UPDATE TO " + c.quote_literal(*e.version));
    }
    for (const auto& s : d.schemas) {
        if (s.state != State::absent) continue;
        if (schema_owner.count(s.name)) {
            run("DROP SCHEMA " + c.quote_identifier(s.name));
            schema_owner.erase(s.name);
        }
    }
}

// Check mode: what a database would be once `d` is applied to `now` (the statements not run),
// for a later description of the same name in the list.
Current planned(Current now, const Database& d) {
    if (d.owner) now.owner = *d.owner;
    if (d.tablespace) now.tablespace = *d.tablespace;
    if (!d.settings) return now;
    if (d.settings->empty()) now.settings.clear();
    for (const auto& [name, value] : *d.settings) {
        std::erase_if(now.settings,
                      [&](const auto& kv) { return to_lower(kv.first) == to_lower(name); });
        if (value) now.settings.emplace_back(name, *value);
    }
    return now;
}

enum class Mode { apply, create, alter };

std::vector<ApplyResult> apply_all(const Instance& i, const std::vector<Database>& dbs, Mode mode,
                                   bool check, pg::Connection* shared = nullptr) {
    for (const auto& d : dbs) validate(d);
    if (dbs.empty()) return {};
    // Connected to postgres, unless postgres itself is to be dropped.
    std::string maintenance = "postgres";
    for (const auto& d : dbs)
        if (d.name == "postgres" && d.state == State::absent) maintenance = "template1";
    std::optional<pg::Connection> own;
    pg::Connection& c = shared && maintenance == "postgres" ? *shared : own.emplace(i, maintenance);
    if (check) read_only(c);
    std::vector<std::string> names;
    for (const auto& d : dbs) names.push_back(d.name);
    auto current = inspect(c, i, names);

    std::vector<ApplyResult> results;
    for (const auto& d : dbs) {
        ApplyResult r;
        r.name = d.name;
        auto it = current.find(d.name);
        bool exists = it != current.end();
        if (mode == Mode::create && exists)
            throw Error(
                Exit::conflict, "database " + d.name + " already exists in " + in_instance(i),
                "change it with: pgforge database alter -i " + i.qualified_name() + " (or apply)");
        if (mode == Mode::alter && !exists) throw not_found(i, d.name);
        Runner run{c, i, d.name, r.statements, check};
        if (d.state == State::absent) {
            if (exists) {
                run(drop_sql(c, d.name, d.force_drop, i));
                current.erase(it);
                r.result = Result::dropped;
            }
        } else if (!exists) {
            std::string sql = "CREATE DATABASE " + c.quote_identifier(d.name);
            if (d.owner) sql += " OWNER " + c.quote_identifier(*d.owner);
            if (d.tablespace) sql += " TABLESPACE " + c.quote_identifier(*d.tablespace);
            run(sql);
            // A new database has no settings of its own; owner and tablespace are as created.
            Current fresh;
            Database settings_only = d;
            settings_only.owner.reset();
            settings_only.tablespace.reset();
            alter_cluster_level(c, settings_only, fresh, run);
            apply_objects(i, d, r.statements, check, true);
            r.result = Result::created;
            // What it is now, for a later description of the same name in the list.
            if (!check) {
                current[d.name] = inspect(c, i, {d.name})[d.name];
            } else {
                // As CREATE DATABASE makes it: owned by whoever runs it, in template1's
                // tablespace.
                Current fresh_copy;
                fresh_copy.owner =
                    query(c, i, d.name, "SELECT current_user").rows.at(0).at(0).value_or("");
                fresh_copy.tablespace = inspect(c, i, {"template1"})["template1"].tablespace;
                current[d.name] = planned(fresh_copy, d);
            }
        } else {
            alter_cluster_level(c, d, it->second, run);
            apply_objects(i, d, r.statements, check, false);
            r.result = r.statements.empty() ? Result::unchanged : Result::changed;
            if (!r.statements.empty())
                current[d.name] = check ? planned(it->second, d) : inspect(c, i, {d.name})[d.name];
        }
        results.push_back(std::move(r));
    }
    return results;
}

}  // namespace

ApplyResult apply(Context&, const Instance& instance, const Database& database,
                  const ApplyOptions& options) {
    return apply_all(instance, {database}, Mode::apply, options.check, options.connection).at(0);
}

std::vector<ApplyResult> apply(Context&, const Instance& instance,
                               const std::vector<Database>& databases,
                               const ApplyOptions& options) {
    return apply_all(instance, databases, Mode::apply, options.check, options.connection);
}

ApplyResult create(Context&, const Instance& instance, const Database& database) {
    Database d = database;
    d.state = State::present;
    return apply_all(instance, {d}, Mode::create, false).at(0);
}

ApplyResult alter(Context&, const Instance& instance, const Database& database) {
    Database d = database;
    d.state = State::present;
    return apply_all(instance, {d}, Mode::alter, false).at(0);
}

bool exists(Context&, const Instance& instance, const std::string& name) {
    pg::Connection c(instance);
    return !query(c, instance, name, "SELECT 1 FROM pg_catalog.pg_database WHERE datname = $1",
                  {name})
                .rows.empty();
}

Database get(Context&, const Instance& i, const std::string& name) {
    Database d;
    d.name = name;
    {
        pg::Connection c(i);
        auto current = inspect(c, i, {name});
        auto it = current.find(name);
        if (it == current.end()) throw not_found(i, name);
        d.owner = it->second.owner;
        d.tablespace = it->second.tablespace;
        d.settings.emplace();
        for (const auto& [k, v] : it->second.settings) (*d.settings)[k] = v;
    }
    pg::Connection c(i, name);
    auto r = query(c, i, name,
                   "SELECT 's', n.nspname, pg_catalog.pg_get_userbyid(n.nspowner), NULL "
                   "FROM pg_catalog.pg_namespace n "
                   "WHERE n.nspname !~ '^pg_' AND n.nspname <> 'information_schema' "
                   "UNION ALL SELECT 'e', e.extname, n.nspname, e.extversion "
                   "FROM pg_catalog.pg_extension e "
                   "JOIN pg_catalog.pg_namespace n ON n.oid = e.extnamespace "
                   "WHERE e.extname <> 'plpgsql' ORDER BY 1 DESC, 2");
    for (const auto& row : r.rows) {
        if (row[0] == std::optional<std::string>("s"))
            d.schemas.push_back({*row[1], row[2], State::present});
        else
            d.extensions.push_back({*row[1], row[2], row[3], State::present});
    }
    return d;
}

std::vector<ListItem> ls(Context&, const Instance& i, const std::vector<std::string>& dbnames,
                         const std::vector<std::string>& exclude_dbnames) {
    pg::Connection c(i);
    auto r = query(c, i, "(list)",
                   "SELECT d.datname, pg_catalog.pg_get_userbyid(d.datdba), "
                   "pg_catalog.pg_encoding_to_char(d.encoding), d.datcollate, d.datctype, "
                   "CASE WHEN d.datallowconn THEN pg_catalog.pg_database_size(d.oid) END, "
                   "t.spcname, pg_catalog.shobj_description(d.oid, 'pg_database') "
                   "FROM pg_catalog.pg_database d "
                   "JOIN pg_catalog.pg_tablespace t ON t.oid = d.dattablespace "
                   "WHERE (CASE WHEN pg_catalog.cardinality($1::text[]) = 0 "
                   "THEN NOT d.datistemplate ELSE d.datname = ANY($1::text[]) END) "
                   "AND d.datname <> ALL($2::text[]) ORDER BY d.datname",
                   {pg::array_literal(dbnames), pg::array_literal(exclude_dbnames)});
    std::vector<ListItem> out;
    for (const auto& row : r.rows) {
        ListItem item;
        item.name = row[0].value_or("");
        item.owner = row[1].value_or("");
        item.encoding = row[2].value_or("");
        item.collation = row[3].value_or("");
        item.ctype = row[4].value_or("");
        item.size = row[5] ? std::stoll(*row[5]) : -1;
        item.tablespace = row[6].value_or("");
        item.description = row[7];
        out.push_back(std::move(item));
    }
    return out;
}

std::string drop(Context&, const Instance& i, const std::string& name, bool force) {
    pg::Connection c(i, name == "postgres" ? "template1" : "postgres");
    std::vector<std::string> ran;
    Runner run{c, i, name, ran};
    run(drop_sql(c, name, force, i));
    return ran.at(0);
}

// ---- run ------------------------------------------------------------------------------------

std::vector<RunResult> run(Context&, const Instance& i, const std::string& sql,
                           const RunOptions& o) {
    std::vector<RunResult> results;
    {
        pg::Connection c(i);
        auto r = query(c, i, "(list)",
                       "SELECT datname, datallowconn AND NOT datistemplate "
                       "FROM pg_catalog.pg_database ORDER BY datname");
        std::set<std::string> excluded(o.exclude_dbnames.begin(), o.exclude_dbnames.end());
        if (o.dbnames.empty()) {
            for (const auto& row : r.rows)
                if (row[1] == std::optional<std::string>("t") && !excluded.count(*row[0]))
                    results.push_back({*row[0], std::nullopt, {}});
        } else {
            std::set<std::string> all, seen;
            for (const auto& row : r.rows) all.insert(*row[0]);
            for (const auto& name : o.dbnames) {
                if (excluded.count(name) || !seen.insert(name).second) continue;
                RunResult rr{name, std::nullopt, {}};
                if (!all.count(name)) rr.error = not_found(i, name).what();
                results.push_back(std::move(rr));
            }
        }
    }
    std::mutex notice_mutex;
    std::atomic<size_t> next{0};
    auto work = [&] {
        for (;;) {
            size_t k = next.fetch_add(1);
            if (k >= results.size()) return;
            RunResult& rr = results[k];
            if (rr.error) continue;
            try {
                pg::Connection c(i, rr.database);
                if (o.on_notice)
                    c.on_notice([&, db = rr.database](const std::string& message) {
                        std::lock_guard<std::mutex> held(notice_mutex);
                        o.on_notice(db, message);
                    });
                log::debug(in_instance(i) + ": running SQL on database " + rr.database);
                rr.result = c.exec_script(sql);
            } catch (const pg::SqlError& e) {
                rr.error = e.server_message();
            } catch (const std::exception& e) {
                rr.error = e.what();
            }
        }
    };
    size_t workers = std::min<size_t>(std::max(o.jobs, 1), results.size());
    if (workers <= 1) {
        work();
    } else {
        std::vector<std::thread> pool;
        for (size_t k = 0; k < workers; ++k) pool.emplace_back(work);
        for (auto& t : pool) t.join();
    }
    return results;
}

// ---- dumps ----------------------------------------------------------------------------------

std::string encode_file_name(const std::string& dbname) {
    static const char* hex = "0123456789ABCDEF";
    std::string out;
    for (unsigned char ch : dbname) {
        if (std::isalnum(ch) || ch == '_' || ch == '-' || (ch == '.' && !out.empty())) {
            out += static_cast<char>(ch);
        } else {
            out += '%';
            out += hex[ch >> 4];
            out += hex[ch & 15];
        }
    }
    return out;
}

std::optional<std::string> decode_file_name(const std::string& encoded) {
    std::string out;
    for (size_t k = 0; k < encoded.size(); ++k) {
        char ch = encoded[k];
        if (ch != '%') {
            out += ch;
            continue;
        }
        if (k + 2 >= encoded.size()) return std::nullopt;
        auto digit = [](char h) -> int {
            if (h >= '0' && h <= '9') return h - '0';
            if (h >= 'A' && h <= 'F') return h - 'A' + 10;
            if (h >= 'a' && h <= 'f') return h - 'a' + 10;
            return -1;
        };
        int hi = digit(encoded[k + 1]), lo = digit(encoded[k + 2]);
        if (hi < 0 || lo < 0) return std::nullopt;
        out += static_cast<char>(hi * 16 + lo);
        k += 2;
    }
    return out;
}

namespace {

// "20261122T051633.123Z" for file names, "2026-11-22T05:16:33.123Z" for people.
std::string utc_stamp() {
    auto now = std::chrono::system_clock::now();
    auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(now.time_since_epoch()) % 1000;
    std::time_t t = std::chrono::system_clock::to_time_t(now);
    std::tm tm{};
    gmtime_r(&t, &tm);
    char buf[32];
    std::strftime(buf, sizeof buf, "%Y%m%dT%H%M%S", &tm);
    char out[48];
    std::snprintf(out, sizeof out, "%s.%03dZ", buf, static_cast<int>(ms.count()));
    return out;
}

std::optional<std::string> iso_from_stamp(const std::string& s) {
    // YYYYMMDDTHHMMSS.mmmZ
    if (s.size() != 20 || s[8] != 'T' || s[15] != '.' || s[19] != 'Z') return std::nullopt;
    for (size_t k : {0, 1, 2, 3, 4, 5, 6, 7, 9, 10, 11, 12, 13, 14, 16, 17, 18})
        if (!std::isdigit(static_cast<unsigned char>(s[k]))) return std::nullopt;
    return s.substr(0, 4) + "-" + s.substr(4, 2) + "-" + s.substr(6, 2) + "T" + s.substr(9, 2) +
           ":" + s.substr(11, 2) + ":" + s.substr(13, 2) + s.substr(15);
}

std::optional<DumpInfo> parse_dump_file(const fs::path& file) {
    std::string base = file.filename().string();
    const std::string ext = ".dump";
    if (base.size() <= ext.size() || base.compare(base.size() - ext.size(), ext.size(), ext))
        return std::nullopt;
    base.erase(base.size() - ext.size());
    size_t sep = base.rfind('_');
    if (sep == std::string::npos) return std::nullopt;
    auto name = decode_file_name(base.substr(0, sep));
    auto time = iso_from_stamp(base.substr(sep + 1));
    if (!name || !time) return std::nullopt;
    // The dumps directory is the owner's: only its regular files are dumps (a link there is not
    // followed, so no size of another file is reported).
    std::error_code ec;
    auto st = fs::symlink_status(file, ec);
    if (ec || !fs::is_regular_file(st)) return std::nullopt;
    DumpInfo d;
    d.database = *name;
    d.file = file;
    d.time = *time;
    d.size = fs::file_size(file, ec);
    if (ec) d.size = 0;
    return d;
}

std::string last_lines(std::string text) {
    while (!text.empty() && text.back() == '\n') text.pop_back();
    return text;
}

std::vector<std::string> connection_args(const Instance& i) {
    return {"-h", i.socket_dir.string(), "-p", std::to_string(i.port), "-U", i.superuser};
}

}  // namespace

fs::path dumps_directory(const Instance& instance) {
    return instance.base_dir / "dumps";
}

DumpInfo dump(Context& ctx, const Instance& i, const std::string& dbname,
              const std::optional<fs::path>& output_directory) {
    if (!exists(ctx, i, dbname)) throw not_found(i, dbname);
    Cluster cluster = instances::cluster_for(ctx, i);
    fs::path dir = output_directory ? fs::absolute(*output_directory) : dumps_directory(i);
    std::error_code ec;
    if (!output_directory || !fs::exists(dir, ec))
        make_owned_directory(dir, cluster.owner, fs::perms(0700));
    fs::path file = dir / (encode_file_name(dbname) + "_" + utc_stamp() + ".dump");
    Command cmd;
    cmd.as = &cluster.owner;
    cmd.argv = {cluster.installation.program("pg_dump").string(), "--format=custom",
                "--file=" + file.string()};
    for (auto& a : connection_args(i)) cmd.argv.push_back(a);
    cmd.argv.push_back("--dbname=dbname=" + pg::conninfo_value(dbname));
    cmd.env = {"PGPASSWORD", "PGSERVICE", "PGOPTIONS"};
    if (ctx.progress) ctx.progress("pg_dump " + dbname);
    log::debug(in_instance(i) + ": " + describe(cmd));
    auto r = run_process(cmd);
    if (ctx.progress) ctx.progress("");
    if (!r.ok()) {
        fs::remove(file, ec);
        throw Error(Exit::failure,
                    "pg_dump of database " + dbname + " in " + in_instance(i) + " failed:\n" +
                        last_lines(r.err.empty() ? r.out : r.err),
                    output_directory ? "the instance's owner (" + cluster.owner.name +
                                           ") must be able to write into " + dir.string()
                                     : "");
    }
    auto info = parse_dump_file(file);
    if (!info) throw Error(Exit::failure, "pg_dump wrote no " + file.string());
    return *info;
}

std::vector<DumpInfo> dumps(const Instance& i, const std::vector<std::string>& dbnames) {
    std::vector<DumpInfo> out;
    std::error_code ec;
    for (auto it = fs::directory_iterator(dumps_directory(i), ec);
         !ec && it != fs::directory_iterator(); it.increment(ec)) {
        auto d = parse_dump_file(it->path());
        if (!d) continue;
        if (!dbnames.empty() &&
            std::find(dbnames.begin(), dbnames.end(), d->database) == dbnames.end())
            continue;
        out.push_back(std::move(*d));
    }
    std::sort(out.begin(), out.end(), [](const DumpInfo& a, const DumpInfo& b) {
        return std::tie(a.time, a.database) < std::tie(b.time, b.database);
    });
    return out;
}

namespace {

// The dump a user means: a path, a file name in the dumps directory, or a database name.
fs::path find_dump(const Instance& i, const std::string& ref) {
    std::error_code ec;
    if (ref.find('/') != std::string::npos) {
        if (fs::is_regular_file(ref, ec)) return fs::absolute(ref);
        throw Error(Exit::not_found, "no dump file " + ref);
    }
    fs::path in_dir = dumps_directory(i) / ref;
    if (fs::is_regular_file(in_dir, ec)) return in_dir;
    auto of_db = dumps(i, {ref});
    if (!of_db.empty()) return of_db.back().file;
    throw Error(Exit::not_found,
                "no dump '" + ref + "' in " + dumps_directory(i).string() +
                    " (neither a file name nor a database with dumps)",
                "see them with: pgforge database dumps -i " + i.qualified_name());
}

struct DumpHeader {
    std::string dbname;
    std::string owner;  // empty when the dump does not say
};

// pg_restore --list: ";     dbname: NAME" and "N; 1262 OID DATABASE - NAME OWNER".
DumpHeader read_header(const Cluster& cluster, const fs::path& file) {
    Command cmd;
    cmd.as = &cluster.owner;
    // --create: the DATABASE entry is listed too.
    cmd.argv = {cluster.installation.program("pg_restore").string(), "--list", "--create",
                file.string()};
    auto r = run_process(cmd);
    if (!r.ok())
        throw Error(Exit::failure,
                    "pg_restore cannot read " + file.string() + ":\n" + last_lines(r.err));
    DumpHeader h;
    std::istringstream in(r.out);
    std::string line;
    const std::string db_key = ";     dbname: ";
    while (std::getline(in, line)) {
        if (h.dbname.empty() && line.size() > db_key.size() &&
            to_lower(line.substr(0, db_key.size())) == db_key)
            h.dbname = line.substr(db_key.size());
        if (!h.dbname.empty()) {
            std::string marker = " DATABASE - " + h.dbname + " ";
            size_t at = line.find(marker);
            if (at != std::string::npos && line.find(';') < at) {
                h.owner = line.substr(at + marker.size());
                break;
            }
        }
    }
    if (h.dbname.empty())
        throw Error(Exit::failure, file.string() + " does not say which database it holds");
    return h;
}

}  // namespace

std::string restore(Context& ctx, const Instance& i, const std::string& ref,
                    const RestoreOptions& o) {
    pg::require_running(i);
    fs::path file = find_dump(i, ref);
    Cluster cluster = instances::cluster_for(ctx, i);
    DumpHeader header = read_header(cluster, file);
    std::string target = o.target.value_or(header.dbname);
    if (target.empty()) throw Error(Exit::usage, "an empty database name");
    if (exists(ctx, i, target))
        throw Error(Exit::conflict, "database " + target + " already exists in " + in_instance(i),
                    "drop it first, or restore into another name with --database NEW");

    Command cmd;
    cmd.as = &cluster.owner;
    cmd.argv = {cluster.installation.program("pg_restore").string(),
                "--jobs=" + std::to_string(std::max(o.jobs, 1))};
    for (auto& a : connection_args(i)) cmd.argv.push_back(a);
    cmd.env = {"PGPASSWORD", "PGSERVICE", "PGOPTIONS"};
    bool into_new_name = target != header.dbname;
    if (into_new_name) {
        // pg_restore --create always uses the dumped name: create the new one first, owned as
        // the original (when that role exists here).
        pg::Connection c(i);
        std::optional<std::string> owner;
        if (!header.owner.empty() &&
            !query(c, i, target, "SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = $1",
                   {header.owner})
                 .rows.empty())
            owner = header.owner;
        std::vector<std::string> ran;
        Runner run{c, i, target, ran};
        run("CREATE DATABASE " + c.quote_identifier(target) +
            (owner ? " OWNER " + c.quote_identifier(*owner) : "") + " TEMPLATE template0");
        cmd.argv.push_back("--dbname=dbname=" + pg::conninfo_value(target));
    } else {
        cmd.argv.push_back("--create");
        cmd.argv.push_back("--dbname=dbname=postgres");
    }
    cmd.argv.push_back(file.string());
    if (ctx.progress) ctx.progress("pg_restore " + file.filename().string());
    log::debug(in_instance(i) + ": " + describe(cmd));
    auto r = run_process(cmd);
    if (ctx.progress) ctx.progress("");
    if (!r.ok()) {
        // Whatever was made of the target goes: a failed restore leaves nothing behind.
        std::string kept;
        try {
            if (exists(ctx, i, target)) drop(ctx, i, target, true);
        } catch (const std::exception& e) {
            kept = "\n(database " + target + " was left as it is: " + e.what() + ")";
        }
        throw Error(Exit::failure, "pg_restore of " + file.string() + " into database " + target +
                                       " in " + in_instance(i) + " failed:\n" +
                                       last_lines(r.err.empty() ? r.out : r.err) + kept);
    }
    return target;
}

}  // namespace pgforge::databases
