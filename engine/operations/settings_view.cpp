#include "engine/operations/settings_view.hpp"

#include <algorithm>
#include <map>
#include <set>

#include "engine/conf/parameters.hpp"
#include "engine/conf/pgconf.hpp"
#include "engine/core/error.hpp"
#include "engine/core/log.hpp"
#include "engine/core/process.hpp"
#include "engine/core/text.hpp"
#include "engine/pg/connection.hpp"

namespace fs = std::filesystem;

namespace pgforge::settings_view {
namespace {

Error unknown_parameter(const std::string& name, const std::vector<std::string>& known) {
    std::string best;
    size_t best_d = 4;
    for (const auto& k : known) {
        size_t d = edit_distance(to_lower(name), to_lower(k));
        if (d < best_d) best = k, best_d = d;
    }
    return Error(Exit::usage, "unknown configuration parameter '" + name + "'",
                 best.empty() ? "see them all with: pgforge instance settings NAME"
                              : "did you mean '" + best + "'?");
}

bool keep(const Setting& s, const Query& q) {
    if (q.changed && s.source == "default") return false;
    if (q.pending_restart && !s.pending_restart.value_or(false)) return false;
    return true;
}

View read_running(const Instance& i, const Query& q) {
    pg::Connection c(i);
    auto r = c.exec(
        "SELECT name, setting, unit, current_setting(name), source, sourcefile, "
        "sourceline::text, context, pending_restart::text FROM pg_settings ORDER BY name");
    View view;
    view.running = true;
    std::map<std::string, Setting> by_name;  // lowercase
    for (const auto& row : r.rows) {
        Setting s;
        s.name = row.at(0).value_or("");
        s.setting = row.at(1).value_or("");
        s.unit = row.at(2);
        s.value = row.at(3).value_or("");
        s.source = row.at(4).value_or("");
        s.file = row.at(5).value_or("");
        s.line = row.at(6) ? std::stoi(*row.at(6)) : 0;
        s.context = row.at(7).value_or("");
        s.pending_restart = row.at(8).value_or("false") == "true";
        by_name.emplace(to_lower(s.name), std::move(s));
    }
    if (q.names.empty()) {
        for (auto& [key, s] : by_name)
            if (keep(s, q)) view.settings.push_back(std::move(s));
        return view;
    }
    std::set<std::string> seen;
    for (const auto& name : q.names) {
        auto it = by_name.find(to_lower(name));
        if (it == by_name.end()) {
            std::vector<std::string> known;
            for (const auto& [key, s] : by_name) known.push_back(s.name);
            throw unknown_parameter(name, known);
        }
        if (seen.insert(it->first).second && keep(it->second, q))
            view.settings.push_back(it->second);
    }
    std::sort(view.settings.begin(), view.settings.end(),
              [](const Setting& a, const Setting& b) { return a.name < b.name; });
    return view;
}

// `postgres -C NAME` on the data directory, as its owner, from the data directory (where the
// server runs, so that relative paths read as its own).
std::string server_value(const Cluster& cluster, const std::string& name) {
    Command cmd;
    cmd.as = &cluster.owner;
    cmd.cwd = cluster.instance.data_dir;
    cmd.argv = {cluster.installation.program("postgres").string(), "-D",
                cluster.instance.data_dir.string(), "-C", name};
    cmd.env = {"PGDATA", "PGOPTIONS"};
    auto r = run_process(cmd);
    if (!r.ok()) {
        std::string err = r.err;
        // "2026-... FATAL:  message" -> "message"
        if (auto at = err.find("FATAL:  "); at != std::string::npos) err = err.substr(at + 8);
        while (!err.empty() && (err.back() == '\n' || err.back() == '\r')) err.pop_back();
        throw Error(Exit::failure,
                    "instance " + cluster.instance.qualified_name() +
                        ": the server cannot read its configuration: " + err,
                    "see the files with: pgforge conf show -i " + cluster.instance.name);
    }
    std::string value = r.out;
    while (!value.empty() && (value.back() == '\n' || value.back() == '\r')) value.pop_back();
    return value;
}

View read_stopped(Context& ctx, const Instance& i, const Query& q) {
    View view;
    view.note = "instance stopped: values from the files";
    if (q.pending_restart) return view;  // nothing waits on a server that does not run
    Cluster cluster = instances::cluster_for(ctx, i);
    auto tree =
        conf::ConfTree::load(i.data_dir / "postgresql.conf", i.data_dir / "postgresql.auto.conf");
    auto catalog = conf::ParameterCatalog::describe(cluster.installation, cluster.owner);
    auto files = tree.all();
    auto from_files = [&](Setting& s, const conf::EffectiveSetting& e) {
        s.file = e.file;
        s.line = e.line;
        s.source = "configuration file";
    };
    if (q.names.empty()) {
        // The server makes hba_file and ident_file absolute: the paths it would open.
        const conf::AuthFiles auth = conf::auth_file_paths(tree, i.data_dir);
        std::vector<std::string> names;
        for (const auto& [key, e] : files) names.push_back(key);
        catalog.ask(names);  // one run for the names --describe-config leaves out
        for (const auto& [key, e] : files) {
            Setting s;
            const conf::ParameterInfo* p = catalog.find(e.name);
            s.name = p ? p->name : e.name;
            s.setting = s.value = e.value;
            if (key == "hba_file") s.setting = auth.hba.string();
            if (key == "ident_file") s.setting = auth.ident.string();
            s.context = p ? p->context : "";
            from_files(s, e);
            view.settings.push_back(std::move(s));
        }
    } else {
        catalog.ask(q.names);
        std::set<std::string> seen;
        for (const auto& name : q.names) {
            const conf::ParameterInfo* p = catalog.find(name);
            if (!p && name.find('.') == std::string::npos) catalog.check_settable(name);  // throws
            if (!seen.insert(to_lower(name)).second) continue;
            Setting s;
            s.name = p ? p->name : name;
            s.context = p ? p->context : "";
            auto e = files.find(to_lower(name));
            if (e == files.end()) {
                // A custom parameter no file sets: the server does not know it either.
                if (!p)
                    throw Error(Exit::usage, "unknown configuration parameter '" + name + "'",
                                "no file sets it, and no library defines it before the start");
                s.source = "default";
                if (q.changed) continue;
                s.setting = s.value = server_value(cluster, s.name);
            } else {
                s.setting = server_value(cluster, s.name);
                s.value = e->second.value;
                from_files(s, e->second);
            }
            view.settings.push_back(std::move(s));
        }
    }
    std::sort(view.settings.begin(), view.settings.end(),
              [](const Setting& a, const Setting& b) { return a.name < b.name; });
    return view;
}

}  // namespace

View read(Context& ctx, const Instance& i, const Query& q) {
    if (instances::status(ctx, i).running) return read_running(i, q);
    return read_stopped(ctx, i, q);
}

std::optional<bool> pending_restart(Context& ctx, const Instance& i) {
    try {
        if (!instances::status(ctx, i).running) return std::nullopt;
        pg::Connection c(i);
        auto r = c.exec("SELECT count(*) FROM pg_settings WHERE pending_restart");
        return r.rows.at(0).at(0).value_or("0") != "0";
    } catch (const std::exception& e) {
        log::warn("instance " + i.qualified_name() +
                  ": cannot ask what waits for a restart: " + e.what());
        return std::nullopt;
    }
}

}  // namespace pgforge::settings_view
