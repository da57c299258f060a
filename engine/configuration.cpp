#include "engine/configuration.hpp"

#include <sys/stat.h>

#include <algorithm>
#include <chrono>
#include <thread>

#include "engine/conf/file_set.hpp"
#include "engine/conf/parameters.hpp"
#include "engine/conf/template.hpp"
#include "engine/core/error.hpp"
#include "engine/core/interrupt.hpp"
#include "engine/core/log.hpp"
#include "engine/core/text.hpp"
#include "engine/inventory/inventory.hpp"
#include "engine/pg/connection.hpp"
#include "engine/pipeline.hpp"

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

// Makes the server re-read its files and waits until this session has done so, so that
// pg_settings reflects the change.
void reload_and_wait(pg::Connection& c) {
    auto before = c.exec("SELECT pg_conf_load_time()::text").rows.at(0).at(0).value_or("");
    c.exec("SELECT pg_reload_conf()");
    auto until = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    while (std::chrono::steady_clock::now() < until) {
        auto now = c.exec("SELECT pg_conf_load_time()::text").rows.at(0).at(0).value_or("");
        if (now != before) return;
        std::this_thread::sleep_for(std::chrono::milliseconds(2));
    }
    throw Error(Exit::server, "the server did not confirm the reload within 10 s");
}

// The files of one configure: postgresql.conf documents (edited by the command), and the
// pg_hba.conf and pg_ident.conf texts as the command leaves them.
struct Proposal {
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
void check_written(Context& ctx, const Cluster& cluster, const Instance& i, bool conf_changed,
                   bool hba_changed, bool ident_changed, bool& reload_sent, Outcome& out,
                   const Options& o, conf::FileSet& files) {
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
    if (!(out.pending_restart && o.restart)) return;
    throw_if_interrupted();
    ctx.driver().stop(cluster, StopMode::fast, ctx.settings().stop_timeout);
    try {
        ctx.driver().start(cluster, ctx.settings().start_timeout, ctx.progress);
    } catch (const std::exception& e) {
        // The server as it was: the files back, and started on them.
        std::string refusal = e.what();
        files.rollback();
        try {
            ctx.driver().start(cluster, ctx.settings().start_timeout, ctx.progress);
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
    out.restarted = true;
    out.pending_restart = false;
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
    const fs::path hba_file = i.data_dir / "pg_hba.conf";
    const fs::path ident_file = i.data_dir / "pg_ident.conf";
    conf::HbaFile hba = conf::HbaFile::parse(prop.hba, hba_file);
    conf::IdentFile ident = conf::IdentFile::parse(prop.ident, ident_file);
    ConfigureDraft draft(i, prop.docs, hba, ident, [&](const std::string& name) {
        return tree ? tree->file_to_edit(name) : main_conf;
    });
    for (const auto& [name, value] : prop.user) draft.user_sets(name, value);

    Pipeline p(ctx, reload ? "reload" : "configure", i);
    p.around(
        sdk::HookPoint::pre_configure, "write configuration",
        [&] {
            Cluster cluster = instances::cluster_for(ctx, i);
            auto contributed = draft.apply_parameters();
            if (!contributed.empty()) {
                std::map<std::string, std::string> values;
                for (const auto& name : contributed)
                    values[name] = draft.parameters().at(name).first;
                conf::validate_values(cluster.installation, cluster.owner, values);
                for (const auto& name : contributed) {
                    Change ch;
                    ch.name = name;
                    ch.after = values[name];
                    ch.effect = "reload";
                    ch.note = "contributed by plugin " + draft.parameters().at(name).second;
                    out.changes.push_back(ch);
                }
            }
            // Only what differs from the disk is written, as one set.
            conf::FileSet files(i.data_dir);
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
                    ctx.driver().reload(cluster);
                    out.reloaded = true;
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
            throw_if_interrupted();
            files.apply();
            out.changed = true;
            // From here on, any way out but the end puts every file back (FileSet's destructor
            // does when an exception leaves this block).
            bool reload_sent = false;
            try {
                check_written(ctx, cluster, i, conf_changed, hba_changed, ident_changed,
                              reload_sent, out, o, files);
                files.commit();
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
        },
        &draft);
    p.finish();
}

Proposal proposal_for(const Instance& i) {
    Proposal prop;
    prop.hba = read_text_file(i.data_dir / "pg_hba.conf");
    prop.ident = read_text_file(i.data_dir / "pg_ident.conf");
    return prop;
}

std::string canonical_name(const conf::ParameterCatalog& catalog, const std::string& name) {
    const conf::ParameterInfo* p = catalog.find(name);
    return p ? p->name : name;
}

std::string effect_of(const conf::ParameterCatalog& catalog, const std::string& name) {
    const conf::ParameterInfo* p = catalog.find(name);
    return p ? conf::change_effect(*p) : "reload";
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

Outcome set(Context& ctx, const Instance& i, const std::map<std::string, std::string>& values,
            const Options& o) {
    auto held = instances::lock(ctx, i);
    recover(ctx, i);
    Cluster cluster = instances::cluster_for(ctx, i);
    auto catalog = conf::ParameterCatalog::describe(cluster.installation, cluster.owner);
    try {
        for (const auto& [name, value] : values) catalog.check_settable(name);
        conf::validate_values(cluster.installation, cluster.owner, values);
    } catch (const Error& e) {
        // Refused before its pipeline: journaled all the same.
        if (!o.dry_run) journal_at_once(ctx, i, "configure", false, e.what(), {});
        throw;
    }

    conf::ConfTree tree = load(i);
    const fs::path auto_file = i.data_dir / "postgresql.auto.conf";
    Outcome out;
    Proposal prop = proposal_for(i);
    auto& docs = prop.docs;
    for (const auto& [name, value] : values) {
        prop.user[name] = value;
        Change ch;
        ch.name = canonical_name(catalog, name);
        ch.after = value;
        auto effective = tree.get(name);
        if (effective) ch.before = effective->value;
        ch.file = tree.file_to_edit(name);
        if (effective && effective->value == value) {
            ch.effect = "unchanged";
            out.changes.push_back(ch);
            continue;
        }
        if (effective && effective->file == auto_file)
            ch.note = "postgresql.auto.conf sets it too and wins (ALTER SYSTEM RESET " + ch.name +
                      " to let this value apply)";
        ch.effect = effect_of(catalog, name);
        if (!docs.count(ch.file)) docs.emplace(ch.file, conf::ConfDocument::read(ch.file));
        docs.at(ch.file).set(name, value);
        out.changes.push_back(ch);
    }
    if (docs.empty() || o.dry_run) return out;
    configure_instance(ctx, i, prop, out, o, &tree);
    return out;
}

Outcome remove(Context& ctx, const Instance& i, const std::vector<std::string>& names,
               bool delete_lines, const Options& o) {
    auto held = instances::lock(ctx, i);
    recover(ctx, i);
    Cluster cluster = instances::cluster_for(ctx, i);
    auto catalog = conf::ParameterCatalog::describe(cluster.installation, cluster.owner);
    conf::ConfTree tree = load(i);
    const fs::path auto_file = i.data_dir / "postgresql.auto.conf";
    Outcome out;
    Proposal prop = proposal_for(i);
    auto& docs = prop.docs;
    for (const auto& name : names) {
        prop.user[name] = std::nullopt;
        Change ch;
        ch.name = canonical_name(catalog, name);
        auto effective = tree.get(name);
        if (effective) ch.before = effective->value;
        ch.effect = "unchanged";
        // Every file of the tree but postgresql.auto.conf (which ALTER SYSTEM owns).
        for (const auto& file : tree.files()) {
            if (file == auto_file) continue;
            if (!docs.count(file)) docs.emplace(file, conf::ConfDocument::read(file));
            if (docs.at(file).remove(name, delete_lines)) {
                ch.effect = effect_of(catalog, name);
                ch.file = file;
            }
        }
        out.changes.push_back(ch);
    }
    // Keep only the documents that changed.
    for (auto it = docs.begin(); it != docs.end();) {
        if (it->second.print() == read_text_file(it->first))
            it = docs.erase(it);
        else
            ++it;
    }
    if (docs.empty() || o.dry_run) return out;
    configure_instance(ctx, i, prop, out, o, &tree);
    return out;
}

Outcome set_file(Context& ctx, const fs::path& file,
                 const std::map<std::string, std::string>& values, const std::string& version,
                 const Options& o) {
    Installation installation = select_installation(ctx.settings(), version);
    OsUser as = lookup_os_user(running_as_root() ? ctx.settings().owner : current_user_name());
    auto catalog = conf::ParameterCatalog::describe(installation, as);
    for (const auto& [name, value] : values) catalog.check_settable(name);
    conf::validate_values(installation, as, values);
    auto doc = conf::ConfDocument::read(file);
    Outcome out;
    for (const auto& [name, value] : values) {
        Change ch;
        ch.name = canonical_name(catalog, name);
        ch.file = file;
        ch.after = value;
        if (auto e = doc.get(name)) ch.before = e->value;
        if (ch.before == ch.after) {
            ch.effect = "unchanged";
        } else {
            ch.effect = effect_of(catalog, name);
            doc.set(name, value);
            out.changed = true;
        }
        out.changes.push_back(ch);
    }
    if (out.changed && !o.dry_run) write_like(save(file), doc.print());
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

namespace {

// Edits pg_hba.conf or pg_ident.conf through the configure pipeline.
template <typename File>
HbaOutcome edit_auth_file(Context& ctx, const Instance& i, const fs::path& file,
                          const std::function<void(File&)>& edit, bool dry_run, bool is_hba) {
    auto held = instances::lock(ctx, i);
    recover(ctx, i);
    Proposal prop = proposal_for(i);
    std::string& text = is_hba ? prop.hba : prop.ident;
    File parsed = File::parse(text, file);
    edit(parsed);
    std::string after = parsed.print();
    HbaOutcome out;
    if (after == text) return out;
    File::parse(after, file);  // what we write must read back
    out.changed = true;
    if (dry_run) return out;
    text = after;
    Outcome result;
    configure_instance(ctx, i, prop, result, {}, nullptr);
    out.reloaded = result.reloaded;
    return out;
}

}  // namespace

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
    return edit_auth_file<conf::HbaFile>(ctx, i, i.data_dir / "pg_hba.conf", edit, dry_run, true);
}

HbaOutcome edit_ident(Context& ctx, const Instance& i,
                      const std::function<void(conf::IdentFile&)>& edit, bool dry_run) {
    return edit_auth_file<conf::IdentFile>(ctx, i, i.data_dir / "pg_ident.conf", edit, dry_run,
                                           false);
}

}  // namespace pgforge::configuration
