// What the server itself says about run-time parameters: the catalog from
// `postgres --describe-config`, and values checked by the server's own parser.
#pragma once

#include <filesystem>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "engine/core/process.hpp"
#include "engine/driver/installations.hpp"

namespace pgforge::conf {

struct ParameterInfo {
    std::string name;
    std::string
        context;  // postmaster, sighup, superuser, user, backend, superuser-backend, internal
    std::string group;
    std::string type;  // BOOLEAN, INTEGER, REAL, STRING, ENUM
    std::string reset_value;
    std::string min, max;
    std::string description;
};

// "restart" for postmaster-context parameters, "reload" for the others.
std::string change_effect(const ParameterInfo& p);

class ParameterCatalog {
  public:
    // Runs `postgres --describe-config` of the installation (as `as` when pgforge runs as root).
    static ParameterCatalog describe(const Installation& installation, const OsUser& as);
    static ParameterCatalog parse(const std::string& describe_config_output);

    const ParameterInfo* find(const std::string& name) const;  // case-insensitive
    size_t size() const { return by_name_.size(); }
    // Throws Error(Exit::usage) for a name the server does not know (with a "did you mean"),
    // or one that cannot be set in a file (internal). Custom "prefix.name" parameters pass.
    void check_settable(const std::string& name) const;

  private:
    std::map<std::string, ParameterInfo> by_name_;
};

// Checks every value with the server's own parser: the settings are written to a scratch
// configuration file (values never go through argv) read by `postgres -C`. Throws
// Error(Exit::usage) carrying the server's messages ("invalid value ... Available values: ...").
void validate_values(const Installation& installation, const OsUser& as,
                     const std::map<std::string, std::string>& values);

// Reads the configuration files of a data directory (with includes and postgresql.auto.conf)
// with the server's own parser, as the next start or reload would; works whether or not the
// server runs. Returns the server's complaints, empty when it accepts everything.
std::string check_data_directory(const Installation& installation, const OsUser& as,
                                 const std::filesystem::path& data_dir);

// PostgreSQL 15's start-time checks of settings that each parse alone but not together
// (PostmasterMain's cross-checks and InitializeMaxBackends): `values` maps the names in
// start_time_parameters() to their values as `postgres -C` prints them. Returns one complaint
// per line naming both settings and what to set; empty when none.
const std::vector<std::string>& start_time_parameters();
std::string start_time_conflicts(const std::map<std::string, std::string>& values);

// Reads the configuration that `files` (path -> content: postgresql.conf, postgresql.auto.conf
// and includes, changed ones with their new content) would make, with the server's parser on a
// scratch copy (files under data_dir keep their place relative to it), and applies
// start_time_conflicts. Returns the complaints; empty when none, or when the copy cannot be
// read alone (a changed file outside data_dir, an include leaving it): the check after
// writing and the restart catch those.
std::string check_start_settings(const Installation& installation, const OsUser& as,
                                 const std::filesystem::path& data_dir,
                                 const std::map<std::filesystem::path, std::string>& files);

}  // namespace pgforge::conf
