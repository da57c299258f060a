// Site settings: built-in defaults, overridden by a settings file, overridden by the command line.
// This is also the one place that decides where an instance's files live.
#pragma once

#include <filesystem>
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

    std::filesystem::path inventory_file() const { return prefix / "inventory.sqlite"; }
    std::filesystem::path lock_file(const std::string& version, const std::string& name) const;
    // Template search path: <config_dir>/templates, then the built-in share directory.
    std::filesystem::path find_template(const std::string& file) const;
};

struct SettingsOverrides {
    std::optional<std::filesystem::path> prefix;
    std::optional<std::filesystem::path> settings_file;
    std::optional<std::filesystem::path> run_dir;
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
