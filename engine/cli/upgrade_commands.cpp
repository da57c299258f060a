// instance upgrade: a new instance made from an old one with pg_upgrade (docs/upgrade.md); the
// work is the library's (engine/operations/upgrade.hpp), this prints its report.
#include <nlohmann/json.hpp>

#include "engine/cli/command.hpp"
#include "engine/core/input.hpp"
#include "engine/operations/upgrade.hpp"

using json = nlohmann::ordered_json;

namespace pgforge::cli {
namespace {

void upgrade_options(po::options_description& d) {
    // clang-format off
    d.add_options()
        ("version", po::value<std::string>(), "the new PostgreSQL major version (default: the newest installed)")
        ("name", po::value<std::string>(), "the new instance's name (default: the old one's; needed when the version stays)")
        ("method", po::value<std::string>()->default_value("copy"), "how pg_upgrade moves the data files: link, clone or copy")
        ("jobs,j", po::value<int>()->default_value(1), "pg_upgrade's parallel jobs")
        ("check", po::bool_switch(), "only run pg_upgrade --check; nothing is left behind")
        ("drop-old", po::bool_switch(), "drop the old instance once the new one runs")
        ("no-analyze", po::bool_switch(), "do not run vacuumdb --all --analyze-in-stages: print it");
    // clang-format on
}

int instance_upgrade(Invocation& inv) {
    Instance old = instances::get(inv.ctx(), inv.arg(0, "instance name"));
    instances::UpgradeOptions o;
    o.version = inv.opt<std::string>("version").value_or("");
    o.name = inv.opt<std::string>("name").value_or("");
    o.method = instances::parse_upgrade_method(*inv.opt<std::string>("method"));
    o.jobs = *inv.opt<int>("jobs");
    o.check_only = inv.flag("check");
    o.drop_old = inv.flag("drop-old");
    o.analyze = !inv.flag("no-analyze");
    if (o.check_only && o.drop_old)
        throw Error(Exit::usage, "--check and --drop-old exclude each other",
                    "check first, then upgrade with --drop-old");
    auto result = instances::upgrade(inv.ctx(), old, o);
    inv.end_progress();
    const auto& r = result.report;
    if (inv.json) {
        json j = {{"instance", instance_json(result.instance)},
                  {"report",
                   {{"old_instance", r.old_instance},
                    {"new_instance", r.new_instance},
                    {"old_version", r.old_version},
                    {"new_version", r.new_version},
                    {"method", r.method},
                    {"check_only", r.check_only},
                    {"old_was_running", r.old_was_running},
                    {"port", r.port},
                    {"old_port", r.old_port},
                    {"old_startable", r.old_startable},
                    {"old_dropped", r.old_dropped},
                    {"analyzed", r.analyzed},
                    {"analyze_command", r.analyze_command},
                    {"notes", r.notes}}},
                  {"changed", !r.check_only}};
        inv.out << j.dump(2) << "\n";
        return 0;
    }
    if (inv.quiet) return 0;
    for (const auto& n : r.notes) inv.out << "note: " << escape_control(n) << "\n";
    if (r.check_only) {
        inv.out << "instance " << r.old_instance << " can be upgraded to " << r.new_instance
                << " (pg_upgrade --check passed; nothing was kept)\n";
        return 0;
    }
    inv.out << "instance " << r.old_instance << " upgraded to " << r.new_instance
            << " (pg_upgrade --" << r.method << ")\n"
            << "  " << r.new_instance << " runs on port " << r.port;
    if (r.old_port != 0 && !r.old_dropped)
        inv.out << "; " << r.old_instance << " is stopped and moved to port " << r.old_port;
    inv.out << "\n";
    if (r.old_dropped)
        inv.out << "  " << r.old_instance << " was dropped\n";
    else if (!r.old_startable)
        inv.out << "  " << r.old_instance
                << " cannot start any more (its files were linked to the new instance); remove it: "
                   "pgforge instance drop "
                << r.old_instance << "\n";
    else
        inv.out << "  remove the old instance when done: pgforge instance drop " << r.old_instance
                << "\n";
    if (!r.analyzed)
        inv.out << "  rebuild the statistics (as " << result.instance.owner
                << "): " << escape_control(r.analyze_command) << "\n";
    return 0;
}

const std::vector<CommandSpec> kUpgradeCommands = {
    {"instance", "upgrade", "NAME",
     "a new instance made from NAME with pg_upgrade (its options, settings, HBA and ident records "
     "and plugin options), on NAME's port once NAME is stopped",
     upgrade_options, instance_upgrade},
};

}  // namespace

const std::vector<CommandSpec>& upgrade_commands() {
    return kUpgradeCommands;
}

}  // namespace pgforge::cli
