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
    // Not in `postgres --describe-config` (the server marks it not for the sample file, e.g.
    // trace_sort): the installation confirmed the name; its context is unknown ("") unless it
    // is internal.
    bool unlisted = false;
};

// "restart" for postmaster-context parameters, "reload" for the others (and for an unlisted
// parameter, whose context only a running server tells: pg_settings says what waits).
std::string change_effect(const ParameterInfo& p);

class ParameterCatalog {
  public:
    // Runs `postgres --describe-config` of the installation (as `as` when pgforge runs as root).
    // The catalog remembers the installation: a name the list lacks is asked of it (ask()).
    static ParameterCatalog describe(const Installation& installation, const OsUser& as);
    static ParameterCatalog parse(const std::string& describe_config_output);

    // Case-insensitive. A name --describe-config does not list (the server leaves out those
    // it marks not for the sample file, e.g. trace_sort, wal_consistency_checking) is asked of
    // the installation once (see ask()) when the catalog comes from describe().
    const ParameterInfo* find(const std::string& name) const;
    size_t size() const { return by_name_.size(); }
    // Asks the installation about the names the list lacks (custom "prefix.name" ones aside), in
    // one `postgres -C` run reading a scratch file that sets each of them (two runs when some
    // are unknown: the server then stops before checking values): what it does not
    // recognise is unknown, what it says "cannot be changed" is internal, the rest exist.
    // Answers are kept for the catalog's life. Nothing happens for a catalog from parse().
    void ask(const std::vector<std::string>& names) const;
    // Throws Error(Exit::usage) for a name the server does not know (with a "did you mean"),
    // or one that cannot be set in a file (internal). Custom "prefix.name" parameters pass.
    void check_settable(const std::string& name) const;

  private:
    std::map<std::string, ParameterInfo> by_name_;
    // describe()'s installation, for ask(); what it answered (nullopt: unknown)
    std::optional<Installation> installation_;
    std::optional<OsUser> as_;
    mutable std::map<std::string, std::optional<ParameterInfo>> asked_;
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
