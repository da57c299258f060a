// The start and stop steps of an instance's server, as every operation runs them: by the plugin
// that provides the step (pgforge/steps.hpp) when one is loaded and manages the instance, else by
// the cluster driver. The only place operations start or stop a server.
#pragma once

#include "engine/driver/cluster_driver.hpp"

namespace pgforge {

class Context;
class Pipeline;

// Starts the server; false when it ran already. A provider's failure, or a provider that says
// done while no server runs, is Error(Exit::server) naming the plugin.
bool start_server(Context& ctx, Pipeline& p, const Cluster& cluster, double timeout);
// Stops the server; false when none ran. As start_server for a provider.
bool stop_server(Context& ctx, Pipeline& p, const Cluster& cluster, StopMode mode, double timeout);
// The plugin that provides the start step, when one is loaded ("" else): start --foreground,
// which hands the process to the server, cannot run through it.
std::string start_provider(Context& ctx);

}  // namespace pgforge
