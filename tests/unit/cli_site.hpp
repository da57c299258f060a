// A private pgforge site for CLI unit tests: <tmp>/prefix, <tmp>/run and <tmp>/settings.ini
// naming them; commands run in-process. No server is ever started.
#pragma once

#include <filesystem>
#include <sstream>
#include <string>
#include <vector>

#include "engine/cli/cli.hpp"
#include "engine/core/settings.hpp"
#include "engine/inventory/inventory.hpp"
#include "temp_dir.hpp"

namespace pgforge::test {

struct CliResult {
    int status = 0;
    std::string out;
    std::string err;
};

class CliSite {
  public:
    explicit CliSite(const std::string& tag = "cli") : dir_(tag) {
        settings_file_ = dir_ / "settings.ini";
        write_text(settings_file_, "prefix = " + prefix().string() +
                                       "\nrun_dir = " + (dir_ / "run").string() + "\n");
    }

    std::filesystem::path prefix() const { return dir_ / "prefix"; }
    const TempDir& dir() const { return dir_; }

    // pgforge --settings <file> ARGS...
    CliResult run(std::vector<std::string> args) const {
        args.insert(args.begin(), {"--settings", settings_file_.string()});
        std::ostringstream out, err;
        CliResult r;
        r.status = pgforge::cli::run(args, out, err);
        r.out = out.str();
        r.err = err.str();
        return r;
    }

    std::filesystem::path file(const std::string& name, const std::string& content) const {
        write_text(dir_ / name, content);
        return dir_ / name;
    }

    // Records an instance in the inventory of `prefix` without creating any of its files, so
    // it is never running.
    static void record(const std::filesystem::path& prefix, const std::string& version,
                       const std::string& name) {
        Settings s;
        s.prefix = prefix;
        s.run_dir = prefix / "run";
        Instance i;
        i.name = name;
        i.version = version;
        assign_instance_paths(s, i);
        i.port = 6001;
        i.owner = "postgres";
        i.superuser = "postgres";
        i.created_at = "2026-01-01T00:00:00.000Z";
        i.options = "{}";
        Inventory(s.inventory_file()).add(i);
    }
    void record(const std::string& name) const { record(prefix(), "15", name); }

  private:
    TempDir dir_;
    std::filesystem::path settings_file_;
    // Nothing from the caller's environment may redirect the site.
    ScopedEnv no_prefix_{"PGFORGE_PREFIX", std::nullopt};
    ScopedEnv no_settings_{"PGFORGE_SETTINGS", std::nullopt};
    ScopedEnv no_version_{"PGFORGE_POSTGRES_VERSION", std::nullopt};
};

}  // namespace pgforge::test
