#include "engine/cli/cli.hpp"

#include <algorithm>
#include <iostream>
#include <nlohmann/json.hpp>
#include <optional>
#include <set>
#include <sstream>

#include "engine/cli/command.hpp"
#include "engine/core/input.hpp"
#include "engine/core/interrupt.hpp"
#include "engine/core/log.hpp"
#include "engine/core/text.hpp"
#include "engine/operations/plugin_commands.hpp"
#include "engine/pipeline/pipeline.hpp"
#include "engine/pipeline/plugin_calls.hpp"
#include "engine/pipeline/plugin_host.hpp"

using json = nlohmann::ordered_json;

namespace pgforge::cli {

std::string shell_quote(const std::string& s) {
    std::string out = "'";
    for (char c : s) out += c == '\'' ? std::string("'\\''") : std::string(1, c);
    return out + "'";
}

void print_table(std::ostream& out, const std::vector<std::vector<std::string>>& input) {
    // Cells often come from files an instance's owner writes (pg_hba.conf, postgresql.conf):
    // their control characters are shown, not sent to the terminal.
    std::vector<std::vector<std::string>> rows;
    for (const auto& r : input) {
        rows.emplace_back();
        for (const auto& cell : r) rows.back().push_back(escape_control(cell));
    }
    std::vector<size_t> width;
    for (const auto& r : rows)
        for (size_t c = 0; c < r.size(); ++c) {
            if (width.size() <= c) width.push_back(0);
            width[c] = std::max(width[c], r[c].size());
        }
    for (const auto& r : rows) {
        std::string line;
        for (size_t c = 0; c < r.size(); ++c) {
            line += r[c];
            if (c + 1 < r.size()) line += std::string(width[c] - r[c].size() + 2, ' ');
        }
        line.erase(line.find_last_not_of(' ') + 1);
        out << line << "\n";
    }
}

void print_statements(std::ostream& out, const std::vector<std::string>& statements) {
    for (const auto& s : statements) out << "  " << escape_control(s) << ";\n";
}

std::vector<const std::vector<CommandSpec>*> all_command_tables() {
    return {&instance_commands(), &replication_commands(), &upgrade_commands(),
            &apply_commands(),    &conf_commands(),        &database_commands(),
            &role_commands(),     &plugin_commands(),      &schema_commands()};
}

namespace {

void global_options(po::options_description& d) {
    // clang-format off
    d.add_options()
        ("prefix", po::value<std::string>(), "where instances and the inventory live")
        ("run-dir", po::value<std::string>(), "where sockets live")
        ("settings", po::value<std::string>(), "site settings file (INI)")
        ("json", po::bool_switch(), "JSON output for scripts")
        ("quiet,q", po::bool_switch(), "print nothing but errors")
        ("log-level", po::value<std::string>()->default_value("warn"), "trace, debug, info, warn, error, off")
        ("log-file", po::value<std::string>(), "also log to this file")
        ("require-plugin", po::value<std::vector<std::string>>()->composing(), "enable this plugin; every command fails unless it loads (repeatable)")
        ("skip-plugin", po::value<std::vector<std::string>>()->composing(), "go on without this enabled plugin, broken or not: its hooks are skipped and journaled (repeatable)")
        ("help,h", po::bool_switch(), "show help");
    // clang-format on
}

void print_help(std::ostream& out, const std::vector<std::vector<std::string>>& plugin_rows) {
    out << "usage: pgforge [global options] OBJECT VERB [ARGS]\n\ncommands:\n";
    std::vector<std::vector<std::string>> rows;
    for (const auto* table : all_command_tables())
        for (const auto& c : *table)
            rows.push_back({std::string("  ") + c.object + " " + c.verb, c.args, c.help});
    rows.insert(rows.end(), plugin_rows.begin(), plugin_rows.end());
    print_table(out, rows);
    po::options_description g("global options");
    global_options(g);
    out << "\n"
        << g << "\nexit status: 0 done, 1 failed, 2 usage, 3 stopped, 4 not found,\n"
        << "5 conflict, 6 busy, 7 server did not start or stop (docs/cli.md)\n";
}

const CommandSpec* find_command(const std::string& object, const std::string& verb) {
    for (const auto* table : all_command_tables())
        for (const auto& c : *table)
            if (object == c.object && verb == c.verb) return &c;
    return nullptr;
}

[[noreturn]] void unknown_command(const std::string& object, const std::string& verb,
                                  const std::vector<std::string>& plugin_commands) {
    std::vector<std::string> known = plugin_commands;
    for (const auto* table : all_command_tables())
        for (const auto& c : *table) known.push_back(std::string(c.object) + " " + c.verb);
    const std::string* best = nullptr;
    size_t best_d = 99;
    for (const auto& k : known) {
        size_t d = edit_distance(object + " " + verb, k);
        if (d < best_d) best = &k, best_d = d;
    }
    std::string hint = "see pgforge --help";
    if (best && best_d <= 3) hint = "did you mean 'pgforge " + *best + "'?";
    throw Error(Exit::usage, "unknown command '" + object + (verb.empty() ? "" : " " + verb) + "'",
                hint);
}

// What the global options set: where the settings come from, the output, the log.
void apply_globals(const po::variables_map& vm, Invocation& inv) {
    auto text = [&](const char* name) -> std::optional<std::string> {
        if (!vm.count(name)) return std::nullopt;
        return vm[name].as<std::string>();
    };
    inv.json = vm.count("json") && vm["json"].as<bool>();
    inv.quiet = vm.count("quiet") && vm["quiet"].as<bool>();
    if (auto p = text("prefix")) inv.overrides.prefix = *p;
    if (auto p = text("run-dir")) inv.overrides.run_dir = *p;
    if (auto p = text("settings")) inv.overrides.settings_file = *p;
    if (vm.count("require-plugin"))
        inv.overrides.required_plugins = vm["require-plugin"].as<std::vector<std::string>>();
    if (vm.count("skip-plugin"))
        inv.overrides.skipped_plugins = vm["skip-plugin"].as<std::vector<std::string>>();
    log::configure(log::parse_level(text("log-level").value_or("warn")),
                   text("log-file").value_or(""));
}

// For commands that plugins add: the global options and -i/--instance are pgforge's, the other
// arguments (in order) the plugin's. Returns those; `vm` holds the rest.
std::vector<std::string> split_plugin_arguments(const std::vector<std::string>& rest,
                                                po::variables_map& vm) {
    po::options_description d;
    global_options(d);
    d.add_options()("instance,i", po::value<std::string>())("args",
                                                            po::value<std::vector<std::string>>());
    po::positional_options_description pos;
    pos.add("args", -1);
    try {
        auto parsed =
            po::command_line_parser(rest).options(d).positional(pos).allow_unregistered().run();
        po::store(parsed, vm);
        po::notify(vm);
        return po::collect_unrecognized(parsed.options, po::include_positional);
    } catch (const po::error& e) {
        throw Error(Exit::usage, e.what(), "see pgforge --help");
    }
}

// pgforge FAMILY VERB for a family an enabled plugin adds: the global options and -i are
// pgforge's, the rest the plugin's; the library finds and runs the command (plugin_commands.hpp).
std::optional<int> run_plugin_command_line(const std::vector<std::string>& words,
                                           const std::vector<std::string>& rest, Invocation& inv) {
    po::variables_map vm;
    std::vector<std::string> args = split_plugin_arguments(rest, vm);
    apply_globals(vm, inv);
    const std::string instance_ref = vm.count("instance") ? vm["instance"].as<std::string>() : "";
    Context& ctx = inv.ctx();
    auto found = plugin_commands::find(ctx, words[0], words.size() > 1 ? words[1] : std::string());
    if (!found)
        unknown_command(words[0], words.size() > 1 ? words[1] : "", plugin_commands::names(ctx));
    const sdk::Command& c = found->command;
    if (vm["help"].as<bool>()) {
        inv.out << "usage: pgforge " << c.family << " " << c.verb << " " << c.args << "\n"
                << c.summary << " (plugin " << found->plugin->name() << ")\n";
        return 0;
    }
    bool all = false;
    if (auto it = std::find(args.begin(), args.end(), "--all");
        it != args.end() && c.needs_instance && instance_ref.empty()) {
        args.erase(it);
        all = true;
    }
    int rc = plugin_commands::run(ctx, *found, instance_ref, all, args, inv.json, inv.out, inv.err);
    inv.end_progress();
    return rc;
}

// Lists the verbs of a built-in object ("pgforge instance --help").
bool print_object_help(const std::string& object, std::ostream& out) {
    std::vector<std::vector<std::string>> rows;
    for (const auto* table : all_command_tables())
        for (const auto& c : *table)
            if (object == c.object)
                rows.push_back({std::string("  ") + c.object + " " + c.verb, c.args, c.help});
    if (rows.empty()) return false;
    out << "usage: pgforge " << object << " VERB [ARGS] (pgforge " << object
        << " VERB --help for one)\n\n";
    print_table(out, rows);
    return true;
}

// Options that are not the command's own may be flags an enabled plugin adds to it
// ("instance drop --purge-backups"); anything else is a usage error.
void accept_plugin_flags(const CommandSpec& cmd, const std::vector<std::string>& unrecognized,
                         Invocation& inv) {
    std::string command = std::string(cmd.object) + " " + cmd.verb;
    std::set<std::string> offered;
    Context& ctx = inv.ctx();
    if (ctx.plugins_wanted())
        for (LoadedPlugin* p : ctx.plugins().loaded())
            for (const auto& f : p->flags())
                if (f.command == command) offered.insert(f.name);
    for (const auto& u : unrecognized) {
        std::string name = u.rfind("--", 0) == 0 ? u.substr(2) : u;
        if (!offered.count(name))
            throw Error(Exit::usage, "unrecognised option '" + u + "' (pgforge " + command + ")",
                        "see pgforge " + command + " --help");
        ctx.flags.insert(name);
    }
}

int dispatch(const std::vector<std::string>& args, Invocation& inv) {
    // OBJECT and VERB are the first two words that are not options or their values.
    po::options_description globals;
    global_options(globals);
    std::vector<std::string> rest, words;
    std::vector<std::string> all(args.begin(), args.end());
    auto dashdash = std::find(all.begin(), all.end(), "--");
    if (dashdash != all.end()) {
        inv.trailing.assign(dashdash + 1, all.end());
        all.erase(dashdash, all.end());
    }
    for (size_t k = 0; k < all.size(); ++k) {
        const std::string& a = all[k];
        if (words.size() < 2 && !a.empty() && a[0] != '-') {
            words.push_back(a);
            continue;
        }
        rest.push_back(a);
        // A global option's separate value is not a word.
        if (words.size() < 2 && a.rfind("--", 0) == 0 && a.find('=') == std::string::npos) {
            auto* o = globals.find_nothrow(a.substr(2), false);
            if (o && o->semantic()->max_tokens() > 0 && k + 1 < all.size())
                rest.push_back(all[++k]);
        }
    }
    if (words.empty()) {
        po::variables_map vm;
        po::store(po::command_line_parser(rest).options(globals).run(), vm);
        // Commands of enabled plugins are listed too, when the site's settings can be read.
        std::vector<std::vector<std::string>> extra;
        try {
            apply_globals(vm, inv);
            Context& ctx = inv.ctx();
            if (ctx.plugins_wanted())
                for (LoadedPlugin* p : ctx.plugins().loaded())
                    for (const auto& c : p->commands())
                        extra.push_back({"  " + c.family + " " + c.verb, c.args,
                                         c.summary + " (plugin " + p->name() + ")"});
        } catch (const std::exception&) {
        }
        print_help(inv.out, extra);
        return vm.count("help") && vm["help"].as<bool>() ? 0 : static_cast<int>(Exit::usage);
    }
    const CommandSpec* found = find_command(words[0], words.size() > 1 ? words[1] : "");
    if (!found && words.size() == 1) {
        // "pgforge instance --help" lists the verbs; "pgforge instance" too, as a usage error.
        bool help = std::find(rest.begin(), rest.end(), "--help") != rest.end() ||
                    std::find(rest.begin(), rest.end(), "-h") != rest.end();
        if (print_object_help(words[0], help ? inv.out : inv.err))
            return help ? 0 : static_cast<int>(Exit::usage);
    }
    if (!found) {
        // A plugin's family, or a word after the verb that belongs to the plugin's command.
        std::vector<std::string> all_rest(all.begin(), all.end());
        std::vector<std::string> after;
        size_t seen = 0;
        for (const auto& a : all_rest) {
            if (seen < 2 && !a.empty() && a[0] != '-' && a == words[seen]) {
                ++seen;
                continue;
            }
            after.push_back(a);
        }
        return *run_plugin_command_line(words, after, inv);
    }
    const CommandSpec& cmd = *found;

    po::options_description own;
    cmd.options(own);
    po::options_description all_opts;
    all_opts.add(globals).add(own);
    all_opts.add_options()("args", po::value<std::vector<std::string>>());
    po::positional_options_description pos;
    pos.add("args", -1);
    std::vector<std::string> unrecognized;
    try {
        auto parsed = po::command_line_parser(rest)
                          .options(all_opts)
                          .positional(pos)
                          .allow_unregistered()
                          .run();
        po::store(parsed, inv.vm);
        po::notify(inv.vm);
        unrecognized = po::collect_unrecognized(parsed.options, po::exclude_positional);
    } catch (const po::error& e) {
        throw Error(Exit::usage,
                    std::string(e.what()) + " (pgforge " + cmd.object + " " + cmd.verb + ")",
                    "see pgforge " + std::string(cmd.object) + " " + cmd.verb + " --help");
    }
    if (inv.flag("help")) {
        inv.out << "usage: pgforge " << cmd.object << " " << cmd.verb << " " << cmd.args << "\n"
                << cmd.help << "\n\n"
                << own << "\n";
        return 0;
    }
    if (inv.vm.count("args")) inv.positional = inv.vm["args"].as<std::vector<std::string>>();
    apply_globals(inv.vm, inv);
    if (!unrecognized.empty()) accept_plugin_flags(cmd, unrecognized, inv);
    // instance list and status run no hooks, but say which enabled plugins are broken (loading
    // them warns, naming each and why): what the next operation would fail on.
    const std::string command = std::string(cmd.object) + " " + cmd.verb;
    if ((command == "instance list" || command == "instance status") && inv.ctx().plugins_wanted())
        inv.ctx().plugins();
    return cmd.run(inv);
}

}  // namespace

int run(const std::vector<std::string>& args, std::ostream& out, std::ostream& err) {
    Invocation inv{out, err, {}, {}, {}, {}, false, false, nullptr};
    try {
        return dispatch(args, inv);
    } catch (const Error& e) {
        inv.end_progress();
        if (inv.json)
            out << json{{"error",
                         {{"message", e.what()}, {"hint", e.hint()}, {"exit", int(e.code())}}}}
                       .dump(2)
                << "\n";
        // Messages often quote input (names, values, file contents): its control characters
        // are shown, never sent to the terminal.
        err << "pgforge: " << escape_control(e.what()) << "\n";
        if (!e.hint().empty()) err << "  hint: " << escape_control(e.hint()) << "\n";
        // A failure a signal caused (a program it cut short, a wait it broke) is an interruption.
        return static_cast<int>(interrupted() ? Exit::interrupted : e.code());
    } catch (const po::error& e) {
        err << "pgforge: " << escape_control(e.what()) << "\n  hint: see pgforge --help\n";
        return static_cast<int>(Exit::usage);
    } catch (const std::exception& e) {
        inv.end_progress();
        err << "pgforge: " << escape_control(e.what()) << "\n";
        return static_cast<int>(interrupted() ? Exit::interrupted : Exit::failure);
    }
}

int main(int argc, char** argv) {
    // INT, TERM and HUP fail the running operation at its next check, so that it undoes what
    // it made (exit 8); a second one ends pgforge at once.
    install_interrupt_handlers();
    std::vector<std::string> args(argv + 1, argv + argc);
    return run(args, std::cout, std::cerr);
}

}  // namespace pgforge::cli
