#include "engine/operations/plugin_commands.hpp"

#include <algorithm>
#include <nlohmann/json.hpp>
#include <sstream>

#include "engine/core/error.hpp"
#include "engine/core/input.hpp"
#include "engine/core/interrupt.hpp"
#include "engine/inventory/inventory.hpp"
#include "engine/operations/instances.hpp"
#include "engine/pipeline/plugin_calls.hpp"
#include "engine/pipeline/plugin_host.hpp"

using json = nlohmann::ordered_json;

namespace pgforge::plugin_commands {

std::optional<Found> find(Context& ctx, const std::string& family, const std::string& verb) {
    if (!ctx.plugins_wanted()) return std::nullopt;
    for (LoadedPlugin* p : ctx.plugins().loaded())
        for (const auto& c : p->commands())
            if (c.family == family && c.verb == verb) return Found{p, c};
    for (const auto& r : ctx.plugins().records())
        if (r.enabled && !r.loaded && r.manifest.families.count(family))
            throw Error(Exit::failure,
                        "pgforge " + family + " belongs to plugin " + r.manifest.name +
                            (r.skipped ? ", skipped (--skip-plugin)"
                                       : ", which is enabled but broken: " + r.error),
                        "fix the plugin: pgforge plugin show " + r.manifest.name);
    return std::nullopt;
}

std::vector<std::string> names(Context& ctx) {
    std::vector<std::string> out;
    if (!ctx.plugins_wanted()) return out;
    for (LoadedPlugin* p : ctx.plugins().loaded())
        for (const auto& c : p->commands()) out.push_back(c.family + " " + c.verb);
    return out;
}

namespace {

int run_on_all(Context& ctx, const Found& f, const std::vector<std::string>& args, bool as_json,
               std::ostream& out, std::ostream& err) {
    int worst = 0;
    json results = json::object();
    for (Instance& i : ctx.inventory().list()) {
        const std::string name = i.qualified_name();
        std::ostringstream captured;
        if (!as_json) out << "== " << name << " ==\n" << std::flush;
        int rc = 0;
        std::string failure;
        try {
            auto held = instances::lock(ctx, i);
            rc = run_plugin_command(ctx, *f.plugin, f.command, &i, args, as_json,
                                    as_json ? captured : out, err);
        } catch (const Error& e) {
            if (interrupted()) throw;  // a signal ends the whole command
            rc = static_cast<int>(e.code());
            failure = e.what();
            err << "pgforge: " << name << ": " << escape_control(failure) << "\n";
        }
        worst = std::max(worst, rc);
        if (as_json) {
            auto parsed = json::parse(captured.str(), nullptr, false);
            json entry = parsed.is_discarded() ? json(captured.str()) : parsed;
            if (!failure.empty()) entry = {{"error", failure}, {"exit", rc}};
            results[name] = entry;
        }
    }
    if (as_json) out << results.dump(2) << "\n";
    return worst;
}

}  // namespace

int run(Context& ctx, const Found& f, const std::string& instance_ref, bool all,
        const std::vector<std::string>& args, bool json, std::ostream& out, std::ostream& err) {
    const sdk::Command& c = f.command;
    if (!c.needs_instance)
        return run_plugin_command(ctx, *f.plugin, c, nullptr, args, json, out, err);
    if (all && instance_ref.empty()) return run_on_all(ctx, f, args, json, out, err);
    if (instance_ref.empty())
        throw Error(Exit::usage, "pgforge " + c.family + " " + c.verb + " needs -i NAME",
                    "name the instance: pgforge " + c.family + " " + c.verb + " -i main");
    Instance i = instances::get(ctx, instance_ref);
    auto held = instances::lock(ctx, i);
    return run_plugin_command(ctx, *f.plugin, c, &i, args, json, out, err);
}

}  // namespace pgforge::plugin_commands
