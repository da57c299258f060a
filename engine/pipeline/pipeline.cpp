#include "engine/pipeline/pipeline.hpp"

#include "engine/core/error.hpp"
#include "engine/core/fault.hpp"
#include "engine/core/interrupt.hpp"
#include "engine/core/log.hpp"
#include "engine/core/text.hpp"
#include "engine/pipeline/configure_draft.hpp"
#include "engine/pipeline/handlers.hpp"
#include "engine/pipeline/plugin_calls.hpp"
#include "engine/pipeline/plugin_host.hpp"

using Clock = std::chrono::steady_clock;

namespace pgforge {

Pipeline::Pipeline(Context& ctx, std::string operation, Instance& instance)
    : ctx_(ctx), operation_(std::move(operation)), instance_(instance) {
    // A signal before anything began: nothing to undo, nothing journaled.
    throw_if_interrupted();
    journal_id_ = ctx.inventory().begin_operation(operation_, instance_.qualified_name());
    fault_point(operation_, "begin", "after");
}

Pipeline::~Pipeline() {
    if (finished_) return;
    // The undo of an interrupted operation runs to its end; a second signal still ends the
    // process, and the next command on the instance resumes from the journal.
    DeferInterrupts defer;
    for (auto it = undo_.rbegin(); it != undo_.rend(); ++it) {
        fault_point(operation_, "undo " + it->first, "before");
        auto began = Clock::now();
        std::string at = utc_timestamp();
        try {
            log::info("undoing: " + it->first);
            it->second();
            pending_.push_back({"undo", it->first, at, ms_since(began), "ok", {}});
        } catch (const std::exception& e) {
            log::warn("could not undo " + it->first + ": " + e.what());
            pending_.push_back({"undo", it->first, at, ms_since(began), "failed", e.what()});
        } catch (...) {
            log::warn("could not undo " + it->first + ": an unknown exception");
            pending_.push_back({"undo", it->first, at, ms_since(began), "failed", "exception"});
        }
    }
    try {
        auto steps = std::move(pending_);
        ctx_.inventory().end_operation(journal_id_, false,
                                       failure_.empty() ? "interrupted" : failure_, steps);
    } catch (...) {
    }
}

void Pipeline::check_interrupt() {
    try {
        throw_if_interrupted();
    } catch (const Error& e) {
        failure_ = e.what();
        throw;
    }
}

void Pipeline::record(JournalStep step) {
    pending_.push_back(std::move(step));
}

void Pipeline::flush(bool synced) {
    if (pending_.empty()) return;
    auto steps = std::move(pending_);
    pending_.clear();
    ctx_.inventory().record_steps(journal_id_, steps, synced);
}

void Pipeline::on_undo(std::string what, std::function<void()> undo) {
    undo_.emplace_back(std::move(what), std::move(undo));
}

void Pipeline::made(const std::string& kind, const std::string& target) {
    pending_.push_back({"made", kind, utc_timestamp(), 0, "ok", target});
    flush();
    fault_point(operation_, "made " + kind, "after");
}

std::vector<JournalStep> Pipeline::close_for_end() {
    // A signal during the last step still fails the operation: it is undone, not half-kept.
    check_interrupt();
    fault_point(operation_, "finish", "before");
    finished_ = true;
    undo_.clear();
    auto steps = std::move(pending_);
    pending_.clear();
    return steps;
}

void Pipeline::finish() {
    auto steps = close_for_end();
    ctx_.inventory().end_operation(journal_id_, true, {}, steps);
}

void Pipeline::finish_removing_entry() {
    auto steps = close_for_end();
    ctx_.inventory().end_operation_removing(journal_id_, steps, instance_.version, instance_.name);
}

void Pipeline::finish_updating_entry() {
    auto steps = close_for_end();
    ctx_.inventory().end_operation_updating(journal_id_, steps, instance_);
}

void Pipeline::step(const std::string& name, const std::function<void()>& body) {
    // What ran so far is written before a long step: a kill -9 leaves it visible. History only,
    // so not synced (a power loss may lose it, never a `made` row: those are).
    flush(false);
    check_interrupt();
    fault_point(operation_, name, "before");
    auto began = Clock::now();
    std::string at = utc_timestamp();
    try {
        body();
    } catch (const std::exception& e) {
        failure_ = e.what();
        pending_.push_back({"step", name, at, ms_since(began), "failed", e.what()});
        // A program cut short by the signal fails with its own message; the signal is the cause.
        if (interrupted()) check_interrupt();
        throw;
    }
    pending_.push_back({"step", name, at, ms_since(began), "ok", {}});
    fault_point(operation_, name, "after");
    check_interrupt();
}

void Pipeline::hooks(sdk::HookPoint point, const sdk::Outcome& outcome, ConfigureDraft* draft) {
    const bool pre = sdk::is_pre(point);
    check_interrupt();
    const std::string point_name = sdk::to_string(point);
    fault_point(operation_, point_name, "before");
    std::vector<HookHandler> hs;
    try {
        hs = handlers_at(ctx_, point);
    } catch (const Error& e) {
        failure_ = e.what();
        throw;
    }
    if (ctx_.plugins_wanted())
        for (const PluginRecord* r : ctx_.plugins().skipped_at(point))
            pending_.push_back({"plugin", point_name + " " + r->manifest.name, utc_timestamp(), 0,
                                "skipped", "--skip-plugin " + r->manifest.name});
    std::optional<Error> refusal;
    for (const auto& h : hs) {
        auto began = Clock::now();
        std::string at = utc_timestamp();
        sdk::Result r;
        std::string kind;
        if (h.plugin) {
            kind = "plugin";
            if (draft) draft->begin_contributions(h.name);
            r = call_plugin_hook(ctx_, *h.plugin, *this, point, outcome,
                                 point == sdk::HookPoint::pre_configure ? draft : nullptr);
        } else {
            kind = "hook";
            r = run_site_hook(ctx_.settings(), h, point, operation_, instance_, outcome);
        }
        pending_.push_back({kind, point_name + " " + h.name, at, ms_since(began),
                            r.refused() ? "refused" : "ok", r.message});
        check_interrupt();
        if (!r.refused()) continue;
        std::string who = (h.plugin ? "plugin " : "site hook ") + h.name;
        Error e(Exit::failure,
                operation_ + " of instance " + instance_.qualified_name() + " refused at " +
                    point_name + " by " + who + ": " + r.message,
                pre ? "the step did not run" : "");
        if (pre) {
            failure_ = e.what();
            throw e;
        }
        if (!refusal) refusal = e;
    }
    if (draft && point == sdk::HookPoint::pre_configure && !draft->conflicts().empty()) {
        std::string text;
        for (const auto& c : draft->conflicts()) text += "\n  " + c;
        failure_ = "conflicting configuration:" + text;
        throw Error(
            Exit::conflict,
            "instance " + instance_.qualified_name() + ": conflicting configuration:" + text,
            "change the command, or the settings of the plugins named");
    }
    if (refusal) {
        failure_ = refusal->what();
        throw *refusal;
    }
}

void Pipeline::around(sdk::HookPoint pre, const std::string& step_name,
                      const std::function<void()>& body, ConfigureDraft* draft) {
    auto post = static_cast<sdk::HookPoint>(static_cast<int>(pre) + 1);
    hooks(pre, {}, draft);
    try {
        step(step_name, body);
    } catch (const std::exception& e) {
        sdk::Outcome failed{false, e.what()};
        std::string saved = failure_;
        try {
            // The post handlers see an interrupted step fail like any other.
            DeferInterrupts defer;
            hooks(post, failed);
        } catch (const std::exception& h) {
            log::warn(h.what());
        }
        failure_ = saved;
        throw;
    }
    hooks(post, {});
}

void journal_at_once(Context& ctx, const Instance& instance, const std::string& operation, bool ok,
                     const std::string& message, const std::vector<JournalStep>& steps) {
    try {
        auto& inventory = ctx.inventory();
        auto id = inventory.begin_operation(operation, instance.qualified_name());
        inventory.end_operation(id, ok, message, steps);
    } catch (const std::exception& e) {
        log::warn("could not journal " + operation + " on instance " + instance.qualified_name() +
                  ": " + e.what());
    }
}

namespace {

void journal_sql(Context& ctx, const Instance& instance, const std::string& operation, bool ok,
                 const std::string& message, const std::vector<std::string>& statements) {
    std::vector<JournalStep> steps;
    const std::string at = utc_timestamp();
    for (const auto& s : statements) steps.push_back({"sql", s, at, 0, "ok", {}});
    journal_at_once(ctx, instance, operation, ok, message, steps);
}

}  // namespace

void journal_change(Context& ctx, const Instance& instance, const std::string& operation,
                    const std::function<std::vector<std::string>()>& change) {
    std::vector<std::string> statements;
    try {
        statements = change();
    } catch (const Error& e) {
        journal_sql(ctx, instance, operation, false, e.what(), {});
        throw;
    }
    if (!statements.empty()) journal_sql(ctx, instance, operation, true, {}, statements);
}

}  // namespace pgforge
