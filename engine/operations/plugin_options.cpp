#include "engine/operations/plugin_options.hpp"

#include "engine/core/error.hpp"
#include "engine/inventory/inventory.hpp"
#include "engine/operations/instances.hpp"
#include "engine/pipeline/plugin_host.hpp"

namespace pgforge::plugin_options {

namespace {

std::string keys_of(const PluginManifest& m) {
    std::string out;
    for (const ManifestOption& o : m.options)
        out += (out.empty() ? "" : ", ") + m.name + "." + o.key + " (" + o.type + ")";
    return out;
}

// The manifest of `plugin` when it is enabled and loaded; else Error(usage) about `field`.
const PluginManifest& loaded_manifest(Context& ctx, const std::string& plugin,
                                      const std::string& field) {
    PluginHost& host = ctx.plugins();
    if (LoadedPlugin* p = host.find(plugin)) return p->manifest();
    const std::string what = "plugin option " + field + ": ";
    const PluginRecord* r = host.record(plugin);
    if (!r)
        throw Error(Exit::usage, what + "no plugin " + plugin + " is installed",
                    "see the installed plugins with pgforge plugin list");
    if (!r->enabled)
        throw Error(Exit::usage, what + "plugin " + plugin + " is not enabled",
                    "enable it in the settings file ([plugins] enabled = " + plugin + ")");
    if (r->skipped)
        throw Error(Exit::usage, what + "plugin " + plugin + " is skipped (--skip-plugin)",
                    "run without --skip-plugin " + plugin + " to set its options");
    throw Error(Exit::usage, what + "plugin " + plugin + " is broken: " + r->error,
                "fix the plugin (pgforge plugin show " + plugin + ")");
}

// `wanted` with each value as it is stored (check_option_value's normalized form).
Wanted normalized(Context& ctx, const Wanted& wanted) {
    Wanted out;
    for (const auto& [plugin, keys] : wanted) {
        for (const auto& [key, value] : keys) {
            const std::string field = plugin + "." + key;
            if (!value) {
                out[plugin][key] = std::nullopt;
                continue;
            }
            const PluginManifest& m = loaded_manifest(ctx, plugin, field);
            const ManifestOption* o = m.option(key);
            if (!o)
                throw Error(
                    Exit::usage,
                    "plugin option " + field + ": plugin " + plugin + " declares no option " + key,
                    m.options.empty() ? "plugin " + plugin + " declares no options"
                                      : "its options are " + keys_of(m));
            std::string stored;
            if (auto why = check_option_value(o->type, *value, stored); !why.empty())
                throw Error(Exit::usage, "plugin option " + field + ": " + why,
                            "give " + field + (o->type == "integer" ? " an " : " a ") + o->type +
                                " value" +
                                (o->description.empty() ? "" : " (" + o->description + ")") +
                                ", or null to remove it");
            out[plugin][key] = stored;
        }
    }
    return out;
}

std::string quoted(const std::optional<std::string>& v) {
    return v ? "'" + *v + "'" : std::string("(unset)");
}

}  // namespace

std::vector<DeclaredOption> declared(Context& ctx) {
    std::vector<DeclaredOption> out;
    for (LoadedPlugin* p : ctx.plugins().loaded())
        for (const ManifestOption& o : p->manifest().options)
            out.push_back({p->name(), o.key, o.type, o.description, o.default_value});
    return out;
}

Values values(Context& ctx, const Instance& instance) {
    return ctx.inventory().plugin_options(instance);
}

void check(Context& ctx, const Wanted& wanted) {
    normalized(ctx, wanted);
}

Wanted wanted_from(const Values& values) {
    Wanted out;
    for (const auto& [plugin, keys] : values)
        for (const auto& [key, value] : keys) out[plugin][key] = value;
    return out;
}

std::vector<OptionChange> plan(Context& ctx, const Instance& instance, const Wanted& wanted) {
    Wanted want = normalized(ctx, wanted);
    Values have = values(ctx, instance);
    std::vector<OptionChange> out;
    for (const auto& [plugin, keys] : want)
        for (const auto& [key, after] : keys) {
            std::optional<std::string> before;
            if (auto p = have.find(plugin); p != have.end())
                if (auto k = p->second.find(key); k != p->second.end()) before = k->second;
            if (before != after) out.push_back({plugin + "." + key, before, after});
        }
    return out;
}

std::vector<OptionChange> store(Context& ctx, const Instance& instance, const Wanted& wanted) {
    check(ctx, wanted);
    auto held = instances::lock(ctx, instance);
    // Read again under the lock.
    std::vector<OptionChange> changes = plan(ctx, instance, wanted);
    if (changes.empty()) return changes;
    Inventory& inv = ctx.inventory();
    Inventory::PluginOptionChanges writes;
    std::vector<JournalStep> steps;
    for (const OptionChange& c : changes) {
        auto dot = c.field.find('.');
        writes[c.field.substr(0, dot)][c.field.substr(dot + 1)] = c.after;
        steps.push_back({"step", "option " + c.field, utc_timestamp(), 0, "ok",
                         quoted(c.before) + " -> " + quoted(c.after)});
    }
    std::int64_t id = inv.begin_operation("options", instance.qualified_name());
    try {
        inv.set_plugin_options(instance, writes, id, steps);
    } catch (const std::exception& e) {
        inv.end_operation(id, false, e.what());
        throw;
    }
    return changes;
}

void store_new(Context& ctx, const Instance& instance, const Values& values) {
    if (values.empty()) return;
    Wanted want = normalized(ctx, wanted_from(values));
    ctx.inventory().set_plugin_options(instance, want);
}

void parse_assignment(const std::string& text, Values& values) {
    auto eq = text.find('=');
    auto dot = text.find('.');
    if (eq == std::string::npos || dot == std::string::npos || dot > eq || dot == 0 ||
        dot + 1 == eq)
        throw Error(Exit::usage, "--option '" + text + "' is not PLUGIN.KEY=VALUE",
                    "for example --option backup.stanza=prod (pgforge plugin show PLUGIN lists "
                    "its options)");
    values[text.substr(0, dot)][text.substr(dot + 1, eq - dot - 1)] = text.substr(eq + 1);
}

}  // namespace pgforge::plugin_options
