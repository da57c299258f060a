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
#include "engine/conf/lists.hpp"
#include "engine/conf/pgconf.hpp"
#include "engine/core/instance.hpp"
#include "engine/core/process.hpp"
#include "pgforge/hba.hpp"
#include "pgforge/plugin.hpp"

namespace pgforge {

// What a configure writes: the user's change and the contributions of pre_configure handlers,
// merged, each file written once. Implements the SDK's Configuration (1.0), and Contributions
// and HbaConfiguration (pg_hba.conf as records, sdk/include/pgforge/hba.hpp) (1.1) for handlers.
//
// Parameters compose so (docs/plugins.md, "Configuration contributions"):
// - a required value (Configuration::set_parameter, Strength::required) is written; a different
//   value of the command or of another plugin's required one is a conflict;
// - a default value (Strength::default_value) is written only when neither the command nor the
//   files set the parameter and no plugin requires another value; two plugins' different defaults
//   are a conflict; a command value that replaces a default is noted;
// - a list parameter (conf::is_list_parameter) is the set of its items: its value in the files
//   (the command's value when the command sets it; the server's default when no file sets it),
//   items in their order, then the items plugins add in the order the handlers run, less the
//   items plugins remove. A 1.0 set_parameter on a list adds the value's items. One plugin adding
//   what another removes, a command setting the list without an item a plugin adds or with one
//   a plugin removes, a command removing a list a plugin adds to: conflicts.
class ConfigureDraft final : public sdk::Configuration,
                             public sdk::Contributions,
                             public sdk::HbaConfiguration {
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
    // The server's value of a parameter no file sets (`postgres --describe-config`), the base of
    // a list a plugin adds to; without it, such a list starts empty.
    void server_defaults(std::function<std::optional<std::string>(const std::string&)> lookup) {
        server_default_ = std::move(lookup);
    }

    // sdk::Configuration
    void set_parameter(std::string_view name, std::string_view value) override;
    void add_hba_record(std::string_view record, sdk::HbaPlace place) override;
    void add_file(std::string_view relative_name, std::string_view content, unsigned mode) override;
    std::optional<std::string> parameter(std::string_view name) const override;
    std::string hba_text() const override;
    void add_ident_mapping(std::string_view map, std::string_view system_user,
                           std::string_view database_user) override;
    // sdk::Contributions
    void add_to_list(std::string_view name, std::string_view item) override;
    void remove_from_list(std::string_view name, std::string_view item) override;
    void set_parameter(std::string_view name, std::string_view value,
                       sdk::Strength strength) override;
    void restart_needed(std::string_view reason) override;

    bool ident_changed() const { return ident_changed_; }
    std::vector<sdk::HbaRecord> hba_records() const override;
    bool add_hba_record(const sdk::HbaRecord& record, sdk::HbaPlace place,
                        std::string& error) override;

    // Conflicts found so far ("parameter X: plugin a sets '1', plugin b sets '2'").
    const std::vector<std::string>& conflicts() const { return conflicts_; }
    // What the contributions give a parameter, and who: "plugin a", or "plugins a, b" for a list.
    struct Contribution {
        std::string value;
        std::string by;
    };
    // The composed contributions, by lowercase name, as apply_parameters() found them: required
    // values, defaults that apply, lists that contributions change.
    const std::map<std::string, Contribution>& parameters() const { return composed_; }
    // Composes the contributions, puts them into the documents; returns the names that changed.
    std::vector<std::string> apply_parameters();
    // What the report says beside a parameter's change, by lowercase name ("plugin pgss's
    // default '5000' is not used: the command sets '2000'").
    const std::map<std::string, std::string>& notes() const { return notes_; }
    // restart_needed() calls, in order.
    struct RestartReason {
        std::string plugin;
        std::string reason;
    };
    const std::vector<RestartReason>& restart_reasons() const { return restarts_; }
    bool hba_changed() const { return hba_changed_; }
    // Writes the contributed files that differ from what is on disk; returns their paths.
    std::vector<std::filesystem::path> write_files(const OsUser& owner);

  private:
    struct Scalar {
        std::string value;
        std::string plugin;
    };
    struct ListEdit {
        std::string plugin;
        bool add = true;
        conf::ListItem item;
    };
    struct ComposedList {
        std::vector<conf::ListItem> items;
        bool changed = false;
        std::vector<std::string> plugins;  // those whose edits changed the list
    };
    bool valid_name(const std::string& name, const std::string& what);
    void edit_list(const std::string& name, conf::ListItem item, bool add);
    void note(const std::string& name, const std::string& text);
    // The value the files give (the document that sets `name`), without contributions.
    std::optional<std::string> file_value(const std::string& name) const;
    ComposedList compose_list(const std::string& name) const;
    bool default_applies(const std::string& name) const;

    const Instance& instance_;
    std::map<std::filesystem::path, conf::ConfDocument>& docs_;
    conf::HbaFile& hba_;
    conf::IdentFile& ident_;
    bool ident_changed_ = false;
    std::function<std::filesystem::path(const std::string&)> file_for_;
    std::function<std::optional<std::string>(const std::string&)> server_default_;
    std::string contributor_;
    std::map<std::string, std::optional<std::string>> user_;
    std::map<std::string, Scalar> required_;
    std::map<std::string, Scalar> defaults_;
    std::map<std::string, std::vector<ListEdit>> lists_;
    std::map<std::string, Contribution> composed_;
    std::map<std::string, std::string> notes_;
    std::vector<RestartReason> restarts_;
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
