#include "engine/operations/configuration.hpp"

#include <sys/stat.h>

#include <algorithm>
#include <chrono>
#include <functional>
#include <thread>

#include "engine/conf/file_set.hpp"
#include "engine/conf/parameters.hpp"
#include "engine/conf/template.hpp"
#include "engine/core/diff.hpp"
#include "engine/core/error.hpp"
#include "engine/core/fault.hpp"
#include "engine/core/interrupt.hpp"
#include "engine/core/log.hpp"
#include "engine/core/text.hpp"
#include "engine/inventory/inventory.hpp"
#include "engine/operations/roles.hpp"
#include "engine/pg/connection.hpp"
#include "engine/pipeline/configure_draft.hpp"
#include "engine/pipeline/pipeline.hpp"
#include "engine/pipeline/steps.hpp"

namespace fs = std::filesystem;

namespace pgforge::configuration {
namespace {

// A file's content and ownership before an edit, to write the edit with the same owner and mode
// and to put the file back when the server refuses it.
struct Saved {
    fs::path file;
    std::string content;
    OsUser owner;
    fs::perms mode = fs::perms(0600);
    bool existed = false;
};

Saved save(const fs::path& file) {
    Saved s;
    s.file = file;
    struct stat st {};
    if (stat(file.c_str(), &st) == 0) {
        s.existed = true;
        s.content = read_text_file(file);
        s.owner.uid = st.st_uid;
        s.owner.gid = st.st_gid;
        s.mode = fs::perms(st.st_mode & 07777);
    }
    return s;
}

void write_like(const Saved& s, const std::string& content) {
    write_file_atomically(s.file, content, s.existed ? &s.owner : nullptr, s.mode);
}

std::string join_rows(const pg::QueryResult& r) {
    std::string text;
    for (const auto& row : r.rows) {
        std::string line;
        for (const auto& cell : row) {
            if (!cell || cell->empty()) continue;
            line += (line.empty() ? "" : ": ") + *cell;
        }
        text += (text.empty() ? "" : "\n") + line;
    }
    return text;
}

// Makes the server re-read its files (by `signal`, pg_reload_conf() when none) and waits until
// this session has done so, so that pg_settings reflects the change.
void reload_and_wait(pg::Connection& c, const std::function<void()>& signal = {}) {
    auto before = c.exec("SELECT pg_conf_load_time()::text").rows.at(0).at(0).value_or("");
    if (signal)
        signal();
    else
        c.exec("SELECT pg_reload_conf()");
    auto until = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    while (std::chrono::steady_clock::now() < until) {
        auto now = c.exec("SELECT pg_conf_load_time()::text").rows.at(0).at(0).value_or("");
        if (now != before) return;
        std::this_thread::sleep_for(std::chrono::milliseconds(2));
    }
    throw Error(Exit::server, "the server did not confirm the reload within 10 s");
}

std::string canonical_name(const conf::ParameterCatalog& catalog, const std::string& name) {
    const conf::ParameterInfo* p = catalog.find(name);
    return p ? p->name : name;
}

std::string effect_of(const conf::ParameterCatalog& catalog, const std::string& name) {
    const conf::ParameterInfo* p = catalog.find(name);
    return p ? conf::change_effect(*p) : "reload";
}

// The server's own word on what waits for a restart, once it has read its files.
void read_pending(pg::Connection& c, Outcome& out) {
    out.pending_restart_names.clear();
    for (const auto& row :
         c.exec("SELECT name FROM pg_settings WHERE pending_restart ORDER BY name").rows)
        out.pending_restart_names.push_back(row.at(0).value_or(""));
}

// The files of one configure: postgresql.conf documents (edited by the command), and the
// pg_hba.conf and pg_ident.conf texts as the command leaves them.
// The port a configure sets (the user's change, else a plugin's contribution): 5432 when the
// user removes it, 0 when neither touches it or the value is not a port (the server's own check
// refuses it then).
int new_port(const std::map<std::string, std::optional<std::string>>& user,
             const ConfigureDraft& draft) {
    std::optional<std::optional<std::string>> value;
    for (const auto& [name, v] : user)
        if (to_lower(name) == "port") value = v;
    if (!value)
        for (const auto& [name, contribution] : draft.parameters())
            if (to_lower(name) == "port") value = contribution.value;
    if (!value) return 0;
    if (!*value) return 5432;
    try {
        size_t used = 0;
        int n = std::stoi(**value, &used);
        return used == (*value)->size() && n > 0 && n < 65536 ? n : 0;
    } catch (const std::exception&) {
        return 0;
    }
}

struct Proposal {
    conf::AuthFiles auth;  // the pg_hba.conf and pg_ident.conf the server reads
    std::map<fs::path, conf::ConfDocument> docs;
    std::map<std::string, std::optional<std::string>> user;  // what the command sets or removes
    std::string hba;
    std::string ident;
};

// After a failed check: every file back as it was; a server that was asked to reload re-reads
// the files as they are again.
void put_back(Context& ctx, const Cluster& cluster, const Instance& i, conf::FileSet& files,
              bool reload_sent) {
    files.rollback();
    if (!reload_sent) return;
    try {
        if (ctx.driver().status(cluster).running) ctx.driver().reload(cluster);
    } catch (const std::exception& e) {
        log::warn("instance " + i.qualified_name() +
                  " could not be asked to re-read its restored files: " + e.what());
    }
}

// The server's own checks of files just written; then the reload and, when asked for, the
// restart. Throws when the files must go back: Error with a hint saying "put back" for a
// refusal that already says so.
void check_written(Context& ctx, const std::string& operation, const Cluster& cluster,
                   const Instance& i, bool conf_changed, bool hba_changed, bool ident_changed,
                   bool& reload_sent, Outcome& out) {
    if (conf_changed) {
        std::string complaints =
            conf::check_data_directory(cluster.installation, cluster.owner, i.data_dir);
        if (!complaints.empty())
            throw Error(
                Exit::usage,
                "instance " + i.qualified_name() + " refuses the new configuration:\n" + complaints,
                "the files were put back as they were");
    }
    throw_if_interrupted();
    if (!ctx.driver().status(cluster).running) return;
    pg::Connection c(i);
    // A parameter of a loaded library ("pg_stat_statements.max") is unknown to `postgres
    // --describe-config`: the running server says its context.
    for (auto& ch : out.changes) {
        if (ch.effect != "reload" || ch.name.find('.') == std::string::npos) continue;
        auto context = c.exec("SELECT context FROM pg_settings WHERE name = $1", {ch.name});
        if (!context.rows.empty() && context.rows.at(0).at(0) == "postmaster")
            ch.effect = "restart";
    }
    std::string errors;
    if (conf_changed)
        // "setting could not be applied" on a postmaster-context parameter only means
        // that it waits for a restart.
        errors += join_rows(
            c.exec("SELECT f.sourcefile || ':' || f.sourceline, f.name, f.error FROM "
                   "pg_file_settings f LEFT JOIN pg_settings s ON s.name = f.name WHERE f.error "
                   "IS NOT NULL AND NOT (f.error = 'setting could not be applied' AND s.context = "
                   "'postmaster') ORDER BY f.seqno"));
    if (hba_changed)
        errors +=
            join_rows(c.exec("SELECT 'pg_hba.conf line ' || line_number, error FROM "
                             "pg_hba_file_rules WHERE error IS NOT NULL"));
    if (ident_changed)
        errors +=
            join_rows(c.exec("SELECT 'pg_ident.conf line ' || line_number, error FROM "
                             "pg_ident_file_mappings WHERE error IS NOT NULL"));
    if (!errors.empty()) {
        std::string what = conf_changed || (hba_changed && ident_changed) ? "configuration"
                           : hba_changed                                  ? "pg_hba.conf"
                                                                          : "pg_ident.conf";
        throw Error(Exit::usage,
                    "instance " + i.qualified_name() + " refuses the new " + what + ":\n" + errors,
                    "the files were put back as they were");
    }
    throw_if_interrupted();
    reload_sent = true;
    reload_and_wait(c);
    fault_point(operation, "reload", "after");
    out.reloaded = true;
    if (!conf_changed) return;
    std::vector<std::string> names;
    for (const auto& ch : out.changes)
        if (ch.effect != "unchanged") names.push_back(ch.name);
    std::string list = "{";
    for (size_t k = 0; k < names.size(); ++k) list += (k ? "," : "") + c.quote_identifier(names[k]);
    list += "}";
    auto pending =
        c.exec("SELECT count(*) FROM pg_settings WHERE pending_restart AND name = ANY($1::text[])",
               {list});
    out.pending_restart = pending.rows.at(0).at(0).value_or("0") != "0";
    read_pending(c, out);
    // The restart itself is the operation's stop and start steps (restart_steps), after
    // post_configure.
}

// configure --restart: the stop and the start, each a step of the configure with its hook
// points. The files stay uncommitted until the server runs on them; a failure puts them back:
// refused before the stop, the server re-reads them; stopped and refused at pre_start, the server
// stays stopped; a start that fails starts the server again on the previous files. A post_start
// refusal keeps the files the server now runs on.
// `new_port`: the port the new files give the server; it comes back there and is waited for there.
void restart_steps(Context& ctx, Pipeline& p, const Cluster& cluster, const Instance& i,
                   conf::FileSet& files, Outcome& out, int new_port) {
    auto put_back_and_say = [&](const std::exception& e, const std::string& state) {
        put_back(ctx, cluster, i, files, true);
        auto* error = dynamic_cast<const Error*>(&e);  // an interruption stays one (exit 8)
        throw Error(error ? error->code() : Exit::failure, std::string(e.what()) + "\n" + state,
                    "the files were put back as they were");
    };
    try {
        // After a kill from here on, the next command puts the files back and starts the server
        // again (instances.cpp, resume).
        p.made("server stopped for restart", i.data_dir.string());
        instances::stop_step(ctx, p, StopMode::fast, std::nullopt);
        fault_point("configure", "restart stop", "after");
    } catch (const std::exception& e) {
        bool running = false;
        try {
            running = ctx.driver().status(cluster).running;
        } catch (const std::exception&) {
        }
        put_back_and_say(e, running ? "the server runs on the previous configuration"
                                    : "the server is stopped; start it with pgforge instance "
                                      "start " +
                                          i.qualified_name());
    }
    bool start_tried = false, started = false;
    Cluster moved = cluster;
    moved.instance.port = new_port;
    try {
        p.around(sdk::HookPoint::pre_start, "start", [&] {
            start_tried = true;
            start_server(ctx, p, moved, ctx.settings().start_timeout);
            started = true;
            fault_point("configure", "restart start", "after");
        });
    } catch (const std::exception& e) {
        if (started) {
            // post_start refused: the server runs on the new files, which stay.
            files.commit();
            out.restarted = true;
            out.pending_restart = false;
            throw;
        }
        if (!start_tried)
            put_back_and_say(e, "the server is stopped; start it with pgforge instance start " +
                                    i.qualified_name());
        // The server as it was: the files back, and started on them.
        std::string refusal = e.what();
        files.rollback();
        try {
            p.step("start on the previous configuration",
                   [&] { start_server(ctx, p, cluster, ctx.settings().start_timeout); });
        } catch (const std::exception& again) {
            throw Error(Exit::server,
                        "instance " + i.qualified_name() +
                            " did not start with the new configuration: " + refusal +
                            "\nthe files were put back, but it did not start on them either: " +
                            again.what(),
                        "the files were put back as they were; see `pgforge instance logs " +
                            i.name + "`, then start it");
        }
        throw Error(Exit::server,
                    "instance " + i.qualified_name() +
                        " did not start with the new configuration: " + refusal +
                        "\nthe files were put back and it runs again on the previous "
                        "configuration",
                    "the files were put back as they were; check the values (see `pgforge "
                    "instance logs " +
                        i.name + "`)");
    }
    files.commit();
    out.restarted = true;
    out.pending_restart = false;
    out.pending_restart_names.clear();
}

// The configure pipeline on an existing instance: pre_configure handlers contribute, the engine
// merges and writes each changed file once, the server checks the files (pg_file_settings,
// pg_hba_file_rules, pg_ident_file_mappings read them afresh) before a reload, a refusal puts
// every file back, and post_configure handlers see the outcome.
// `reload`: the operation is instance reload, which re-applies the contributions and makes the
// server re-read its files even when nothing changed.
void configure_instance(Context& ctx, const Instance& inst, Proposal& prop, Outcome& out,
                        const Options& o, const conf::ConfTree* tree, bool reload = false) {
    Instance i = inst;
    const fs::path main_conf = i.data_dir / "postgresql.conf";
    const fs::path hba_file = prop.auth.hba;
    const fs::path ident_file = prop.auth.ident;
    conf::HbaFile hba = conf::HbaFile::parse(prop.hba, hba_file);
    conf::IdentFile ident = conf::IdentFile::parse(prop.ident, ident_file);
    ConfigureDraft draft(i, prop.docs, hba, ident, [&](const std::string& name) {
        return tree ? tree->file_to_edit(name) : main_conf;
    });
    for (const auto& [name, value] : prop.user) draft.user_sets(name, value);
    // A list no file sets starts from the server's default ("$user", public for search_path).
    std::optional<conf::ParameterCatalog> defaults;
    draft.server_defaults([&](const std::string& name) -> std::optional<std::string> {
        try {
            if (!defaults) {
                Cluster cluster = instances::cluster_for(ctx, i);
                defaults = conf::ParameterCatalog::describe(cluster.installation, cluster.owner);
            }
            if (const conf::ParameterInfo* p = defaults->find(name)) return p->reset_value;
        } catch (const std::exception& e) {
            log::warn("the server's default of " + name + " is unknown: " + e.what());
        }
        return std::nullopt;
    });

    out.port_before = out.port_after = i.port;
    Pipeline p(ctx, reload ? "reload" : "configure", i);
    // Applied, reloaded and waiting for the restart: uncommitted until the server runs on them.
    std::unique_ptr<conf::FileSet> restarting;
    std::optional<Cluster> restart_cluster;
    int restart_port = i.port;  // the port of the new files
    // Refused at post_configure (or a signal) before the restart: the files go back, and the
    // server that read them re-reads the previous ones.
    struct PutBackUnlessRestarted {
        std::function<void()> put_back;
        ~PutBackUnlessRestarted() {
            try {
                if (put_back) put_back();
            } catch (const std::exception& e) {
                log::warn(e.what());
            }
        }
    } guard{[&] {
        if (restarting) put_back(ctx, *restart_cluster, i, *restarting, true);
    }};
    p.around(
        sdk::HookPoint::pre_configure, "write configuration",
        [&] {
            Cluster cluster = instances::cluster_for(ctx, i);
            auto contributed = draft.apply_parameters();
            // What contributions say of the command's own changes (a default it replaces).
            for (const auto& [name, text] : draft.notes())
                for (auto& ch : out.changes)
                    if (to_lower(ch.name) == name) ch.note += (ch.note.empty() ? "" : "; ") + text;
            for (const auto& r : draft.restart_reasons())
                out.restart_reasons.push_back({r.plugin, r.reason});
            if (!contributed.empty()) {
                std::map<std::string, std::string> values;
                for (const auto& name : contributed)
                    values[name] = draft.parameters().at(name).value;
                conf::validate_values(cluster.installation, cluster.owner, values);
                // Reported as the user's own changes are: the value the files gave before, and
                // reload or restart from the parameter's context.
                if (!defaults)
                    defaults =
                        conf::ParameterCatalog::describe(cluster.installation, cluster.owner);
                const conf::ParameterCatalog& catalog = *defaults;
                for (const auto& name : contributed) {
                    Change ch;
                    ch.name = canonical_name(catalog, name);
                    ch.after = values[name];
                    if (tree)
                        if (auto effective = tree->get(name)) ch.before = effective->value;
                    ch.effect = effect_of(catalog, name);
                    ch.file = tree ? tree->file_to_edit(name) : main_conf;
                    ch.note = "contributed by " + draft.parameters().at(name).by;
                    if (auto n = draft.notes().find(name); n != draft.notes().end())
                        ch.note += "; " + n->second;
                    out.changes.push_back(ch);
                }
            }
            // Only what differs from the disk is written, as one set.
            auto owned_files = std::make_unique<conf::FileSet>(i.data_dir);
            conf::FileSet& files = *owned_files;
            bool conf_changed = false, hba_changed = false, ident_changed = false;
            std::map<fs::path, std::string> conf_texts;  // the postgresql.conf tree, as proposed
            if (tree)
                for (const auto& file : tree->files()) conf_texts[file] = read_text_file(file);
            auto add = [&](const fs::path& file, const std::string& text) {
                Saved sv = save(file);
                if (sv.existed && sv.content == text) return false;
                files.add(file, text, &cluster.owner, sv.mode);
                return true;
            };
            for (auto& [file, doc] : prop.docs) {
                std::string text = doc.print();
                conf_texts[file] = text;
                conf_changed = add(file, text) || conf_changed;
            }
            hba_changed = add(hba_file, hba.print());
            ident_changed = add(ident_file, ident.print());
            auto written = draft.write_files(cluster.owner);
            if (files.empty()) {
                out.changed = out.changed || !written.empty();
                if (reload) {
                    // The server is asked to re-read its files by the driver in every case (it
                    // says when the instance is not running); a session, when one can be had,
                    // waits for the re-read and asks what now waits for a restart.
                    std::optional<pg::Connection> c;
                    if (ctx.driver().status(cluster).running) {
                        try {
                            c.emplace(i);
                        } catch (const std::exception& e) {
                            log::warn("instance " + i.qualified_name() +
                                      ": cannot ask what waits for a restart: " + e.what());
                        }
                    }
                    if (c) {
                        reload_and_wait(*c, [&] { ctx.driver().reload(cluster); });
                        read_pending(*c, out);
                        out.pending_restart = !out.pending_restart_names.empty();
                    } else {
                        ctx.driver().reload(cluster);
                    }
                    out.reloaded = true;
                }
                // A plugin's own file (or nothing written) that it says needs a restart.
                if (!out.restart_reasons.empty() && ctx.driver().status(cluster).running) {
                    out.pending_restart = true;
                    if (o.restart) {
                        restarting = std::move(owned_files);
                        restart_cluster = cluster;
                    }
                }
                return;
            }
            // Settings that parse one by one but stop the server at its next start, refused
            // before anything is written.
            // (Only when the change touches a parameter those rules read: their verdict on the
            // other parameters is the same as on the files as they are.)
            std::vector<std::string> touched(contributed.begin(), contributed.end());
            for (const auto& [name, value] : prop.user) touched.push_back(name);
            const auto& rules = conf::start_time_parameters();
            bool rules_concerned =
                std::any_of(touched.begin(), touched.end(), [&](const std::string& name) {
                    return std::find(rules.begin(), rules.end(), to_lower(name)) != rules.end();
                });
            if (conf_changed && rules_concerned) {
                std::string conflicts = conf::check_start_settings(
                    cluster.installation, cluster.owner, i.data_dir, conf_texts);
                if (!conflicts.empty())
                    throw Error(Exit::usage,
                                "instance " + i.qualified_name() +
                                    " would not start with the new configuration:\n" + conflicts,
                                "nothing was written");
            }
            // A new port must be free: another instance's or a listening program's port would
            // keep the server from starting on it.
            if (conf_changed)
                if (int np = new_port(prop.user, draft); np != 0 && np != i.port)
                    instances::check_port_available(ctx, np, &i,
                                                    "choose another port; nothing was written");
            throw_if_interrupted();
            files.apply();
            out.changed = true;
            // From here on, any way out but the end puts every file back (FileSet's destructor
            // does when an exception leaves this block).
            bool reload_sent = false;
            try {
                restart_port = conf_changed ? configured_port(i.data_dir).value_or(i.port) : i.port;
                check_written(ctx, reload ? "reload" : "configure", cluster, i, conf_changed,
                              hba_changed, ident_changed, reload_sent, out);
                // A restart a plugin asks for waits on a server that runs (reloaded).
                if (!out.restart_reasons.empty() && out.reloaded) out.pending_restart = true;
                // The inventory follows the port the server listens on: at once when it does
                // not run (its next start uses the files) or after the restart below; a running
                // server keeps its port until its restart (reported as pending).
                if (restart_port != i.port && !ctx.driver().status(cluster).running)
                    out.port_after = restart_port;
                if (!(out.pending_restart && o.restart)) files.commit();
            } catch (const Error& e) {
                put_back(ctx, cluster, i, files, reload_sent);
                if (e.hint().find("put back") != std::string::npos) throw;
                throw Error(e.code(),
                            "the new configuration of " + i.qualified_name() +
                                " could not be checked: " + e.what(),
                            "the files were put back as they were; run the command again once "
                            "the check can be made" +
                                (e.hint().empty() ? std::string() : " (" + e.hint() + ")"));
            } catch (const std::exception& e) {
                put_back(ctx, cluster, i, files, reload_sent);
                throw Error(Exit::failure,
                            "the new configuration of " + i.qualified_name() +
                                " could not be checked: " + e.what(),
                            "the files were put back as they were");
            }
            if (reload && !out.reloaded) ctx.driver().reload(cluster);  // says it is not running
            if (out.pending_restart && o.restart) {
                restarting = std::move(owned_files);
                restart_cluster = cluster;
            }
        },
        &draft);
    throw_if_interrupted();
    guard.put_back = nullptr;
    if (restarting) {
        restart_steps(ctx, p, *restart_cluster, i, *restarting, out, restart_port);
        if (restart_port != i.port) out.port_after = restart_port;
    }
    if (out.port_after == out.port_before) {
        p.finish();
        return;
    }
    // The new port in the inventory in the same transaction as the journal's end, then the
    // .pgpass entries of the instance's socket directory.
    i.port = out.port_after;
    p.finish_updating_entry();
    move_pgpass_entries(i, out.port_before);
}

Proposal proposal_for(const Instance& i) {
    Proposal prop;
    // Where hba_file and ident_file say, read with the rights of whoever controls the file
    // that names them (a path the owner points at a root-only file is refused, never read).
    prop.auth = conf::auth_file_paths(i.data_dir);
    prop.hba = conf::read_auth_file(prop.auth.hba, prop.auth.hba_named_by);
    prop.ident = conf::read_auth_file(prop.auth.ident, prop.auth.ident_named_by);
    return prop;
}

}  // namespace

bool recover(Context& ctx, const Instance& i) {
    if (!conf::FileSet::recover(i.data_dir)) return false;
    log::warn("an interrupted configuration change of instance " + i.qualified_name() +
              " was undone: its files are back as they were before it");
    // A server that read the new files before the interruption reads the old ones again.
    try {
        Cluster cluster = instances::cluster_for(ctx, i);
        if (ctx.driver().status(cluster).running) ctx.driver().reload(cluster);
    } catch (const std::exception& e) {
        log::warn("instance " + i.qualified_name() +
                  " could not be asked to re-read its restored files: " + e.what());
    }
    return true;
}

std::optional<int> configured_port(const fs::path& data_dir) {
    auto tree =
        conf::ConfTree::load(data_dir / "postgresql.conf", data_dir / "postgresql.auto.conf");
    auto port = tree.get("port");
    if (!port) return std::nullopt;
    try {
        size_t used = 0;
        int n = std::stoi(port->value, &used);
        if (used == port->value.size() && n > 0 && n < 65536) return n;
    } catch (const std::exception&) {
    }
    return std::nullopt;
}

std::optional<int> take_configured_port(Instance& i) {
    std::optional<int> port;
    try {
        port = configured_port(i.data_dir);
    } catch (const std::exception&) {
        // The start reads them itself, and says what is wrong.
        return std::nullopt;
    }
    if (!port || *port == i.port) return std::nullopt;
    int old = i.port;
    i.port = *port;
    return old;
}

void move_pgpass_entries(const Instance& i, int old_port) {
    try {
        roles::update_pgpass_port(old_port, i.port, i.socket_dir);
    } catch (const std::exception& e) {
        log::warn("the .pgpass entries of instance " + i.qualified_name() + " still name port " +
                  std::to_string(old_port) + ": " + e.what());
    }
}

std::map<std::string, std::string> parse_assignments(const std::vector<std::string>& words) {
    std::map<std::string, std::string> values;
    for (const auto& w : words) {
        auto eq = w.find('=');
        if (eq == std::string::npos || eq == 0)
            throw Error(Exit::usage, "'" + w + "' is not a NAME=VALUE assignment",
                        "write settings as work_mem=64MB");
        values[w.substr(0, eq)] = w.substr(eq + 1);
    }
    if (values.empty())
        throw Error(Exit::usage, "no setting given", "write settings as work_mem=64MB");
    return values;
}

conf::ConfTree load(const Instance& i) {
    return conf::ConfTree::load(i.data_dir / "postgresql.conf",
                                i.data_dir / "postgresql.auto.conf");
}

fs::path hba_path(const Instance& i) {
    return conf::auth_file_paths(i.data_dir).hba;
}
fs::path ident_path(const Instance& i) {
    return conf::auth_file_paths(i.data_dir).ident;
}

Outcome configure(Context& ctx, const Instance& i, const Request& r, const Options& o) {
    auto held = instances::lock(ctx, i);
    recover(ctx, i);
    Outcome out;
    Proposal prop = proposal_for(i);
    std::optional<conf::ParameterCatalog> catalog;
    auto cat = [&]() -> const conf::ParameterCatalog& {
        if (!catalog) {
            Cluster cluster = instances::cluster_for(ctx, i);
            catalog = conf::ParameterCatalog::describe(cluster.installation, cluster.owner);
        }
        return *catalog;
    };
    std::optional<conf::ConfTree> tree;
    const fs::path auto_file = i.data_dir / "postgresql.auto.conf";
    if (!r.settings.empty()) {
        tree = load(i);
        // Only values that differ from the files are checked with the server's rules (a
        // request that changes nothing starts no program): the files hold what was checked.
        std::map<std::string, std::string> values;
        for (const auto& [name, value] : r.settings) {
            auto effective = tree->get(name);
            if (value && (!effective || effective->value != *value)) values[name] = *value;
        }
        if (!values.empty()) {
            try {
                for (const auto& [name, value] : values) cat().check_settable(name);
                Cluster cluster = instances::cluster_for(ctx, i);
                conf::validate_values(cluster.installation, cluster.owner, values);
            } catch (const Error& e) {
                // Refused before its pipeline: journaled all the same.
                if (!o.dry_run) journal_at_once(ctx, i, "configure", false, e.what(), {});
                throw;
            }
        }
    }
    auto& docs = prop.docs;
    auto doc = [&](const fs::path& file) -> conf::ConfDocument& {
        if (!docs.count(file)) docs.emplace(file, conf::ConfDocument::read(file));
        return docs.at(file);
    };
    for (const auto& [name, value] : r.settings) {
        prop.user[name] = value;
        Change ch;
        ch.name = to_lower(name);
        auto effective = tree->get(name);
        if (effective) ch.before = effective->value;
        if (value) {
            ch.after = value;
            ch.file = tree->file_to_edit(name);
            if (!effective || effective->value != *value) ch.name = canonical_name(cat(), name);
            if (effective && effective->value == *value) {
                ch.effect = "unchanged";
                out.changes.push_back(ch);
                continue;
            }
            if (effective && effective->file == auto_file)
                ch.note = "postgresql.auto.conf sets it too and wins (ALTER SYSTEM RESET " +
                          ch.name + " to let this value apply)";
            ch.effect = effect_of(cat(), name);
            doc(ch.file).set(name, *value);
        } else {
            ch.effect = "unchanged";
            // Every file of the tree but postgresql.auto.conf (which ALTER SYSTEM owns).
            for (const auto& file : tree->files()) {
                if (file == auto_file) continue;
                if (doc(file).remove(name, r.delete_lines)) {
                    ch.name = canonical_name(cat(), name);
                    ch.effect = effect_of(cat(), name);
                    ch.file = file;
                }
            }
        }
        out.changes.push_back(ch);
    }
    // Keep only the documents that changed.
    std::map<fs::path, std::string> before;  // the text on disk of each file that changes
    for (auto it = docs.begin(); it != docs.end();) {
        std::string disk = read_text_file(it->first);
        if (it->second.print() == disk) {
            it = docs.erase(it);
        } else {
            before[it->first] = std::move(disk);
            ++it;
        }
    }
    // pg_hba.conf and pg_ident.conf: what the edit makes of them must read back.
    auto edit_auth = [&](auto parsed, const auto& edit, std::string& text, const fs::path& file,
                         bool& changed) {
        if (!edit) return;
        edit(parsed);
        std::string after = parsed.print();
        if (after == text) return;
        decltype(parsed)::parse(after, file);
        before[file] = text;
        text = after;
        changed = true;
    };
    edit_auth(conf::HbaFile::parse(prop.hba, prop.auth.hba), r.hba, prop.hba, prop.auth.hba,
              out.hba_changed);
    edit_auth(conf::IdentFile::parse(prop.ident, prop.auth.ident), r.ident, prop.ident,
              prop.auth.ident, out.ident_changed);
    if (o.diff) {
        // The postgresql.conf tree first, then pg_hba.conf and pg_ident.conf.
        auto diff = [&](const fs::path& file, const std::string& after) {
            out.diffs.push_back({file, unified_diff(before.at(file), after, "a" + file.string(),
                                                    "b" + file.string())});
        };
        for (const auto& [file, d] : docs) diff(file, d.print());
        if (out.hba_changed) diff(prop.auth.hba, prop.hba);
        if (out.ident_changed) diff(prop.auth.ident, prop.ident);
    }
    if (before.empty() && !r.run_hooks) {
        // Nothing to write: the server's word on what waits for a restart among the settings
        // named (a value written earlier without --restart is still pending).
        if (!out.changes.empty() && !o.dry_run && instances::running(ctx, i)) {
            try {
                std::optional<pg::Connection> own;
                pg::Connection& c = o.connection ? *o.connection : own.emplace(i);
                read_pending(c, out);
                for (const auto& ch : out.changes)
                    if (std::find(out.pending_restart_names.begin(),
                                  out.pending_restart_names.end(),
                                  ch.name) != out.pending_restart_names.end())
                        out.pending_restart = true;
            } catch (const std::exception& e) {
                log::warn("instance " + i.qualified_name() +
                          ": cannot ask what waits for a restart: " + e.what());
            }
        }
        return out;
    }
    if (o.dry_run) return out;
    configure_instance(ctx, i, prop, out, o, tree ? &*tree : nullptr);
    return out;
}

Outcome set(Context& ctx, const Instance& i, const std::map<std::string, std::string>& values,
            const Options& o) {
    Request r;
    for (const auto& [name, value] : values) r.settings[name] = value;
    return configure(ctx, i, r, o);
}

Outcome remove(Context& ctx, const Instance& i, const std::vector<std::string>& names,
               bool delete_lines, const Options& o) {
    Request r;
    for (const auto& name : names) r.settings[name] = std::nullopt;
    r.delete_lines = delete_lines;
    return configure(ctx, i, r, o);
}

Outcome set_file(Context& ctx, const fs::path& file,
                 const std::map<std::string, std::string>& values, const std::string& version,
                 const Options& o) {
    Installation installation = select_installation(ctx.settings(), version);
    OsUser as = lookup_os_user(running_as_root() ? ctx.settings().owner : current_user_name());
    auto catalog = conf::ParameterCatalog::describe(installation, as);
    for (const auto& [name, value] : values) catalog.check_settable(name);
    conf::validate_values(installation, as, values);
    // The file and what it includes, as the server reads them: the line that wins is edited,
    // wherever it is.
    auto tree = conf::ConfTree::load(file);
    std::map<fs::path, conf::ConfDocument> docs;
    Outcome out;
    for (const auto& [name, value] : values) {
        Change ch;
        ch.name = canonical_name(catalog, name);
        ch.file = tree.file_to_edit(name);
        ch.after = value;
        auto effective = tree.get(name);
        if (effective) ch.before = effective->value;
        if (ch.before == ch.after) {
            ch.effect = "unchanged";
        } else {
            ch.effect = effect_of(catalog, name);
            if (!docs.count(ch.file)) docs.emplace(ch.file, conf::ConfDocument::read(ch.file));
            docs.at(ch.file).set(name, value);
            out.changed = true;
        }
        if (effective && ch.file != file)
            ch.note = "set in " + effective->file.string() + ":" + std::to_string(effective->line) +
                      ", which " + file.string() + " includes and which wins: edited there";
        out.changes.push_back(ch);
    }
    for (auto& [path, doc] : docs) {
        std::string text = doc.print();
        if (o.diff) {
            std::string disk = read_text_file(path);
            out.diffs.push_back(
                {path, unified_diff(disk, text, "a" + path.string(), "b" + path.string())});
        }
        if (!o.dry_run) write_like(save(path), text);
    }
    if (o.dry_run) out.changed = false;
    return out;
}

Outcome remove_file(const fs::path& file, const std::vector<std::string>& names, bool delete_lines,
                    const Options& o) {
    auto doc = conf::ConfDocument::read(file);
    Outcome out;
    for (const auto& name : names) {
        Change ch;
        ch.name = name;
        ch.file = file;
        if (auto e = doc.get(name)) ch.before = e->value;
        ch.effect = doc.remove(name, delete_lines) ? "reload" : "unchanged";
        out.changed = out.changed || ch.effect != "unchanged";
        out.changes.push_back(ch);
    }
    if (out.changed && !o.dry_run) write_like(save(file), doc.print());
    if (o.dry_run) out.changed = false;
    return out;
}

Outcome reload(Context& ctx, const Instance& i) {
    auto held = instances::lock(ctx, i);
    recover(ctx, i);
    Proposal prop = proposal_for(i);
    conf::ConfTree tree = load(i);
    Outcome out;
    configure_instance(ctx, i, prop, out, {}, &tree, true);
    return out;
}

HbaOutcome edit_hba(Context& ctx, const Instance& i,
                    const std::function<void(conf::HbaFile&)>& edit, bool dry_run) {
    Request r;
    r.hba = edit;
    auto out = configure(ctx, i, r, {.dry_run = dry_run});
    return {out.hba_changed, out.reloaded};
}

HbaOutcome edit_ident(Context& ctx, const Instance& i,
                      const std::function<void(conf::IdentFile&)>& edit, bool dry_run) {
    Request r;
    r.ident = edit;
    auto out = configure(ctx, i, r, {.dry_run = dry_run});
    return {out.ident_changed, out.reloaded};
}

}  // namespace pgforge::configuration
