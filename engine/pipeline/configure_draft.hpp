// What a configure writes, as pre_configure handlers see it: the user's change and the plugins'
// contributions merged, conflicts named, each file written once.
#pragma once

#include <filesystem>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "engine/conf/hba.hpp"
#include "engine/conf/pgconf.hpp"
#include "engine/core/instance.hpp"
#include "engine/core/process.hpp"
#include "pgforge/hba.hpp"
#include "pgforge/plugin.hpp"

namespace pgforge {

// What a configure writes: the user's change and the contributions of pre_configure handlers,
// merged, each file written once. Implements the SDK's Configuration for handlers, and
// HbaConfiguration (pg_hba.conf as records, sdk/include/pgforge/hba.hpp).
class ConfigureDraft final : public sdk::Configuration, public sdk::HbaConfiguration {
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
    std::vector<sdk::HbaRecord> hba_records() const override;
    bool add_hba_record(const sdk::HbaRecord& record, sdk::HbaPlace place,
                        std::string& error) override;

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
    void add_record(const conf::HbaRecord& r, sdk::HbaPlace place);
};

// Writes a file atomically with `mode`, given to `owner` when pgforge runs as root; a missing
// directory is made 0700 for the owner. In a directory of the owner the work is done as the
// owner (safe_fs.hpp).
void write_owned_file(const std::filesystem::path& path, const std::string& content,
                      const OsUser* owner, unsigned mode);

// A plugin's file is `<base_dir>/<plugin>/<relative>`: `relative` may not be absolute, hold a
// `..` or an empty component, and nothing on the way below the base directory may be a
// symbolic link. Returns why not, or "".
std::string outside_plugin_directory(const std::filesystem::path& base_dir,
                                     const std::string& plugin, const std::string& relative);

}  // namespace pgforge
