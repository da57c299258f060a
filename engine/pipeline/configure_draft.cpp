#include "engine/pipeline/configure_draft.hpp"

#include <sys/stat.h>

#include <algorithm>

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

namespace {

std::string in_quotes(const std::string& value) {
    return "'" + value + "'";
}

std::string join(const std::vector<std::string>& words, const std::string& separator) {
    std::string out;
    for (const auto& w : words) out += (out.empty() ? "" : separator) + w;
    return out;
}

bool has_key(const std::vector<conf::ListItem>& items, const std::string& key) {
    return std::any_of(items.begin(), items.end(),
                       [&](const conf::ListItem& i) { return i.key == key; });
}

}  // namespace

bool ConfigureDraft::valid_name(const std::string& name, const std::string& what) {
    if (conf::is_valid_name(name)) return true;
    conflicts_.push_back("plugin " + contributor_ + " contributes " + what +
                         " with an invalid parameter name '" + name + "'");
    return false;
}

void ConfigureDraft::note(const std::string& name, const std::string& text) {
    std::string& n = notes_[name];
    if (n.find(text) == std::string::npos) n += (n.empty() ? "" : "; ") + text;
}

// SDK 1.0: a required value; on a list parameter, its items are added.
void ConfigureDraft::set_parameter(std::string_view name, std::string_view value) {
    set_parameter(name, value, sdk::Strength::required);
}

void ConfigureDraft::set_parameter(std::string_view name_view, std::string_view value_view,
                                   sdk::Strength strength) {
    std::string name = to_lower(std::string(name_view));
    std::string value(value_view);
    std::string who = "plugin " + contributor_;
    if (!conf::is_valid_name(name)) {
        conflicts_.push_back(who + " contributes an invalid parameter name '" + name + "'");
        return;
    }
    if (conf::is_list_parameter(name)) {
        for (auto& item : conf::split_list_value(name, value)) edit_list(name, item, true);
        return;
    }
    auto u = user_.find(name);
    if (strength == sdk::Strength::default_value) {
        if (u != user_.end()) {
            if (u->second != std::optional<std::string>(value))
                note(name, who + "'s default " + in_quotes(value) + " is not used: the command " +
                               (u->second ? "sets " + in_quotes(*u->second) : "removes it"));
            return;
        }
        if (auto d = defaults_.find(name); d != defaults_.end() && d->second.value != value) {
            conflicts_.push_back("parameter " + name + ": plugin " + d->second.plugin +
                                 "'s default is " + in_quotes(d->second.value) + ", " + who +
                                 "'s default is " + in_quotes(value));
            return;
        }
        if (auto r = required_.find(name); r != required_.end() && r->second.value != value)
            note(name, who + "'s default " + in_quotes(value) + " is not used: plugin " +
                           r->second.plugin + " sets " + in_quotes(r->second.value));
        defaults_[name] = {value, contributor_};
        return;
    }
    if (u != user_.end() && u->second != std::optional<std::string>(value)) {
        conflicts_.push_back(
            "parameter " + name + ": the command " +
            (u->second ? "sets " + in_quotes(*u->second) : std::string("removes it")) + ", " + who +
            " sets " + in_quotes(value));
        return;
    }
    auto it = required_.find(name);
    if (it != required_.end() && it->second.value != value) {
        conflicts_.push_back("parameter " + name + ": plugin " + it->second.plugin + " sets " +
                             in_quotes(it->second.value) + ", " + who + " sets " +
                             in_quotes(value));
        return;
    }
    if (auto d = defaults_.find(name); d != defaults_.end() && d->second.value != value)
        note(name, "plugin " + d->second.plugin + "'s default " + in_quotes(d->second.value) +
                       " is not used: " + who + " sets " + in_quotes(value));
    required_[name] = {value, contributor_};
}

void ConfigureDraft::add_to_list(std::string_view name_view, std::string_view item) {
    std::string name = to_lower(std::string(name_view));
    if (!valid_name(name, "a list item")) return;
    edit_list(name, conf::list_item(name, item), true);
}

void ConfigureDraft::remove_from_list(std::string_view name_view, std::string_view item) {
    std::string name = to_lower(std::string(name_view));
    if (!valid_name(name, "a list item")) return;
    edit_list(name, conf::list_item(name, item), false);
}

void ConfigureDraft::edit_list(const std::string& name, conf::ListItem item, bool add) {
    std::string who = "plugin " + contributor_;
    std::string does = (add ? "adds " : "removes ") + in_quotes(item.key);
    if (!conf::is_list_parameter(name)) {
        conflicts_.push_back(who + " " + does + (add ? " to" : " from") + " parameter " + name +
                             ", which is not a list (a list is one of: " +
                             join(conf::list_parameters(), ", ") + ")");
        return;
    }
    if (auto u = user_.find(name); u != user_.end()) {
        if (!u->second) {
            if (add) {
                conflicts_.push_back("parameter " + name + ": the command removes it, " + who +
                                     " " + does);
                return;
            }
        } else if (has_key(conf::split_list_value(name, *u->second), item.key) != add) {
            conflicts_.push_back("parameter " + name + ": the command sets " +
                                 in_quotes(*u->second) + ", " + who + " " + does);
            return;
        }
    }
    auto& edits = lists_[name];
    for (const auto& e : edits)
        if (e.item.key == item.key && e.add != add && e.plugin != contributor_) {
            conflicts_.push_back("parameter " + name + ": plugin " + e.plugin + " " +
                                 (e.add ? "adds " : "removes ") + in_quotes(item.key) + ", " + who +
                                 (add ? " adds it" : " removes it"));
            return;
        }
    edits.push_back({contributor_, add, std::move(item)});
}

void ConfigureDraft::restart_needed(std::string_view reason) {
    restarts_.push_back({contributor_, std::string(reason)});
}

std::optional<std::string> ConfigureDraft::file_value(const std::string& name) const {
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

ConfigureDraft::ComposedList ConfigureDraft::compose_list(const std::string& name) const {
    std::optional<std::string> base;
    if (auto u = user_.find(name); u != user_.end())
        base = u->second;
    else
        base = file_value(name);
    if (!base && server_default_ && !user_.count(name)) base = server_default_(name);
    ComposedList out;
    out.items = conf::split_list_value(name, base.value_or(""));
    auto by = [&](const std::string& plugin) {
        out.changed = true;
        if (std::find(out.plugins.begin(), out.plugins.end(), plugin) == out.plugins.end())
            out.plugins.push_back(plugin);
    };
    if (auto l = lists_.find(name); l != lists_.end())
        for (const auto& e : l->second) {
            if (e.add) {
                if (has_key(out.items, e.item.key)) continue;
                out.items.push_back(e.item);
                by(e.plugin);
            } else {
                auto gone =
                    std::remove_if(out.items.begin(), out.items.end(),
                                   [&](const conf::ListItem& i) { return i.key == e.item.key; });
                if (gone == out.items.end()) continue;
                out.items.erase(gone, out.items.end());
                by(e.plugin);
            }
        }
    return out;
}

bool ConfigureDraft::default_applies(const std::string& name) const {
    return defaults_.count(name) && !required_.count(name) && !user_.count(name) &&
           !file_value(name);
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
    if (lists_.count(name)) {
        ComposedList l = compose_list(name);
        if (l.changed) return conf::join_list_value(l.items);
    }
    if (auto it = required_.find(name); it != required_.end()) return it->second.value;
    if (auto u = user_.find(name); u != user_.end()) return u->second;
    if (default_applies(name)) return defaults_.at(name).value;
    return file_value(name);
}

std::string ConfigureDraft::hba_text() const {
    return hba_.print();
}

std::vector<std::string> ConfigureDraft::apply_parameters() {
    composed_.clear();
    for (const auto& [name, r] : required_) composed_[name] = {r.value, "plugin " + r.plugin};
    for (const auto& [name, d] : defaults_)
        if (default_applies(name)) composed_[name] = {d.value, "plugin " + d.plugin};
    for (const auto& [name, edits] : lists_) {
        ComposedList l = compose_list(name);
        if (!l.changed) continue;
        composed_[name] = {conf::join_list_value(l.items),
                           (l.plugins.size() > 1 ? "plugins " : "plugin ") + join(l.plugins, ", ")};
    }
    std::vector<std::string> changed;
    for (const auto& [name, contribution] : composed_) {
        fs::path file = file_for_(name);
        if (!docs_.count(file)) docs_.emplace(file, conf::ConfDocument::read(file));
        auto& doc = docs_.at(file);
        auto now = doc.get(name);
        if (now && now->value == contribution.value) continue;
        doc.set(name, contribution.value);
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
