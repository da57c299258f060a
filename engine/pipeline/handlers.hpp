// Who runs at a hook point: the enabled plugins' handlers and the site hook executables, in one
// deterministic order (the plugins' order constraints, then priority, then name); and how a site
// hook is run.
#pragma once

#include <filesystem>
#include <string>
#include <vector>

#include "engine/core/instance.hpp"
#include "engine/core/settings.hpp"
#include "pgforge/plugin.hpp"

namespace pgforge {

class Context;
class LoadedPlugin;

// One handler at a hook point: a plugin's on_hook or a site hook executable.
struct HookHandler {
    int priority = 0;
    std::string name;                // plugin name, or "hooks/<point>.d/<file>"
    LoadedPlugin* plugin = nullptr;  // null for a site hook
    std::filesystem::path executable;
    // A plugin's order constraints at the point: plugin names it runs after, and before.
    std::vector<std::string> after;
    std::vector<std::string> before;
};

// The handlers of `point` in their order: every "after"/"before" constraint between two plugins
// that both have a handler there holds (one naming a plugin without a handler there is
// ignored); among handlers free to go next, the lowest priority first, at equal priority plugins
// before site hooks, plugins by name, site hooks in the order given. A cycle of constraints is
// Error(Exit::failure) naming the plugins in it.
void order_handlers(std::vector<HookHandler>& handlers, sdk::HookPoint point);

// The handlers of `point`, ordered by order_handlers. Unsafe site hook files are
// Error(Exit::failure) naming the file.
std::vector<HookHandler> handlers_at(Context& ctx, sdk::HookPoint point);

// Site hook executables of one point, in name order (see docs/plugins.md for what is skipped).
std::vector<std::filesystem::path> find_site_hooks(const Settings& settings, sdk::HookPoint point);

// Runs one site hook (h.plugin == nullptr) for `operation` on `instance`: the file opened once
// and checked through its descriptor, run as the instance's owner with a built environment.
// A non-zero exit, a timeout or a refused file is a refusal.
sdk::Result run_site_hook(const Settings& settings, const HookHandler& h, sdk::HookPoint point,
                          const std::string& operation, const Instance& instance,
                          const sdk::Outcome& outcome);

}  // namespace pgforge
