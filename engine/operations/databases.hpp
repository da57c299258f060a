// Databases of a running instance (seed 001's pglift.databases, in C++): a declarative
// description applied idempotently, listing, SQL on many databases at once, dumps and restores.
// Everything goes through engine/pg/connection (unix socket, superuser, libpq escaping).
#pragma once

#include <cstdint>
#include <filesystem>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "engine/core/instance.hpp"
#include "engine/operations/change.hpp"
#include "engine/pg/connection.hpp"

namespace pgforge {
class Context;
}

namespace pgforge::databases {

enum class State { present, absent };
const char* to_string(State state);
State parse_state(const std::string& text);  // throws Error(Exit::usage)

struct Schema {
    std::string name;
    std::optional<std::string> owner;  // not given: whoever creates it (the superuser)
    State state = State::present;
    bool operator==(const Schema&) const = default;
};

struct Extension {
    std::string name;
    std::optional<std::string> schema;   // not given: the extension's default
    std::optional<std::string> version;  // not given: the default version when created, and
                                         // left as it is afterwards
    State state = State::present;
    bool operator==(const Extension&) const = default;
};

// What a database should be. Every field left out (nullopt, empty list) is left as it is.
struct Database {
    std::string name;
    State state = State::present;
    std::optional<std::string> owner;
    // Database-level settings (ALTER DATABASE ... SET). A value of nullopt resets that one; an
    // empty map given explicitly resets them all; not given (nullopt) leaves them alone.
    std::optional<std::map<std::string, std::optional<std::string>>> settings;
    std::vector<Schema> schemas;        // only those named are looked at
    std::vector<Extension> extensions;  // only those named are looked at
    std::optional<std::string> tablespace;
    bool force_drop = false;  // with state absent: terminate the sessions first (PG 13+)
    bool operator==(const Database&) const = default;
};

using Result = Change;
using pgforge::to_string;

struct ApplyResult {
    std::string name;
    Result result = Result::unchanged;
    // The statements run (in check mode: that would run), in order; empty when unchanged.
    std::vector<std::string> statements;
};

struct ApplyOptions {
    // Check mode (`apply --check`): compare as apply does and report the statements it would
    // run, without running them. The connections are read-only (default_transaction_read_only);
    // a database still to be created is compared as the copy of template1 it would be. What
    // only the server finds when a statement runs (a missing owner, a value it refuses) is not
    // found, and a list naming the same database twice compares the later schemas and
    // extensions with what is there, not with what the earlier ones would leave.
    bool check = false;
    // A session to the instance's postgres database to use instead of opening one (instance
    // apply shares one between its parts); it stays open.
    pg::Connection* connection = nullptr;
};

// Makes the database what `database` says: creates, alters, drops or leaves it. Re-applying
// the same description runs no statement and reports unchanged. Throws Error(Exit::stopped)
// when the instance is not running, Error(Exit::usage) for a malformed description.
ApplyResult apply(Context& ctx, const Instance& instance, const Database& database,
                  const ApplyOptions& options = {});
// Several at once over one connection (and one more per database whose schemas or extensions
// are named): what `database apply -f` does with a list. Stops at the first failure.
std::vector<ApplyResult> apply(Context& ctx, const Instance& instance,
                               const std::vector<Database>& databases,
                               const ApplyOptions& options = {});

// As apply, but Error(Exit::conflict) when it exists already.
ApplyResult create(Context& ctx, const Instance& instance, const Database& database);
// As apply, but Error(Exit::not_found) when it does not exist.
ApplyResult alter(Context& ctx, const Instance& instance, const Database& database);

bool exists(Context& ctx, const Instance& instance, const std::string& name);

// The full description of an existing database, usable as input to apply: owner, every
// database-level setting (an empty map when none), the schemas (but pg_* and
// information_schema), the extensions (but plpgsql), the tablespace.
// Throws Error(Exit::not_found, "database X does not exist in instance 15/main").
Database get(Context& ctx, const Instance& instance, const std::string& name);

struct ListItem {
    std::string name;
    std::string owner;
    std::string encoding;
    std::string collation;
    std::string ctype;
    std::int64_t size = -1;  // bytes; -1 when it cannot be measured (datallowconn false)
    std::string tablespace;
    std::optional<std::string> description;  // COMMENT ON DATABASE
};
// Databases, templates left out unless named, sorted by name. `dbnames` empty: all.
std::vector<ListItem> ls(Context& ctx, const Instance& instance,
                         const std::vector<std::string>& dbnames = {},
                         const std::vector<std::string>& exclude_dbnames = {});

// DROP DATABASE; with force (PostgreSQL 13+), WITH (FORCE) terminates its sessions first.
// Error(Exit::not_found) when it does not exist, Error(Exit::conflict) when sessions use it
// and force is false. Returns the statement run.
std::string drop(Context& ctx, const Instance& instance, const std::string& name,
                 bool force = false);

// ---- SQL on many databases ------------------------------------------------------------------

struct RunResult {
    std::string database;
    std::optional<std::string> error;  // set when the statement (or connecting) failed
    pg::QueryResult result;
};

struct RunOptions {
    std::vector<std::string> dbnames;          // empty: every connectable non-template database
    std::vector<std::string> exclude_dbnames;  // left out
    int jobs = 4;                              // connections at once (at most one per database)
    // Called with the database's name and the message, one call at a time (never concurrently).
    std::function<void(const std::string& database, const std::string& message)> on_notice;
};

// Runs `sql` (a script, as psql -c) on each database, concurrently over at most
// min(jobs, number of databases) connections. A failing database is reported in its
// RunResult and the others still run. Results are in the order of the database names.
// A database named in dbnames that does not exist is a failed result.
std::vector<RunResult> run(Context& ctx, const Instance& instance, const std::string& sql,
                           const RunOptions& options = {});

// ---- dumps ----------------------------------------------------------------------------------

struct DumpInfo {
    std::string database;
    std::filesystem::path file;
    std::uintmax_t size = 0;
    std::string time;  // ISO 8601 UTC, from the file name: "2026-11-22T05:16:33.123Z"
};

// <instance base_dir>/dumps: 0700, owned by the instance's owner.
std::filesystem::path dumps_directory(const Instance& instance);

// pg_dump -Fc of the database into <output_directory or dumps_directory>/<name>_<UTC>.dump,
// run as the instance's owner. Error(Exit::not_found) when the database does not exist.
DumpInfo dump(Context& ctx, const Instance& instance, const std::string& dbname,
              const std::optional<std::filesystem::path>& output_directory = {});

// The dumps in the instance's dumps directory (of these databases when given), oldest first.
std::vector<DumpInfo> dumps(const Instance& instance, const std::vector<std::string>& dbnames = {});

struct RestoreOptions {
    // Restore into this database instead of the dumped one: it is created first (owned as the
    // original) and must not exist.
    std::optional<std::string> target;
    int jobs = 1;  // pg_restore --jobs
};

// Restores a dump: `dump` is a path, a file name in the dumps directory, or a database name
// (its newest dump). Into the dumped database's own name (which must not exist: pg_restore
// --create) or into options.target. Error(Exit::conflict) when the target exists. Returns the
// name restored into.
std::string restore(Context& ctx, const Instance& instance, const std::string& dump,
                    const RestoreOptions& options = {});

// File names of dumps: the database name, with every byte but [A-Za-z0-9_.-] as %XX, then
// "_", then the UTC time. Exposed for tests.
std::string encode_file_name(const std::string& dbname);
std::optional<std::string> decode_file_name(const std::string& encoded);

}  // namespace pgforge::databases
