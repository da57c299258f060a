// pgforge plugin list|show: what is on the plugin path, what is enabled and loaded, and why not.
#include <nlohmann/json.hpp>

#include "engine/cli/command.hpp"
#include "engine/pipeline/plugin_host.hpp"

using json = nlohmann::ordered_json;

namespace pgforge::cli {
namespace {

void no_options(po::options_description&) {}

// loaded; skipped (enabled, --skip-plugin); broken (enabled, not loaded: operations that run
// its hooks fail); error (not enabled, its manifest unreadable); disabled.
std::string state_of(const PluginRecord& r) {
    if (r.loaded) return "loaded";
    if (r.skipped) return "skipped";
    if (r.broken()) return "broken";
    if (!r.error.empty()) return "error";
    return "disabled";
}

json record_json(const PluginRecord& r, LoadedPlugin* loaded) {
    const auto& m = r.manifest;
    json hooks = json::object();
    for (const auto& [point, priority] : m.priorities) hooks[sdk::to_string(point)] = priority;
    json order = json::object();
    for (const auto& [point, o] : m.order)
        order[sdk::to_string(point)] = {{"after", o.after}, {"before", o.before}};
    json families = json::object();
    for (const auto& [family, summary] : m.families) families[family] = summary;
    json options = json::array();
    for (const auto& o : m.options)
        options.push_back({{"key", o.key},
                           {"type", o.type},
                           {"default", o.default_value ? json(*o.default_value) : json()},
                           {"description", o.description}});
    json j = {{"name", m.name},
              {"version", loaded ? loaded->version() : m.version},
              {"sdk", std::to_string(m.sdk_major) + "." + std::to_string(m.sdk_minor)},
              {"summary", m.summary},
              {"enabled", r.enabled},
              {"loaded", r.loaded},
              {"state", state_of(r)},
              {"manifest", m.file.string()},
              {"library", m.library.string()},
              {"hooks", hooks},
              {"order", order},
              {"commands", families},
              {"options", options},
              {"error", r.error}};
    if (loaded) {
        json cmds = json::array();
        for (const auto& c : loaded->commands())
            cmds.push_back({{"command", c.family + " " + c.verb}, {"summary", c.summary}});
        j["command_list"] = cmds;
    }
    return j;
}

int plugin_list(Invocation& inv) {
    auto& host = inv.ctx().plugins();
    if (inv.json) {
        json arr = json::array();
        for (const auto& r : host.records())
            arr.push_back(record_json(r, host.find(r.manifest.name)));
        inv.out << arr.dump(2) << "\n";
        return 0;
    }
    std::vector<std::vector<std::string>> rows = {{"NAME", "VERSION", "SDK", "STATE", "HOOKS"}};
    for (const auto& r : host.records()) {
        std::string hooks;
        for (const auto& [point, priority] : r.manifest.priorities)
            hooks += (hooks.empty() ? "" : ",") + std::string(sdk::to_string(point)) + ":" +
                     std::to_string(priority);
        LoadedPlugin* p = host.find(r.manifest.name);
        rows.push_back(
            {r.manifest.name, p ? p->version() : r.manifest.version,
             std::to_string(r.manifest.sdk_major) + "." + std::to_string(r.manifest.sdk_minor),
             state_of(r), hooks});
    }
    print_table(inv.out, rows);
    for (const auto& r : host.records())
        if (!r.error.empty()) inv.err << r.manifest.name << ": " << r.error << "\n";
    if (host.records().empty()) inv.err << "no plugins found; the search path is:\n";
    if (host.records().empty())
        for (const auto& d : inv.ctx().settings().plugin_search_path())
            inv.err << "  " << d.string() << "\n";
    return 0;
}

int plugin_show(Invocation& inv) {
    std::string name = inv.arg(0, "plugin name");
    auto& host = inv.ctx().plugins();
    const PluginRecord* r = host.record(name);
    if (!r)
        throw Error(Exit::not_found, "plugin " + name + " is not installed",
                    "see pgforge plugin list");
    json j = record_json(*r, host.find(name));
    if (inv.json) {
        inv.out << j.dump(2) << "\n";
        return 0;
    }
    std::vector<std::vector<std::string>> rows = {
        {"name:", r->manifest.name},
        {"version:", j["version"].get<std::string>()},
        {"sdk:", j["sdk"].get<std::string>()},
        {"summary:", r->manifest.summary},
        {"state:", state_of(*r)},
        {"manifest:", r->manifest.file.string()},
        {"library:", r->manifest.library.string()},
    };
    for (const auto& [point, priority] : r->manifest.priorities) {
        std::string order;
        if (auto o = r->manifest.order.find(point); o != r->manifest.order.end()) {
            for (const auto& n : o->second.after) order += ", after " + n;
            for (const auto& n : o->second.before) order += ", before " + n;
        }
        rows.push_back({"hook:", std::string(sdk::to_string(point)) + " (priority " +
                                     std::to_string(priority) + order + ")"});
    }
    if (j.contains("command_list"))
        for (const auto& c : j["command_list"])
            rows.push_back({"command:", "pgforge " + c["command"].get<std::string>() + "  " +
                                            c["summary"].get<std::string>()});
    for (const auto& o : r->manifest.options)
        rows.push_back({"option:", name + "." + o.key + " (" + o.type +
                                       (o.default_value ? ", default " + *o.default_value : "") +
                                       ")" + (o.description.empty() ? "" : "  " + o.description)});
    auto section = inv.ctx().settings().sections.find(name);
    if (section != inv.ctx().settings().sections.end())
        for (const auto& [k, v] : section->second)
            rows.push_back({"setting:", "[" + name + "] " + k + " = " + v});
    if (!r->error.empty()) rows.push_back({"error:", r->error});
    print_table(inv.out, rows);
    return 0;
}

const std::vector<CommandSpec> kPluginCommands = {
    {"plugin", "list", "", "plugins found, enabled, loaded, their hooks and errors", no_options,
     plugin_list},
    {"plugin", "show", "NAME", "one plugin: manifest, hooks, commands, settings", no_options,
     plugin_show},
};

}  // namespace

const std::vector<CommandSpec>& plugin_commands() {
    return kPluginCommands;
}

}  // namespace pgforge::cli
