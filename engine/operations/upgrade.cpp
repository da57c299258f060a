#include "engine/operations/upgrade.hpp"

#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>

#include "engine/conf/hba.hpp"
#include "engine/conf/parameters.hpp"
#include "engine/conf/pgconf.hpp"
#include "engine/core/error.hpp"
#include "engine/core/log.hpp"
#include "engine/core/process.hpp"
#include "engine/core/safe_fs.hpp"
#include "engine/core/text.hpp"
#include "engine/driver/installations.hpp"
#include "engine/driver/ports.hpp"
#include "engine/operations/configuration.hpp"
#include "engine/operations/instances.hpp"
#include "engine/operations/plugin_options.hpp"
#include "engine/operations/replication.hpp"
#include "engine/operations/stopped_scope.hpp"
#include "engine/pipeline/made.hpp"
#include "engine/pipeline/pipeline.hpp"
#include "engine/pipeline/steps.hpp"

namespace fs = std::filesystem;

namespace pgforge::instances {

UpgradeMethod parse_upgrade_method(const std::string& text) {
    if (text == "copy") return UpgradeMethod::copy;
    if (text == "link") return UpgradeMethod::link;
    if (text == "clone") return UpgradeMethod::clone;
    throw Error(Exit::usage, "unknown upgrade method '" + text + "'", "use link, clone or copy");
}

std::string to_string(UpgradeMethod method) {
    switch (method) {
        case UpgradeMethod::link:
            return "link";
        case UpgradeMethod::clone:
            return "clone";
        case UpgradeMethod::copy:
            break;
    }
    return "copy";
}

namespace {

// Journal markers of the upgrade (made rows of its entry on the old instance): the old's
// server was stopped for the upgrade (stopped_scope's marker, so that resume starts it again);
// pg_upgrade --link is about to run (the old may be disabled by it); pg_upgrade has finished
// (from there the new instance is kept, whatever happens).
constexpr const char* linking_marker = "upgrade linking";
constexpr const char* decided_marker = "upgrade decided";

// What pg_upgrade's --link does to the old cluster once it begins linking files: its control
// file renamed, so that it can never start on files the new cluster has changed.
bool linked_away(const fs::path& data_dir) {
    std::error_code ec;
    return !fs::exists(data_dir / "global" / "pg_control", ec) &&
           fs::exists(data_dir / "global" / "pg_control.old", ec);
}

std::string message_of(const ProcessResult& r) {
    std::string text = r.out;
    if (!r.err.empty()) text += (text.empty() ? "" : "\n") + r.err;
    while (!text.empty() && (text.back() == '\n' || text.back() == '\r')) text.pop_back();
    return tail_text(text);
}

// A port of the site's range that no inventoried instance has and nothing listens on, other
// than those in `taken`: for pg_upgrade's private servers and the old instance's new port.
int spare_port(Context& ctx, const std::set<int>& taken) {
    const auto& s = ctx.settings();
    std::vector<int> known = ctx.inventory().ports();
    std::set<int> used(known.begin(), known.end());
    used.insert(taken.begin(), taken.end());
    for (int p = s.port_min; p <= s.port_max; ++p)
        if (!used.count(p) && port_is_free(p)) return p;
    throw Error(
        Exit::conflict,
        "no free port between " + std::to_string(s.port_min) + " and " + std::to_string(s.port_max),
        "widen [postgresql] port_min/port_max in the settings file");
}

// The parameters that belong to one instance (its port, its sockets, its files), or to its
// backup repository (the new instance gets its own from its plugins): never carried over.
const std::set<std::string>& instance_specific() {
    static const std::set<std::string> names = {"port",
                                                "unix_socket_directories",
                                                "data_directory",
                                                "config_file",
                                                "hba_file",
                                                "ident_file",
                                                "external_pid_file",
                                                "archive_command",
                                                "archive_library",
                                                "restore_command",
                                                "primary_conninfo",
                                                "primary_slot_name"};
    return names;
}

bool names_old_instance(const std::string& value, const Instance& old) {
    for (const fs::path& p : {old.base_dir, old.data_dir, old.socket_dir, old.wal_dir})
        if (!p.empty() && value.find(p.string()) != std::string::npos) return true;
    return false;
}

// The old instance's settings (postgresql.conf, its includes and postgresql.auto.conf, as the
// server reads them) that the new one gets: those its installation knows, instance-specific
// ones aside. What is left out is said in `notes`.
std::map<std::string, std::string> carried_settings(const Instance& old,
                                                    const conf::ParameterCatalog& catalog,
                                                    std::vector<std::string>& notes) {
    std::map<std::string, std::string> out;
    for (const auto& [key, s] : configuration::load(old).all()) {
        if (instance_specific().count(key) || names_old_instance(s.value, old)) continue;
        if (key.find('.') == std::string::npos) {
            const conf::ParameterInfo* p = catalog.find(key);
            if (!p) {
                notes.push_back("setting " + s.name + " = " + s.value +
                                " is not carried over: the new installation does not know it");
                continue;
            }
            if (p->context == "internal") continue;
        }
        out[s.name] = s.value;
    }
    return out;
}

// The pg_hba.conf or pg_ident.conf text the old instance's server reads.
std::string auth_text(const Instance& old, bool hba) {
    auto files = conf::auth_file_paths(old.data_dir);
    return hba ? conf::read_auth_file(files.hba, files.hba_named_by)
               : conf::read_auth_file(files.ident, files.ident_named_by);
}

// pg_upgrade's step lines ("Checking cluster versions            ok") as progress: a step is
// shown as soon as its text arrives, before its "ok".
class StepProgress {
  public:
    explicit StepProgress(Progress progress) : progress_(std::move(progress)) {}
    void operator()(std::string_view piece) {
        if (!progress_) return;
        pending_.append(piece);
        if (auto nl = pending_.find_last_of('\n'); nl != std::string::npos)
            pending_.erase(0, nl + 1);
        std::string text = pending_;
        text.erase(text.find_last_not_of(" \t\r") + 1);
        text.erase(0, text.find_first_not_of(" \t"));
        if (text.empty() || text == shown_) return;
        shown_ = text;
        progress_("pg_upgrade: " + to_lower_first(text));
    }

  private:
    static std::string to_lower_first(std::string s) {
        if (!s.empty() && s[0] >= 'A' && s[0] <= 'Z') s[0] = char(s[0] - 'A' + 'a');
        return s;
    }
    Progress progress_;
    std::string pending_;
    std::string shown_;
};

// "15.18": the installation's version, as its programs say it.
std::string version_text(const Installation& i) {
    return std::to_string(i.version_info.major) + "." + std::to_string(i.version_info.minor);
}

struct Plan {
    Instance old;
    Installation old_installation;
    Installation new_installation;
    OsUser owner;
    std::string new_name;
};

// pg_upgrade of the new installation, as the owner, in `workdir` (where it writes its scripts;
// its logs go to the new data directory's pg_upgrade_output.d), on private ports and sockets.
Command pg_upgrade_command(const Plan& plan, const Instance& fresh, const UpgradeOptions& o,
                           const fs::path& workdir, int old_port, int new_port, bool check) {
    Command cmd;
    cmd.as = &plan.owner;
    cmd.cwd = workdir;
    cmd.argv = {plan.new_installation.program("pg_upgrade").string(),
                "--old-bindir=" + plan.old_installation.bindir.string(),
                "--new-bindir=" + plan.new_installation.bindir.string(),
                "--old-datadir=" + plan.old.data_dir.string(),
                "--new-datadir=" + fresh.data_dir.string(),
                "--username=" + plan.old.superuser,
                "--old-port=" + std::to_string(old_port),
                "--new-port=" + std::to_string(new_port),
                "--socketdir=" + fresh.socket_dir.string(),
                "--jobs=" + std::to_string(o.jobs)};
    // copy is pg_upgrade's default (its --copy option is newer than some installations).
    if (o.method == UpgradeMethod::link) cmd.argv.push_back("--link");
    if (o.method == UpgradeMethod::clone) cmd.argv.push_back("--clone");
    if (check) cmd.argv.push_back("--check");
    // Its messages in English (they are parsed); nothing of pgforge's own PG* variables.
    cmd.env = {"LC_ALL=C", "LANG=C",     "LANGUAGE",  "PGDATA",     "PGPORT",    "PGHOST",
               "PGUSER",   "PGDATABASE", "PGOPTIONS", "PGPASSWORD", "PGSERVICE", "PGPASSFILE"};
    return cmd;
}

// pg_upgrade's report on a refusal: its output, and the files it names for the details
// ("A list of the problem columns is in the file: .../tables_using_reg.txt").
std::string refusal_report(const ProcessResult& r) {
    std::string report = message_of(r);
    std::istringstream in(r.out + "\n" + r.err);
    std::set<std::string> seen;
    for (std::string line; std::getline(in, line);) {
        line.erase(0, line.find_first_not_of(" \t"));
        line.erase(line.find_last_not_of(" \t\r") + 1);
        if (line.empty() || line[0] != '/' || !seen.insert(line).second) continue;
        try {
            std::string text = safe_fs::read_file(line, 16 << 10);
            while (!text.empty() && text.back() == '\n') text.pop_back();
            report += "\n--- " + fs::path(line).filename().string() + ":\n" + text;
        } catch (const std::exception&) {
            // Not a file pg_upgrade wrote (or gone): its name is in the report already.
        }
    }
    return report;
}

// Removes the new instance: through a drop (its plugins and site hooks see it go), or, when the
// drop cannot run, what the create made (its server, its directory, its entry).
void remove_new(Context& ctx, const Instance& fresh) {
    try {
        if (ctx.inventory().find(fresh.version, fresh.name)) drop(ctx, fresh);
        return;
    } catch (const std::exception& e) {
        log::warn("instance " + fresh.qualified_name() + ": its drop failed (" + e.what() +
                  "); removing what was made");
    }
    undo_made(ctx, "server", fresh.data_dir.string());
    undo_made(ctx, "directory", fresh.base_dir.string());
    undo_made(ctx, "empty directory", fresh.base_dir.parent_path().string());
    undo_made(ctx, "empty directory", fresh.socket_dir.string());
    undo_made(ctx, "inventory entry", fresh.qualified_name());
}

// pg_upgrade's own servers (on the private ports) that a failed or killed run left.
void stop_upgrade_servers(const Instance& old, const Instance& fresh) {
    stop_server_at(fresh.data_dir);
    stop_server_at(old.data_dir);
}

// The statistics pg_upgrade does not carry: vacuumdb of the new installation as the owner.
Command analyze_command(const Plan& plan, const Instance& fresh) {
    Command cmd;
    cmd.as = &plan.owner;
    cmd.argv = {plan.new_installation.program("vacuumdb").string(),
                "--host=" + fresh.socket_dir.string(),
                "--port=" + std::to_string(fresh.port),
                "--username=" + fresh.superuser,
                "--all",
                "--analyze-in-stages"};
    cmd.env = {"LC_ALL=C", "LANG=C", "LANGUAGE", "PGDATABASE", "PGOPTIONS", "PGSERVICE"};
    return cmd;
}

std::string shell_words(const std::vector<std::string>& argv) {
    std::string out;
    for (const auto& a : argv) {
        bool plain = std::all_of(a.begin(), a.end(), [](char c) {
            return std::isalnum(static_cast<unsigned char>(c)) || std::strchr("-_=/.:,+@", c);
        });
        out += (out.empty() ? "" : " ") + (plain ? a : "'" + a + "'");
    }
    return out;
}

// A configure with no change of its own once an instance's port has moved while it was stopped:
// plugins contributed to the port's configure with the entry's previous port (the inventory
// follows at its end), and write their files again with the new one (the backup plugin's
// pgbackrest.conf names the port).
void contribute_again(Context& ctx, const Instance& instance) {
    configuration::Request again;
    again.run_hooks = true;
    configuration::configure(ctx, get(ctx, instance.qualified_name()), again);
}

}  // namespace

void check_not_linked_away(const Instance& i) {
    if (!linked_away(i.data_dir)) return;
    auto opts = nlohmann::json::parse(i.options.empty() ? "{}" : i.options, nullptr, false);
    std::string to = opts.is_object() ? opts.value("upgraded_to", std::string()) : std::string();
    throw Error(Exit::conflict,
                "instance " + i.qualified_name() + " cannot start: pg_upgrade --link gave its " +
                    "data files to " + (to.empty() ? "the upgraded instance" : "instance " + to) +
                    " (its global/pg_control is now pg_control.old)",
                "use " + (to.empty() ? std::string("the upgraded instance") : to) +
                    "; remove this one with: pgforge instance drop " + i.qualified_name());
}

UpgradeResult upgrade(Context& ctx, const Instance& old_ref, const UpgradeOptions& o) {
    const Settings& s = ctx.settings();
    // Everything that can be checked is checked before anything is made.
    if (o.jobs < 1 || o.jobs > 1024)
        throw Error(Exit::usage, "--jobs must be between 1 and 1024", "e.g. --jobs 4");
    // pg_upgrade upgrades a primary; a standby is made again from the upgraded primary.
    if (old_ref.role == "standby")
        throw Error(Exit::usage,
                    "instance " + old_ref.qualified_name() + " is a standby of " +
                        old_ref.upstream + ": pg_upgrade upgrades a primary",
                    "upgrade its primary, then make this standby again from the new one "
                    "(pgforge instance drop, then pgforge instance create --standby-for)");
    Plan plan;
    plan.old = old_ref;
    plan.old_installation = select_installation(s, old_ref.version);
    plan.new_installation = select_installation(s, o.version);
    const std::string new_version = plan.new_installation.major();
    if (plan.new_installation.version_info.major < plan.old_installation.version_info.major)
        throw Error(Exit::usage,
                    "instance " + old_ref.qualified_name() + " cannot be upgraded to version " +
                        new_version + ": it is older than " + old_ref.version,
                    "choose --version " + old_ref.version + " or newer");
    plan.new_name = o.name.empty() ? old_ref.name : o.name;
    check_instance_name(plan.new_name);
    if (new_version == old_ref.version && plan.new_name == old_ref.name)
        throw Error(Exit::usage,
                    "instance " + old_ref.qualified_name() +
                        " would be upgraded to itself: " + "version " + new_version + " is its own",
                    "name the new instance: --name NEW (or choose another --version)");
    if (ctx.inventory().find(new_version, plan.new_name))
        throw Error(Exit::conflict,
                    "instance " + new_version + "/" + plan.new_name + " already exists",
                    "choose another --name, or drop it first");
    plan.owner = lookup_os_user(old_ref.owner);
    if (!fs::exists(plan.new_installation.program("pg_upgrade")))
        throw Error(Exit::not_found,
                    "pg_upgrade is missing from " + plan.new_installation.bindir.string(),
                    "install the server package of PostgreSQL " + new_version);

    auto held = lock(ctx, old_ref);
    // The entry as it is now (the lock may have resumed something).
    Instance old = ctx.inventory().find(old_ref.version, old_ref.name).value_or(old_ref);
    plan.old = old;
    check_not_linked_away(old);

    UpgradeResult result;
    UpgradeReport& report = result.report;
    report.old_instance = old.qualified_name();
    report.new_instance = new_version + "/" + plan.new_name;
    report.old_version = version_text(plan.old_installation);
    report.new_version = version_text(plan.new_installation);
    report.method = to_string(o.method);
    report.check_only = o.check_only;

    // What the new instance is made with: the old one's creation options, settings, records
    // and plugin options.
    auto opts = nlohmann::json::parse(old.options.empty() ? "{}" : old.options, nullptr, false);
    if (!opts.is_object()) opts = nlohmann::json::object();
    CreateOptions co;
    co.name = plan.new_name;
    co.version = new_version;
    co.owner = old.owner;
    co.superuser = old.superuser;
    co.encoding = opts.value("encoding", std::string("UTF8"));
    co.locale = opts.value("locale", std::string());
    co.data_checksums = opts.value("data_checksums", false);
    co.auth_local = opts.value("auth_local", std::string());
    co.auth_host = opts.value("auth_host", std::string());
    co.start = false;
    co.upgraded_from = old.qualified_name();
    {
        auto catalog = conf::ParameterCatalog::describe(plan.new_installation, plan.owner);
        co.settings = carried_settings(old, catalog, report.notes);
    }
    const std::string hba_text = auth_text(old, true);
    const std::string ident_text = auth_text(old, false);
    // The old records replace the template's (the create parses them again at their place, and
    // its pre_configure lets plugins contribute to them).
    co.hba = [&](conf::HbaFile& f) { f = conf::HbaFile::parse(hba_text); };
    co.ident = [&](conf::IdentFile& f) { f = conf::IdentFile::parse(ident_text); };
    // Plugin options that name the old instance (a backup stanza chosen from its name) are its
    // own: the new instance's plugins choose theirs (a new stanza).
    for (const auto& [plugin, keys] : plugin_options::values(ctx, old))
        for (const auto& [key, value] : keys) {
            if (names_old_instance(value, old) ||
                value.find(old.qualified_name()) != std::string::npos ||
                value == old.version + "-" + old.name)
                report.notes.push_back("option " + plugin + "." + key + " = " + value + " names " +
                                       old.qualified_name() + ": not carried over");
            else
                co.plugin_options[plugin][key] = value;
        }

    // Its standbys keep following the old instance, which stops: they are made again.
    for (const Instance& standby : replication::standbys_of(ctx, old))
        if (standby.role == "standby")
            report.notes.push_back(
                "standby " + standby.qualified_name() + " follows " + old.qualified_name() +
                ", not the new instance: make it again "
                "(pgforge instance drop " +
                standby.qualified_name() + ", then pgforge instance create --standby-for " +
                plan.new_installation.major() + "/" + plan.new_name + ")");
    Instance fresh;
    fresh.name = plan.new_name;
    fresh.version = new_version;
    assign_instance_paths(s, fresh);

    Pipeline p(ctx, "upgrade", old);
    // The new instance, made by the create pipeline (pre/post init and configure hooks). Its
    // entry and directory are journaled here too: a kill at any later point removes it.
    bool made_new = false;
    // pg_upgrade proper has begun: a server on the old data directory is pg_upgrade's then (the
    // old one's own server, checked live by --check, is never stopped by the undo).
    bool upgrading = false;
    p.step("create " + report.new_instance, [&] {
        if (ctx.progress) ctx.progress("creating instance " + report.new_instance);
        // Undone newest first: the version directory (when the create made it) after the rest.
        p.made("empty directory", fresh.base_dir.parent_path().string());
        p.made("inventory entry", fresh.qualified_name());
        p.made("directory", fresh.base_dir.string());
        p.made("empty directory", fresh.socket_dir.string());
        fresh = create(ctx, co);
        made_new = true;
    });
    p.on_undo("instance " + fresh.qualified_name(), [&] {
        if (!made_new) return;
        if (upgrading) stop_upgrade_servers(old, fresh);
        // After --link began, the old data directory cannot start and the new one holds the
        // only whole copy: it is kept (the error says so).
        if (o.method == UpgradeMethod::link && linked_away(old.data_dir)) return;
        remove_new(ctx, fresh);
    });

    // pg_upgrade's working directory (its scripts) and its private socket directory.
    const fs::path workdir = fresh.base_dir / "pg_upgrade";
    p.step("pg_upgrade directories", [&] {
        make_owned_directory(workdir, plan.owner, fs::perms(0700));
        make_owned_directory(fresh.socket_dir, plan.owner, fs::perms(0700));
    });
    const int old_port = spare_port(ctx, {});
    const int new_port = spare_port(ctx, {old_port});

    p.step("pg_upgrade --check", [&] {
        if (ctx.progress) ctx.progress("checking with pg_upgrade --check");
        Command cmd = pg_upgrade_command(plan, fresh, o, workdir, old_port, new_port, true);
        cmd.on_stdout = StepProgress(ctx.progress);
        auto r = run_process(cmd);
        report.check_output = r.out;
        if (r.ok()) return;
        std::string why = refusal_report(r);
        if (o.method == UpgradeMethod::clone && why.find("clone") != std::string::npos)
            throw Error(Exit::failure,
                        "instance " + old.qualified_name() +
                            ": the file system cannot clone files (pg_upgrade --clone): " + why,
                        "use --method copy (or link); nothing was left behind");
        throw Error(Exit::failure,
                    "instance " + old.qualified_name() +
                        ": pg_upgrade --check refused the "
                        "upgrade to " +
                        report.new_instance + ":\n" + why,
                    "fix what it reports on " + old.qualified_name() +
                        ", then run the upgrade again; nothing was left behind");
    });
    if (o.check_only) {
        // Nothing is kept of a check: the new instance goes (its drop's hooks run).
        p.step("remove " + fresh.qualified_name(), [&] {
            made_new = false;
            remove_new(ctx, fresh);
        });
        p.finish();
        result.instance = fresh;
        return result;
    }

    // The old instance stops (pre_stop, post_stop): pg_upgrade needs both clusters stopped.
    report.old_was_running = running(ctx, old);
    if (report.old_was_running) p.made(stopped_for_work_marker, old.qualified_name());
    stop_step(ctx, p, StopMode::fast, std::nullopt);
    if (report.old_was_running)
        p.on_undo("start " + old.qualified_name(), [&] {
            if (linked_away(old.data_dir)) return;
            stop_upgrade_servers(old, fresh);
            // The old instance's lock is still held: its start is a step of this pipeline.
            start_server(ctx, p, cluster_for(ctx, old), s.start_timeout);
        });

    p.step("pg_upgrade", [&] {
        if (ctx.progress) ctx.progress("upgrading with pg_upgrade --" + report.method);
        if (o.method == UpgradeMethod::link) p.made(linking_marker, old.data_dir.string());
        // pg_upgrade starts both clusters on the private ports: stopped after a kill.
        p.made("server", fresh.data_dir.string());
        upgrading = true;
        Command cmd = pg_upgrade_command(plan, fresh, o, workdir, old_port, new_port, false);
        cmd.on_stdout = StepProgress(ctx.progress);
        auto r = run_process(cmd);
        if (r.ok()) return;
        std::string why = refusal_report(r);
        if (o.method == UpgradeMethod::link && linked_away(old.data_dir))
            throw Error(Exit::failure,
                        "instance " + old.qualified_name() + ": pg_upgrade --link failed after " +
                            "it had begun linking files: " + why,
                        "the old instance cannot start any more; instance " +
                            fresh.qualified_name() + " is kept with its logs in " +
                            (fresh.data_dir / "pg_upgrade_output.d").string() +
                            ": finish by hand, or restore from a backup");
        throw Error(Exit::failure,
                    "instance " + old.qualified_name() + ": pg_upgrade failed: " + why,
                    "the old instance is as it was; fix the cause and run the upgrade again");
    });
    // From here the new instance is the upgraded one: it is kept whatever happens.
    p.made(decided_marker, fresh.qualified_name());
    report.old_startable = !linked_away(old.data_dir);
    remove_made_tree(workdir);

    // The old instance is recorded as upgraded (and, after --link, not startable).
    opts["upgraded_to"] = fresh.qualified_name();
    if (!report.old_startable) opts["linked_away"] = true;
    old.options = opts.dump();
    p.finish_updating_entry();
    held.reset();

    // The port: the old instance moves to a spare one (stopped, through the configure pipeline,
    // so that the inventory never has two instances on one port), the new one takes its port.
    const int port = old.port;
    report.port = fresh.port;
    try {
        if (ctx.progress) ctx.progress("moving ports");
        {
            FileLock ports(s.prefix / "locks" / "ports.lock",
                           std::chrono::milliseconds(long(s.lock_timeout * 1000)), "port choice");
            int spare = spare_port(ctx, {});
            if (report.old_startable) {
                configuration::set(ctx, old, {{"port", std::to_string(spare)}});
                contribute_again(ctx, old);
            } else {
                // Its files cannot be checked by a server that cannot start: only the entry
                // moves (the data directory is no server's any more).
                Instance moved = old;
                moved.port = spare;
                Pipeline q(ctx, "configure", moved);
                q.step("port " + std::to_string(spare) + " (inventory only: not startable)", [] {});
                q.finish_updating_entry();
            }
            report.old_port = spare;
        }
        configuration::set(ctx, fresh, {{"port", std::to_string(port)}});
        fresh = get(ctx, fresh.qualified_name());
        contribute_again(ctx, fresh);
        report.port = fresh.port;
    } catch (const Error& e) {
        report.notes.push_back("instance " + fresh.qualified_name() + " keeps port " +
                               std::to_string(fresh.port) + ": " + e.what());
    }

    // The new instance starts (pre_start, post_start), then its statistics are rebuilt.
    if (ctx.progress) ctx.progress("starting " + fresh.qualified_name());
    start(ctx, fresh);
    Command analyze = analyze_command(plan, fresh);
    report.analyze_command = shell_words(analyze.argv);
    if (o.analyze) {
        if (ctx.progress) ctx.progress("rebuilding statistics (vacuumdb --analyze-in-stages)");
        auto r = run_process(analyze);
        report.analyzed = r.ok();
        if (!r.ok())
            report.notes.push_back("vacuumdb failed (" + message_of(r) + "); run it as " +
                                   plan.owner.name + ": " + report.analyze_command);
    }
    if (o.drop_old) {
        if (ctx.progress) ctx.progress("dropping " + old.qualified_name());
        drop(ctx, get(ctx, old.qualified_name()));
        report.old_dropped = true;
    }
    result.instance = get(ctx, fresh.qualified_name());
    return result;
}

std::string resume_upgrade(Context& ctx, const Instance& old,
                           const std::vector<JournalStep>& steps) {
    auto marked = [&](const char* marker) {
        return std::any_of(steps.begin(), steps.end(), [&](const JournalStep& st) {
            return st.kind == "made" && st.name == marker;
        });
    };
    std::string fresh_name;
    for (const auto& st : steps)
        if (st.kind == "made" && st.name == "inventory entry") fresh_name = st.message;
    if (marked(decided_marker))
        return "; pg_upgrade had finished: instance " + fresh_name +
               " is kept (start it: pgforge instance start " + fresh_name + ")";
    // pg_upgrade's servers first, once pg_upgrade proper had begun (its "server" row): before,
    // a server on the old data directory is the old instance's own, checked live.
    bool upgrading = false;
    for (auto st = steps.rbegin(); st != steps.rend(); ++st)
        if (st->kind == "made" && st->name == "server") {
            undo_made(ctx, "server", st->message);
            upgrading = true;
        }
    if (upgrading) stop_server_at(old.data_dir);
    if (marked(linking_marker) && linked_away(old.data_dir))
        return "; pg_upgrade --link had begun linking files: instance " + old.qualified_name() +
               " cannot start, instance " + fresh_name + " is kept to be finished by hand";
    // The new instance goes (as its create would be undone), then the old runs again.
    for (auto st = steps.rbegin(); st != steps.rend(); ++st) {
        if (st->kind != "made") continue;
        try {
            undo_made(ctx, st->name, st->message);
        } catch (const std::exception& e) {
            log::warn("undoing " + st->name + " " + st->message + ": " + e.what());
        }
    }
    return "; instance " + fresh_name + " was removed" + resume_stopped(ctx, old, steps);
}

}  // namespace pgforge::instances
