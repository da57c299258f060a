// Changing an instance's configuration files: postgresql.conf (and its include tree),
// pg_hba.conf, pg_ident.conf. Every change is checked by the server's own rules before it is
// written, written atomically, and on a running instance checked again by the server
// (pg_file_settings, pg_hba_file_rules) before a reload: a refused file is put back as it was.
#pragma once

#include <filesystem>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "engine/conf/hba.hpp"
#include "engine/conf/pgconf.hpp"
#include "engine/operations/instances.hpp"

namespace pgforge::pg {
class Connection;
}

namespace pgforge::configuration {

struct Change {
    std::string name;
    std::optional<std::string> before;  // effective value before; nullopt: not set in any file
    std::optional<std::string> after;   // nullopt: removed
    std::string effect;                 // "reload", "restart" or "unchanged"
    std::filesystem::path file;         // the file edited
    std::string note;                   // e.g. overridden by postgresql.auto.conf
};

// A plugin's word that what it changed needs a restart (sdk::Contributions::restart_needed).
struct RestartReason {
    std::string plugin;
    std::string reason;
};

struct Outcome {
    std::vector<Change> changes;
    // Restarts plugins asked for in this configure, reported with the changes; on a running
    // server they make the restart pending (and --restart does it).
    std::vector<RestartReason> restart_reasons;
    bool changed = false;  // a file was written
    bool reloaded = false;
    bool restarted = false;
    bool pending_restart = false;  // a restart is needed for a change to take effect
    // What the running server says after the operation: the parameters whose value in the files
    // waits for a restart (pg_settings.pending_restart), by name. Empty when it does not run.
    std::vector<std::string> pending_restart_names;
    // The port the inventory recorded before and after (equal unless the operation moved it).
    int port_before = 0;
    int port_after = 0;
    bool hba_changed = false;    // pg_hba.conf differs (or would, in a dry run)
    bool ident_changed = false;  // pg_ident.conf differs (or would)
    // With Options::diff: per file the command changes (or would), `diff -u` of it (the
    // command's own changes; plugins' contributions are reported in `changes`).
    struct FileDiff {
        std::filesystem::path file;
        std::string diff;
    };
    std::vector<FileDiff> diffs;
};

struct Options {
    bool restart = false;  // restart when a change needs it (and the instance runs)
    bool dry_run = false;  // check and report; write nothing
    bool diff = false;     // fill Outcome::diffs
    // A session to the running instance for what a request that changes nothing asks the
    // server (what waits for a restart), instead of opening one; it stays open.
    pg::Connection* connection = nullptr;
};

// One change of an instance's files: settings, pg_hba.conf and pg_ident.conf together, in ONE
// configure (each file written once, checked by the server once, one reload). What `conf set`,
// `conf remove`, `hba add/remove`, `ident add/remove` and `instance apply` do. A request that
// changes nothing writes nothing, reloads nothing and journals nothing; on a running server it
// still says what the server has pending a restart among the settings named.
struct Request {
    // A value: set (checked with the server's rules first); nullopt: removed from every file of
    // the postgresql.conf tree but postgresql.auto.conf (commented out, or deleted).
    std::map<std::string, std::optional<std::string>> settings;
    bool delete_lines = false;
    std::function<void(conf::HbaFile&)> hba;      // empty: pg_hba.conf left as it is
    std::function<void(conf::IdentFile&)> ident;  // empty: pg_ident.conf left as it is
    // Run the configure pipeline even when the request changes no file of its own, so that
    // plugins re-apply their contributions (their per-instance options changed, say).
    bool run_hooks = false;
};
Outcome configure(Context& ctx, const Instance& instance, const Request& request,
                  const Options& options = {});

// The pg_hba.conf and pg_ident.conf an instance's server reads (its hba_file and ident_file
// settings; in the data directory by default).
std::filesystem::path hba_path(const Instance& instance);
std::filesystem::path ident_path(const Instance& instance);

// postgresql.conf of an instance
conf::ConfTree load(const Instance& instance);
Outcome set(Context& ctx, const Instance& instance,
            const std::map<std::string, std::string>& values, const Options& options = {});
Outcome remove(Context& ctx, const Instance& instance, const std::vector<std::string>& names,
               bool delete_lines, const Options& options = {});

// Any postgresql.conf-format file (no server involved beyond the installation's checks).
Outcome set_file(Context& ctx, const std::filesystem::path& file,
                 const std::map<std::string, std::string>& values, const std::string& version,
                 const Options& options = {});
Outcome remove_file(const std::filesystem::path& file, const std::vector<std::string>& names,
                    bool delete_lines, const Options& options = {});

// pg_hba.conf / pg_ident.conf of an instance: `edit` changes the parsed file; the result is
// written atomically, checked by the server when it runs (then reloaded), or put back.
struct HbaOutcome {
    bool changed = false;
    bool reloaded = false;
};
HbaOutcome edit_hba(Context& ctx, const Instance& instance,
                    const std::function<void(conf::HbaFile&)>& edit, bool dry_run = false);
HbaOutcome edit_ident(Context& ctx, const Instance& instance,
                      const std::function<void(conf::IdentFile&)>& edit, bool dry_run = false);

// instance reload: the configure pipeline with no change of the command's own, so that plugins'
// contributions are re-applied (files written only if they changed), then the server re-reads
// its files. Error(Exit::stopped) when it is not running.
Outcome reload(Context& ctx, const Instance& instance);

// Undoes a configuration change that was interrupted (killed) half way: when the data directory
// holds the manifest of one (.pgforge-configure), every file it lists is put back as it was
// before the change and the manifest removed; a running server is asked to re-read them.
// Returns whether there was one. Cheap when there is none (one stat); idempotent; call it with
// the instance lock held. Error(Exit::failure) for a manifest pgforge did not write.
bool recover(Context& ctx, const Instance& instance);

// The port the files of a data directory give the server's next start (postgresql.conf, its
// includes, postgresql.auto.conf); nullopt when none sets a valid one. Throws when the files
// cannot be read.
std::optional<int> configured_port(const std::filesystem::path& data_dir);

// A port the files changed while the server ran (conf set without --restart) is the server's
// from its next start: called just before that start, with the server stopped, it sets
// `instance.port` to the files' port and returns the previous one when they differ.
std::optional<int> take_configured_port(Instance& instance);
// Once the operation that moved an instance's port has ended: its .pgpass entries (those of its
// socket directory) follow; a failure is a warning.
void move_pgpass_entries(const Instance& instance, int old_port);

// Parses "name=value" words; Error(Exit::usage) for a word without '='.
std::map<std::string, std::string> parse_assignments(const std::vector<std::string>& words);

}  // namespace pgforge::configuration
