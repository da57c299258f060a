// Every operation on an instance runs as a pipeline: the engine's own steps, each with an
// optional undo, and around them the hook points where plugin handlers and site hooks run, in
// one deterministic order (priority, then name). Everything is written to the journal.
#pragma once

#include <chrono>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "engine/core/instance.hpp"
#include "engine/inventory/inventory.hpp"
#include "engine/pipeline/context.hpp"
#include "pgforge/plugin.hpp"

namespace pgforge {

class ConfigureDraft;

// One operation on one instance.
class Pipeline {
  public:
    Pipeline(Context& ctx, std::string operation, Instance& instance);
    // Undoes what was made unless finish() ran; ends the journal entry.
    ~Pipeline();
    Pipeline(const Pipeline&) = delete;
    Pipeline& operator=(const Pipeline&) = delete;

    // pre hook point, the engine step, post hook point (which sees the step's outcome).
    // A refusal or failure throws Error naming who refused.
    void around(sdk::HookPoint pre, const std::string& step, const std::function<void()>& body,
                ConfigureDraft* draft = nullptr);
    // Runs the handlers of one point. pre_*: the first refusal throws. post_*: all run, then the
    // first refusal throws.
    void hooks(sdk::HookPoint point, const sdk::Outcome& outcome = {},
               ConfigureDraft* draft = nullptr);
    // An engine step, timed and journaled.
    void step(const std::string& name, const std::function<void()>& body);
    // What undoes the last step, run in reverse order when the operation fails.
    void on_undo(std::string what, std::function<void()> undo);
    // Journals, at once and before it is made, something this operation is about to make
    // (kind: "inventory entry", "directory", "empty directory", "server", "replication slot";
    // target: the instance's qualified name, a path, the data directory, "15/main SLOT"), so
    // that after a kill the next command on the instance can undo it (see instances::resume).
    // A marker such as "drop decided" says the operation went past the point where it is
    // finished rather than undone.
    void made(const std::string& kind, const std::string& target);
    // The operation succeeded: drop the undos, end the journal entry "ok". A signal received
    // meanwhile fails it instead (Error(Exit::interrupted)), and the undos run.
    void finish();
    // finish(), removing the instance's inventory entry in the same transaction (drop).
    void finish_removing_entry();
    // finish(), recording instance()'s fields in its inventory entry in the same transaction
    // (an operation that changed what the inventory mirrors, such as the port).
    void finish_updating_entry();

    Instance& instance() { return instance_; }
    const std::string& operation() const { return operation_; }
    bool first_configure = false;  // set by create

    // For the plugin contexts: journal a program a plugin ran.
    void record(JournalStep step);
    // Ends the operation as failed with `message` (undos run when the pipeline goes).
    void fail(std::string message) { failure_ = std::move(message); }

  private:
    // Writes the pending journal rows in one transaction; `synced`: and waits for the disk.
    void flush(bool synced = true);
    // throw_if_interrupted(), recording the failure.
    void check_interrupt();
    Context& ctx_;
    std::string operation_;
    Instance& instance_;
    std::int64_t journal_id_ = 0;
    // The end shared by the three finish calls: the last interrupt check and kill point, the
    // undo stack dropped, the steps still to write handed over.
    std::vector<JournalStep> close_for_end();
    bool finished_ = false;
    std::string failure_;
    std::vector<std::pair<std::string, std::function<void()>>> undo_;
    std::vector<JournalStep> pending_;
};

// Journals, at once, an operation on `instance` that ran outside a Pipeline: begun and ended in
// one go (a database or role change, with its statements as steps), or refused before its
// pipeline began (a configure whose values the server rejects). A journal that cannot be
// written is a warning: the operation's own outcome stands.
void journal_at_once(Context& ctx, const Instance& instance, const std::string& operation, bool ok,
                     const std::string& message, const std::vector<JournalStep>& steps);

// Runs a database or role change on `instance` and journals it there as `operation`
// ("database create app"): one entry whose steps are the statements `change` returns (kind
// "sql"), written only when it ran some or failed, so that a no-op apply writes nothing. A
// failure (a refusal by the server, a missing role) is journaled with its message and rethrown.
void journal_change(Context& ctx, const Instance& instance, const std::string& operation,
                    const std::function<std::vector<std::string>()>& change);

}  // namespace pgforge
