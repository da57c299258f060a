// PostgreSQL installations found on the machine (seed 004's Installation, seed 003's choice
// of version).
#pragma once

#include <filesystem>
#include <map>
#include <string>
#include <vector>

#include "engine/core/settings.hpp"

namespace pgforge {

struct VersionInfo {
    int major = 0;
    int minor = 0;
    int patch = 0;      // only for versions before 10
    std::string state;  // "final", "devel", "beta", "rc"
    int level = 0;      // beta/rc number
};

struct Installation {
    std::filesystem::path bindir;
    std::string version;  // "PostgreSQL 15.18 (Debian 15.18-0+deb12u1)"
    VersionInfo version_info;
    std::string major() const { return std::to_string(version_info.major); }

    // pg_config's answers, filled by describe(): paths keyed "bindir", "libdir", "sharedir", ...
    std::map<std::string, std::filesystem::path> paths;
    // Normalised configure options: "--with-openssl" -> "with_openssl" = "true".
    std::map<std::string, std::string> configure_options;
    bool ssl = false;

    std::filesystem::path program(const std::string& name) const { return bindir / name; }
};

// Parses "PostgreSQL 15.18 (Debian ...)", "PostgreSQL 16beta2", "postgres (PostgreSQL) 9.6.24".
// Throws Error(Exit::failure) on anything else.
VersionInfo parse_version(const std::string& text);

// Parses the output of `pg_config` (no arguments) into paths and configure options.
void parse_pg_config(const std::string& output, Installation& into);

// Finds installations (site bindirs, /usr/lib/postgresql/*/bin, /usr/pgsql-*/bin,
// /usr/local/pgsql/bin, pg_config on PATH), one per bindir, newest first.
// Cheap: reads versions from `postgres --version` only.
std::vector<Installation> find_installations(const Settings& settings);

// Adds pg_config's paths and configure options.
void describe(Installation& installation);

// The installation to use: `requested` ("15"), else PGFORGE_POSTGRES_VERSION, else the
// settings' version, else the newest. Throws Error(Exit::not_found) listing what exists.
Installation select_installation(const Settings& settings, const std::string& requested = {});

}  // namespace pgforge
