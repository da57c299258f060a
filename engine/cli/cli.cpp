#include "engine/cli/cli.hpp"

#include <iostream>
#include <nlohmann/json.hpp>

#include "engine/cli/command.hpp"
#include "engine/core/log.hpp"
#include "engine/core/text.hpp"

using json = nlohmann::ordered_json;

namespace pgforge::cli {

std::string shell_quote(const std::string& s) {
    std::string out = "'";
    for (char c : s) out += c == '\'' ? std::string("'\\''") : std::string(1, c);
    return out + "'";
}

void print_table(std::ostream& out, const std::vector<std::vector<std::string>>& rows) {
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

std::vector<const std::vector<CommandSpec>*> all_command_tables() {
    return {&instance_commands(), &conf_commands(), &database_commands(), &role_commands()};
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
        ("help,h", po::bool_switch(), "show help");
    // clang-format on
}

void print_help(std::ostream& out) {
    out << "usage: pgforge [global options] OBJECT VERB [ARGS]\n\ncommands:\n";
    std::vector<std::vector<std::string>> rows;
    for (const auto* table : all_command_tables())
        for (const auto& c : *table)
            rows.push_back({std::string("  ") + c.object + " " + c.verb, c.args, c.help});
    print_table(out, rows);
    po::options_description g("global options");
    global_options(g);
    out << "\n"
        << g << "\nexit status: 0 done, 1 failed, 2 usage, 3 stopped, 4 not found,\n"
        << "5 conflict, 6 busy, 7 server did not start or stop (docs/cli.md)\n";
}

const CommandSpec& find_command(const std::string& object, const std::string& verb) {
    const CommandSpec* best = nullptr;
    size_t best_d = 99;
    for (const auto* table : all_command_tables())
        for (const auto& c : *table) {
            if (object == c.object && verb == c.verb) return c;
            size_t d = edit_distance(object + " " + verb, std::string(c.object) + " " + c.verb);
            if (d < best_d) best = &c, best_d = d;
        }
    std::string hint = "see pgforge --help";
    if (best && best_d <= 3)
        hint = std::string("did you mean 'pgforge ") + best->object + " " + best->verb + "'?";
    throw Error(Exit::usage, "unknown command '" + object + (verb.empty() ? "" : " " + verb) + "'",
                hint);
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
        print_help(inv.out);
        return vm.count("help") && vm["help"].as<bool>() ? 0 : static_cast<int>(Exit::usage);
    }
    const CommandSpec& cmd = find_command(words[0], words.size() > 1 ? words[1] : "");

    po::options_description own;
    cmd.options(own);
    po::options_description all_opts;
    all_opts.add(globals).add(own);
    all_opts.add_options()("args", po::value<std::vector<std::string>>());
    po::positional_options_description pos;
    pos.add("args", -1);
    try {
        po::store(po::command_line_parser(rest).options(all_opts).positional(pos).run(), inv.vm);
        po::notify(inv.vm);
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
    inv.json = inv.flag("json");
    inv.quiet = inv.flag("quiet");
    if (auto p = inv.opt<std::string>("prefix")) inv.overrides.prefix = *p;
    if (auto p = inv.opt<std::string>("run-dir")) inv.overrides.run_dir = *p;
    if (auto p = inv.opt<std::string>("settings")) inv.overrides.settings_file = *p;
    log::configure(log::parse_level(*inv.opt<std::string>("log-level")),
                   inv.opt<std::string>("log-file").value_or(""));
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
        err << "pgforge: " << e.what() << "\n";
        if (!e.hint().empty()) err << "  hint: " << e.hint() << "\n";
        return static_cast<int>(e.code());
    } catch (const po::error& e) {
        err << "pgforge: " << e.what() << "\n  hint: see pgforge --help\n";
        return static_cast<int>(Exit::usage);
    } catch (const std::exception& e) {
        inv.end_progress();
        err << "pgforge: " << e.what() << "\n";
        return static_cast<int>(Exit::failure);
    }
}

int main(int argc, char** argv) {
    std::vector<std::string> args(argv + 1, argv + argc);
    return run(args, std::cout, std::cerr);
}

}  // namespace pgforge::cli
