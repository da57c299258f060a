// Site settings: built-in defaults, overridden by a settings file, overridden by the command line.
// This is also the one place that decides where an instance's files live.
#pragma once

#include <filesystem>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "engine/core/instance.hpp"

namespace pgforge {

struct Settings {
    std::filesystem::path prefix;         // instances, inventory, locks
    std::filesystem::path run_dir;        // sockets
    std::filesystem::path config_dir;     // /etc/pgforge or ~/.config/pgforge
    std::filesystem::path settings_file;  // the file that was read; empty when none
    std::filesystem::path share_dir;      // built-in templates

    // [postgresql]
    std::string postgres_version;                // preferred major version; empty: newest
    std::vector<std::filesystem::path> bindirs;  // extra places to look for installations
    std::string owner;                           // OS user the servers run as
    std::string superuser = "postgres";
    std::string auth_local = "peer";
    std::string auth_host = "scram-sha-256";
    std::string listen_addresses = "localhost";
    int port_min = 5432;
    int port_max = 5999;
    double start_timeout = 60;  // seconds
    double stop_timeout = 60;
    double lock_timeout = 30;

    // [plugins]
    std::vector<std::filesystem::path> plugin_dirs;  // searched before the built-in directory
    std::vector<std::string> enabled_plugins;        // names; nothing is enabled by default
    std::vector<std::string> required_plugins;       // --require-plugin: missing is fatal
    std::vector<std::string> skipped_plugins;        // --skip-plugin: not loaded, hooks skipped
    // [hooks]
    std::vector<std::filesystem::path> hook_dirs;  // each holds <point>.d/ (after config_dir/hooks)
    double hook_timeout = 60;                      // seconds, per site hook
    int hook_priority = 1000;                      // site hooks run among plugins at this priority

    // Sections of the file that the engine does not read ([backup], ...): plugins' own.
    std::map<std::string, std::map<std::string, std::string>> sections;

    std::filesystem::path inventory_file() const { return prefix / "inventory.sqlite"; }
    std::filesystem::path lock_file(const std::string& version, const std::string& name) const;
    // Plugin search path: plugin_dirs, PGFORGE_PLUGIN_PATH, then the built-in directory.
    std::vector<std::filesystem::path> plugin_search_path() const;
    // Site hook directories: <config_dir>/hooks, then hook_dirs.
    std::vector<std::filesystem::path> hook_search_path() const;
    // Template search path: <config_dir>/templates, then the built-in share directory.
    std::filesystem::path find_template(const std::string& file) const;
};

struct SettingsOverrides {
    std::optional<std::filesystem::path> prefix;
    std::optional<std::filesystem::path> settings_file;
    std::optional<std::filesystem::path> run_dir;
    std::vector<std::string> required_plugins;  // --require-plugin
    std::vector<std::string> skipped_plugins;   // --skip-plugin
};

// Reads the settings file named by the overrides, PGFORGE_SETTINGS, or the default location
// (a missing default file is fine; a missing named file is an error), then applies
// PGFORGE_PREFIX and the overrides.
Settings load_settings(const SettingsOverrides& overrides = {});

// Fills the paths of `instance` (name and version set) from the settings.
void assign_instance_paths(const Settings& settings, Instance& instance);

// Instance names: [a-z0-9_], 1 to 63 characters. Throws Error(Exit::usage) saying why.
void check_instance_name(const std::string& name);

// "main" or "15/main". Throws Error(Exit::usage) on a malformed reference.
struct InstanceRef {
    std::string version;  // empty when not given
    std::string name;
};
InstanceRef parse_instance_ref(const std::string& text);

bool running_as_root();
std::string current_user_name();

}  // namespace pgforge
