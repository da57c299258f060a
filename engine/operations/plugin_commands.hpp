// The commands plugins add (`pgforge FAMILY VERB ...`): found among the enabled plugins and run
// on one instance under its lock, on every instance (each one's output labelled), or on none.
// In the library, so that a C++ program runs them as the CLI does.
#pragma once

#include <optional>
#include <ostream>
#include <string>
#include <vector>

#include "engine/pipeline/context.hpp"
#include "pgforge/plugin.hpp"

namespace pgforge {

class LoadedPlugin;

namespace plugin_commands {

struct Found {
    LoadedPlugin* plugin = nullptr;
    sdk::Command command;
};

// The command FAMILY VERB of a loaded plugin; nullopt when no loaded plugin adds it. A family that
// belongs to an enabled plugin that is broken or skipped is Error(Exit::failure) naming it.
std::optional<Found> find(Context& ctx, const std::string& family, const std::string& verb);

// "FAMILY VERB" of every command the loaded plugins add (for "did you mean").
std::vector<std::string> names(Context& ctx);

// Runs the command: without an instance when it needs none; else on `instance_ref` under the
// instance's lock (Error(Exit::usage) when empty and not `all`), or, with `all`, on every
// inventoried instance in turn — in text a header line per instance, in JSON one object keyed
// by the qualified name; a failure on one is said naming it and the others still run; the
// worst status is returned. Each run on an instance is journaled as an operation.
int run(Context& ctx, const Found& found, const std::string& instance_ref, bool all,
        const std::vector<std::string>& args, bool json, std::ostream& out, std::ostream& err);

}  // namespace plugin_commands
}  // namespace pgforge
