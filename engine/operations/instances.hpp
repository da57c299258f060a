// The library API for instances (seed 001's pglift.instances, in C++). The CLI is a thin layer
// over these functions.
#pragma once

#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "engine/core/instance.hpp"
#include "engine/core/settings.hpp"
#include "engine/driver/cluster_driver.hpp"
#include "engine/pipeline/context.hpp"

namespace pgforge {

class FileLock;
class Pipeline;
namespace conf {
class HbaFile;
class IdentFile;
}  // namespace conf

namespace instances {

struct CreateOptions {
    std::string name;
    std::string version;  // empty: --version/PGFORGE_POSTGRES_VERSION/settings/newest
    int port = 0;         // 0: the first free port of the site's range
    std::string owner;    // empty: the site's owner (postgres as root, else the current user)
    std::string encoding = "UTF8";
    std::string locale;
    bool data_checksums = false;
    std::string auth_local;  // empty: the site's
    std::string auth_host;
    std::string superuser;
    std::filesystem::path superuser_password_file;
    std::filesystem::path waldir;
    bool start = true;
    bool allow_privileged_port = false;  // accept a port below 1024
    // postgresql.conf settings written at creation (checked with the server's rules before
    // anything is made), and edits of pg_hba.conf and pg_ident.conf as the templates render
    // them: part of the create's one configure, undone with it.
    std::map<std::string, std::string> settings;
    std::function<void(conf::HbaFile&)> hba;
    std::function<void(conf::IdentFile&)> ident;
    // Per-instance options of plugins (plugin -> key -> value, engine/operations/plugin_options):
    // checked first, stored with the inventory entry, so every hook of the create sees them.
    std::map<std::string, std::map<std::string, std::string>> plugin_options;
    // A standby (docs/replication.md): its data directory is a base backup of the upstream
    // instead of initdb's, so its encoding, locale, checksums and superuser are the upstream's.
    std::string standby_for;       // "15/main" (managed here) or a conninfo; empty: a primary
    std::string replication_role;  // empty: replicator
    std::string slot;              // empty: the standby's name (a local upstream), none (remote)
    std::filesystem::path replication_password_file;  // the role's password, first line
};

// initdb, configuration files, start (unless !start), inventory. On failure, removes exactly
// what it made and rethrows. Throws Error(Exit::conflict) if the instance, its data directory
// or the port is taken.
Instance create(Context& ctx, const CreateOptions& options);

// Refuses (Error(Exit::conflict), with `hint`) a port that another inventoried instance than
// `self` has, or that something listens on (loopback, IPv4 and IPv6).
void check_port_available(Context& ctx, int port, const Instance* self, const std::string& hint);

// Resolves "main" or "15/main" against the inventory. Throws Error(Exit::not_found).
Instance get(Context& ctx, const std::string& ref);
bool exists(Context& ctx, const std::string& ref);

struct ListItem {
    Instance instance;
    ServerStatus status;
    // Empty when the disk agrees with the inventory; else "data directory missing", "not in
    // inventory", or what differs, "; "-separated: PG_VERSION vs the version, the data
    // directory's owner vs the owner, the port of the configuration files vs the port.
    std::string drift;
};
// Inventory entries (filtered by version), reconciled with the disk: entries whose data
// directory is gone or whose mirrored fields (version, owner, port) differ from the disk, and
// data directories under the prefix that the inventory does not know.
std::vector<ListItem> ls(Context& ctx, const std::string& version = {});

// Serialises pgforge processes acting on one instance; Error(Exit::busy) after lock_timeout.
// Once held, resumes what a killed command left on the instance (see resume); when that removed
// the instance and `must_exist`, throws Error(Exit::not_found) saying so.
std::unique_ptr<FileLock> lock(Context& ctx, const Instance& instance, bool must_exist = true);

// Operations on the instance whose process died before they ended (kill -9, a crash, a second
// signal), found in the journal: a create is undone (what it journaled as made is removed,
// newest first: server, directories, inventory entry), a drop that got past pre_drop is
// finished, others are ended as interrupted. The caller holds the instance lock. Returns why
// the instance is gone when its entry was removed, else "".
std::string resume(Context& ctx, const std::string& version, const std::string& name);
// resume() for every instance with such an operation whose lock is free (instance list).
void resume_all(Context& ctx);

// The driver's view of an inventoried instance (installation and owner resolved).
Cluster cluster_for(Context& ctx, const Instance& instance);

ServerStatus status(Context& ctx, const Instance& instance);
// Whether the server runs: status() without the connection attempt (the driver's word; for
// PostgreSQL, postmaster.pid names a live process, a server still starting included).
bool running(Context& ctx, const Instance& instance);
bool start(Context& ctx, const Instance& instance, std::optional<double> timeout = {});
bool stop(Context& ctx, const Instance& instance, StopMode mode = StopMode::fast,
          std::optional<double> timeout = {});
void restart(Context& ctx, const Instance& instance, StopMode mode = StopMode::fast,
             std::optional<double> timeout = {});
void reload(Context& ctx, const Instance& instance);
// start --foreground: under the instance lock, pre_start runs and the start is journaled; then
// the lock is let go and the server replaces this process (post_start never runs: see
// docs/plugins.md). A refusal throws before the server is run.
[[noreturn]] void run_foreground(Context& ctx, const Instance& instance);
// Stops the server if it runs, removes its files and its inventory entry; a standby's slot on its
// local upstream goes with it. A post_drop handler that fails does not undo it: the instance is
// gone, and the failure is thrown afterwards. An instance with standbys (inventoried here) is
// refused unless `force`, naming them.
void drop(Context& ctx, const Instance& instance, bool force = false);

// The stop of an operation as a step of its pipeline, with pre_stop and post_stop around it
// (stop, restart, drop, configure --restart). Returns whether a server was stopped.
bool stop_step(Context& ctx, Pipeline& p, StopMode mode, std::optional<double> timeout);

// The operations that change an instance as the journal and the handlers name them; each has a
// row in the hook sequence table of docs/plugins.md.
const std::vector<std::string>& operation_names();

// PGHOST, PGPORT, PGDATA, PGUSER (and PATH with the installation's bindir first).
std::vector<std::pair<std::string, std::string>> environment(Context& ctx,
                                                             const Instance& instance);

}  // namespace instances
}  // namespace pgforge
