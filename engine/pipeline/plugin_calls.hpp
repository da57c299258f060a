// The engine's side of the SDK: the contexts a plugin's hook, command, describe and setup are
// called with, and the calls themselves.
#pragma once

#include <ostream>
#include <string>
#include <tuple>
#include <vector>

#include "engine/core/instance.hpp"
#include "pgforge/plugin.hpp"

namespace pgforge {

class Context;
class LoadedPlugin;
class Pipeline;
class ConfigureDraft;

// A plugin's handler at `point` of the pipeline's operation (the draft only at pre_configure).
sdk::Result call_plugin_hook(Context& ctx, LoadedPlugin& plugin, Pipeline& p, sdk::HookPoint point,
                             const sdk::Outcome& outcome, ConfigureDraft* draft);

// The context a plugin's command runs with (pgforge FAMILY VERB ...).
int run_plugin_command(Context& ctx, LoadedPlugin& plugin, const sdk::Command& command,
                       const Instance* instance, const std::vector<std::string>& args, bool json,
                       std::ostream& out, std::ostream& err);

// Asks `plugin` to run `step` ("start", "stop") of the pipeline's instance (pgforge/steps.hpp):
// its exit status; `message` gets what it wrote (error stream, else standard output). Journaled
// with the pipeline's steps.
int call_step_provider(Context& ctx, LoadedPlugin& plugin, Pipeline& p, const std::string& step,
                       const std::vector<std::string>& args, std::string& message);

// Lines plugins add to `instance get`: (plugin, key, value).
std::vector<std::tuple<std::string, std::string, std::string>> plugin_fields(
    Context& ctx, const Instance& instance);

// Each loaded plugin's setup(), with a context that has no instance.
sdk::Result setup_plugin(Context& ctx, LoadedPlugin& plugin);

}  // namespace pgforge
