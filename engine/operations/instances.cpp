#include "engine/operations/instances.hpp"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <pwd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <fstream>
#include <functional>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>

#include "engine/conf/parameters.hpp"
#include "engine/conf/template.hpp"
#include "engine/core/error.hpp"
#include "engine/core/input.hpp"
#include "engine/core/log.hpp"
#include "engine/core/safe_fs.hpp"
#include "engine/inventory/inventory.hpp"
#include "engine/operations/configuration.hpp"
#include "engine/operations/plugin_options.hpp"
#include "engine/operations/promote.hpp"
#include "engine/operations/replication.hpp"
#include "engine/operations/server.hpp"
#include "engine/operations/stopped_scope.hpp"
#include "engine/operations/upgrade.hpp"
#include "engine/pg/postmaster_pid.hpp"
#include "engine/pipeline/configure_draft.hpp"
#include "engine/pipeline/made.hpp"
#include "engine/pipeline/pipeline.hpp"
#include "engine/pipeline/plugin_host.hpp"
#include "engine/pipeline/steps.hpp"

namespace fs = std::filesystem;

namespace pgforge {

namespace instances {

void check_port_available(Context& ctx, int port, const Instance* self, const std::string& hint) {
    // Read before anything is written: a refused port leaves no inventory, lock or journal row.
    std::error_code ec;
    if (fs::exists(ctx.settings().inventory_file(), ec))
        for (const Instance& other : ctx.inventory().list())
            if (other.port == port && (!self || other.qualified_name() != self->qualified_name()))
                throw Error(Exit::conflict,
                            "port " + std::to_string(port) + " belongs to instance " +
                                other.qualified_name(),
                            hint);
    if (!port_is_free(port))
        throw Error(Exit::conflict, "port " + std::to_string(port) + " is in use on this machine",
                    hint);
}

namespace {

int choose_port(Context& ctx, int requested, bool allow_privileged = false) {
    if (requested != 0) check_port(requested, allow_privileged, "port");
    std::vector<int> taken;
    // Read before anything is written: a refused port leaves no inventory, lock or journal row.
    std::error_code ec;
    if (fs::exists(ctx.settings().inventory_file(), ec)) taken = ctx.inventory().ports();
    std::set<int> used(taken.begin(), taken.end());
    if (requested != 0) {
        check_port_available(ctx, requested, nullptr,
                             "choose another port, or leave --port out to get a free one");
        return requested;
    }
    const auto& s = ctx.settings();
    for (int p = s.port_min; p <= s.port_max; ++p)
        if (!used.count(p) && port_is_free(p)) return p;
    throw Error(
        Exit::conflict,
        "no free port between " + std::to_string(s.port_min) + " and " + std::to_string(s.port_max),
        "widen [postgresql] port_min/port_max in the settings file, or pass --port");
}

// The settings initdb wrote (locale, shared memory, time zone), without comments.
std::string active_settings(const std::string& conf) {
    std::istringstream in(conf);
    std::string out, line;
    while (std::getline(in, line)) {
        auto start = line.find_first_not_of(" \t");
        if (start == std::string::npos || line[start] == '#') continue;
        // Drop a trailing comment that is outside quotes.
        bool quoted = false;
        size_t end = line.size();
        for (size_t k = start; k < line.size(); ++k) {
            if (line[k] == '\'') quoted = !quoted;
            if (line[k] == '#' && !quoted) {
                end = k;
                break;
            }
        }
        std::string s = line.substr(start, end - start);
        s.erase(s.find_last_not_of(" \t") + 1);
        out += s + "\n";
    }
    return out;
}

std::string auth_local_entry(const std::string& method) {
    // peer and ident map through the pgforge ident map so root and the owner are superuser.
    return method == "peer" || method == "ident" ? method + " map=pgforge" : method;
}

void check_auth_method(const std::string& method, const std::string& option) {
    static const std::set<std::string> known = {
        "trust", "reject", "scram-sha-256", "md5",  "password", "peer", "ident",
        "gss",   "sspi",   "pam",           "ldap", "radius",   "cert"};
    if (!known.count(method))
        throw Error(Exit::usage, "unknown authentication method '" + method + "' for " + option,
                    "use peer, scram-sha-256, md5, trust, reject, ...");
}

// The three files rendered from the templates, by file name.
std::map<std::string, std::string> render_configuration(const Cluster& c, const Settings& s,
                                                        const std::string& auth_local,
                                                        const std::string& auth_host,
                                                        bool standby = false) {
    const Instance& i = c.instance;
    std::map<std::string, std::string> v = {
        {"instance", i.qualified_name()},
        {"port", std::to_string(i.port)},
        {"socket_dir", conf_quote(i.socket_dir.string())},
        {"listen_addresses", conf_quote(s.listen_addresses)},
        {"listen_addresses_plain", s.listen_addresses},
        {"log_file", i.log_file.string()},
        {"owner", c.owner.name},
        {"superuser", i.superuser},
        {"auth_local", auth_local_entry(auth_local)},
        {"auth_local_method", auth_local},
        {"auth_host", auth_host},
        {"data_dir", i.data_dir.string()},
        {"version", i.version},
    };
    std::map<std::string, std::string> out;
    if (standby) {
        // A base backup's files are its upstream's: the standby keeps their access rules and
        // settings (what a promotion must serve with), with its own port, sockets and paths
        // from the template, which sets them.
        const fs::path tmpl = s.find_template("postgresql.conf");
        v["initdb_settings"] = "";
        auto own =
            conf::ConfDocument::parse(render_template(read_text_file(tmpl), v, tmpl.string()));
        std::vector<std::string> names;
        for (const auto& e : own.entries()) names.push_back(e.name);
        v["initdb_settings"] =
            "# (a standby: the settings of its upstream's postgresql.conf at its base backup)\n" +
            replication::inherited_settings(safe_fs::read_file(i.data_dir / "postgresql.conf"),
                                            names);
        out["postgresql.conf"] = render_template(read_text_file(tmpl), v, tmpl.string());
        for (const char* file : {"pg_hba.conf", "pg_ident.conf"})
            out[file] = safe_fs::read_file(i.data_dir / file);
        return out;
    }
    v["initdb_settings"] = active_settings(read_text_file(i.data_dir / "postgresql.conf"));
    for (const char* file : {"postgresql.conf", "pg_hba.conf", "pg_ident.conf"}) {
        fs::path tmpl = s.find_template(file);
        out[file] = render_template(read_text_file(tmpl), v, tmpl.string());
    }
    return out;
}

void remove_tree(const fs::path& p) {
    std::error_code ec;
    fs::remove_all(p, ec);
    if (ec) log::warn("cannot remove " + p.string() + ": " + ec.message());
}

void remove_if_empty(const fs::path& dir) {
    std::error_code ec;
    if (fs::is_directory(dir, ec) && fs::is_empty(dir, ec)) fs::remove(dir, ec);
}

std::string resume_locked(Context& ctx, const std::string& version, const std::string& name);

bool wal_dir_made_by_pgforge(const Instance& i) {
    auto opts = nlohmann::json::parse(i.options.empty() ? "{}" : i.options, nullptr, false);
    return opts.is_object() && opts.value("waldir_created", false);
}

}  // namespace

std::unique_ptr<FileLock> lock(Context& ctx, const Instance& i, bool must_exist) {
    auto held = std::make_unique<FileLock>(
        ctx.settings().lock_file(i.version, i.name),
        std::chrono::milliseconds(long(ctx.settings().lock_timeout * 1000)),
        "instance " + i.qualified_name());
    std::string gone = resume_locked(ctx, i.version, i.name);
    if (!gone.empty() && must_exist)
        throw Error(Exit::not_found, "instance " + i.qualified_name() + " does not exist: " + gone,
                    "create it again: pgforge instance create " + i.qualified_name());
    return held;
}

Cluster cluster_for(Context& ctx, const Instance& i) {
    return Cluster{i, select_installation(ctx.settings(), i.version), lookup_os_user(i.owner)};
}

Instance create(Context& ctx, const CreateOptions& o) {
    const Settings& s = ctx.settings();
    check_instance_name(o.name);
    const bool is_standby = !o.standby_for.empty();
    if (is_standby && (o.data_checksums || !o.locale.empty() || o.encoding != "UTF8" ||
                       !o.superuser_password_file.empty()))
        throw Error(Exit::usage,
                    "a standby is a copy of its primary: its encoding, locale, data checksums and "
                    "superuser password are the primary's",
                    "leave --encoding, --locale, --data-checksums and --superuser-password-file "
                    "out");
    // Everything that can be checked before touching the disk is checked first. A standby of an
    // instance managed here runs its version.
    std::string version = o.version;
    std::optional<Instance> local_upstream;
    if (is_standby && o.standby_for.find('=') == std::string::npos &&
        o.standby_for.find("://") == std::string::npos) {
        local_upstream = get(ctx, o.standby_for);
        if (version.empty()) version = local_upstream->version;
    }
    Installation installation = select_installation(s, version);
    std::string owner_name = o.owner.empty() ? s.owner : o.owner;
    if (!running_as_root() && owner_name != current_user_name())
        throw Error(Exit::usage,
                    "only root can create an instance owned by another user ('" + owner_name + "')",
                    "run as root, or leave --owner out");
    if (owner_name == "root")
        throw Error(Exit::usage, "PostgreSQL cannot run as root",
                    "choose an unprivileged owner with --owner (default postgres)");
    OsUser owner = lookup_os_user(owner_name);
    std::string auth_local = o.auth_local.empty() ? s.auth_local : o.auth_local;
    std::string auth_host = o.auth_host.empty() ? s.auth_host : o.auth_host;
    check_auth_method(auth_local, "--auth-local");
    check_auth_method(auth_host, "--auth-host");
    if (!o.superuser_password_file.empty())
        check_secret_file(o.superuser_password_file, "superuser password file");
    // A damaged inventory or a refused port is reported before any lock file or journal row is
    // written (the port is chosen again under the site's port lock below).
    if (std::error_code none; fs::exists(s.inventory_file(), none)) ctx.inventory();
    if (o.port != 0) choose_port(ctx, o.port, o.allow_privileged_port);
    if (!o.settings.empty()) {
        auto catalog = conf::ParameterCatalog::describe(installation, owner);
        for (const auto& [name, value] : o.settings) catalog.check_settable(name);
        conf::validate_values(installation, owner, o.settings);
    }
    plugin_options::check(ctx, plugin_options::wanted_from(o.plugin_options));

    Instance i;
    i.name = o.name;
    i.version = installation.major();
    i.owner = owner.name;
    i.superuser = o.superuser.empty() ? s.superuser : o.superuser;
    // The upstream's encoding, locale and checksums, as the inventory's record of the options.
    nlohmann::json upstream_options = nlohmann::json::object();
    std::optional<replication::StandbyPlan> standby;
    if (is_standby) {
        if (local_upstream) {
            if (!o.superuser.empty() && o.superuser != local_upstream->superuser)
                throw Error(Exit::usage,
                            "the superuser of a standby is its primary's (" +
                                local_upstream->superuser + ")",
                            "leave --superuser out");
            i.superuser = local_upstream->superuser;
            upstream_options = nlohmann::json::parse(
                local_upstream->options.empty() ? "{}" : local_upstream->options, nullptr, false);
        }
    }
    i.upgraded_from = o.upgraded_from;
    assign_instance_paths(s, i);
    if (!o.waldir.empty()) i.wal_dir = fs::absolute(o.waldir).lexically_normal();
    // A unix socket path is limited to 107 bytes.
    if ((i.socket_dir / ".s.PGSQL.65535").string().size() > 107)
        throw Error(Exit::usage,
                    "socket directory " + i.socket_dir.string() + " is too long for a unix socket",
                    "use a shorter run directory (--run-dir or run_dir in the settings file)");

    std::error_code ec;
    fs::create_directories(s.prefix, ec);
    if (ec)
        throw Error(Exit::failure,
                    "cannot create prefix " + s.prefix.string() + ": " + ec.message(),
                    "choose a writable --prefix");
    // Under the lock, an unfinished create of this name (killed) is undone first.
    auto held = lock(ctx, i, false);
    Inventory& inv = ctx.inventory();
    if (inv.find(i.version, i.name))
        throw Error(
            Exit::conflict, "instance " + i.qualified_name() + " already exists",
            "choose another name, or drop it first: pgforge instance drop " + i.qualified_name());
    if (fs::exists(i.base_dir, ec))
        throw Error(Exit::conflict,
                    "instance " + i.qualified_name() + ": " + i.base_dir.string() +
                        " already exists and is not in the inventory",
                    "move it away (pgforge never removes files it did not make), or choose "
                    "another name");
    if (is_standby) {
        // Under the lock: a slot a killed create of this standby left on the upstream has just
        // been dropped by the undo.
        standby = replication::plan_standby(
            ctx, o.name, i.version,
            {o.standby_for, o.replication_role, o.slot, o.replication_password_file});
        i.role = "standby";
        i.upstream = standby->upstream.display();
        i.slot = standby->slot;
    }
    bool waldir_created = false;
    if (!i.wal_dir.empty()) {
        if (fs::exists(i.wal_dir, ec) && !fs::is_empty(i.wal_dir, ec))
            throw Error(Exit::conflict, "WAL directory " + i.wal_dir.string() + " is not empty",
                        "give an empty or new directory to --waldir");
        waldir_created = !fs::exists(i.wal_dir, ec);
    }

    Pipeline p(ctx, "create", i);
    p.first_configure = true;
    // The entry goes in first, under a site-wide lock, so that two creates at once never pick the
    // same port; undo removes it.
    p.step("inventory entry", [&] {
        FileLock ports(s.prefix / "locks" / "ports.lock",
                       std::chrono::milliseconds(long(s.lock_timeout * 1000)), "port choice");
        i.port = choose_port(ctx, o.port, o.allow_privileged_port);
        i.created_at = utc_timestamp();
        nlohmann::json opts = {{"encoding", o.encoding},
                               {"locale", o.locale.empty() ? "C.UTF-8" : o.locale},
                               {"data_checksums", o.data_checksums},
                               {"auth_local", auth_local},
                               {"auth_host", auth_host},
                               {"superuser_password", !o.superuser_password_file.empty()},
                               {"waldir_created", waldir_created}};
        if (standby) {
            for (const char* key : {"encoding", "locale", "data_checksums", "superuser_password"})
                if (upstream_options.is_object() && upstream_options.contains(key))
                    opts[key] = upstream_options[key];
            opts["standby_for"] = i.upstream;
        }
        i.options = opts.dump();
        p.made("inventory entry", i.qualified_name());
        inv.add(i);
        plugin_options::store_new(ctx, i, o.plugin_options);
    });
    p.on_undo("inventory entry", [&] { inv.remove(i.version, i.name); });
    if (standby) replication::prepare_upstream(ctx, p, *standby);

    Cluster cluster{i, installation, owner};
    // A standby's data directory is a base backup of its upstream; what its postgresql.conf
    // needs for that (primary_conninfo, primary_slot_name) is written with the rest.
    std::map<std::string, std::string> standby_settings;
    p.around(sdk::HookPoint::pre_init, standby ? "base backup" : "initdb", [&] {
        fs::path version_dir = i.base_dir.parent_path();
        bool version_dir_created = !fs::exists(version_dir, ec);
        cluster.instance = i;
        // Journaled before they are made: after a kill, the next command removes them (and
        // with the base directory, initdb's password file and whatever initdb wrote).
        if (version_dir_created) p.made("empty directory", version_dir.string());
        p.made("directory", i.base_dir.string());
        p.on_undo("instance directory " + i.base_dir.string(),
                  [&, version_dir, version_dir_created] {
                      remove_made_tree(i.base_dir);
                      if (version_dir_created) remove_if_empty(version_dir);
                  });
        make_owned_directory(i.base_dir, owner, fs::perms(0700));
        if (waldir_created) {
            p.made("directory", i.wal_dir.string());
            p.on_undo("WAL directory " + i.wal_dir.string(), [&] { remove_made_tree(i.wal_dir); });
            make_owned_directory(i.wal_dir, owner, fs::perms(0700));
        }
        if (standby) {
            standby_settings = replication::make_standby_data(ctx, cluster, *standby);
            return;
        }
        InitOptions init;
        init.encoding = o.encoding;
        init.locale = o.locale;
        init.data_checksums = o.data_checksums;
        init.auth_local = auth_local;
        init.auth_host = auth_host;
        init.password_file = o.superuser_password_file;
        ctx.driver().initdb(cluster, init, ctx.progress);
    });

    // The configuration is rendered from the templates, plugins contribute to it at
    // pre_configure, and each file is written once.
    auto texts = render_configuration(cluster, s, auth_local, auth_host, standby.has_value());
    const fs::path main_conf = i.data_dir / "postgresql.conf";
    std::map<fs::path, conf::ConfDocument> docs;
    docs.emplace(main_conf, conf::ConfDocument::parse(texts["postgresql.conf"], main_conf));
    conf::HbaFile hba = conf::HbaFile::parse(texts["pg_hba.conf"], i.data_dir / "pg_hba.conf");
    conf::IdentFile ident =
        conf::IdentFile::parse(texts["pg_ident.conf"], i.data_dir / "pg_ident.conf");
    ConfigureDraft draft(i, docs, hba, ident, [&](const std::string&) { return main_conf; });
    // A list no file sets starts from the server's default ("$user", public for search_path).
    std::optional<conf::ParameterCatalog> defaults;
    draft.server_defaults([&](const std::string& name) -> std::optional<std::string> {
        try {
            if (!defaults) defaults = conf::ParameterCatalog::describe(installation, owner);
            if (const conf::ParameterInfo* p = defaults->find(name)) return p->reset_value;
        } catch (const std::exception& e) {
            log::warn("the server's default of " + name + " is unknown: " + e.what());
        }
        return std::nullopt;
    });
    p.around(
        sdk::HookPoint::pre_configure, "write configuration",
        [&] {
            if (ctx.progress) ctx.progress("writing configuration");
            for (const auto& [name, value] : o.settings) {
                docs.at(main_conf).set(name, value);
                draft.user_sets(name, value);
            }
            for (const auto& [name, value] : standby_settings) {
                docs.at(main_conf).set(name, value);
                draft.user_sets(name, value);
            }
            if (o.hba) {
                o.hba(hba);
                hba = conf::HbaFile::parse(hba.print(), i.data_dir / "pg_hba.conf");
            }
            if (o.ident) {
                o.ident(ident);
                ident = conf::IdentFile::parse(ident.print(), i.data_dir / "pg_ident.conf");
            }
            draft.apply_parameters();
            if (!draft.parameters().empty()) {
                std::map<std::string, std::string> values;
                for (const auto& [name, v] : draft.parameters()) values[name] = v.value;
                conf::validate_values(installation, owner, values);
            }
            write_file_atomically(main_conf, docs.at(main_conf).print(), &owner, fs::perms(0600));
            write_file_atomically(i.data_dir / "pg_hba.conf", hba.print(), &owner, fs::perms(0600));
            write_file_atomically(i.data_dir / "pg_ident.conf", ident.print(), &owner,
                                  fs::perms(0600));
            draft.write_files(owner);
            make_owned_directory(i.log_file.parent_path(), owner, fs::perms(0700));
        },
        &draft);

    if (o.start) {
        p.around(sdk::HookPoint::pre_start, "start", [&] {
            if (!fs::exists(i.socket_dir, ec)) p.made("empty directory", i.socket_dir.string());
            p.made("server", i.data_dir.string());
            // Before the start: a start cut short (signal, timeout) is undone too.
            p.on_undo("server start", [&, cluster] {
                if (ctx.driver().status(cluster).running)
                    ctx.driver().stop(cluster, StopMode::immediate, s.stop_timeout);
                remove_if_empty(i.socket_dir);
            });
            start_server(ctx, p, cluster, s.start_timeout);
            // post_start sees a standby that streams.
            if (standby) replication::wait_streaming(ctx, i, s.start_timeout);
        });
    }
    p.finish();
    return i;
}

Instance get(Context& ctx, const std::string& text) {
    InstanceRef ref = parse_instance_ref(text);
    std::error_code ec;
    if (!fs::exists(ctx.settings().inventory_file(), ec))
        throw Error(Exit::not_found, "instance " + text + " does not exist",
                    "create it: pgforge instance create " + text);
    if (!ref.version.empty()) {
        if (auto i = ctx.inventory().find(ref.version, ref.name)) return *i;
        throw Error(Exit::not_found, "instance " + text + " does not exist",
                    "see pgforge instance list");
    }
    auto found = ctx.inventory().find_by_name(ref.name);
    if (found.empty())
        throw Error(Exit::not_found, "instance " + text + " does not exist",
                    "see pgforge instance list");
    if (found.size() > 1) {
        std::string names;
        for (const auto& i : found) names += (names.empty() ? "" : ", ") + i.qualified_name();
        throw Error(Exit::usage, "instance name " + text + " is ambiguous: " + names,
                    "say which, as VERSION/NAME");
    }
    return found.front();
}

bool exists(Context& ctx, const std::string& ref) {
    try {
        get(ctx, ref);
        return true;
    } catch (const Error& e) {
        if (e.code() == Exit::not_found) return false;
        throw;
    }
}

namespace {

// What the disk says against what the inventory mirrors: the data directory, its PG_VERSION,
// its owner and the port of its files. Empty when they agree; what cannot be read (another
// user's instance) is not reported.
std::string drift_of(const Instance& i) {
    struct stat st {};
    if (::stat((i.data_dir / "PG_VERSION").c_str(), &st) != 0 && errno == ENOENT)
        return "data directory missing";
    std::vector<std::string> found;
    // Read with the rights of whoever controls the data directory (safe_fs): a PG_VERSION the
    // owner replaced by a link to a root-only file is not read by root into the list.
    std::string version;
    try {
        version = safe_fs::read_file(i.data_dir / "PG_VERSION", 4096);
        version = version.substr(0, version.find('\n'));
    } catch (const std::exception&) {
        version.clear();
    }
    if (!version.empty() && version != i.version)
        found.push_back("PG_VERSION says " + version + ", the inventory " + i.version);
    if (::stat(i.data_dir.c_str(), &st) == 0 && !i.owner.empty()) {
        const passwd* pw = getpwuid(st.st_uid);
        std::string owner = pw ? pw->pw_name : std::to_string(st.st_uid);
        if (owner != i.owner)
            found.push_back("the data directory belongs to " + owner + ", the inventory says " +
                            i.owner);
    }
    try {
        auto port = configuration::configured_port(i.data_dir);
        if (port && *port != i.port)
            found.push_back("port " + std::to_string(*port) + " in the configuration files, " +
                            std::to_string(i.port) + " in the inventory");
    } catch (const std::exception&) {
        // Files this user cannot read: nothing to compare.
    }
    std::string text;
    for (const auto& f : found) text += (text.empty() ? "" : "; ") + f;
    return text;
}

}  // namespace

std::vector<ListItem> ls(Context& ctx, const std::string& version) {
    std::vector<ListItem> items;
    std::error_code ec;
    std::set<fs::path> known;
    // Without an inventory file there is nothing declared, but orphans may still be on disk.
    std::vector<Instance> declared;
    if (fs::exists(ctx.settings().inventory_file(), ec)) {
        // What a killed create or drop left is undone or finished first, so the list shows
        // what is there.
        resume_all(ctx);
        declared = ctx.inventory().list(version);
    }
    for (auto& i : declared) {
        ListItem item;
        known.insert(i.base_dir);
        // Status from postmaster.pid alone: a listing must stay cheap with many instances.
        if (auto pm = read_postmaster_pid(i.data_dir); pm && process_exists(pm->pid)) {
            item.status.running = true;
            item.status.pid = pm->pid;
            item.status.state = pm->status;
            item.status.start_time = pm->start_time;
        }
        item.drift = drift_of(i);
        item.instance = std::move(i);
        items.push_back(std::move(item));
    }
    // Data directories under the prefix that the inventory does not know.
    for (const auto& vdir : fs::directory_iterator(ctx.settings().prefix, ec)) {
        std::string v = vdir.path().filename().string();
        if (!vdir.is_directory() || v.empty() || !std::all_of(v.begin(), v.end(), ::isdigit) ||
            (!version.empty() && v != version))
            continue;
        for (const auto& idir : fs::directory_iterator(vdir.path(), ec)) {
            if (known.count(idir.path()) || !fs::exists(idir.path() / "data" / "PG_VERSION", ec))
                continue;
            ListItem item;
            item.instance.name = idir.path().filename().string();
            item.instance.version = v;
            assign_instance_paths(ctx.settings(), item.instance);
            item.drift = "not in inventory";
            items.push_back(std::move(item));
        }
    }
    return items;
}

ServerStatus status(Context& ctx, const Instance& i) {
    // Status needs no installation nor owner: postmaster.pid and a ping tell.
    Cluster c{i, {}, {}};
    return ctx.driver().status(c);
}

bool running(Context& ctx, const Instance& i) {
    Cluster c{i, {}, {}};
    return ctx.driver().running(c);
}

namespace {

// A start needs the data directory the inventory names.
void require_data_directory(const Instance& inst) {
    std::error_code ec;
    if (!fs::exists(inst.data_dir / "PG_VERSION", ec))
        throw Error(
            Exit::not_found,
            "instance " + inst.qualified_name() + ": data directory " + inst.data_dir.string() +
                " is missing",
            "restore it, or remove the entry: pgforge instance drop " + inst.qualified_name());
    check_not_linked_away(inst);  // an instance upgraded with --link (upgrade.hpp)
}

}  // namespace

bool start(Context& ctx, const Instance& inst, std::optional<double> timeout) {
    auto held = lock(ctx, inst);
    require_data_directory(inst);
    Instance i = inst;
    // A stopped server starts on the port of its files, and the inventory follows.
    std::optional<int> moved_from;
    if (auto pm = read_postmaster_pid(i.data_dir); !pm || !process_exists(pm->pid))
        moved_from = configuration::take_configured_port(i);
    Cluster c = cluster_for(ctx, i);
    bool started = false;
    Pipeline p(ctx, "start", i);
    p.around(sdk::HookPoint::pre_start, "start", [&] {
        started = start_server(ctx, p, c, timeout.value_or(ctx.settings().start_timeout));
    });
    if (!moved_from) {
        p.finish();
        return started;
    }
    p.finish_updating_entry();
    configuration::move_pgpass_entries(i, *moved_from);
    return started;
}

bool stop_step(Context& ctx, Pipeline& p, StopMode mode, std::optional<double> timeout) {
    Cluster c{p.instance(), {}, {}};
    c.owner.name = p.instance().owner;
    bool stopped = false;
    p.around(sdk::HookPoint::pre_stop, "stop", [&] {
        if (ctx.progress) ctx.progress("stopping the server");
        stopped = stop_server(ctx, p, c, mode, timeout.value_or(ctx.settings().stop_timeout));
    });
    return stopped;
}

const std::vector<std::string>& operation_names() {
    static const std::vector<std::string> names = {"create",
                                                   "create --standby-for",
                                                   "start",
                                                   "start --foreground",
                                                   "stop",
                                                   "restart",
                                                   "reload",
                                                   "configure",
                                                   "configure --restart",
                                                   "drop",
                                                   "checksums",
                                                   "upgrade",
                                                   "promote",
                                                   "rebuild"};
    return names;
}

namespace {

// The rest of a drop once pre_drop let it go on: from here a drop that is killed is finished by
// the next command, not undone. The files are gone once it has run: a post_drop handler that
// fails does not keep the entry; its failure is returned, to be reported once the drop is done.
std::optional<Error> drop_decided(Context& ctx, Pipeline& p) {
    Instance& i = p.instance();
    p.made("drop decided", i.qualified_name());
    stop_step(ctx, p, StopMode::fast, std::nullopt);
    p.step("remove files", [&] {
        if (ctx.progress) ctx.progress("removing files");
        if (!i.wal_dir.empty() && wal_dir_made_by_pgforge(i)) remove_made_tree(i.wal_dir);
        remove_made_tree(i.base_dir);
        remove_if_empty(i.base_dir.parent_path());
        remove_tree(i.socket_dir);
    });
    // A standby's slot on its upstream would keep WAL there for ever.
    if (i.role == "standby" && !i.slot.empty() && !i.upstream.empty() &&
        i.upstream.find('=') == std::string::npos)
        if (auto up = ctx.inventory().find(parse_instance_ref(i.upstream).version,
                                           parse_instance_ref(i.upstream).name))
            p.step("replication slot " + i.slot + " on " + up->qualified_name(),
                   [&, up] { replication::drop_slot(ctx, *up, i.slot); });
    std::optional<Error> post_drop;
    try {
        p.hooks(sdk::HookPoint::post_drop);
    } catch (const Error& e) {
        if (e.code() == Exit::interrupted) throw;  // the next command finishes the drop
        post_drop =
            Error(Exit::failure, "instance " + i.qualified_name() + " was dropped, but " + e.what(),
                  "its files and its entry are gone; see pgforge instance history " +
                      i.qualified_name() + " for what the handler said");
    }
    // The entry goes with the journal's end, in one transaction.
    p.finish_removing_entry();
    return post_drop;
}

std::string exited(const JournalEntry& e) {
    return "interrupted: its process (pid " + std::to_string(e.pid) + ") ended before it did";
}

// The server a configure killed during its restart had stopped, started again on the files as
// they are now; when it was started on the new files and those were put back (`put_back`), it is
// restarted on them. Returns "" when nothing was to be done, else what was, for the journal.
std::string restart_stopped_server(Context& ctx, const Instance& inst, bool put_back) {
    try {
        Instance i = inst;
        Cluster cluster = cluster_for(ctx, i);
        const bool running = ctx.driver().status(cluster).running;
        if (running && !put_back) return "";
        log::info("instance " + i.qualified_name() +
                  (running ? ": restarting the server on its restored files"
                           : ": starting the server its interrupted restart had stopped"));
        // Through the pipeline like any restart: the stop and start hook points are asked (a
        // site hook that refuses starts, an exporter that follows the server), journaled.
        Pipeline p(ctx, "restart", i);
        if (running) stop_step(ctx, p, StopMode::fast, std::nullopt);
        p.around(sdk::HookPoint::pre_start, "start",
                 [&] { start_server(ctx, p, cluster, ctx.settings().start_timeout); });
        p.finish();
        return "; the server it had stopped was started again";
    } catch (const std::exception& x) {
        log::warn(
            "instance " + inst.qualified_name() +
            ": the server an interrupted restart had stopped did not start again: " + x.what());
        return std::string("; the server it had stopped did not start again: ") + x.what();
    }
}

// Finishes or undoes the operations on one instance whose process died (kill -9, a crash, a
// second signal): a create is undone from what it journaled as made, a drop that got past
// pre_drop is finished; others are ended. The caller holds the instance lock. Returns what
// happened to the instance when its entry went ("" when it did not).
std::string resume_locked(Context& ctx, const std::string& version, const std::string& name) {
    Inventory& inv = ctx.inventory();
    const std::string q = version + "/" + name;
    std::string gone;
    for (const auto& e : inv.unfinished(q)) {
        if (!process_gone(e.pid, e.process)) continue;
        auto steps = inv.steps(e.id);
        if (e.operation == "create") {
            log::info("instance " + q + ": undoing the create interrupted at " + e.started_at);
            std::int64_t id = inv.begin_operation("resume create", q);
            std::vector<JournalStep> done;
            std::string failed;
            const bool had_entry = inv.find(version, name).has_value();
            for (auto st = steps.rbegin(); st != steps.rend(); ++st) {
                if (st->kind != "made") continue;
                std::string at = utc_timestamp();
                try {
                    undo_made(ctx, st->name, st->message);
                    done.push_back({"undo", st->name + " " + st->message, at, 0, "ok", {}});
                } catch (const std::exception& x) {
                    done.push_back(
                        {"undo", st->name + " " + st->message, at, 0, "failed", x.what()});
                    if (failed.empty()) failed = st->name + " " + st->message + ": " + x.what();
                }
            }
            if (!failed.empty()) {
                // The create stays unfinished: the next command tries again.
                inv.end_operation(id, false, failed, done);
                throw Error(Exit::failure,
                            "instance " + q + ": cannot undo its interrupted create: " + failed,
                            "fix the cause, then run the command again");
            }
            inv.end_operation(e.id, false,
                              exited(e) + "; undone (journal entry " + std::to_string(id) + ")");
            inv.end_operation(id, true, {}, done);
            if (had_entry && !inv.find(version, name))
                gone = "its create was interrupted and has been undone";
        } else if (e.operation == "upgrade") {
            // What an upgrade made of the new instance goes, the old runs again (upgrade.hpp).
            std::string became;
            if (auto i = inv.find(version, name)) became = resume_upgrade(ctx, *i, steps);
            inv.end_operation(e.id, false, exited(e) + became);
        } else if (e.operation == "drop") {
            bool decided = std::any_of(steps.begin(), steps.end(), [](const JournalStep& st) {
                return st.kind == "made" && st.name == "drop decided";
            });
            auto found = inv.find(version, name);
            if (decided && found) {
                log::info("instance " + q + ": finishing the drop interrupted at " + e.started_at);
                Instance i = *found;
                Pipeline p(ctx, "drop", i);
                if (auto failed = drop_decided(ctx, p)) log::warn(failed->what());
                gone = "its drop was interrupted and has been finished";
            }
            inv.end_operation(e.id, false,
                              exited(e) + (decided ? "; finished by a later drop"
                                                   : "; nothing had been removed"));
        } else {
            // An interrupted configure or reload may have left the instance's files half-changed
            // as a set: they are put back as they were (its manifest says how). Others (start,
            // stop, restart, a plugin's command, an interrupted resume) leave nothing half-made
            // that the journal knows of: they are ended.
            std::string became;
            if (e.operation == "configure" || e.operation == "reload")
                if (auto i = inv.find(version, name)) {
                    bool put_back = configuration::recover(ctx, *i);
                    // Killed during its restart: the server runs again, as it did before.
                    bool stopped =
                        std::any_of(steps.begin(), steps.end(), [](const JournalStep& st) {
                            return st.kind == "made" && st.name == "server stopped for restart";
                        });
                    if (stopped) became = restart_stopped_server(ctx, *i, put_back);
                }
            // Killed while the server was stopped for its work (stopped_scope.hpp): started again.
            if (auto i = inv.find(version, name)) became += resume_stopped(ctx, *i, steps);
            // A promote the server may have taken, a rebuild that set a data directory aside.
            if (e.operation == "promote" || e.operation == "rebuild")
                if (auto i = inv.find(version, name))
                    became += e.operation == "promote" ? promote::resume(ctx, *i, steps)
                                                       : promote::resume_rebuild(ctx, *i, steps);
            inv.end_operation(e.id, false, exited(e) + became);
        }
    }
    return gone;
}

}  // namespace

std::string resume(Context& ctx, const std::string& version, const std::string& name) {
    return resume_locked(ctx, version, name);
}

void resume_all(Context& ctx) {
    std::set<std::string> seen;
    for (const auto& e : ctx.inventory().unfinished()) {
        if (!process_gone(e.pid, e.process) || !seen.insert(e.instance).second) continue;
        InstanceRef ref = parse_instance_ref(e.instance);
        Instance i;
        i.version = ref.version;
        i.name = ref.name;
        try {
            // Never waits: an instance another command holds is left to it.
            FileLock held(ctx.settings().lock_file(i.version, i.name), std::chrono::milliseconds(0),
                          "instance " + e.instance);
            resume_locked(ctx, i.version, i.name);
        } catch (const std::exception& x) {
            log::warn(std::string("instance ") + e.instance + ": " + x.what());
        }
    }
}

bool stop(Context& ctx, const Instance& inst, StopMode mode, std::optional<double> timeout) {
    auto held = lock(ctx, inst);
    Instance i = inst;
    Pipeline p(ctx, "stop", i);
    bool stopped = stop_step(ctx, p, mode, timeout);
    p.finish();
    return stopped;
}

void restart(Context& ctx, const Instance& inst, StopMode mode, std::optional<double> timeout) {
    auto held = lock(ctx, inst);
    Instance i = inst;
    Cluster c = cluster_for(ctx, i);
    Pipeline p(ctx, "restart", i);
    stop_step(ctx, p, mode, timeout);
    // The server comes back on the port of its files, and the inventory follows.
    auto moved_from = configuration::take_configured_port(i);
    c.instance.port = i.port;
    p.around(sdk::HookPoint::pre_start, "start",
             [&] { start_server(ctx, p, c, timeout.value_or(ctx.settings().start_timeout)); });
    if (!moved_from) {
        p.finish();
        return;
    }
    p.finish_updating_entry();
    configuration::move_pgpass_entries(i, *moved_from);
}

void reload(Context& ctx, const Instance& i) {
    configuration::reload(ctx, i);
}

void drop(Context& ctx, const Instance& inst, bool force) {
    auto held = lock(ctx, inst, false);
    // A drop that was killed has just been finished by the lock: the instance is gone.
    if (!ctx.inventory().find(inst.version, inst.name)) {
        log::info("instance " + inst.qualified_name() + " is already dropped");
        return;
    }
    if (!force) {
        std::string names;
        for (const Instance& s : replication::standbys_of(ctx, inst))
            if (s.role == "standby") names += (names.empty() ? "" : ", ") + s.qualified_name();
        if (!names.empty())
            throw Error(Exit::conflict,
                        "instance " + inst.qualified_name() + " has standbys: " + names,
                        "drop them first, promote one, or drop it all the same with --force "
                        "(they stop streaming)");
    }
    Instance i = inst;
    Pipeline p(ctx, "drop", i);
    p.hooks(sdk::HookPoint::pre_drop);
    if (auto failed = drop_decided(ctx, p)) throw *failed;
}

void run_foreground(Context& ctx, const Instance& inst) {
    auto held = lock(ctx, inst);
    require_data_directory(inst);
    if (auto plugin = start_provider(ctx); !plugin.empty())
        throw Error(Exit::usage,
                    "instance " + inst.qualified_name() + ": plugin " + plugin +
                        " provides the start step, and start --foreground hands the process to "
                        "the server itself",
                    "start it with pgforge instance start " + inst.qualified_name());
    Instance i = inst;
    // As for start: the server runs on the port of its files, and the inventory follows.
    std::optional<int> moved_from;
    if (auto pm = read_postmaster_pid(i.data_dir); !pm || !process_exists(pm->pid))
        moved_from = configuration::take_configured_port(i);
    Cluster c = cluster_for(ctx, i);
    {
        Pipeline p(ctx, "start --foreground", i);
        p.hooks(sdk::HookPoint::pre_start);
        // The server replaces this process: nothing runs after it, so the operation ends here,
        // and the lock goes before (a foreground server runs for long; stop must not wait).
        p.step("hand over to the server", [] {});
        if (moved_from)
            p.finish_updating_entry();
        else
            p.finish();
    }
    if (moved_from) configuration::move_pgpass_entries(i, *moved_from);
    held.reset();
    ctx.driver().run_foreground(c);
    // Not reached: run_foreground execs the server or throws.
    throw Error(Exit::failure, "instance " + i.qualified_name() + ": the server did not take over");
}

std::vector<std::pair<std::string, std::string>> environment(Context& ctx, const Instance& i) {
    std::vector<std::pair<std::string, std::string>> env = {
        {"PGHOST", i.socket_dir.string()},
        {"PGPORT", std::to_string(i.port)},
        {"PGDATA", i.data_dir.string()},
        {"PGUSER", i.superuser},
    };
    try {
        auto inst = select_installation(ctx.settings(), i.version);
        const char* path = std::getenv("PATH");
        env.emplace_back("PATH", inst.bindir.string() + (path ? ":" + std::string(path) : ""));
    } catch (const Error&) {
        // Without its installation the instance cannot run; the variables are still useful.
    }
    return env;
}

}  // namespace instances
}  // namespace pgforge
