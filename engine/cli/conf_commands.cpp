// conf, hba and ident commands: on an instance (-i NAME) or on any file (--file PATH).
#include <sys/stat.h>

#include <algorithm>

#include <nlohmann/json.hpp>

#include "engine/cli/command.hpp"
#include "engine/conf/template.hpp"
#include "engine/core/input.hpp"
#include "engine/operations/configuration.hpp"

namespace fs = std::filesystem;
using json = nlohmann::ordered_json;

namespace pgforge::cli {
namespace {

void target_options(po::options_description& d) {
    // clang-format off
    d.add_options()
        ("instance,i", po::value<std::string>(), "the instance (NAME or VERSION/NAME)")
        ("file", po::value<std::string>(), "any file of that format, instead of an instance")
        ("dry-run", po::bool_switch(), "check and report, write nothing");
    // clang-format on
}

void set_options(po::options_description& d) {
    target_options(d);
    // clang-format off
    d.add_options()
        ("restart", po::bool_switch(), "restart the instance when a change needs it")
        ("version", po::value<std::string>(), "with --file: the PostgreSQL version whose rules apply");
    // clang-format on
}

void remove_options(po::options_description& d) {
    target_options(d);
    d.add_options()("delete", po::bool_switch(), "delete the lines instead of commenting them out");
}

void hba_add_options(po::options_description& d) {
    target_options(d);
    // clang-format off
    d.add_options()
        ("before", po::value<long long>(), "insert before record N (as numbered by list)")
        ("after", po::value<long long>(), "insert after record N")
        ("position", po::value<long long>(), "insert so that the record becomes number N");
    // clang-format on
}

void hba_remove_options(po::options_description& d) {
    target_options(d);
    // clang-format off
    d.add_options()
        ("position", po::value<long long>(), "remove record N (as numbered by list)")
        ("type", po::value<std::string>(), "remove records of this type")
        ("database", po::value<std::string>(), "... naming this database")
        ("user", po::value<std::string>(), "... naming this user")
        ("address", po::value<std::string>(), "... with this address")
        ("method", po::value<std::string>(), "... with this method");
    // clang-format on
}

void ident_remove_options(po::options_description& d) {
    target_options(d);
    // clang-format off
    d.add_options()
        ("map", po::value<std::string>(), "remove entries of this map")
        ("system-user", po::value<std::string>(), "... for this OS user")
        ("pg-user", po::value<std::string>(), "... for this role");
    // clang-format on
}

std::optional<fs::path> file_target(Invocation& inv) {
    auto file = inv.opt<std::string>("file");
    if (file && inv.opt<std::string>("instance"))
        throw Error(Exit::usage, "give either -i INSTANCE or --file PATH, not both");
    if (file) return fs::absolute(*file);
    if (!inv.opt<std::string>("instance"))
        throw Error(Exit::usage, "no target",
                    "name an instance with -i NAME, or a file with --file");
    return std::nullopt;
}

Instance instance_target(Invocation& inv) {
    return instances::get(inv.ctx(), *inv.opt<std::string>("instance"));
}

std::string show_value(const std::optional<std::string>& v) {
    if (!v) return "(not set)";
    return v->empty() ? "''" : *v;
}

json opt_json(const std::optional<std::string>& v) {
    return v ? json(*v) : json(nullptr);
}

int report(Invocation& inv, const configuration::Outcome& o, const std::string& target,
           bool dry_run) {
    if (inv.json) {
        json changes = json::array();
        for (const auto& c : o.changes)
            changes.push_back({{"name", c.name},
                               {"before", opt_json(c.before)},
                               {"after", opt_json(c.after)},
                               {"effect", c.effect},
                               {"file", c.file.string()},
                               {"note", c.note.empty() ? json(nullptr) : json(c.note)}});
        json restarts = json::array();
        for (const auto& r : o.restart_reasons)
            restarts.push_back({{"plugin", r.plugin}, {"effect", "restart"}, {"reason", r.reason}});
        inv.out << json{{"target", target},
                        {"changed", o.changed},
                        {"dry_run", dry_run},
                        {"reloaded", o.reloaded},
                        {"restarted", o.restarted},
                        {"pending_restart", o.pending_restart},
                        {"pending_restart_names", o.pending_restart_names},
                        {"changes", changes},
                        {"plugin_restarts", restarts}}
                       .dump(2)
                << "\n";
        return 0;
    }
    if (inv.quiet) return 0;
    for (const auto& c : o.changes) {
        inv.out << escape_control(c.name + ": " + show_value(c.before) + " -> " +
                                  show_value(c.after))
                << " (" << c.effect << ")\n";
        if (!c.note.empty()) inv.out << "  note: " << c.note << "\n";
    }
    for (const auto& r : o.restart_reasons)
        inv.out << escape_control("plugin " + r.plugin + ": " + r.reason) << " (restart)\n";
    if (dry_run) inv.out << "dry run: nothing was written\n";
    if (o.restarted) inv.out << target << " restarted\n";
    if (o.reloaded && !o.restarted) inv.out << target << " reloaded\n";
    if (o.pending_restart || !o.pending_restart_names.empty()) {
        std::string list;
        for (const auto& n : o.pending_restart_names) list += (list.empty() ? "" : ", ") + n;
        if (o.pending_restart)
            for (const auto& r : o.restart_reasons)
                list += (list.empty() ? "plugin " : ", plugin ") + r.plugin;
        inv.out << "a restart is needed for " << (list.empty() ? "a change" : escape_control(list))
                << " to apply: pgforge instance restart " << target << " (or conf set --restart)\n";
    }
    if (o.port_after != o.port_before)
        inv.out << target << " now listens on port " << o.port_after << "\n";
    return 0;
}

int conf_show(Invocation& inv) {
    auto file = file_target(inv);
    conf::ConfTree tree =
        file ? conf::ConfTree::load(*file) : configuration::load(instance_target(inv));
    auto all = tree.all();
    std::vector<std::string> only = inv.positional;
    if (inv.json) {
        json j = json::object();
        for (const auto& [key, s] : all) {
            if (!only.empty() && std::find(only.begin(), only.end(), key) == only.end()) continue;
            j[s.name] = {{"value", s.value}, {"file", s.file.string()}, {"line", s.line}};
        }
        inv.out << j.dump(2) << "\n";
        return 0;
    }
    std::vector<std::vector<std::string>> rows;
    for (const auto& [key, s] : all) {
        if (!only.empty() && std::find(only.begin(), only.end(), key) == only.end()) continue;
        rows.push_back({s.name, "=", s.value.empty() ? "''" : s.value,
                        "# " + s.file.filename().string() + ":" + std::to_string(s.line)});
    }
    print_table(inv.out, rows);
    return 0;
}

int conf_get(Invocation& inv) {
    if (inv.positional.empty()) throw Error(Exit::usage, "missing parameter name");
    auto file = file_target(inv);
    conf::ConfTree tree =
        file ? conf::ConfTree::load(*file) : configuration::load(instance_target(inv));
    json j = json::object();
    int rc = 0;
    for (const auto& name : inv.positional) {
        auto s = tree.get(name);
        if (inv.json) {
            j[name] = s ? json{{"value", s->value}, {"file", s->file.string()}, {"line", s->line}}
                        : json(nullptr);
        } else if (s) {
            // Values come from files the instance's owner can write.
            inv.out << escape_control(name + " = " + (s->value.empty() ? "''" : s->value)) << "  # "
                    << escape_control(s->file.string()) << ":" << s->line << "\n";
        } else {
            inv.out << name << " is not set in the configuration files (the server's default "
                    << "applies)\n";
        }
        if (!s) rc = static_cast<int>(Exit::not_found);
    }
    if (inv.json) inv.out << j.dump(2) << "\n";
    return rc;
}

int conf_set(Invocation& inv) {
    auto values = configuration::parse_assignments(inv.positional);
    configuration::Options o{inv.flag("restart"), inv.flag("dry-run")};
    if (auto file = file_target(inv)) {
        auto out = configuration::set_file(inv.ctx(), *file, values,
                                           inv.opt<std::string>("version").value_or(""), o);
        return report(inv, out, file->string(), o.dry_run);
    }
    Instance i = instance_target(inv);
    auto out = configuration::set(inv.ctx(), i, values, o);
    return report(inv, out, i.qualified_name(), o.dry_run);
}

int conf_remove(Invocation& inv) {
    if (inv.positional.empty()) throw Error(Exit::usage, "missing parameter name");
    configuration::Options o{false, inv.flag("dry-run")};
    if (auto file = file_target(inv))
        return report(inv, configuration::remove_file(*file, inv.positional, inv.flag("delete"), o),
                      file->string(), o.dry_run);
    Instance i = instance_target(inv);
    auto out = configuration::remove(inv.ctx(), i, inv.positional, inv.flag("delete"), o);
    return report(inv, out, i.qualified_name(), o.dry_run);
}

// ---- hba and ident --------------------------------------------------------------------------

json hba_json(const conf::HbaRecord& r, size_t number) {
    json options = json::object();
    for (const auto& [k, v] : r.options) options[k] = v;
    return {{"number", number},         {"line", r.line},     {"type", r.type},
            {"databases", r.databases}, {"users", r.users},   {"address", r.address},
            {"mask", r.mask},           {"method", r.method}, {"options", options}};
}

std::string join(const std::vector<std::string>& v) {
    std::string s;
    for (const auto& x : v) s += (s.empty() ? "" : ",") + x;
    return s;
}

// Edits an HBA or ident file of an instance (checked by the server, reloaded) or a plain file.
template <typename File, typename Edit>
int edit_auth(Invocation& inv, const char* file_name, Edit&& edit) {
    bool dry_run = inv.flag("dry-run");
    std::string target;
    bool changed = false, reloaded = false;
    if (auto file = file_target(inv)) {
        target = file->string();
        File f = File::read(*file);
        std::string before = f.print();
        edit(f);
        changed = f.print() != before;
        if (changed && !dry_run) {
            File::parse(f.print(), *file);
            struct stat st {};
            stat(file->c_str(), &st);
            OsUser owner;
            owner.uid = st.st_uid;
            owner.gid = st.st_gid;
            write_file_atomically(*file, f.print(), &owner, fs::perms(st.st_mode & 07777));
        }
    } else {
        Instance i = instance_target(inv);
        target = i.qualified_name();
        configuration::HbaOutcome out;
        if constexpr (std::is_same_v<File, conf::HbaFile>)
            out = configuration::edit_hba(inv.ctx(), i, edit, dry_run);
        else
            out = configuration::edit_ident(inv.ctx(), i, edit, dry_run);
        changed = out.changed;
        reloaded = out.reloaded;
    }
    if (inv.json) {
        inv.out << json{{"target", target},
                        {"file", file_name},
                        {"changed", changed && !dry_run},
                        {"dry_run", dry_run},
                        {"reloaded", reloaded}}
                       .dump(2)
                << "\n";
    } else if (!inv.quiet) {
        inv.out << (changed ? (dry_run ? "would change " : "changed ") : "no change to ")
                << file_name << " of " << target << (reloaded ? " (reloaded)" : "") << "\n";
    }
    return 0;
}

// The file an hba or ident command reads, and its text: --file, else the one the instance's
// server reads (hba_file / ident_file, pg_hba.conf / pg_ident.conf of the data directory by
// default), read with the rights of whoever controls the file that names it.
struct AuthText {
    fs::path file;
    std::string text;
};
AuthText auth_file(Invocation& inv, bool hba) {
    if (auto file = file_target(inv)) return {*file, read_text_file(*file)};
    auto files = conf::auth_file_paths(instance_target(inv).data_dir);
    const fs::path& file = hba ? files.hba : files.ident;
    return {file, conf::read_auth_file(file, hba ? files.hba_named_by : files.ident_named_by)};
}

// Every record line, as pg_hba_file_rules shows them: a line the server would refuse is listed
// with its error (and no number: record numbers count the valid records, as hba add and remove
// use them); exit 1 when there is one.
int hba_list(Invocation& inv) {
    const auto [file, text] = auth_file(inv, true);
    auto lines = conf::list_hba_lines(text);
    const size_t errors = static_cast<size_t>(
        std::count_if(lines.begin(), lines.end(), [](const auto& l) { return !l.record; }));
    if (inv.json) {
        json arr = json::array();
        size_t number = 0;
        for (const auto& l : lines) {
            json row;
            if (l.record) {
                row = hba_json(*l.record, ++number);
                row["error"] = nullptr;
            } else {
                row = {{"number", nullptr}, {"line", l.line}, {"text", l.text}, {"error", l.error}};
            }
            arr.push_back(row);
        }
        inv.out << arr.dump(2) << "\n";
    } else {
        // An ERROR column when a line is bad: what is wrong, and the line as written.
        std::vector<std::vector<std::string>> rows = {
            {"#", "LINE", "TYPE", "DATABASE", "USER", "ADDRESS", "METHOD", "OPTIONS"}};
        if (errors) rows[0].push_back("ERROR");
        size_t number = 0;
        for (const auto& l : lines) {
            if (!l.record) {
                rows.push_back({"-", std::to_string(l.line), "", "", "", "", "", "",
                                l.error + " (" + l.text + ")"});
                continue;
            }
            const auto& r = *l.record;
            std::string options;
            for (const auto& [key, v] : r.options)
                options += (options.empty() ? "" : " ") + key + "=" + v;
            rows.push_back({std::to_string(++number), std::to_string(r.line), r.type,
                            join(r.databases), join(r.users),
                            r.address + (r.mask.empty() ? "" : " " + r.mask), r.method, options});
            if (errors) rows.back().push_back("");
        }
        print_table(inv.out, rows);
    }
    if (errors == 0) return 0;
    inv.err << escape_control(file.string()) << ": " << errors << (errors == 1 ? " line" : " lines")
            << " the server would not load\n";
    return static_cast<int>(Exit::failure);
}

// A record number given with --before, --after or --position: refused below 1 before anything is
// locked or written (a negative number must not wrap around to a huge unsigned one).
std::optional<size_t> record_number(Invocation& inv, const char* option) {
    auto number = inv.opt<long long>(option);
    if (!number) return std::nullopt;
    check_at_least(*number, 1, std::string("--") + option);
    return static_cast<size_t>(*number);
}

size_t record_index(size_t number, size_t count, const char* option) {
    if (number < 1 || number > count + 1)
        throw Error(Exit::usage,
                    std::string("--") + option + " " + std::to_string(number) +
                        " is not a record number (there are " + std::to_string(count) + ")",
                    "see the numbers with: pgforge hba list");
    return number - 1;
}

int hba_add(Invocation& inv) {
    conf::HbaRecord record = conf::HbaRecord::parse_fields(inv.positional);
    auto before = record_number(inv, "before"), after = record_number(inv, "after"),
         position = record_number(inv, "position");
    if (int(bool(before)) + int(bool(after)) + int(bool(position)) > 1)
        throw Error(Exit::usage, "give one of --before, --after and --position");
    return edit_auth<conf::HbaFile>(inv, "pg_hba.conf", [&](conf::HbaFile& f) {
        size_t count = f.records().size();
        // An identical record already there: nothing to do (idempotent for playbooks).
        for (const auto& r : f.records())
            if (r.to_line() == record.to_line()) return;
        if (before)
            f.insert(record_index(*before, count, "before"), record);
        else if (after)
            f.insert(record_index(*after, count, "after") + 1, record);
        else if (position)
            f.insert(record_index(*position, count, "position"), record);
        else
            f.append(record);
    });
}

int hba_remove(Invocation& inv) {
    auto position = record_number(inv, "position");
    conf::HbaFile::Match m;
    m.type = inv.opt<std::string>("type");
    m.database = inv.opt<std::string>("database");
    m.user = inv.opt<std::string>("user");
    m.address = inv.opt<std::string>("address");
    m.method = inv.opt<std::string>("method");
    bool by_fields = m.type || m.database || m.user || m.address || m.method;
    if (bool(position) == by_fields)
        throw Error(Exit::usage, "say which records to remove",
                    "give --position N, or fields (--type, --database, --user, --address, "
                    "--method)");
    return edit_auth<conf::HbaFile>(inv, "pg_hba.conf", [&](conf::HbaFile& f) {
        if (position) {
            size_t count = f.records().size();
            if (*position < 1 || *position > count)
                throw Error(Exit::usage, "there is no record " + std::to_string(*position),
                            "see the numbers with: pgforge hba list");
            f.remove_at(*position - 1);
        } else {
            f.remove(m);
        }
    });
}

int ident_list(Invocation& inv) {
    const auto [file, text] = auth_file(inv, false);
    auto entries = conf::IdentFile::parse(text, file).entries();
    if (inv.json) {
        json arr = json::array();
        for (const auto& e : entries)
            arr.push_back({{"map", e.map},
                           {"system_user", e.system_user},
                           {"pg_user", e.pg_user},
                           {"line", e.line}});
        inv.out << arr.dump(2) << "\n";
        return 0;
    }
    std::vector<std::vector<std::string>> rows = {{"LINE", "MAP", "SYSTEM USER", "PG USER"}};
    for (const auto& e : entries)
        rows.push_back({std::to_string(e.line), e.map, e.system_user, e.pg_user});
    print_table(inv.out, rows);
    return 0;
}

int ident_add(Invocation& inv) {
    if (inv.positional.size() != 3)
        throw Error(Exit::usage, "ident add takes MAP SYSTEM-USER PG-USER",
                    "for example: pgforge ident add -i main pgforge alice app");
    conf::IdentEntry e;
    e.map = inv.positional[0];
    e.system_user = inv.positional[1];
    e.pg_user = inv.positional[2];
    return edit_auth<conf::IdentFile>(inv, "pg_ident.conf",
                                      [&](conf::IdentFile& f) { f.add_if_absent(e); });
}

int ident_remove(Invocation& inv) {
    auto map = inv.opt<std::string>("map"), sys = inv.opt<std::string>("system-user"),
         pg = inv.opt<std::string>("pg-user");
    if (!map && !sys && !pg)
        throw Error(Exit::usage, "say which entries to remove",
                    "give --map, --system-user and/or --pg-user");
    return edit_auth<conf::IdentFile>(inv, "pg_ident.conf",
                                      [&](conf::IdentFile& f) { f.remove(map, sys, pg); });
}

void list_options(po::options_description& d) {
    d.add_options()("instance,i", po::value<std::string>(), "the instance")(
        "file", po::value<std::string>(), "any file of that format, instead of an instance");
}

const std::vector<CommandSpec> kConfCommands = {
    {"conf", "show", "[NAME...]", "effective settings, with the file and line each comes from",
     list_options, conf_show},
    {"conf", "get", "NAME...", "a setting's value and where it is set", list_options, conf_get},
    {"conf", "set", "NAME=VALUE...",
     "check with the server's rules, write, reload; say reload or restart", set_options, conf_set},
    {"conf", "remove", "NAME...", "comment out (or --delete) a setting", remove_options,
     conf_remove},
    {"hba", "list", "", "pg_hba.conf records, numbered", list_options, hba_list},
    {"hba", "add", "TYPE DATABASE USER [ADDRESS [MASK]] METHOD [OPTION=VALUE...]",
     "add a record (checked by the server when it runs)", hba_add_options, hba_add},
    {"hba", "remove", "", "remove records by number or by fields", hba_remove_options, hba_remove},
    {"ident", "list", "", "pg_ident.conf entries", list_options, ident_list},
    {"ident", "add", "MAP SYSTEM-USER PG-USER", "add a user name map entry", target_options,
     ident_add},
    {"ident", "remove", "", "remove map entries by fields", ident_remove_options, ident_remove},
};

}  // namespace

const std::vector<CommandSpec>& conf_commands() {
    return kConfCommands;
}

}  // namespace pgforge::cli
