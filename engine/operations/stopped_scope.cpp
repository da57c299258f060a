#include "engine/operations/stopped_scope.hpp"

#include <algorithm>
#include <exception>

#include "engine/core/error.hpp"
#include "engine/core/fault.hpp"
#include "engine/core/interrupt.hpp"
#include "engine/core/log.hpp"
#include "engine/operations/instances.hpp"
#include "engine/pipeline/pipeline.hpp"
#include "engine/pipeline/steps.hpp"

namespace pgforge {
namespace instances {
namespace {

// The exit code an exception carries (Exit::failure for anything but an Error).
Exit code_of(const std::exception& e) {
    auto* error = dynamic_cast<const Error*>(&e);
    return error ? error->code() : Exit::failure;
}

bool running(Context& ctx, const Cluster& cluster) {
    try {
        return ctx.driver().status(cluster).running;
    } catch (const std::exception&) {
        return false;
    }
}

}  // namespace

bool with_server_stopped(Context& ctx, Pipeline& p, const std::function<void()>& work,
                         StopMode mode, std::optional<double> timeout) {
    Instance& i = p.instance();
    Cluster status_of{i, {}, {}};
    const bool was_running = running(ctx, status_of);
    if (!was_running) {
        work();
        return false;
    }
    const std::string op = p.operation();
    Cluster cluster = cluster_for(ctx, i);
    // Started again by this function, or after a kill by the next command (resume_stopped).
    p.made(stopped_for_work_marker, i.data_dir.string());
    auto start_again = [&] {
        // Runs to its end, as an undo does: an interruption of the work does not leave the
        // server stopped (a second signal still ends the process; the journal then has it).
        DeferInterrupts defer;
        p.around(sdk::HookPoint::pre_start, "start", [&] {
            start_server(ctx, p, cluster, timeout.value_or(ctx.settings().start_timeout));
        });
        fault_point(op, "start again", "after");
    };
    try {
        stop_step(ctx, p, mode, timeout);
    } catch (const std::exception& e) {
        // A refusal leaves it running; a stop that failed half way may have stopped it.
        if (!running(ctx, status_of)) {
            try {
                start_again();
            } catch (const std::exception& s) {
                throw Error(
                    code_of(e),
                    std::string(e.what()) + "\nand the server did not start again: " + s.what(),
                    "start it: pgforge instance start " + i.qualified_name());
            }
        }
        throw;
    }
    fault_point(op, "stopped for work", "after");
    std::exception_ptr failed;
    try {
        work();
    } catch (...) {
        failed = std::current_exception();
    }
    fault_point(op, "work", "after");
    try {
        start_again();
    } catch (const std::exception& s) {
        const std::string start_hint = "start it: pgforge instance start " + i.qualified_name();
        if (!failed)
            throw Error(code_of(s),
                        "instance " + i.qualified_name() + ": the " + op +
                            " was done, but the server did not start again: " + s.what(),
                        start_hint);
        try {
            std::rethrow_exception(failed);
        } catch (const std::exception& w) {
            throw Error(code_of(w),
                        std::string(w.what()) + "\nand the server did not start again: " + s.what(),
                        start_hint);
        }
    }
    if (failed) std::rethrow_exception(failed);
    return true;
}

bool run_stopped(Context& ctx, const Instance& inst, const std::string& operation,
                 const std::function<void(Pipeline&)>& work, StopMode mode,
                 std::optional<double> timeout) {
    auto held = lock(ctx, inst);
    Instance i = inst;
    Pipeline p(ctx, operation, i);
    bool was_running = with_server_stopped(
        ctx, p, [&] { work(p); }, mode, timeout);
    p.finish();
    return was_running;
}

std::string resume_stopped(Context& ctx, const Instance& inst,
                           const std::vector<JournalStep>& steps) {
    const bool stopped = std::any_of(steps.begin(), steps.end(), [](const JournalStep& st) {
        return st.kind == "made" && st.name == stopped_for_work_marker;
    });
    if (!stopped) return "";
    try {
        Instance i = inst;
        Cluster cluster = cluster_for(ctx, i);
        if (ctx.driver().status(cluster).running) return "";
        log::info("instance " + i.qualified_name() +
                  ": starting the server an interrupted operation had stopped for its work");
        Pipeline p(ctx, "start", i);
        p.around(sdk::HookPoint::pre_start, "start",
                 [&] { start_server(ctx, p, cluster, ctx.settings().start_timeout); });
        p.finish();
        return "; the server it had stopped for its work was started again";
    } catch (const std::exception& x) {
        log::warn(
            "instance " + inst.qualified_name() +
            ": the server an interrupted operation had stopped did not start again: " + x.what());
        return std::string("; the server it had stopped for its work did not start again: ") +
               x.what() + " (start it: pgforge instance start " + inst.qualified_name() + ")";
    }
}

}  // namespace instances
}  // namespace pgforge
