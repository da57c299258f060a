// Physical replication between instances (docs/replication.md): a standby made from a primary
// (`instance create NAME --standby-for PRIMARY`), the primary prepared for it (replication role,
// pg_hba.conf record, physical slot), the standby's own configuration (primary_conninfo reading
// its password from a passfile, primary_slot_name, standby.signal), and the waits and checks the
// other replication operations (promote, rebuild, drop) share.
#pragma once

#include <filesystem>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "engine/operations/instances.hpp"

namespace pgforge {
class Pipeline;
}

namespace pgforge::replication {

// Where a standby streams from: an instance of this machine ("15/main", "main"), or a conninfo
// for another host ("host=db1 port=5432", or a postgresql:// URI). A password in it is refused:
// passwords come from a file.
struct Upstream {
    std::optional<Instance> local;  // managed here
    std::string host;               // what the standby connects to
    int port = 0;
    std::string user;  // the replication role
    // Remaining conninfo keywords of a remote upstream (sslmode=...), kept as given.
    std::vector<std::pair<std::string, std::string>> extra;
    // What the inventory records: "15/main", or the conninfo without any password.
    std::string display() const;
};

// Parses PRIMARY of --standby-for. Error(Exit::usage) for a conninfo with a password or a
// malformed one; Error(Exit::not_found) for an instance name that is not inventoried.
Upstream resolve_upstream(Context& ctx, const std::string& text, const std::string& role);

struct StandbyOptions {
    std::string upstream;  // --standby-for
    std::string role;      // --replication-role; empty: "replicator"
    std::string slot;      // --slot; empty: the standby's name (a local primary), none (remote)
    std::filesystem::path password_file;  // --password-file: the replication role's password
};

// What `create --standby-for` decided before anything is made: the upstream, the replication
// role, its password (nullopt: none is written; a remote upstream reached by other means), the
// slot and whether the base backup makes it (a remote upstream).
struct StandbyPlan {
    Upstream upstream;
    std::string role;
    std::optional<std::string> password;
    bool create_role = false;  // a local upstream: the role is made (or given the password)
    std::string slot;
    bool backup_creates_slot = false;
};

// Checks the options against the upstream (running, its version, the role and its password,
// the slot free) and decides. Nothing is written. `version` is the standby's installation's.
StandbyPlan plan_standby(Context& ctx, const std::string& standby_name, const std::string& version,
                         const StandbyOptions& options);

// The local upstream made ready, as steps of the standby's create: the replication role (SCRAM,
// through roles::apply), a pg_hba.conf record for it (through the upstream's configure
// pipeline, so its plugins' checks run), and the physical slot (journaled as made: undone with
// the create). Nothing for a remote upstream.
void prepare_upstream(Context& ctx, Pipeline& p, const StandbyPlan& plan);

// The base backup into the standby's directories (made and journaled by the caller), the
// passfile written first; then standby.signal. Returns the settings for its postgresql.conf.
std::map<std::string, std::string> make_standby_data(Context& ctx, const Cluster& standby,
                                                     const StandbyPlan& plan);

// The file, in the standby's base directory, that primary_conninfo names as its passfile.
std::filesystem::path passfile_of(const Instance& standby);

// The primary_conninfo of a standby streaming from `upstream` (host, port, user, passfile,
// application_name; never a password).
std::string primary_conninfo(const Instance& standby, const Upstream& upstream);

// Drops physical slot `slot` on `primary` when it runs and has it; a warning when it cannot.
void drop_slot(Context& ctx, const Instance& primary, const std::string& slot);

// Waits until the standby's WAL receiver streams (pg_stat_wal_receiver), up to `timeout`
// seconds; Error(Exit::failure) with the log's last lines when it does not.
void wait_streaming(Context& ctx, const Instance& standby, double timeout);

// The inventoried instances whose upstream is `primary` (its standbys and the instances
// diverged from it).
std::vector<Instance> standbys_of(Context& ctx, const Instance& primary);

// Gives a data directory that came from the upstream (a base backup, a rewound old primary) what
// a standby of `upstream` needs besides its settings: the passfile (0600, the owner's) holding
// `password` when given (else the passfile is left as it is), and standby.signal. Returns the
// settings its postgresql.conf must have (primary_conninfo, primary_slot_name), which the caller
// writes with the rest of its configuration (the create's one configure; see standby_create).
std::map<std::string, std::string> configure_as_standby(const Cluster& standby,
                                                        const Upstream& upstream,
                                                        const std::string& slot,
                                                        const std::optional<std::string>& password);

// The settings of `conf_text` (the upstream's postgresql.conf, as a base backup or pg_rewind
// copied it) that a standby keeps: without what names the upstream's own place (port, socket
// directories, include directives, primary_conninfo, primary_slot_name) and without
// `also_drop` (what the standby's own template sets). One "name = value" line each.
std::string inherited_settings(const std::string& conf_text,
                               const std::vector<std::string>& also_drop);

}  // namespace pgforge::replication
