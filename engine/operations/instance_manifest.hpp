// What an instance should be (`instance apply -f`, docs/apply.md): its identity, state, creation
// options, settings, access rules, databases, roles and plugins' per-instance options, read from
// YAML or JSON (checked against the instance manifest's schema first), and written back by
// `instance get` in the same form.
#pragma once

#include <filesystem>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "engine/conf/hba.hpp"
#include "engine/operations/databases.hpp"
#include "engine/operations/roles.hpp"

namespace pgforge::instances {

enum class WantedState { started, stopped, absent };
const char* to_string(WantedState state);

// How a list of pg_hba.conf records (or pg_ident.conf entries) is read: `present`, the records
// listed must be there (added at the end, in order, when no record means the same) and others
// stay; `exact`, the list is the whole file's records, in order (comments are kept).
enum class ListMode { present, exact };

struct Manifest {
    std::string name;
    std::optional<std::string> version;
    std::optional<int> port;
    WantedState state = WantedState::started;
    // A setting that needs a restart is applied by restarting a running instance; otherwise it
    // is reported pending.
    bool restart_on_changes = false;
    // Creation options: used when the instance is made; on an existing instance a value that
    // differs from its own is refused (they cannot change), naming the field.
    std::optional<std::string> owner, encoding, locale, auth_local, auth_host, superuser;
    std::optional<bool> data_checksums;
    std::optional<std::filesystem::path> superuser_password_file;  // creation only
    std::optional<std::filesystem::path> waldir;
    // postgresql.conf: a value is set, nullopt removes the setting from the files; not given:
    // the files are left as they are.
    std::optional<std::map<std::string, std::optional<std::string>>> settings;
    ListMode hba_mode = ListMode::present;
    std::optional<std::vector<conf::HbaRecord>> hba;
    ListMode ident_mode = ListMode::present;
    std::optional<std::vector<conf::IdentEntry>> ident;
    std::vector<roles::Role> roles;  // applied before the databases (owners)
    std::vector<databases::Database> databases;
    // Per-instance options plugins declare: plugin -> key -> value (nullopt: back to default).
    std::map<std::string, std::map<std::string, std::optional<std::string>>> plugin_options;
};

// The section of a plugin that declares per-instance options: its keys and their types
// ("string", "integer", "boolean").
struct PluginSection {
    std::string plugin;
    struct Key {
        std::string name, type, description;
    };
    std::vector<Key> keys;
};

// One manifest (a mapping) or several (a list) from `file` ("-": standard input), at most
// manifest_size_limit bytes, checked against the schema before anything is done: errors name
// the file, line, column and the path of the bad value. `plugin_sections`: the plugins whose
// options a manifest may set, a section named after each.
std::vector<Manifest> read_manifests(const std::string& file,
                                     const std::vector<PluginSection>& plugin_sections = {});
std::vector<Manifest> parse_manifests(const std::string& content, const std::string& source,
                                      const std::vector<PluginSection>& plugin_sections = {});
// The JSON Schema of a manifest file (`pgforge schema instance`), with those sections.
std::string manifest_json_schema(const std::vector<PluginSection>& plugin_sections);

}  // namespace pgforge::instances
