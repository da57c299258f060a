// A temporarily stopped instance (seed 001's instances.stopped()): work that needs the server
// stopped (pg_checksums, ...) runs between the operation's stop and start steps, and the server
// is started again only when it was running, whatever the work's outcome.
//
// After a kill (kill -9, a crash, a second signal) while the server is stopped for the work, the
// journal knows: the operation journaled, before its stop, the marker "server stopped for work"
// (only when the server ran), so the next command on the instance (instances::resume) starts it
// again through a `start` with its hook points, and says so in the interrupted entry.
#pragma once

#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "engine/core/instance.hpp"
#include "engine/driver/cluster_driver.hpp"
#include "engine/inventory/inventory.hpp"
#include "engine/pipeline/context.hpp"

namespace pgforge {

class Pipeline;

namespace instances {

// The journal marker of an operation that stopped a running server for its work.
inline constexpr const char* stopped_for_work_marker = "server stopped for work";

// Within the pipeline `p` (its instance locked by the caller): when the server runs, journals the
// marker, stops it (stop_step: pre_stop, stop, post_stop), runs `work`, then starts it (pre_start,
// start, post_start) even when `work` threw or was interrupted (the start runs to its end, as an
// undo does). When the server was stopped, `work` alone runs. Returns whether it was running.
//
// Errors: the work's error is rethrown (its exit code kept) once the server runs again; when the
// start fails too, one Error names both (the work's exit code, the server stopped); when only the
// start fails, its Error says the work was done and the server is stopped. A stop that fails
// throws before the work runs (the server is started again if the failed stop left it stopped).
bool with_server_stopped(Context& ctx, Pipeline& p, const std::function<void()>& work,
                         StopMode mode = StopMode::fast, std::optional<double> timeout = {});

// The same as a whole operation: takes the instance lock, runs `operation` (journaled under that
// name) as a pipeline whose engine steps are the scope's, `work` receiving the pipeline (to run
// its own steps). Returns whether the server was running (it is again).
bool run_stopped(Context& ctx, const Instance& instance, const std::string& operation,
                 const std::function<void(Pipeline&)>& work, StopMode mode = StopMode::fast,
                 std::optional<double> timeout = {});

// For instances::resume: the steps of an operation whose process died. When they hold the
// marker, the server is started again (a `start` operation with its hook points) unless it runs
// already; returns what was done, for the interrupted entry's message ("" when the marker is not
// there or the server runs).
std::string resume_stopped(Context& ctx, const Instance& instance,
                           const std::vector<JournalStep>& steps);

}  // namespace instances
}  // namespace pgforge
