// Plugins: manifests found on the plugin search path, the safety check of their files, loading
// with Boost.DLL, the descriptor check, and the plugin objects, called only through wrappers
// that turn a throw into a refusal naming the plugin.
#pragma once

#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "engine/core/safe_fs.hpp"
#include "engine/core/settings.hpp"
#include "pgforge/plugin.hpp"

namespace pgforge {

// Where a plugin's handler at one hook point goes relative to other plugins' handlers there:
// after those of `after`, before those of `before` (names of plugins; one that is not loaded or
// has no handler at the point is ignored).
struct HookOrder {
    std::vector<std::string> after;
    std::vector<std::string> before;
    bool empty() const { return after.empty() && before.empty(); }
    bool operator==(const HookOrder&) const = default;
};

// One hook point as a manifest writes it: "950 after=backup,monitoring before=hba-policy".
std::string hook_text(int priority, const HookOrder& order);

// <dir>/<name>.plugin, an INI file readable without loading the library (pgforge_add_plugin
// generates it; a 1.0 plugin's may be written by hand):
//   name = backup
//   version = 1.0.0
//   sdk = 1.1
//   library = backup.so          (relative to the manifest's directory)
//   summary = Backups with pgBackRest
//   [hooks]
//   post_start = 100             (hook point = priority; lower runs first)
//   pre_start = 950 after=backup before=hba-policy   (and order constraints by plugin name)
//   [commands]
//   backup = Backups with pgBackRest   (CLI families the plugin adds)
//   [steps]
//   start = Patroni starts the server  (steps the plugin provides: start, stop; pgforge/steps.hpp)
//   [options]
//   stanza = string: the pgBackRest stanza   (per-instance options, SDK 1.2: key = type[=default]:
//   port = integer=9187: the exporter's port  description; types string, integer, boolean)

// One per-instance option a plugin declares (pgforge/options.hpp).
struct ManifestOption {
    std::string key;
    std::string type;  // "string", "integer", "boolean"
    std::string description;
    std::optional<std::string> default_value;  // normalized (check_option_value)
    bool operator==(const ManifestOption&) const = default;
};

// Whether `value` is a value of an option of `type`: empty when it is, with `normalized` the value
// as it is stored and handed to the plugin (integers in decimal, booleans "true"/"false"), else
// why not ("'x' is not an integer"). Strings are 1 to 1024 characters without control characters.
std::string check_option_value(const std::string& type, const std::string& value,
                               std::string& normalized);

struct PluginManifest {
    std::filesystem::path file;
    std::string name;
    std::string version;
    std::string summary;
    int sdk_major = 0;
    int sdk_minor = 0;
    std::filesystem::path library;  // absolute
    std::map<sdk::HookPoint, int> priorities;
    std::map<sdk::HookPoint, HookOrder> order;    // only the points that have constraints
    std::map<std::string, std::string> families;  // CLI family -> summary
    std::map<std::string, std::string> steps;     // "start"/"stop" -> summary
    std::vector<ManifestOption> options;          // in the manifest's order

    const ManifestOption* option(const std::string& key) const;
};

// Throws Error(Exit::usage) naming the file and the key at fault, or Error(Exit::failure) when
// the manifest cannot be trusted (it is read from the descriptor safe_fs::open_trusted checked).
PluginManifest read_plugin_manifest(const std::filesystem::path& file);

// One plugin found on the search path.
// An enabled plugin that is not loaded is either skipped (--skip-plugin) or broken: a broken
// one fails every operation that would run its hooks (PluginHost::check_point).
struct PluginRecord {
    PluginManifest manifest;
    bool enabled = false;
    bool loaded = false;
    bool skipped = false;  // enabled, but --skip-plugin names it: not loaded, its hooks skipped
    std::string error;  // why it was not loaded (bad manifest, unsafe, descriptor, setup refused)

    bool broken() const { return enabled && !loaded && !skipped; }
    // Whether its hooks would run at `point` (a manifest that could not be read: at every one).
    // A provider of the start (stop) step counts as running at pre_start and post_start
    // (pre_stop, post_stop): broken, it fails those operations instead of letting the driver
    // do what it provides.
    bool hooks_at(sdk::HookPoint point) const;
};

// The descriptor check, on its own so that it is tested without a library: empty when the
// plugin may be loaded, else the message (naming `file`, the plugin's and the engine's SDK).
std::string check_descriptor(const pgforge_plugin_descriptor* d, const std::filesystem::path& file,
                             const std::string& expected_name);

// Whether the manifest says what the library's descriptor says: its version (unless the manifest
// gives none), and, when the descriptor carries them (pgforge_add_plugin, SDK 1.1), the hook
// points with their priorities and order. Empty when they agree, else the refusal naming both
// values.
std::string check_manifest_agrees(const pgforge_plugin_descriptor* d, const PluginManifest& m);

// The hook points of a descriptor, in the syntax of pgforge_add_plugin(HOOKS ...):
// "pre_drop:900 post_start:950:after=backup,monitoring:before=hba-policy". Error(Exit::failure)
// naming `where` when it is not.
struct DeclaredHook {
    int priority = 0;
    HookOrder order;
};
std::map<sdk::HookPoint, DeclaredHook> parse_declared_hooks(const std::string& text,
                                                            const std::string& where);

class LoadedPlugin;

// The plugins of one run. Libraries stay loaded until the host is destroyed; plugin objects are
// destroyed before their libraries.
class PluginHost {
  public:
    explicit PluginHost(const Settings& settings);
    ~PluginHost();
    PluginHost(const PluginHost&) = delete;
    PluginHost& operator=(const PluginHost&) = delete;

    // Everything on the search path (the first manifest of a name wins), loaded or not.
    const std::vector<PluginRecord>& records() const { return records_; }
    // Loads the enabled plugins (once) and calls `setup` on each (which calls its setup()). A
    // required plugin that is missing or fails is Error(Exit::failure); another failure is
    // recorded and warned about, and the plugin is broken: operations that would run its hooks
    // fail (check_point). A plugin named by --skip-plugin is not loaded.
    void load(const std::function<sdk::Result(LoadedPlugin&)>& setup);
    // Fails closed: Error(Exit::failure) naming the first broken plugin whose hooks would run at
    // `point`, and why, unless --skip-plugin names it.
    void check_point(sdk::HookPoint point) const;
    // The skipped plugins whose hooks would have run at `point` (for the journal).
    std::vector<const PluginRecord*> skipped_at(sdk::HookPoint point) const;
    std::vector<LoadedPlugin*> loaded() const;
    LoadedPlugin* find(const std::string& name) const;
    // The loaded plugin that provides `step` ("start", "stop"), or null.
    LoadedPlugin* provider_of(const std::string& step) const;
    const PluginRecord* record(const std::string& name) const;

  private:
    const Settings& settings_;
    std::vector<PluginRecord> records_;
    std::vector<std::unique_ptr<LoadedPlugin>> plugins_;
    bool loaded_ = false;
};

// A loaded plugin: its library and its object. Every call is wrapped: a throw becomes a
// refusal naming the plugin (setup, on_hook), an Error naming it (run_command), or a warning
// naming it (commands, flags; describe also returns an "error" field).
class LoadedPlugin {
  public:
    ~LoadedPlugin();
    const PluginManifest& manifest() const { return manifest_; }
    const std::string& name() const { return manifest_.name; }
    std::string version() const;  // the descriptor's

    sdk::Result setup(sdk::Context& ctx);
    sdk::Result on_hook(sdk::HookContext& ctx);
    std::vector<sdk::Command> commands();
    std::vector<sdk::Flag> flags();
    int run_command(const sdk::Command& command, sdk::CommandContext& ctx);
    std::vector<sdk::Field> describe(sdk::Context& ctx);

    // Loads and checks; Error(Exit::failure) with the reason.
    static std::unique_ptr<LoadedPlugin> load(const PluginManifest& manifest);
    // After setup(): empty when every command family of commands() is in the manifest (which
    // the CLI reads without loading the plugin), else the refusal naming both.
    std::string check_commands();

  private:
    LoadedPlugin() = default;
    struct Library;
    PluginManifest manifest_;
    std::unique_ptr<Library> library_;
    const pgforge_plugin_descriptor* descriptor_ = nullptr;
    sdk::Plugin* object_ = nullptr;
};

}  // namespace pgforge
