#include "engine/operations/apply.hpp"

#include <nlohmann/json.hpp>

#include "engine/conf/parameters.hpp"
#include "engine/core/error.hpp"
#include "engine/core/process.hpp"
#include "engine/driver/installations.hpp"
#include "engine/inventory/inventory.hpp"
#include "engine/operations/plugin_options.hpp"
#include "engine/pg/connection.hpp"
#include "engine/pipeline/pipeline.hpp"

namespace fs = std::filesystem;

namespace pgforge::instances {

namespace {

// The instance the manifest names, when it exists: VERSION/NAME when the manifest gives the
// version, else NAME (ambiguous between versions: an error saying so).
std::optional<Instance> find(Context& ctx, const Manifest& m) {
    std::error_code ec;
    if (!fs::exists(ctx.settings().inventory_file(), ec)) return std::nullopt;
    std::string ref = m.version ? *m.version + "/" + m.name : m.name;
    try {
        return get(ctx, ref);
    } catch (const Error& e) {
        if (e.code() == Exit::not_found) return std::nullopt;
        throw;
    }
}

// The record through which pgforge itself connects (peer, mapped by the pgforge ident map):
// `exact` keeps it first, so that a manifest cannot lock pgforge out of the instance it manages.
conf::HbaRecord own_record(const std::string& superuser, const std::string& auth_local) {
    std::vector<std::string> fields = {"local", "all", superuser, auth_local};
    if (auth_local == "peer" || auth_local == "ident") fields.push_back("map=pgforge");
    return conf::HbaRecord::parse_fields(fields);
}

// pg_hba.conf made to hold the manifest's records; each record added or removed is a change.
void edit_hba(conf::HbaFile& f, std::vector<conf::HbaRecord> wanted, ListMode mode,
              const conf::HbaRecord& own, std::vector<FieldChange>& changes) {
    auto records = f.records();
    if (mode == ListMode::exact) {
        bool listed = false;
        for (const auto& w : wanted) listed = listed || w.same_as(own);
        if (!listed) wanted.insert(wanted.begin(), own);
        bool same = records.size() == wanted.size();
        for (size_t k = 0; same && k < wanted.size(); ++k) same = records[k].same_as(wanted[k]);
        if (same) return;
        for (const auto& r : records) changes.push_back({"hba", r.to_line(), std::nullopt});
        while (f.size() > 0) f.remove_at(f.size() - 1);
        for (const auto& w : wanted) {
            f.append(w);
            changes.push_back({"hba", std::nullopt, w.to_line()});
        }
        return;
    }
    for (const auto& w : wanted) {
        bool there = false;
        for (const auto& r : f.records()) there = there || r.same_as(w);
        if (there) continue;
        f.append(w);
        changes.push_back({"hba", std::nullopt, w.to_line()});
    }
}

bool same_entry(const conf::IdentEntry& a, const conf::IdentEntry& b) {
    return a.map == b.map && a.system_user == b.system_user && a.pg_user == b.pg_user;
}

void edit_ident(conf::IdentFile& f, const std::vector<conf::IdentEntry>& wanted, ListMode mode,
                std::vector<FieldChange>& changes) {
    if (mode == ListMode::exact) {
        auto entries = f.entries();
        bool same = entries.size() == wanted.size();
        for (size_t k = 0; same && k < wanted.size(); ++k) same = same_entry(entries[k], wanted[k]);
        if (same) return;
        for (const auto& e : entries) {
            f.remove(e.map, e.system_user, e.pg_user);
            changes.push_back({"ident", e.to_line(), std::nullopt});
        }
    }
    for (const auto& w : wanted)
        if (f.add(w)) changes.push_back({"ident", std::nullopt, w.to_line()});
}

std::string auth_local_of(const Instance& i) {
    auto o = nlohmann::json::parse(i.options.empty() ? "{}" : i.options, nullptr, false);
    if (o.is_object() && o.contains("auth_local") && o["auth_local"].is_string())
        return o["auth_local"].get<std::string>();
    return "peer";
}

// Creation options cannot change: a manifest value that differs from the instance's is refused.
void check_creation_options(const Instance& i, const Manifest& m) {
    nlohmann::json o = nlohmann::json::parse(i.options.empty() ? "{}" : i.options, nullptr, false);
    if (o.is_discarded() || !o.is_object()) o = nlohmann::json::object();
    auto text = [&](const char* key) {
        return o.contains(key) && o[key].is_string() ? o[key].get<std::string>() : std::string();
    };
    auto refuse = [&](const std::string& field, const std::string& has, const std::string& says,
                      const std::string& hint) {
        throw Error(Exit::usage,
                    "instance " + i.qualified_name() + ": " + field + " is " + has +
                        ", the manifest says " + says + ": creation options cannot change",
                    hint);
    };
    const std::string hint = "remove `FIELD` from the manifest (or make a new instance with it)";
    auto hint_for = [&](const std::string& field) {
        std::string h = hint;
        h.replace(h.find("FIELD"), 5, field);
        return h;
    };
    auto compare = [&](const char* field, const std::optional<std::string>& wanted,
                       const std::string& has) {
        if (wanted && !has.empty() && *wanted != has) refuse(field, has, *wanted, hint_for(field));
    };
    compare("encoding", m.encoding, text("encoding"));
    compare("locale", m.locale, text("locale"));
    compare("auth_local", m.auth_local, text("auth_local"));
    compare("auth_host", m.auth_host, text("auth_host"));
    compare("superuser", m.superuser, i.superuser);
    compare("owner", m.owner, i.owner);
    if (m.data_checksums && o.contains("data_checksums") && o["data_checksums"].is_boolean() &&
        o["data_checksums"].get<bool>() != *m.data_checksums)
        refuse("data_checksums", o["data_checksums"].get<bool>() ? "true" : "false",
               *m.data_checksums ? "true" : "false",
               "turn them " + std::string(*m.data_checksums ? "on" : "off") +
                   " with: pgforge instance checksums " + i.qualified_name() +
                   (*m.data_checksums ? " enable" : " disable"));
    if (m.waldir) {
        fs::path has = i.wal_dir.empty() ? i.data_dir / "pg_wal" : i.wal_dir;
        if (fs::absolute(*m.waldir).lexically_normal() != has)
            refuse("waldir", has.string(), m.waldir->string(), hint_for("waldir"));
    }
}

// Roles and databases, as `role apply` and `database apply` do them, in a check without running
// a statement.
void apply_sql_objects(Context& ctx, const Instance& i, const Manifest& m, bool check,
                       pg::Connection* session, Applied& out) {
    if (!m.roles.empty()) {
        if (check)
            out.roles = roles::apply(ctx, i, m.roles, {.check = true, .connection = session});
        else
            journal_change(ctx, i, "role apply", [&] {
                out.roles = roles::apply(ctx, i, m.roles, {.connection = session});
                std::vector<std::string> all;
                for (const auto& r : out.roles)
                    all.insert(all.end(), r.statements.begin(), r.statements.end());
                return all;
            });
    }
    if (!m.databases.empty()) {
        if (check)
            out.databases =
                databases::apply(ctx, i, m.databases, {.check = true, .connection = session});
        else
            journal_change(ctx, i, "database apply", [&] {
                out.databases = databases::apply(ctx, i, m.databases, {.connection = session});
                std::vector<std::string> all;
                for (const auto& d : out.databases)
                    all.insert(all.end(), d.statements.begin(), d.statements.end());
                return all;
            });
    }
}

bool any_sql_change(const Applied& a) {
    for (const auto& r : a.roles)
        if (r.result != roles::Result::unchanged) return true;
    for (const auto& d : a.databases)
        if (d.result != databases::Result::unchanged) return true;
    return !a.pending_roles.empty() || !a.pending_databases.empty();
}

void pending_sql_objects(const Manifest& m, Applied& out) {
    for (const auto& r : m.roles) out.pending_roles.push_back(r.name);
    for (const auto& d : m.databases) out.pending_databases.push_back(d.name);
}

Applied create_from(Context& ctx, const Manifest& m, const ApplyOptions& o) {
    CreateOptions c;
    c.name = m.name;
    c.version = m.version.value_or("");
    c.port = m.port.value_or(0);
    c.owner = m.owner.value_or("");
    if (m.encoding) c.encoding = *m.encoding;
    c.locale = m.locale.value_or("");
    c.data_checksums = m.data_checksums.value_or(false);
    c.auth_local = m.auth_local.value_or("");
    c.auth_host = m.auth_host.value_or("");
    c.superuser = m.superuser.value_or("");
    if (m.superuser_password_file) c.superuser_password_file = *m.superuser_password_file;
    if (m.waldir) c.waldir = *m.waldir;
    c.start = m.state == WantedState::started;
    Applied out;
    out.result = ApplyResult::created;
    out.changes.push_back({"state", to_string(WantedState::absent), to_string(m.state)});
    if (m.settings)
        for (const auto& [name, value] : *m.settings)
            if (value) {
                c.settings[name] = *value;
                out.changes.push_back({"settings." + name, std::nullopt, *value});
            }
    // Plugins' per-instance options, checked before anything is made.
    plugin_options::check(ctx, m.plugin_options);
    for (const auto& [plugin, keys] : m.plugin_options)
        for (const auto& [key, value] : keys)
            if (value) {
                c.plugin_options[plugin][key] = *value;
                out.changes.push_back({plugin + "." + key, std::nullopt, *value});
            }
    // The records' changes are those the edits make of the templates' files.
    std::vector<FieldChange> auth_changes;
    const auto own = own_record(m.superuser.value_or(ctx.settings().superuser),
                                m.auth_local.value_or(ctx.settings().auth_local));
    if (m.hba)
        c.hba = [&](conf::HbaFile& f) { edit_hba(f, *m.hba, m.hba_mode, own, auth_changes); };
    if (m.ident)
        c.ident = [&](conf::IdentFile& f) { edit_ident(f, *m.ident, m.ident_mode, auth_changes); };
    if (o.check) {
        if (m.hba)
            for (const auto& r : *m.hba) out.changes.push_back({"hba", std::nullopt, r.to_line()});
        if (m.ident)
            for (const auto& e : *m.ident)
                out.changes.push_back({"ident", std::nullopt, e.to_line()});
        // What the create would check first, checked now: the installation, the settings
        // (with the server's rules) and the port, so that a check fails where the run would.
        Installation installation = select_installation(ctx.settings(), c.version);
        out.name = installation.major() + "/" + m.name;
        if (!c.settings.empty()) {
            OsUser owner = lookup_os_user(running_as_root() ? m.owner.value_or(ctx.settings().owner)
                                                            : current_user_name());
            auto catalog = conf::ParameterCatalog::describe(installation, owner);
            for (const auto& [name, value] : c.settings) catalog.check_settable(name);
            conf::validate_values(installation, owner, c.settings);
        }
        if (c.port != 0) check_port_available(ctx, c.port, nullptr, "choose another port");
        pending_sql_objects(m, out);
        return out;
    }
    Instance i = create(ctx, c);
    out.name = i.qualified_name();
    out.changes.insert(out.changes.end(), auth_changes.begin(), auth_changes.end());
    if (m.state == WantedState::started) apply_sql_objects(ctx, i, m, false, nullptr, out);
    return out;
}

}  // namespace

std::vector<PluginSection> plugin_sections(Context& ctx) {
    std::vector<PluginSection> out;
    if (!ctx.plugins_wanted()) return out;
    for (const auto& d : plugin_options::declared(ctx)) {
        if (out.empty() || out.back().plugin != d.plugin) out.push_back({d.plugin, {}});
        out.back().keys.push_back({d.key, d.type, d.description});
    }
    return out;
}

Applied apply(Context& ctx, const Manifest& m, const ApplyOptions& o) {
    if (m.state == WantedState::stopped && (!m.roles.empty() || !m.databases.empty()))
        throw Error(Exit::usage,
                    "instance " + m.name + ": databases and roles are applied on a running server",
                    "say state: started, or leave databases and roles out");
    if (m.port && m.settings && m.settings->count("port"))
        throw Error(Exit::usage, "instance " + m.name + ": give the port once",
                    "use `port`, not settings.port");
    auto found = find(ctx, m);
    Applied out;
    if (!found) {
        if (m.state == WantedState::absent) {
            out.name = (m.version ? *m.version + "/" : std::string()) + m.name;
            return out;
        }
        return create_from(ctx, m, o);
    }
    Instance i = *found;
    out.name = i.qualified_name();
    if (m.state == WantedState::absent) {
        out.result = ApplyResult::dropped;
        out.changes.push_back({"state", running(ctx, i) ? "started" : "stopped", "absent"});
        if (!o.check) drop(ctx, i);
        return out;
    }
    check_creation_options(i, m);

    // Settings (the port among them), pg_hba.conf and pg_ident.conf: one configure.
    configuration::Request req;
    if (m.settings) req.settings = *m.settings;
    if (m.port && *m.port != i.port) {
        req.settings["port"] = std::to_string(*m.port);
        check_port_available(ctx, *m.port, &i, "choose another port; nothing was changed");
    }
    std::vector<FieldChange> auth_changes;
    if (m.hba)
        req.hba = [&, own = own_record(i.superuser, auth_local_of(i))](conf::HbaFile& f) {
            edit_hba(f, *m.hba, m.hba_mode, own, auth_changes);
        };
    if (m.ident)
        req.ident = [&](conf::IdentFile& f) {
            edit_ident(f, *m.ident, m.ident_mode, auth_changes);
        };
    // Plugins' per-instance options: stored first, so that the configure below hands the plugins
    // their new values at pre_configure.
    plugin_options::check(ctx, m.plugin_options);
    const auto option_changes = plugin_options::plan(ctx, i, m.plugin_options);
    if (!o.check && !option_changes.empty()) plugin_options::store(ctx, i, m.plugin_options);
    // Their new values reach the plugins through one configure, even when no file of the
    // manifest's own changes.
    req.run_hooks = !option_changes.empty();
    const bool was_running = running(ctx, i);
    // One session to the server for every part that asks it something (what waits for a
    // restart, roles, databases), opened when first needed; a restart ends it.
    std::optional<pg::Connection> session;
    configuration::Options copts;
    copts.dry_run = o.check;
    copts.diff = o.diff;
    copts.restart = m.restart_on_changes && m.state == WantedState::started;
    if (was_running && !o.check && !req.settings.empty()) copts.connection = &session.emplace(i);
    for (const auto& ch : option_changes) out.changes.push_back({ch.field, ch.before, ch.after});
    if (!req.settings.empty() || req.hba || req.ident || req.run_hooks) {
        auto outcome = configuration::configure(ctx, i, req, copts);
        if (outcome.restarted) session.reset();
        for (const auto& ch : outcome.changes) {
            if (ch.effect == "unchanged") continue;
            std::string field = ch.name == "port" && m.port ? "port" : "settings." + ch.name;
            out.changes.push_back({field, ch.before, ch.after});
        }
        out.changes.insert(out.changes.end(), auth_changes.begin(), auth_changes.end());
        out.diffs = std::move(outcome.diffs);
        out.restarted = outcome.restarted;
        // A check says what the real run would leave pending: a restart-only change on a
        // running server that the manifest does not let restart.
        if (o.check) {
            for (const auto& ch : outcome.changes)
                if (ch.effect == "restart" && was_running && !copts.restart)
                    out.pending_restart = true;
        } else {
            out.pending_restart = outcome.pending_restart && !outcome.restarted;
        }
        // A restart-only value the files already hold (written by an earlier apply that did
        // not restart) is applied now that the manifest lets the instance restart.
        if (!o.check && copts.restart && was_running && outcome.pending_restart &&
            !outcome.restarted) {
            session.reset();
            restart(ctx, i);
            out.restarted = true;
            out.pending_restart = false;
        }
        if (out.restarted) out.changes.push_back({"state", "started", "restarted"});
    }
    // The state.
    if (m.state == WantedState::started && !was_running) {
        out.changes.push_back({"state", "stopped", "started"});
        if (!o.check) start(ctx, i);
    } else if (m.state == WantedState::stopped && was_running) {
        out.changes.push_back({"state", "started", "stopped"});
        session.reset();
        if (!o.check) stop(ctx, i);
    }
    if (m.state == WantedState::started) {
        if (o.check && !was_running) {
            pending_sql_objects(m, out);
        } else if (!m.roles.empty() || !m.databases.empty()) {
            const Instance now = get(ctx, i.qualified_name());  // its port may have moved
            if (!session || now.port != i.port) session.emplace(now);
            apply_sql_objects(ctx, now, m, o.check, &*session, out);
        }
    }
    if (!out.changes.empty() || any_sql_change(out)) out.result = ApplyResult::changed;
    // One row in the journal for the apply itself, whatever it did.
    if (!o.check)
        journal_at_once(ctx, i, "apply", true,
                        out.result == ApplyResult::unchanged ? "unchanged" : "changed", {});
    return out;
}

}  // namespace pgforge::instances
