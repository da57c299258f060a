// Roles of an instance (seed 001's pglift.roles, in C++): a declarative `apply` that compares
// the wanted role with pg_authid and runs only the DDL that makes them agree, plus `get`, `ls`,
// `exists`, `drop`, and the ~/.pgpass entries that go with roles.
//
// Passwords: the clear text given in a Role is turned into a SCRAM-SHA-256 verifier on the
// client (PQencryptPasswordConn); only the verifier reaches the server, and statements reported
// or logged show '***' in its place. A password counts as unchanged when the stored verifier
// matches it (recomputed with the stored salt and iteration count).
#pragma once

#include <filesystem>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "engine/core/instance.hpp"
#include "engine/operations/change.hpp"
#include "engine/pg/connection.hpp"

namespace pgforge {
class Context;
}

namespace pgforge::roles {

enum class State { present, absent };

// The wanted state of one role. Every attribute is optional: "not given" leaves what the role
// has (or, when creating it, PostgreSQL's default). `get` fills every attribute, so its result
// fed back to `apply` changes nothing.
struct Role {
    std::string name;
    std::optional<bool> login;
    std::optional<bool> superuser;
    std::optional<bool> createdb;
    std::optional<bool> createrole;
    std::optional<bool> replication;
    std::optional<bool> inherit;
    std::optional<int> connection_limit;     // -1: no limit
    std::optional<std::string> valid_until;  // a timestamp the server reads, or "infinity"
    // The roles this one is a member of: exactly these when given (grants and revokes).
    std::optional<std::vector<std::string>> in_roles;
    std::optional<std::string> password;  // clear text; never logged, never sent to the server
    // true: keep an entry for the role in ~/.pgpass (needs the password when there is none yet);
    // false: remove it; not given: leave ~/.pgpass alone. A role made absent loses its entry.
    std::optional<bool> pgpass;
    State state = State::present;
    // With state absent: what to do with what the role owns (as `drop`).
    std::optional<std::string> reassign_owned;
    bool drop_owned = false;
};

using Result = Change;
using pgforge::to_string;

struct Outcome {
    std::string name;
    Result result = Result::unchanged;
    // The statements run (in check mode: that would run), in order, with any password verifier
    // shown as '***'. Statements run in
    // another database than postgres begin with a comment naming it. Empty when unchanged.
    std::vector<std::string> statements;
    bool pgpass_changed = false;  // ~/.pgpass was (would be) written (counts as a change)
};

struct ApplyOptions {
    // Check mode (`apply --check`): compare as apply does and report the statements it would
    // run (a password that would change shows as '***', as always; it is not even hashed) and
    // whether ~/.pgpass would be written, without running or writing anything. The connection
    // is read-only (default_transaction_read_only). A role created earlier in the list counts
    // as existing for in_roles; what only the server finds when a statement runs (objects still
    // depending on a role to drop) is not found, and a list naming the same role twice compares
    // the later one with what is there.
    bool check = false;
    // A session to the instance's postgres database to use instead of opening one (instance
    // apply shares one between its parts); it stays open.
    pg::Connection* connection = nullptr;
};

// Makes the role as described. Throws Error(Exit::usage) for a bad description,
// Error(Exit::not_found) when a role named in in_roles or reassign_owned does not exist.
// Several statements on the instance run in one transaction.
Outcome apply(Context& ctx, const Instance& instance, const Role& role,
              const ApplyOptions& options = {});
// The same for several roles over one connection, in order; stops at the first error.
std::vector<Outcome> apply(Context& ctx, const Instance& instance, const std::vector<Role>& roles,
                           const ApplyOptions& options = {});

bool exists(Context& ctx, const Instance& instance, const std::string& name);
// Every attribute filled in, pgpass from ~/.pgpass, no password. Error(Exit::not_found) when
// there is no such role.
Role get(Context& ctx, const Instance& instance, const std::string& name);
// Roles of the instance, by name, without PostgreSQL's predefined pg_* roles.
std::vector<Role> ls(Context& ctx, const Instance& instance);

struct DropOptions {
    // REASSIGN OWNED BY the role TO this one, then DROP OWNED BY the role, in every database.
    std::optional<std::string> reassign_owned;
    // DROP OWNED BY the role in every database (its objects go away).
    bool drop_owned = false;
};
// DROP ROLE, after reassigning or dropping what it owns; removes its ~/.pgpass entry.
// Error(Exit::not_found) when there is no such role; Error(Exit::conflict) when objects still
// depend on it.
Outcome drop(Context& ctx, const Instance& instance, const std::string& name,
             const DropOptions& options = {});

// ---- ~/.pgpass ------------------------------------------------------------------------------

// $HOME/.pgpass (the home of the OS user running pgforge when HOME is unset).
std::filesystem::path pgpass_file();
// Rewrites the port of every entry for `old_port` (only those of host `socket_dir` when it is
// given) to `new_port`. Returns whether the file changed. For when an instance's port changes.
bool update_pgpass_port(int old_port, int new_port, const std::filesystem::path& socket_dir = {});

// ---- pieces, exposed for unit tests ---------------------------------------------------------
namespace detail {

// SCRAM-SHA-256$<iterations>:<salt>$<StoredKey>:<ServerKey> for this password, salt and
// iteration count (no SASLprep: callers pass the password as the server would see it).
std::string scram_verifier(const std::string& password, const std::string& salt, int iterations);
// Whether `verifier` (as stored in pg_authid.rolpassword) is this password's. False for
// anything that is not a well-formed SCRAM-SHA-256 verifier.
bool scram_matches(const std::string& verifier, const std::string& password);

std::string base64_encode(const std::string& bytes);
std::optional<std::string> base64_decode(const std::string& text);

struct PgpassEntry {
    std::string host, port, database, user, password;
};
// One field with '\' and ':' escaped, as libpq reads them.
std::string pgpass_escape(const std::string& field);
std::string pgpass_line(const PgpassEntry& e);
// nullopt for comments, blank lines and lines with fewer than five fields.
std::optional<PgpassEntry> pgpass_parse(const std::string& line);

}  // namespace detail
}  // namespace pgforge::roles
