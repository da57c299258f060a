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

#include "engine/conf/hba.hpp"
#include "engine/conf/pgconf.hpp"
#include "engine/instances.hpp"
#include "engine/inventory/inventory.hpp"
#include "pgforge/plugin.hpp"

namespace pgforge {

class LoadedPlugin;

// One handler at a hook point: a plugin's on_hook or a site hook executable.
struct HookHandler {
    int priority = 0;
    std::string name;                // plugin name, or "hooks/<point>.d/<file>"
    LoadedPlugin* plugin = nullptr;  // null for a site hook
    std::filesystem::path executable;
};

// The handlers of `point`, sorted by (priority, name). Unsafe site hook files are
// Error(Exit::failure) naming the file.
std::vector<HookHandler> handlers_at(Context& ctx, sdk::HookPoint point);

// Site hook executables of one point, in name order (see docs/plugins.md for what is skipped).
std::vector<std::filesystem::path> find_site_hooks(const Settings& settings, sdk::HookPoint point);

// What a configure writes: the user's change and the contributions of pre_configure handlers,
// merged, each file written once. Implements the SDK's Configuration for handlers.
class ConfigureDraft final : public sdk::Configuration {
  public:
    // `docs`: postgresql.conf-format documents by path (edited by the user's change); `hba`:
    // pg_hba.conf as it will be written; `file_for(name)`: which document sets `name`.
    ConfigureDraft(const Instance& instance,
                   std::map<std::filesystem::path, conf::ConfDocument>& docs, conf::HbaFile& hba,
                   conf::IdentFile& ident,
                   std::function<std::filesystem::path(const std::string&)> file_for);

    // What the command itself sets (nullopt: removes), to report conflicts with contributions.
    void user_sets(const std::string& name, std::optional<std::string> value);
    void begin_contributions(const std::string& plugin) { contributor_ = plugin; }

    void set_parameter(std::string_view name, std::string_view value) override;
    void add_hba_record(std::string_view record, sdk::HbaPlace place) override;
    void add_file(std::string_view relative_name, std::string_view content, unsigned mode) override;
    std::optional<std::string> parameter(std::string_view name) const override;
    std::string hba_text() const override;
    void add_ident_mapping(std::string_view map, std::string_view system_user,
                           std::string_view database_user) override;
    bool ident_changed() const { return ident_changed_; }

    // Conflicts found so far ("parameter X: plugin a sets '1', plugin b sets '2'").
    const std::vector<std::string>& conflicts() const { return conflicts_; }
    // Parameter contributions by name (value, plugin).
    const std::map<std::string, std::pair<std::string, std::string>>& parameters() const {
        return parameters_;
    }
    // Puts the parameter contributions into the documents; returns the names that changed.
    std::vector<std::string> apply_parameters();
    bool hba_changed() const { return hba_changed_; }
    // Writes the contributed files that differ from what is on disk; returns their paths.
    std::vector<std::filesystem::path> write_files(const OsUser& owner);

  private:
    const Instance& instance_;
    std::map<std::filesystem::path, conf::ConfDocument>& docs_;
    conf::HbaFile& hba_;
    conf::IdentFile& ident_;
    bool ident_changed_ = false;
    std::function<std::filesystem::path(const std::string&)> file_for_;
    std::string contributor_;
    std::map<std::string, std::optional<std::string>> user_;
    std::map<std::string, std::pair<std::string, std::string>> parameters_;
    struct File {
        std::string plugin;
        std::filesystem::path path;
        std::string content;
        unsigned mode;
    };
    std::vector<File> files_;
    std::vector<std::string> conflicts_;
    bool hba_changed_ = false;
};

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
    // (kind: "inventory entry", "directory", "empty directory", "server"; target: the
    // instance's qualified name, a path, the data directory), so that after a kill the next
    // command on the instance can undo it (see instances::resume). A marker such as "drop
    // decided" says the operation went past the point where it is finished rather than undone.
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
    sdk::Result run_site_hook(const HookHandler& h, sdk::HookPoint point,
                              const sdk::Outcome& outcome);
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

// Undoes one thing a killed operation journaled with Pipeline::made (nothing that is already
// gone is an error): removes the inventory entry, the directory (after ending the initdb or
// server processes still working in it), the directory if it is empty, or stops the server of
// a data directory. Unknown kinds and markers do nothing.
void undo_made(Context& ctx, const std::string& kind, const std::string& target);

// Removes a directory tree pgforge made, even while a program it started there (an initdb cut
// short, a server) may still be writing into it: those are ended first.
void remove_made_tree(const std::filesystem::path& dir);

// Stops the server of a data directory (immediate shutdown, then SIGKILL after `timeout`
// seconds); false when none runs.
bool stop_server_at(const std::filesystem::path& data_dir, double timeout = 10);

// Journals, at once, an operation on `instance` that ran outside a Pipeline: begun and ended in
// one go (a database or role change, with its statements as steps), or refused before its
// pipeline began (a configure whose values the server rejects). A journal that cannot be
// written is a warning: the operation's own outcome stands.
void journal_at_once(Context& ctx, const Instance& instance, const std::string& operation, bool ok,
                     const std::string& message, const std::vector<JournalStep>& steps);

// The context a plugin's command runs with (pgforge FAMILY VERB ...).
int run_plugin_command(Context& ctx, LoadedPlugin& plugin, const sdk::Command& command,
                       const Instance* instance, const std::vector<std::string>& args, bool json,
                       std::ostream& out, std::ostream& err);

// Lines plugins add to `instance get`: (plugin, key, value).
std::vector<std::tuple<std::string, std::string, std::string>> plugin_fields(
    Context& ctx, const Instance& instance);

// Each loaded plugin's setup(), with a context that has no instance.
sdk::Result setup_plugin(Context& ctx, LoadedPlugin& plugin);

}  // namespace pgforge
