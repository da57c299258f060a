// instance upgrade: a new instance made from an old one with pg_upgrade (docs/upgrade.md). The
// new instance is created by the create pipeline with the old one's creation options, settings,
// pg_hba.conf and pg_ident.conf records and plugin options; pg_upgrade --check runs first, then
// pg_upgrade as the owner with the old stopped; the new instance takes the old one's port, starts,
// and its statistics are rebuilt (vacuumdb --analyze-in-stages).
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "engine/core/instance.hpp"
#include "engine/inventory/inventory.hpp"
#include "engine/pipeline/context.hpp"

namespace pgforge::instances {

enum class UpgradeMethod { copy, link, clone };

// "copy", "link", "clone"; Error(Exit::usage) for anything else.
UpgradeMethod parse_upgrade_method(const std::string& text);
std::string to_string(UpgradeMethod method);

struct UpgradeOptions {
    std::string version;  // the new major version; empty: PGFORGE_POSTGRES_VERSION/settings/newest
    std::string name;     // the new instance's name; empty: the old one's (needs a new version)
    UpgradeMethod method = UpgradeMethod::copy;
    int jobs = 1;             // pg_upgrade -j
    bool check_only = false;  // pg_upgrade --check alone: nothing is left behind
    bool drop_old = false;    // drop the old instance once the new one runs
    bool analyze = true;      // run vacuumdb --all --analyze-in-stages (else: say the command)
};

struct UpgradeReport {
    std::string old_instance;  // "15/main"
    std::string new_instance;  // "16/main"
    std::string old_version;   // the installations' versions ("15.18")
    std::string new_version;
    std::string method;
    bool check_only = false;
    std::string check_output;  // pg_upgrade --check's report
    bool old_was_running = false;
    int port = 0;      // the new instance's port (the old one's, once the upgrade is done)
    int old_port = 0;  // the port the old instance was moved to (stopped)
    // false after --link: the old data directory's files belong to the new instance now.
    bool old_startable = true;
    bool old_dropped = false;
    bool analyzed = false;           // vacuumdb ran
    std::string analyze_command;     // the statistics command (printed when it did not run)
    std::vector<std::string> notes;  // what the user should know (warnings of a step)
};

struct UpgradeResult {
    Instance instance;  // the new instance (for --check: as it would be, not kept)
    UpgradeReport report;
};

// Upgrades `old` (see the file comment and docs/upgrade.md). A refusal of pg_upgrade --check
// throws Error(Exit::failure) with its report, after removing the new instance; bad options are
// Error(Exit::usage) before anything is made.
UpgradeResult upgrade(Context& ctx, const Instance& old, const UpgradeOptions& options);

// Error(Exit::conflict) when `instance`'s data directory was handed to another instance by
// pg_upgrade --link (global/pg_control renamed to pg_control.old): it cannot start any more.
void check_not_linked_away(const Instance& instance);

// For instances::resume (the old instance's lock held): an upgrade whose process died. Before
// pg_upgrade ended, the new instance is removed and the old started again if it ran (unless
// --link had disabled it: then the new instance is kept, and the message says so); after, the
// new instance is kept as it is. Returns the message for the interrupted entry.
std::string resume_upgrade(Context& ctx, const Instance& old,
                           const std::vector<JournalStep>& steps);

}  // namespace pgforge::instances
