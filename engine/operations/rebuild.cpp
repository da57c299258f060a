// instance rebuild: an old primary (diverged) made a standby of the instance promoted in its
// place. See promote.hpp.
#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <map>
#include <sstream>

#include "engine/core/error.hpp"
#include "engine/core/log.hpp"
#include "engine/core/process.hpp"
#include "engine/core/progress_line.hpp"
#include "engine/core/safe_fs.hpp"
#include "engine/core/text.hpp"
#include "engine/inventory/inventory.hpp"
#include "engine/operations/configuration.hpp"
#include "engine/operations/instances.hpp"
#include "engine/operations/promote.hpp"
#include "engine/operations/replication.hpp"
#include "engine/pg/connection.hpp"
#include "engine/pipeline/made.hpp"
#include "engine/pipeline/pipeline.hpp"
#include "engine/pipeline/steps.hpp"

namespace fs = std::filesystem;

namespace pgforge::promote {
namespace {

// The journal marker of a rebuild that sets the data directory aside for a base backup (its
// target: the data directory; the previous one is at aside_of(data directory)).
constexpr const char* aside_marker = "data directory set aside";

// Where a base backup keeps the previous data directory until the new one runs.
fs::path aside_of(const fs::path& data_dir) {
    return data_dir.parent_path() / (data_dir.filename().string() + ".pgforge-rebuild-previous");
}

// The configuration files of the instance itself, which pg_rewind and pg_basebackup replace
// with the source's (its port, socket directory and log file): read before, written back after.
const char* const own_files[] = {"postgresql.conf", "pg_hba.conf", "pg_ident.conf",
                                 "postgresql.auto.conf"};

// Renames `from` to `to`, both in a directory the owner controls, as the owner: whatever the
// owner puts there, root renames nothing of anyone else's.
void rename_as_owner(const OsUser& owner, const fs::path& from, const fs::path& to) {
    const std::string a = from.string(), b = to.string();
    // Not root: pgforge is the owner already (and could not become anyone else).
    safe_fs::ChildResult r;
    if (!running_as_root()) {
        if (::rename(a.c_str(), b.c_str()) != 0) r = {errno, 1};
    } else {
        r = safe_fs::run_as(owner, [&]() -> safe_fs::ChildResult {
            if (::rename(a.c_str(), b.c_str()) != 0) return {errno, 1};
            return {};
        });
    }
    if (r.error != 0)
        throw Error(Exit::failure,
                    "cannot rename " + a + " to " + b + " as " + owner.name + ": " +
                        std::string(std::strerror(r.error)),
                    "see that " + from.parent_path().string() + " belongs to " + owner.name);
}

// What a program said, without its progress lines (pg_rewind --progress).
std::string message_of(const ProcessResult& r) {
    std::string text;
    std::istringstream in(r.err);
    for (std::string line; std::getline(in, line, '\n');) {
        if (auto cr = line.rfind('\r'); cr != std::string::npos) line = line.substr(cr + 1);
        if (line.find(" kB (") != std::string::npos || line.empty()) continue;
        text += line + "\n";
    }
    if (text.empty()) text = r.out;
    while (!text.empty() && (text.back() == '\n' || text.back() == '\r')) text.pop_back();
    return tail_text(text);
}

// A program of the installation run as the owner, in English, nothing of pgforge's PG*.
Command owner_command(const Cluster& c, const std::string& program) {
    Command cmd;
    cmd.as = &c.owner;
    cmd.argv = {c.installation.program(program).string()};
    cmd.env = {"LC_ALL=C", "LANG=C", "LANGUAGE", "PGDATA",
               "PGPORT",   "PGHOST", "PGUSER",   "PGPASSFILE"};
    return cmd;
}

// Why pg_rewind cannot rewind the stopped data directory ("" when it can): it needs hint bits
// WAL-logged, by data checksums or wal_log_hints, as its control file says.
std::string rewind_obstacle(const Cluster& c) {
    Command cmd = owner_command(c, "pg_controldata");
    cmd.argv.push_back("--pgdata=" + c.instance.data_dir.string());
    auto r = run_process(cmd);
    if (!r.ok()) return "pg_controldata failed: " + message_of(r);
    auto field = [&](const std::string& name) {
        std::istringstream in(r.out);
        for (std::string line; std::getline(in, line);)
            if (line.rfind(name + ":", 0) == 0) {
                std::string v = line.substr(name.size() + 1);
                v.erase(0, v.find_first_not_of(" \t"));
                return v;
            }
        return std::string();
    };
    const std::string checksums = field("Data page checksum version");
    const std::string hints = field("wal_log_hints setting");
    if ((checksums.empty() || checksums == "0") && hints != "on")
        return "the instance has neither data checksums nor wal_log_hints = on";
    return {};
}

// A conninfo for programs run as the owner: the source's unix socket, its superuser (peer
// authentication maps the owner to it), never a password.
std::string source_conninfo(const Instance& source) {
    return "host=" + pg::conninfo_value(source.socket_dir.string()) +
           " port=" + std::to_string(source.port) +
           " user=" + pg::conninfo_value(source.superuser) + " dbname=postgres";
}

// The replication role a standby of `source` connects as, and its password: what the source
// itself used when it was a standby (its passfile; the role and its password came with the
// catalog it was made from), else the default role without a password.
struct Credentials {
    std::string role = "replicator";
    std::optional<std::string> password;
};

Credentials credentials_of(const Instance& source) {
    Credentials c;
    const fs::path file = replication::passfile_of(source);
    std::optional<std::string> text;
    try {
        text = safe_fs::read_file_if_exists(file, safe_fs::who_controls(file), 64 << 10);
    } catch (const Error&) {
    }
    if (!text) return c;
    std::istringstream in(*text);
    for (std::string line; std::getline(in, line);) {
        if (line.empty() || line[0] == '#') continue;
        // host:port:database:user:password, with \: and \\ escaped.
        std::vector<std::string> fields(1);
        for (size_t k = 0; k < line.size(); ++k) {
            if (line[k] == '\\' && k + 1 < line.size())
                fields.back() += line[++k];
            else if (line[k] == ':' && fields.size() < 5)
                fields.emplace_back();
            else
                fields.back() += line[k];
        }
        if (fields.size() < 5 || fields[3].empty() || fields[3] == "*") continue;
        c.role = fields[3];
        c.password = fields[4];
        break;
    }
    return c;
}

bool in_recovery(const Instance& i) {
    pg::Connection c(i);
    auto r = c.exec("SELECT pg_is_in_recovery()");
    return r.rows.empty() || r.rows[0][0].value_or("t") == "t";
}

}  // namespace

RebuildOutcome rebuild(Context& ctx, const Instance& inst, const std::string& source_ref,
                       std::optional<double> timeout) {
    Instance source = instances::get(ctx, source_ref);
    const std::string q = inst.qualified_name(), sq = source.qualified_name();
    if (sq == q)
        throw Error(Exit::usage, "instance " + q + " cannot be rebuilt from itself",
                    "name the primary it should follow with --from");
    if (source.version != inst.version)
        throw Error(Exit::usage,
                    "instance " + sq + " is PostgreSQL " + source.version + ", " + q + " is " +
                        inst.version,
                    "a standby follows a primary of its own major version");
    if (source.owner != inst.owner)
        throw Error(
            Exit::usage,
            "instance " + sq + " belongs to " + source.owner + ", " + q + " to " + inst.owner,
            "pg_rewind and pg_basebackup run as the owner, who must be able to reach "
            "the source as its superuser: rebuild from an instance of the same owner");
    auto held = instances::lock(ctx, inst);
    Inventory& inv = ctx.inventory();
    Instance i = inv.find(inst.version, inst.name).value_or(inst);
    // What may be rebuilt: a diverged instance, or a standby whose upstream is gone (dropped,
    // or itself diverged or a standby now: a failover left it behind). A primary never: its
    // data would be replaced by another's.
    if (i.role == "primary")
        throw Error(
            Exit::usage,
            "instance " + q + " is a primary: a rebuild would replace its data with " + sq + "'s",
            "rebuild a diverged instance (the old primary after a promote), or drop "
            "this one first");
    if (i.role == "standby" && !i.upstream.empty() && i.upstream.find('=') == std::string::npos) {
        std::optional<Instance> up;
        try {
            up = instances::get(ctx, i.upstream);
        } catch (const Error&) {
        }
        if (up && up->role == "primary")
            throw Error(Exit::usage,
                        "instance " + q + " is a standby of " + up->qualified_name() +
                            ", which is still a primary: there is nothing to rebuild",
                        "a rebuild follows a promotion: promote a standby first (pgforge "
                        "instance promote), then rebuild the instances it left behind");
    }
    if (source.role != "primary")
        throw Error(Exit::usage,
                    "instance " + sq + " is not a primary (its role is " + source.role + ")",
                    "rebuild from the primary, the instance promoted in place of " + q);
    pg::require_running(source);
    if (in_recovery(source))
        throw Error(Exit::usage, "instance " + sq + " is in recovery: it is not a primary yet",
                    "promote it first: pgforge instance promote " + sq);

    const fs::path aside = aside_of(i.data_dir);
    std::error_code ec;
    if (fs::exists(aside, ec))
        throw Error(Exit::conflict,
                    "instance " + q + ": " + aside.string() +
                        " is there, the data directory a finished rebuild kept aside",
                    "remove it once you no longer need it, then run the rebuild again");
    const double wait = timeout.value_or(ctx.settings().start_timeout);
    Cluster cluster = instances::cluster_for(ctx, i);
    // What the standby needs of the source, decided before anything is made, as a standby's
    // create decides it: the replication role (the one the source itself streamed with, which
    // came with its catalog), its password (the source's passfile, else a new one), a slot named
    // after the instance and free there.
    const Credentials cred = credentials_of(source);
    replication::StandbyOptions wanted;
    wanted.upstream = sq;
    wanted.role = cred.role;
    replication::StandbyPlan plan = replication::plan_standby(ctx, i.name, i.version, wanted);
    if (cred.password) plan.password = cred.password;
    RebuildOutcome out;

    Pipeline p(ctx, "rebuild", i);
    instances::stop_step(ctx, p, StopMode::fast, timeout);
    // The source made ready first (role, pg_hba.conf record, slot reserving WAL from now on),
    // through its own pipelines; undone if the rebuild fails.
    replication::prepare_upstream(ctx, p, plan);

    // The instance's own configuration, put back after the source's copy replaced it.
    std::map<std::string, std::string> own;
    p.around(sdk::HookPoint::pre_init, "data directory from " + sq, [&] {
        for (const char* name : own_files)
            if (auto text = safe_fs::read_file_if_exists(i.data_dir / name,
                                                         safe_fs::who_controls(i.data_dir / name)))
                own[name] = *text;
        out.rewind_refused = rewind_obstacle(cluster);
        if (out.rewind_refused.empty()) {
            try {
                // A source promoted moments ago may not have written its new timeline to its
                // control file yet (no checkpoint since): pg_rewind, which reads it there, would
                // find both on one timeline and rewind nothing.
                p.step("checkpoint on " + sq, [&] { pg::Connection(source).exec("CHECKPOINT"); });
                p.step("pg_rewind", [&] {
                    if (ctx.progress) ctx.progress("rewinding from " + sq);
                    Command cmd = owner_command(cluster, "pg_rewind");
                    cmd.argv.push_back("--target-pgdata=" + i.data_dir.string());
                    cmd.argv.push_back("--source-server=" + source_conninfo(source));
                    if (!ctx.quiet) {
                        cmd.argv.push_back("--progress");
                        cmd.on_stderr = ProgressLine("rewinding from " + sq);
                    }
                    auto r = run_process(cmd);
                    if (!r.ok()) throw Error(Exit::failure, "pg_rewind failed: " + message_of(r));
                });
                out.method = "pg_rewind";
            } catch (const Error& e) {
                if (e.code() == Exit::interrupted) throw;
                out.rewind_refused = e.what();
            }
        }
        if (out.method.empty()) {
            if (!i.wal_dir.empty())
                throw Error(Exit::failure,
                            "instance " + q + " cannot be rebuilt with a base backup: " +
                                out.rewind_refused + ", and its WAL directory " +
                                i.wal_dir.string() + " is apart from its data directory",
                            "set wal_log_hints = on (pgforge conf set) on the source so that "
                            "its next diverged instance can be rewound, or drop and create " +
                                q + " again as a standby");
            // The previous data directory stays, under another name, until the new one runs.
            p.made(aside_marker, i.data_dir.string());
            rename_as_owner(cluster.owner, i.data_dir, aside);
            p.on_undo("previous data directory put back", [&] {
                stop_server_at(i.data_dir);
                remove_made_tree(i.data_dir);
                rename_as_owner(cluster.owner, aside, i.data_dir);
            });
            // As a standby's create takes it: the passfile, then pg_basebackup through the
            // slot made on the source, as the replication role.
            p.step("base backup", [&] { replication::make_standby_data(ctx, cluster, plan); });
            out.method = "base backup";
        }
        p.step("own configuration files", [&] {
            for (const auto& [name, text] : own)
                safe_fs::write_file(i.data_dir / name, text, &cluster.owner, 0600);
        });
    });

    // A standby of the source: its passfile, standby.signal, primary_conninfo and
    // primary_slot_name (written into the instance's own postgresql.conf, the server stopped: no
    // configure pipeline, so no pre_configure; the plugins' contributions are in the files kept).
    p.step("standby configuration", [&] {
        auto settings =
            replication::configure_as_standby(cluster, plan.upstream, plan.slot, plan.password);
        configuration::set_file(ctx, i.data_dir / "postgresql.conf", settings, i.version);
    });
    p.around(sdk::HookPoint::pre_start, "start", [&] { start_server(ctx, p, cluster, wait); });
    // A standby that does not stream is not left running as one: the instance stays diverged.
    p.on_undo("stop the server", [&] { stop_server_at(i.data_dir); });
    p.step("streaming from " + sq, [&] {
        if (ctx.progress) ctx.progress("waiting until it streams");
        replication::wait_streaming(ctx, i, wait);
    });
    i.role = "standby";
    i.upstream = sq;
    i.slot = plan.slot;
    p.finish_updating_entry();
    out.rebuilt = i;
    if (out.method == "base backup") {
        try {
            remove_made_tree(aside);
        } catch (const std::exception& x) {
            out.kept_aside_removed = false;
            log::warn("instance " + q + ": the previous data directory " + aside.string() +
                      " could not be removed: " + x.what());
        }
    }
    return out;
}

std::string resume_rebuild(Context& ctx, const Instance& i, const std::vector<JournalStep>& steps) {
    std::string done;
    // The slot it made on the source would keep WAL there for a standby that is not one.
    for (auto st = steps.rbegin(); st != steps.rend(); ++st) {
        if (st->kind != "made" || st->name != "replication slot") continue;
        try {
            undo_made(ctx, st->name, st->message);
            done += "; its replication slot (" + st->message + ") was dropped";
        } catch (const std::exception& x) {
            log::warn("instance " + i.qualified_name() + ": " + x.what());
            done += std::string("; its replication slot could not be dropped: ") + x.what();
        }
    }
    const bool set_aside = std::any_of(steps.begin(), steps.end(), [](const JournalStep& st) {
        return st.kind == "made" && st.name == aside_marker;
    });
    const fs::path aside = aside_of(i.data_dir);
    std::error_code ec;
    if (!set_aside || !fs::exists(aside, ec)) return done;
    try {
        OsUser owner = lookup_os_user(i.owner);
        stop_server_at(i.data_dir);
        remove_made_tree(i.data_dir);
        rename_as_owner(owner, aside, i.data_dir);
        return done + "; its previous data directory was put back (the instance is stopped)";
    } catch (const std::exception& x) {
        log::warn("instance " + i.qualified_name() +
                  ": the data directory an interrupted rebuild set aside could not be put back: " +
                  x.what());
        return done + "; the data directory it set aside (" + aside.string() +
               ") could not be put back: " + x.what();
    }
}

}  // namespace pgforge::promote
