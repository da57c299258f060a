// instance promote and instance rebuild: a standby made a primary, and an old primary made a
// standby of the one promoted in its place.
#include <nlohmann/json.hpp>

#include "engine/cli/command.hpp"
#include "engine/core/input.hpp"
#include "engine/operations/promote.hpp"

using json = nlohmann::ordered_json;

namespace pgforge::cli {
namespace {

void timeout_options(po::options_description& d) {
    d.add_options()("timeout", po::value<double>(), "seconds to wait (default from settings)");
}

void rebuild_options(po::options_description& d) {
    timeout_options(d);
    d.add_options()("from", po::value<std::string>(),
                    "the running primary to follow (the instance promoted in its place)");
}

std::optional<double> timeout_value(Invocation& inv) {
    auto timeout = inv.opt<double>("timeout");
    if (timeout) check_timeout(*timeout, "--timeout");
    return timeout;
}

int instance_promote(Invocation& inv) {
    Instance i = instances::get(inv.ctx(), inv.arg(0, "instance name"));
    auto out = promote::promote(inv.ctx(), i, timeout_value(inv));
    inv.end_progress();
    const std::string q = out.promoted.qualified_name();
    if (inv.json) {
        json j = {{"instance", q},
                  {"role", out.promoted.role},
                  {"changed", true},
                  {"already_promoted", out.already_promoted},
                  {"timeline", out.timeline.empty() ? json(nullptr) : json(out.timeline)},
                  {"diverged", out.diverged ? json(out.diverged->qualified_name()) : json(nullptr)},
                  {"diverged_running", out.diverged_running}};
        if (!out.diverged_error.empty()) j["diverged_error"] = out.diverged_error;
        inv.out << j.dump(2) << "\n";
        return 0;
    }
    if (inv.quiet) return 0;
    inv.out << "instance " << q
            << (out.already_promoted ? " had already left recovery: it is recorded as a primary"
                                     : " promoted: it is a primary")
            << (out.timeline.empty() ? "" : " (timeline " + out.timeline + ")") << "\n";
    if (out.diverged) {
        const std::string d = out.diverged->qualified_name();
        inv.out << "instance " << d << " is diverged from it";
        if (out.diverged_running)
            inv.out << " and still runs: writes made there are lost when it is rebuilt";
        inv.out << "\n  make it a standby of " << q << ": pgforge instance rebuild " << d
                << " --from " << q << "\n";
    } else if (!out.diverged_error.empty()) {
        inv.out << "its old primary could not be marked diverged: " << out.diverged_error << "\n";
    }
    return 0;
}

int instance_rebuild(Invocation& inv) {
    Instance i = instances::get(inv.ctx(), inv.arg(0, "instance name"));
    auto from = inv.opt<std::string>("from");
    if (!from)
        throw Error(Exit::usage, "instance rebuild needs --from PRIMARY",
                    "name the running primary it should follow: pgforge instance rebuild " +
                        i.qualified_name() + " --from NAME");
    auto out = promote::rebuild(inv.ctx(), i, *from, timeout_value(inv));
    inv.end_progress();
    const std::string q = out.rebuilt.qualified_name();
    if (inv.json) {
        inv.out << json{{"instance", q},
                        {"role", out.rebuilt.role},
                        {"upstream", out.rebuilt.upstream},
                        {"slot", out.rebuilt.slot.empty() ? json(nullptr) : json(out.rebuilt.slot)},
                        {"method", out.method},
                        {"rewind_refused",
                         out.rewind_refused.empty() ? json(nullptr) : json(out.rewind_refused)},
                        {"changed", true}}
                       .dump(2)
                << "\n";
        return 0;
    }
    if (inv.quiet) return 0;
    if (!out.rewind_refused.empty())
        inv.out << "pg_rewind could not be used (" << out.rewind_refused
                << "): a fresh base backup was taken\n";
    inv.out << "instance " << q << " rebuilt with " << out.method << ": a standby of "
            << out.rebuilt.upstream << ", streaming"
            << (out.rebuilt.slot.empty() ? "" : " (slot " + out.rebuilt.slot + ")") << "\n";
    return 0;
}

const std::vector<CommandSpec> kReplicationCommands = {
    {"instance", "promote", "NAME",
     "make a standby a primary (pg_promote) and wait until it accepts writes; its old primary, "
     "when managed here, is recorded as diverged",
     timeout_options, instance_promote},
    {"instance", "rebuild", "NAME --from PRIMARY",
     "make a diverged instance a standby of PRIMARY: pg_rewind when it can, else a fresh base "
     "backup",
     rebuild_options, instance_rebuild},
};

}  // namespace

const std::vector<CommandSpec>& replication_commands() {
    return kReplicationCommands;
}

}  // namespace pgforge::cli
