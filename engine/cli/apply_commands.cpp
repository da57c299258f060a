// instance apply: a thin layer over engine/operations/apply (docs/apply.md).
#include <nlohmann/json.hpp>

#include "engine/cli/command.hpp"
#include "engine/core/input.hpp"
#include "engine/operations/apply.hpp"

namespace pgforge::cli {
namespace {

using json = nlohmann::ordered_json;
namespace inst = instances;

void apply_options(po::options_description& d) {
    // clang-format off
    d.add_options()
        ("file,f", po::value<std::string>(), "the manifest (YAML or JSON; - reads standard input)")
        ("check", po::bool_switch(), "say what would change; change nothing")
        ("diff", po::bool_switch(), "show the unified diff of each file and the SQL of each database object");
    // clang-format on
}

json text_or_null(const std::optional<std::string>& v) {
    return v ? json(*v) : json(nullptr);
}

json applied_json(const inst::Applied& a, bool with_diff) {
    json changes = json::array();
    for (const auto& c : a.changes)
        changes.push_back({{"field", c.field},
                           {"before", text_or_null(c.before)},
                           {"after", text_or_null(c.after)}});
    json j = {{"object", "instance"},
              {"name", a.name},
              {"result", pgforge::to_string(a.result)},
              {"changes", changes},
              {"pending_restart", a.pending_restart},
              {"restarted", a.restarted}};
    if (with_diff) {
        json diffs = json::array();
        for (const auto& d : a.diffs)
            diffs.push_back({{"file", d.file.string()}, {"diff", d.diff}});
        j["diff"] = diffs;
    }
    json roles = json::array();
    for (const auto& r : a.roles)
        roles.push_back({{"name", r.name},
                         {"result", std::string(roles::to_string(r.result))},
                         {"statements", r.statements}});
    for (const auto& name : a.pending_roles)
        roles.push_back({{"name", name}, {"result", "pending"}, {"statements", json::array()}});
    json dbs = json::array();
    for (const auto& d : a.databases)
        dbs.push_back({{"name", d.name},
                       {"result", databases::to_string(d.result)},
                       {"statements", d.statements}});
    for (const auto& name : a.pending_databases)
        dbs.push_back({{"name", name}, {"result", "pending"}, {"statements", json::array()}});
    j["roles"] = roles;
    j["databases"] = dbs;
    return j;
}

bool changed(const inst::Applied& a) {
    return a.result != inst::ApplyResult::unchanged;
}

void print_text(std::ostream& out, const inst::Applied& a, bool check, bool with_diff) {
    auto shown = [](const std::optional<std::string>& v) {
        return v ? (v->empty() ? std::string("''") : escape_control(*v)) : std::string("(none)");
    };
    out << "instance " << escape_control(a.name) << ": " << pgforge::to_string(a.result)
        << (check && changed(a) ? " (check: nothing was changed)" : "") << "\n";
    for (const auto& c : a.changes) {
        if (c.field == "hba" || c.field == "ident")
            out << "  " << c.field << ": "
                << (c.after ? "+ " + shown(c.after) : "- " + shown(c.before)) << "\n";
        else
            out << "  " << escape_control(c.field) << ": " << shown(c.before) << " -> "
                << shown(c.after) << "\n";
    }
    if (a.pending_restart) out << "  a restart is needed for a change to take effect\n";
    for (const auto& r : a.roles)
        if (r.result != roles::Result::unchanged)
            out << "  role " << escape_control(r.name) << ": " << roles::to_string(r.result)
                << "\n";
    for (const auto& d : a.databases)
        if (d.result != databases::Result::unchanged)
            out << "  database " << escape_control(d.name) << ": " << databases::to_string(d.result)
                << "\n";
    for (const auto& name : a.pending_roles)
        out << "  role " << escape_control(name) << ": compared once the server runs\n";
    for (const auto& name : a.pending_databases)
        out << "  database " << escape_control(name) << ": compared once the server runs\n";
    if (!with_diff) return;
    for (const auto& d : a.diffs) out << escape_control(d.diff);
    for (const auto& r : a.roles)
        for (const auto& s : r.statements) out << escape_control(s) << ";\n";
    for (const auto& d : a.databases)
        for (const auto& s : d.statements) out << escape_control(s) << ";\n";
}

int instance_apply(Invocation& inv) {
    auto file = inv.opt<std::string>("file");
    if (!file)
        throw Error(Exit::usage, "apply needs a manifest",
                    "give -f FILE (YAML or JSON), or -f - to read standard input");
    // Read and checked whole before anything is done.
    auto manifests = inst::read_manifests(*file, inst::plugin_sections(inv.ctx()));
    inst::ApplyOptions o;
    o.check = inv.flag("check");
    o.diff = inv.flag("diff");
    std::vector<inst::Applied> results;
    for (const auto& m : manifests) {
        results.push_back(inst::apply(inv.ctx(), m, o));
        inv.end_progress();
    }
    bool any = false;
    for (const auto& a : results) any = any || changed(a);
    if (inv.json) {
        json arr = json::array();
        for (const auto& a : results) arr.push_back(applied_json(a, o.diff));
        inv.out << json{{"changed", any}, {"check", o.check}, {"results", arr}}.dump(
                       2, ' ', false, json::error_handler_t::replace)
                << "\n";
    } else if (!inv.quiet) {
        for (const auto& a : results) print_text(inv.out, a, o.check, o.diff);
    }
    return 0;
}

const std::vector<CommandSpec> kApplyCommands = {
    {"instance", "apply", "-f FILE",
     "make instances what a YAML/JSON manifest says: created, changed, dropped, unchanged",
     apply_options, instance_apply},
};

}  // namespace

const std::vector<CommandSpec>& apply_commands() {
    return kApplyCommands;
}

}  // namespace pgforge::cli
