#include "engine/pipeline/steps.hpp"

#include <sstream>

#include "engine/core/error.hpp"
#include "engine/core/log.hpp"
#include "engine/pipeline/context.hpp"
#include "engine/pipeline/pipeline.hpp"
#include "engine/pipeline/plugin_calls.hpp"
#include "engine/pipeline/plugin_host.hpp"
#include "pgforge/steps.hpp"

namespace pgforge {
namespace {

LoadedPlugin* provider(Context& ctx, const std::string& step) {
    return ctx.plugins_wanted() ? ctx.plugins().provider_of(step) : nullptr;
}

std::string seconds(double timeout) {
    std::ostringstream s;
    s << timeout;
    return s.str();
}

// Runs the provider's step: true when it did it, false when it declined the instance.
bool provided(Context& ctx, Pipeline& p, LoadedPlugin& plugin, const std::string& step,
              const std::vector<std::string>& args) {
    std::string message;
    int rc = call_step_provider(ctx, plugin, p, step, args, message);
    if (rc == sdk::step_declined) return false;
    if (rc != 0)
        throw Error(Exit::server,
                    "plugin " + plugin.name() + " could not " + step + " instance " +
                        p.instance().qualified_name() + " (exit status " + std::to_string(rc) +
                        ")" + (message.empty() ? "" : ": " + message),
                    "see pgforge instance logs " + p.instance().qualified_name());
    return true;
}

}  // namespace

bool start_server(Context& ctx, Pipeline& p, const Cluster& cluster, double timeout) {
    if (LoadedPlugin* plugin = provider(ctx, "start")) {
        const bool was_running = ctx.driver().status(cluster).running;
        prepare_server_directories(cluster);
        if (provided(ctx, p, *plugin, "start", {"--timeout", seconds(timeout)})) {
            if (!ctx.driver().status(cluster).running)
                throw Error(Exit::server,
                            "plugin " + plugin->name() + " said it started instance " +
                                p.instance().qualified_name() + ", but no server runs there",
                            "see pgforge instance logs " + p.instance().qualified_name());
            return !was_running;
        }
    }
    return ctx.driver().start(cluster, timeout, ctx.progress);
}

bool stop_server(Context& ctx, Pipeline& p, const Cluster& cluster, StopMode mode, double timeout) {
    if (LoadedPlugin* plugin = provider(ctx, "stop")) {
        const bool was_running = ctx.driver().status(cluster).running;
        if (provided(ctx, p, *plugin, "stop",
                     {"--mode", to_string(mode), "--timeout", seconds(timeout)})) {
            if (ctx.driver().status(cluster).running)
                throw Error(Exit::server,
                            "plugin " + plugin->name() + " said it stopped instance " +
                                p.instance().qualified_name() + ", but its server still runs",
                            "stop it with the plugin's own tools, or see pgforge instance logs " +
                                p.instance().qualified_name());
            return was_running;
        }
    }
    return ctx.driver().stop(cluster, mode, timeout);
}

std::string start_provider(Context& ctx) {
    LoadedPlugin* plugin = provider(ctx, "start");
    return plugin ? plugin->name() : std::string();
}

}  // namespace pgforge
