// instance apply: make an instance what its manifest says (engine/operations/instance_manifest),
// idempotently, through the same operations as the commands (create, one configure, start,
// stop, drop, roles and databases apply), and say honestly what changed.
#pragma once

#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include "engine/operations/change.hpp"
#include "engine/operations/configuration.hpp"
#include "engine/operations/instance_manifest.hpp"

namespace pgforge::instances {

struct FieldChange {
    std::string field;  // "settings.work_mem", "hba", "ident", "port", "state", "backup.stanza"
    std::optional<std::string> before, after;  // nullopt: absent
};

using ApplyResult = Change;  // created, changed, unchanged, dropped

struct Applied {
    std::string name;  // VERSION/NAME
    ApplyResult result = ApplyResult::unchanged;
    std::vector<FieldChange> changes;
    bool pending_restart = false;  // a restart-only setting waits (restart_on_changes false)
    bool restarted = false;
    std::vector<configuration::Outcome::FileDiff> diffs;  // with ApplyOptions::diff
    std::vector<roles::Outcome> roles;
    std::vector<databases::ApplyResult> databases;
    // In a check of an instance that does not run yet: its databases and roles cannot be
    // compared; they are listed here, by name, as "pending".
    std::vector<std::string> pending_roles, pending_databases;
};

struct ApplyOptions {
    bool check = false;  // compute the result; change nothing, journal nothing
    bool diff = false;   // fill Applied::diffs
};

// The plugins whose per-instance options a manifest may set (a section named after each).
std::vector<PluginSection> plugin_sections(Context& ctx);

// Throws Error as the operations it runs do; what was applied before the failure stays (each
// operation is whole or undone on its own), and the error says which part failed.
Applied apply(Context& ctx, const Manifest& manifest, const ApplyOptions& options = {});

}  // namespace pgforge::instances
