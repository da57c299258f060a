#include "engine/pipeline/configure_draft.hpp"

#include <sys/stat.h>

#include "engine/core/error.hpp"
#include "engine/core/log.hpp"
#include "engine/core/safe_fs.hpp"
#include "engine/core/text.hpp"
#include "engine/driver/cluster_driver.hpp"
#include "engine/pipeline/hba_records.hpp"

namespace fs = std::filesystem;

namespace pgforge {

// Writes a file atomically with `mode`, given to `owner` when pgforge runs as root; a missing
// directory is made 0700 for the owner (plain, without an owner). Both go through safe_fs: in a
// directory of the owner, the work is done as the owner, so a link the owner planted leads
// nowhere the owner could not write.
void write_owned_file(const fs::path& path, const std::string& content, const OsUser* owner,
                      unsigned mode) {
    std::error_code ec;
    fs::path dir = path.parent_path();
    if (!fs::exists(dir, ec)) {
        if (owner)
            make_owned_directory(dir, *owner, fs::perms(0700));
        else
            fs::create_directories(dir);
    }
    write_file_atomically(path, content, owner && running_as_root() ? owner : nullptr,
                          fs::perms(mode & 07777));
}

// A plugin's file is `<base_dir>/<plugin>/<relative>`: `relative` may not be absolute, hold a
// `..` or an empty component, and nothing on the way below the base directory may be a symbolic
// link. Returns why not, or "".
std::string outside_plugin_directory(const fs::path& base_dir, const std::string& plugin,
                                     const std::string& relative) {
    fs::path rel(relative);
    if (relative.empty() || rel.is_absolute()) return "not a relative path";
    for (const auto& part : rel)
        if (part == ".." || part == "." || part.empty()) return "'" + part.string() + "' in it";
    if (plugin.empty() || plugin.find('/') != std::string::npos || plugin == "..")
        return "no plugin directory";
    fs::path p = base_dir / plugin;
    std::vector<fs::path> steps = {p};
    for (const auto& part : rel) steps.push_back(steps.back() / part);
    for (const fs::path& step : steps) {
        struct stat st {};
        if (lstat(step.c_str(), &st) != 0) break;
        if (S_ISLNK(st.st_mode)) return step.string() + " is a symbolic link";
    }
    return "";
}

ConfigureDraft::ConfigureDraft(const Instance& instance,
                               std::map<fs::path, conf::ConfDocument>& docs, conf::HbaFile& hba,
                               conf::IdentFile& ident,
                               std::function<fs::path(const std::string&)> file_for)
    : instance_(instance), docs_(docs), hba_(hba), ident_(ident), file_for_(std::move(file_for)) {}

void ConfigureDraft::add_ident_mapping(std::string_view map, std::string_view system_user,
                                       std::string_view database_user) {
    try {
        conf::IdentEntry e;
        e.map = std::string(map);
        e.system_user = std::string(system_user);
        e.pg_user = std::string(database_user);
        if (e.map.empty() || e.system_user.empty() || e.pg_user.empty())
            throw Error(Exit::usage, "a mapping needs a map name, a system user and a role");
        if (ident_.add(e)) ident_changed_ = true;
    } catch (const std::exception& e) {
        conflicts_.push_back("plugin " + contributor_ +
                             " contributes an invalid ident mapping: " + e.what());
    }
}

void ConfigureDraft::user_sets(const std::string& name, std::optional<std::string> value) {
    user_[to_lower(name)] = std::move(value);
}

void ConfigureDraft::set_parameter(std::string_view name_view, std::string_view value) {
    std::string name = to_lower(std::string(name_view));
    std::string who = "plugin " + contributor_;
    if (!conf::is_valid_name(name)) {
        conflicts_.push_back(who + " contributes an invalid parameter name '" + name + "'");
        return;
    }
    if (auto u = user_.find(name);
        u != user_.end() && u->second != std::optional<std::string>(std::string(value))) {
        conflicts_.push_back("parameter " + name + ": the command " +
                             (u->second ? "sets '" + *u->second + "'" : std::string("removes it")) +
                             ", " + who + " sets '" + std::string(value) + "'");
        return;
    }
    auto it = parameters_.find(name);
    if (it != parameters_.end() && it->second.first != value) {
        conflicts_.push_back("parameter " + name + ": plugin " + it->second.second + " sets '" +
                             it->second.first + "', " + who + " sets '" + std::string(value) + "'");
        return;
    }
    parameters_[name] = {std::string(value), contributor_};
}

void ConfigureDraft::add_hba_record(std::string_view text, sdk::HbaPlace place) {
    try {
        auto parsed = conf::HbaFile::parse(std::string(text) + "\n");
        auto records = parsed.records();
        if (records.size() != 1)
            throw Error(Exit::usage, "not one record: '" + std::string(text) + "'");
        add_record(records.front(), place);
    } catch (const std::exception& e) {
        conflicts_.push_back("plugin " + contributor_ +
                             " contributes an invalid HBA record: " + e.what());
    }
}

void ConfigureDraft::add_record(const conf::HbaRecord& r, sdk::HbaPlace place) {
    for (const auto& existing : hba_.records())
        if (existing.same_as(r)) return;
    if (place == sdk::HbaPlace::first)
        hba_.insert(0, r);
    else
        hba_.insert(hba_.size(), r);
    hba_changed_ = true;
}

bool ConfigureDraft::add_hba_record(const sdk::HbaRecord& record, sdk::HbaPlace place,
                                    std::string& error) {
    try {
        add_record(from_sdk(record), place);
        return true;
    } catch (const std::exception& e) {
        error = e.what();
        conflicts_.push_back("plugin " + contributor_ +
                             " contributes an invalid HBA record: " + error);
        return false;
    }
}

std::vector<sdk::HbaRecord> ConfigureDraft::hba_records() const {
    // An insert reads the file again: the lines are those of the file as it will be written.
    std::vector<sdk::HbaRecord> out;
    for (const auto& r : hba_.records()) out.push_back(to_sdk(r));
    return out;
}

void ConfigureDraft::add_file(std::string_view relative_name, std::string_view content,
                              unsigned mode) {
    std::string why =
        outside_plugin_directory(instance_.base_dir, contributor_, std::string(relative_name));
    if (!why.empty()) {
        conflicts_.push_back("plugin " + contributor_ +
                             " contributes a file outside its directory: '" +
                             std::string(relative_name) + "' (" + why + ")");
        return;
    }
    fs::path path = instance_.base_dir / contributor_ / std::string(relative_name);
    for (const auto& f : files_)
        if (f.path == path) {
            conflicts_.push_back("file " + path.string() + " contributed twice by plugin " +
                                 contributor_);
            return;
        }
    files_.push_back({contributor_, path, std::string(content), mode});
}

std::optional<std::string> ConfigureDraft::parameter(std::string_view name_view) const {
    std::string name = to_lower(std::string(name_view));
    if (auto it = parameters_.find(name); it != parameters_.end()) return it->second.first;
    if (auto u = user_.find(name); u != user_.end()) return u->second;
    fs::path file = file_for_(name);
    if (auto d = docs_.find(file); d != docs_.end()) {
        if (auto e = d->second.get(name)) return e->value;
        return std::nullopt;
    }
    try {
        if (auto e = conf::ConfDocument::read(file).get(name)) return e->value;
    } catch (const std::exception&) {
    }
    return std::nullopt;
}

std::string ConfigureDraft::hba_text() const {
    return hba_.print();
}

std::vector<std::string> ConfigureDraft::apply_parameters() {
    std::vector<std::string> changed;
    for (const auto& [name, contribution] : parameters_) {
        fs::path file = file_for_(name);
        if (!docs_.count(file)) docs_.emplace(file, conf::ConfDocument::read(file));
        auto& doc = docs_.at(file);
        auto now = doc.get(name);
        if (now && now->value == contribution.first) continue;
        doc.set(name, contribution.first);
        changed.push_back(name);
    }
    return changed;
}

std::vector<fs::path> ConfigureDraft::write_files(const OsUser& owner) {
    std::vector<fs::path> written;
    for (const auto& f : files_) {
        // Checked again at the write: the owner may have planted a link since add_file.
        std::string why = outside_plugin_directory(
            instance_.base_dir, f.plugin,
            f.path.lexically_relative(instance_.base_dir / f.plugin).string());
        if (!why.empty())
            throw Error(
                Exit::failure,
                "refusing to write " + f.path.string() + " for plugin " + f.plugin + ": " + why,
                "remove the link; pgforge writes a plugin's files only inside " +
                    (instance_.base_dir / f.plugin).string());
        struct stat st {};
        if (lstat(f.path.c_str(), &st) == 0 && S_ISREG(st.st_mode) &&
            (st.st_mode & 07777) == (f.mode & 07777) && read_text_file(f.path) == f.content)
            continue;
        write_owned_file(f.path, f.content, &owner, f.mode);
        written.push_back(f.path);
    }
    return written;
}

}  // namespace pgforge
