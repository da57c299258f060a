#include "engine/operations/replication.hpp"

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <set>
#include <sstream>
#include <thread>

#include "engine/conf/hba.hpp"
#include "engine/conf/pgconf.hpp"
#include "engine/conf/template.hpp"
#include "engine/core/error.hpp"
#include "engine/core/input.hpp"
#include "engine/core/interrupt.hpp"
#include "engine/core/log.hpp"
#include "engine/core/safe_fs.hpp"
#include "engine/core/text.hpp"
#include "engine/inventory/inventory.hpp"
#include "engine/operations/configuration.hpp"
#include "engine/operations/roles.hpp"
#include "engine/pg/connection.hpp"
#include "engine/pg/postmaster_pid.hpp"
#include "engine/pipeline/pipeline.hpp"

namespace fs = std::filesystem;

namespace pgforge::replication {

namespace {

constexpr const char* kDefaultRole = "replicator";
// The comment pgforge gives the replication roles it makes: such a role whose password no
// inventoried standby holds any more (its standbys dropped, a create undone) gets a new one.
constexpr const char* kRoleComment = "replication role made by pgforge";

// What a connection string may not carry: a password belongs in a file.
bool is_secret_keyword(const std::string& key) {
    return key == "password";
}

// Keywords pgforge sets itself in a standby's primary_conninfo.
bool is_own_keyword(const std::string& key) {
    return key == "host" || key == "hostaddr" || key == "port" || key == "user" ||
           key == "passfile" || key == "application_name" || key == "dbname" ||
           key == "replication";
}

bool looks_like_conninfo(const std::string& text) {
    return text.find('=') != std::string::npos || text.rfind("postgresql://", 0) == 0 ||
           text.rfind("postgres://", 0) == 0;
}

void check_slot_name(const std::string& slot) {
    bool ok =
        !slot.empty() && slot.size() <= 63 && std::all_of(slot.begin(), slot.end(), [](char c) {
            return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_';
        });
    if (!ok)
        throw Error(Exit::usage, "replication slot name '" + slot + "' is not valid",
                    "use 1 to 63 lower-case letters, digits and underscores");
}

// The password in an inventoried standby's passfile for `role` on `upstream`, if one has it.
std::optional<std::string> known_password(Context& ctx, const Instance& upstream,
                                          const std::string& role) {
    for (const Instance& s : standbys_of(ctx, upstream)) {
        try {
            auto text = safe_fs::read_file_if_exists(passfile_of(s),
                                                     safe_fs::who_controls(s.base_dir), 1 << 16);
            if (!text) continue;
            std::istringstream in(*text);
            for (std::string line; std::getline(in, line);)
                if (auto e = roles::detail::pgpass_parse(line); e && e->user == role)
                    return e->password;
        } catch (const std::exception& e) {
            log::debug("instance " + s.qualified_name() + ": passfile not read: " + e.what());
        }
    }
    return std::nullopt;
}

}  // namespace

std::string Upstream::display() const {
    if (local) return local->qualified_name();
    std::string out = "host=" + pg::conninfo_value(host) + " port=" + std::to_string(port);
    if (!user.empty()) out += " user=" + pg::conninfo_value(user);
    for (const auto& [key, value] : extra) out += " " + key + "=" + pg::conninfo_value(value);
    return out;
}

Upstream resolve_upstream(Context& ctx, const std::string& text, const std::string& role) {
    Upstream up;
    up.user = role.empty() ? kDefaultRole : role;
    if (!looks_like_conninfo(text)) {
        up.local = instances::get(ctx, text);
        // The standby connects as a remote one would: over TCP on the loopback.
        up.host = "127.0.0.1";
        up.port = up.local->port;
        return up;
    }
    for (auto& [key, value] : pg::parse_conninfo(text)) {
        if (is_secret_keyword(key))
            throw Error(Exit::usage,
                        "the connection string of --standby-for holds a password; pgforge "
                        "never keeps one there",
                        "remove it, and give the password in a file only you can read: "
                        "--password-file FILE (mode 0600)");
        if (key == "host" || key == "hostaddr") {
            if (up.host.empty() || key == "host") up.host = value;
        } else if (key == "port") {
            try {
                up.port = std::stoi(value);
            } catch (const std::exception&) {
                throw Error(Exit::usage, "port '" + value + "' of --standby-for is not a number");
            }
        } else if (key == "user") {
            if (role.empty()) up.user = value;
        } else if (!is_own_keyword(key)) {
            up.extra.emplace_back(key, value);
        }
    }
    if (up.host.empty())
        throw Error(Exit::usage, "the connection string of --standby-for names no host",
                    "give host=HOST (and port=PORT), or a local instance as VERSION/NAME");
    if (up.port == 0) up.port = 5432;
    return up;
}

fs::path passfile_of(const Instance& standby) {
    return standby.base_dir / "replication.pgpass";
}

std::string primary_conninfo(const Instance& standby, const Upstream& up, bool with_passfile) {
    std::string out = "host=" + pg::conninfo_value(up.host) + " port=" + std::to_string(up.port) +
                      " user=" + pg::conninfo_value(up.user);
    if (with_passfile) out += " passfile=" + pg::conninfo_value(passfile_of(standby).string());
    out += " application_name=" + pg::conninfo_value(standby.name);
    for (const auto& [key, value] : up.extra) out += " " + key + "=" + pg::conninfo_value(value);
    return out;
}

std::string primary_conninfo(const Instance& standby, const Upstream& up) {
    return primary_conninfo(standby, up, true);
}

std::vector<Instance> standbys_of(Context& ctx, const Instance& primary) {
    std::vector<Instance> out;
    for (Instance& i : ctx.inventory().list())
        if ((i.role == "standby" || i.role == "diverged") && i.upstream == primary.qualified_name())
            out.push_back(std::move(i));
    return out;
}

void drop_slot(Context& ctx, const Instance& primary, const std::string& slot) {
    if (slot.empty()) return;
    try {
        if (!instances::running(ctx, primary)) {
            log::warn("instance " + primary.qualified_name() + " is not running: its slot " + slot +
                      " stays; drop it later with SELECT pg_drop_replication_slot('" + slot + "')");
            return;
        }
        if (pg::drop_physical_slot(primary, slot))
            log::info("instance " + primary.qualified_name() + ": replication slot " + slot +
                      " dropped");
    } catch (const std::exception& e) {
        log::warn("instance " + primary.qualified_name() + ": replication slot " + slot +
                  " not dropped: " + e.what());
    }
}

void wait_streaming(Context& ctx, const Instance& standby, double timeout) {
    if (ctx.progress) ctx.progress("waiting until it streams");
    auto until = std::chrono::steady_clock::now() + std::chrono::duration<double>(timeout);
    std::string last;
    for (double pause = 2;; pause = std::min(pause * 1.5, 100.0)) {
        throw_if_interrupted();
        try {
            pg::Connection c(standby);
            auto r = c.exec("SELECT status FROM pg_stat_wal_receiver");
            if (!r.rows.empty() && r.rows[0][0] && *r.rows[0][0] == "streaming") return;
            last = r.rows.empty() || !r.rows[0][0] ? "no WAL receiver" : *r.rows[0][0];
        } catch (const Error& e) {
            if (e.code() == Exit::interrupted) throw;
            last = e.what();
        }
        if (std::chrono::steady_clock::now() > until) break;
        std::this_thread::sleep_for(std::chrono::duration<double, std::milli>(pause));
    }
    std::string tail;
    try {
        tail = tail_file(standby.log_file, 10);
    } catch (const std::exception&) {
    }
    throw Error(
        Exit::failure,
        "instance " + standby.qualified_name() + " does not stream from " + standby.upstream +
            " after " + std::to_string(int(timeout)) + " s (" + last + ")" +
            (tail.empty() ? "" : "\nlast lines of " + standby.log_file.string() + ":\n" + tail),
        "see its log: pgforge instance logs " + standby.qualified_name());
}

std::map<std::string, std::string> configure_as_standby(
    const Cluster& standby, const Upstream& upstream, const std::string& slot,
    const std::optional<std::string>& password) {
    const Instance& i = standby.instance;
    if (password)
        write_file_atomically(
            passfile_of(i),
            roles::detail::pgpass_line(
                {upstream.host, std::to_string(upstream.port), "*", upstream.user, *password}) +
                "\n",
            &standby.owner, fs::perms(0600));
    write_file_atomically(i.data_dir / "standby.signal", "", &standby.owner, fs::perms(0600));
    std::error_code ec;
    bool with_passfile = password.has_value() || fs::exists(passfile_of(i), ec);
    return {{"primary_conninfo", primary_conninfo(i, upstream, with_passfile)},
            {"primary_slot_name", slot}};
}

std::string inherited_settings(const std::string& conf_text,
                               const std::vector<std::string>& also_drop) {
    static const std::set<std::string> upstreams_own = {"port",
                                                        "unix_socket_directories",
                                                        "primary_conninfo",
                                                        "primary_slot_name",
                                                        "config_file",
                                                        "hba_file",
                                                        "ident_file",
                                                        "external_pid_file",
                                                        "cluster_name",
                                                        "data_directory"};
    std::set<std::string> drop(upstreams_own);
    for (const auto& name : also_drop) drop.insert(to_lower(name));
    auto doc = conf::ConfDocument::parse(conf_text);
    std::string out;
    // The last occurrence wins, as the server reads the file.
    std::map<std::string, std::string> seen;
    std::vector<std::string> order;
    for (const auto& e : doc.entries()) {
        std::string name = to_lower(e.name);
        if (drop.count(name)) continue;
        if (!seen.count(name)) order.push_back(name);
        seen[name] = e.raw_value;
    }
    for (const auto& name : order) out += name + " = " + seen[name] + "\n";
    return out;
}

StandbyPlan plan_standby(Context& ctx, const std::string& standby_name, const std::string& version,
                         const StandbyOptions& o) {
    StandbyPlan plan;
    // The role: --replication-role, else the conninfo's user, else replicator.
    plan.upstream = resolve_upstream(ctx, o.upstream, o.role);
    plan.role = plan.upstream.user;
    if (!o.password_file.empty())
        plan.password = read_secret_line(o.password_file, "replication password file");
    if (!plan.upstream.local) {
        // Another host: its role, record and slot are its administrator's; a slot is made by the
        // base backup when one is asked for.
        plan.slot = o.slot;
        if (!plan.slot.empty()) check_slot_name(plan.slot);
        plan.backup_creates_slot = !plan.slot.empty();
        return plan;
    }
    const Instance& up = *plan.upstream.local;
    if (up.qualified_name() == version + "/" + standby_name)
        throw Error(Exit::usage, "an instance cannot be its own standby");
    if (up.version != version)
        throw Error(Exit::usage,
                    "instance " + up.qualified_name() + " is PostgreSQL " + up.version +
                        ", and a standby runs the same major version as its primary",
                    "create the standby with --version " + up.version);
    if (!instances::running(ctx, up))
        throw Error(Exit::stopped, "instance " + up.qualified_name() + " is not running",
                    "start it: pgforge instance start " + up.qualified_name());
    plan.slot = o.slot.empty() ? standby_name : o.slot;
    check_slot_name(plan.slot);
    pg::Connection c(up);
    auto slot = c.exec("SELECT active FROM pg_replication_slots WHERE slot_name = $1", {plan.slot});
    if (!slot.rows.empty())
        throw Error(
            Exit::conflict,
            "instance " + up.qualified_name() + " already has a replication slot " + plan.slot,
            "choose another with --slot, or drop it there: SELECT "
            "pg_drop_replication_slot('" +
                plan.slot + "')");
    bool in_recovery = false;
    if (auto r = c.exec("SELECT pg_is_in_recovery()"); !r.rows.empty() && r.rows[0][0])
        in_recovery = *r.rows[0][0] == "t";
    auto role = c.exec(
        "SELECT coalesce(shobj_description(oid, 'pg_authid'), '') FROM pg_roles WHERE rolname = $1",
        {plan.role});
    const bool exists = !role.rows.empty();
    const bool ours = exists && role.rows[0][0] && *role.rows[0][0] == kRoleComment;
    if (!plan.password && exists) plan.password = known_password(ctx, up, plan.role);
    if (!plan.password) {
        if (exists && !ours)
            throw Error(Exit::usage,
                        "role " + plan.role + " exists on " + up.qualified_name() +
                            " and pgforge does not know its password",
                        "give it in a file only you can read (--password-file FILE), or choose "
                        "another role with --replication-role");
        plan.password = random_hex(24);
    }
    // A cascading standby's upstream is read-only: the role comes from its primary.
    plan.create_role = !in_recovery;
    if (in_recovery && !exists)
        throw Error(Exit::usage,
                    "role " + plan.role + " does not exist on " + up.qualified_name() +
                        ", a standby, where it cannot be made",
                    "make it on the primary first, or stream from the primary");
    return plan;
}

void prepare_upstream(Context& ctx, Pipeline& p, const StandbyPlan& plan) {
    if (!plan.upstream.local) return;
    const Instance& up = *plan.upstream.local;
    if (plan.create_role)
        p.step("replication role on " + up.qualified_name(), [&] {
            if (ctx.progress) ctx.progress("preparing " + up.qualified_name());
            roles::Role r;
            r.name = plan.role;
            r.login = true;
            r.replication = true;
            r.password = plan.password;
            roles::apply(ctx, up, r);
            pg::Connection c(up);
            c.exec("COMMENT ON ROLE " + c.quote_identifier(plan.role) + " IS " +
                   c.quote_literal(kRoleComment));
        });
    p.step("pg_hba.conf record on " + up.qualified_name(), [&] {
        // Its own record, first, so that no earlier record decides otherwise for it.
        conf::HbaRecord record = conf::HbaRecord::parse_fields(
            {"host", "replication", plan.role, "127.0.0.1/32", "scram-sha-256"});
        configuration::edit_hba(ctx, up, [&](conf::HbaFile& hba) {
            for (const auto& r : hba.records())
                if (r.same_as(record)) return;
            hba.insert(0, record);
        });
    });
    p.step("replication slot " + plan.slot + " on " + up.qualified_name(), [&] {
        p.made("replication slot", up.qualified_name() + " " + plan.slot);
        pg::Connection c(up);
        // Reserved now, so that the WAL from the backup's start on is kept for the standby.
        c.exec("SELECT pg_create_physical_replication_slot($1, true)", {plan.slot});
    });
    p.on_undo("replication slot " + plan.slot,
              [&ctx, up, slot = plan.slot] { drop_slot(ctx, up, slot); });
}

std::map<std::string, std::string> make_standby_data(Context& ctx, const Cluster& standby,
                                                     const StandbyPlan& plan) {
    const Instance& i = standby.instance;
    const Upstream& up = plan.upstream;
    // The passfile first: the base backup authenticates with it.
    if (plan.password)
        write_file_atomically(passfile_of(i),
                              roles::detail::pgpass_line({up.host, std::to_string(up.port), "*",
                                                          up.user, *plan.password}) +
                                  "\n",
                              &standby.owner, fs::perms(0600));
    BaseBackupOptions b;
    b.conninfo = {{"host", up.host}, {"port", std::to_string(up.port)}, {"user", up.user}};
    if (plan.password) b.conninfo.emplace_back("passfile", passfile_of(i).string());
    b.conninfo.emplace_back("application_name", i.name);
    for (const auto& kv : up.extra) b.conninfo.push_back(kv);
    b.slot = plan.slot;
    b.create_slot = plan.backup_creates_slot;
    b.show_progress = !ctx.quiet;
    ctx.driver().base_backup(standby, b, ctx.progress);
    return configure_as_standby(standby, up, plan.slot, std::nullopt);
}

}  // namespace pgforge::replication
