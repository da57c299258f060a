// instance and installation commands.
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <thread>

#include "engine/cli/command.hpp"
#include "engine/core/input.hpp"
#include "engine/core/interrupt.hpp"
#include "engine/core/safe_fs.hpp"
#include "engine/driver/installations.hpp"
#include "engine/inventory/inventory.hpp"
#include "engine/operations/checksums.hpp"
#include "engine/operations/configuration.hpp"
#include "engine/operations/plugin_options.hpp"
#include "engine/operations/replication_view.hpp"
#include "engine/operations/settings_view.hpp"
#include "engine/pg/postmaster_pid.hpp"
#include "engine/pipeline/pipeline.hpp"
#include "engine/pipeline/plugin_calls.hpp"

namespace fs = std::filesystem;
using json = nlohmann::ordered_json;

namespace pgforge::cli {
namespace {

// ---- output helpers ------------------------------------------------------------------------

std::string iso_time(long epoch) {
    if (epoch <= 0) return "";
    std::time_t t = epoch;
    std::tm tm{};
    gmtime_r(&t, &tm);
    char buf[32];
    std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
    return buf;
}

json status_json(const ServerStatus& s) {
    json j = {{"running", s.running}};
    if (s.running) {
        j["pid"] = s.pid;
        j["state"] = s.state;
        j["accepting_connections"] = s.accepting;
        j["started_at"] = iso_time(s.start_time);
    }
    return j;
}

json optional_json(const std::optional<std::string>& v) {
    return v ? json(*v) : json(nullptr);
}

template <typename T>
json optional_json(const std::optional<T>& v) {
    return v ? json(*v) : json(nullptr);
}

// The replication view (docs/replication.md, "Seeing it").
json replication_json(const replication_view::View& v) {
    json j = {{"role", v.role},
              {"upstream", v.upstream.empty() ? json(nullptr) : json(v.upstream)},
              {"slot", v.slot.empty() ? json(nullptr) : json(v.slot)},
              {"in_recovery", optional_json(v.in_recovery)}};
    if (v.role == "standby" || v.in_recovery.value_or(false)) {
        j["streaming"] = v.streaming;
        j["receiver_status"] = v.receiver_status.empty() ? json(nullptr) : json(v.receiver_status);
        j["sender"] = v.sender.empty() ? json(nullptr) : json(v.sender);
        j["receive_lsn"] = optional_json(v.receive_lsn);
        j["replay_lsn"] = optional_json(v.replay_lsn);
        j["lag_bytes"] = optional_json(v.lag_bytes);
        j["lag_seconds"] = optional_json(v.lag_seconds);
        j["last_message_at"] = optional_json(v.last_message);
        j["last_replayed_transaction_at"] = optional_json(v.last_replayed_transaction);
        j["not_streaming_since"] = v.streaming || v.not_streaming_since.empty()
                                       ? json(nullptr)
                                       : json(v.not_streaming_since);
    }
    json standbys = json::array();
    for (const auto& d : v.standbys)
        standbys.push_back({{"instance", d.instance.empty() ? json(nullptr) : json(d.instance)},
                            {"application_name", d.application_name},
                            {"client", d.client},
                            {"state", d.state},
                            {"sync_state", d.sync_state},
                            {"slot", d.slot.empty() ? json(nullptr) : json(d.slot)},
                            {"sent_lsn", optional_json(d.sent_lsn)},
                            {"flush_lsn", optional_json(d.flush_lsn)},
                            {"replay_lsn", optional_json(d.replay_lsn)},
                            {"lag_bytes", optional_json(d.lag_bytes)},
                            {"replay_lag_seconds", optional_json(d.replay_lag_seconds)}});
    j["standbys"] = standbys;
    json missing = json::array();
    for (const auto& m : v.missing)
        missing.push_back(
            {{"instance", m.instance}, {"slot", m.slot.empty() ? json(nullptr) : json(m.slot)}});
    j["standbys_not_connected"] = missing;
    json slots = json::array();
    for (const auto& s : v.slots)
        slots.push_back({{"name", s.name},
                         {"active", s.active},
                         {"retained_bytes", optional_json(s.retained_bytes)}});
    j["slots"] = slots;
    j["note"] = v.note.empty() ? json(nullptr) : json(v.note);
    return j;
}

// Text rows of the replication view for `instance get`.
void replication_rows(const replication_view::View& v,
                      std::vector<std::vector<std::string>>& rows) {
    rows.push_back({"role:", v.role});
    if (!v.upstream.empty()) rows.push_back({"upstream:", v.upstream});
    if (!v.slot.empty()) rows.push_back({"slot:", v.slot});
    if (std::string line = replication_view::summary(v); !line.empty())
        rows.push_back({"replication:", line});
    for (const auto& d : v.standbys)
        rows.push_back(
            {"standby:",
             (d.instance.empty() ? d.application_name + " (" + d.client + ")" : d.instance) + " " +
                 d.state + ", replay " + d.replay_lsn.value_or("-") + ", lag " +
                 (d.lag_bytes ? std::to_string(*d.lag_bytes) : "?") + " bytes" +
                 (d.slot.empty() ? "" : ", slot " + d.slot)});
    for (const auto& m : v.missing) rows.push_back({"standby:", m.instance + " not connected"});
    for (const auto& s : v.slots)
        if (!s.active)
            rows.push_back({"slot " + s.name + ":",
                            "inactive, keeps " +
                                (s.retained_bytes ? std::to_string(*s.retained_bytes) : "?") +
                                " bytes of WAL"});
}

std::string connect_hint(const Instance& i) {
    return "psql -h " + i.socket_dir.string() + " -p " + std::to_string(i.port) + " -U " +
           i.superuser + " postgres";
}

std::string describe_status(const Instance& i, const ServerStatus& s) {
    if (!s.running) return "instance " + i.qualified_name() + " is stopped";
    std::string text = "instance " + i.qualified_name() + " is running (pid " +
                       std::to_string(s.pid) + ", port " + std::to_string(i.port);
    if (!s.state.empty()) text += ", " + s.state;
    return text + (s.accepting ? ", accepting connections)" : ", not accepting connections)");
}

// ---- option sets ----------------------------------------------------------------------------

void no_options(po::options_description&) {}

void all_option(po::options_description& d) {
    d.add_options()("all", po::bool_switch(), "every instance in the inventory");
}

void timeout_option(po::options_description& d) {
    d.add_options()("timeout", po::value<double>(), "seconds to wait (default from settings)");
}

void create_options(po::options_description& d) {
    // clang-format off
    d.add_options()
        ("version", po::value<std::string>(), "PostgreSQL major version")
        ("port", po::value<int>(), "port, 1024-65535 (default: the first free one of the site's range)")
        ("allow-privileged-port", po::bool_switch(), "accept a --port below 1024")
        ("owner", po::value<std::string>(), "OS user the server runs as (as root; default postgres)")
        ("encoding", po::value<std::string>()->default_value("UTF8"), "database encoding")
        ("locale", po::value<std::string>(), "locale (default C.UTF-8)")
        ("data-checksums", po::bool_switch(), "enable data checksums")
        ("auth-local", po::value<std::string>(), "method for local connections (default peer)")
        ("auth-host", po::value<std::string>(), "method for host connections (default scram-sha-256)")
        ("superuser", po::value<std::string>(), "superuser role name (default postgres)")
        ("superuser-password-file", po::value<std::string>(), "file whose first line is the superuser's password")
        ("waldir", po::value<std::string>(), "WAL directory outside the data directory")
        ("set", po::value<std::vector<std::string>>()->composing(), "NAME=VALUE: a postgresql.conf setting, checked with the server's rules (repeatable)")
        ("option", po::value<std::vector<std::string>>()->composing(), "PLUGIN.KEY=VALUE, an option a plugin declares, for this instance (repeatable)")
        ("state", po::value<std::string>()->default_value("started"), "started or stopped")
        ("standby-for", po::value<std::string>(), "PRIMARY: make a standby of it (VERSION/NAME of an instance here, or a conninfo)")
        ("slot", po::value<std::string>(), "the physical replication slot it streams from (default: its name, for a primary here)")
        ("replication-role", po::value<std::string>(), "the role it replicates as (default replicator)")
        ("password-file", po::value<std::string>(), "file whose first line is the replication role's password (mode 0600)");
    // clang-format on
}

void drop_options(po::options_description& d) {
    d.add_options()("force", po::bool_switch(),
                    "drop a primary even though standbys stream from it");
}

void start_options(po::options_description& d) {
    all_option(d);
    timeout_option(d);
    d.add_options()("foreground", po::bool_switch(), "run the server in the foreground");
}

void stop_options(po::options_description& d) {
    all_option(d);
    timeout_option(d);
    d.add_options()("mode,m", po::value<std::string>()->default_value("fast"),
                    "smart, fast or immediate");
}

void list_options(po::options_description& d) {
    d.add_options()("version", po::value<std::string>(), "only instances of this major version");
}

void logs_options(po::options_description& d) {
    // clang-format off
    d.add_options()
        ("follow,f", po::bool_switch(), "keep printing what the server writes")
        ("lines,n", po::value<int>()->default_value(50), "how many lines to show first (0: all)");
    // clang-format on
}

// --timeout, checked before anything is locked or written.
std::optional<double> timeout_value(Invocation& inv) {
    auto timeout = inv.opt<double>("timeout");
    if (timeout) check_timeout(*timeout, "--timeout");
    return timeout;
}

// ---- instance selection ---------------------------------------------------------------------

std::vector<Instance> selected_instances(Invocation& inv) {
    if (inv.flag("all")) {
        std::vector<Instance> all;
        for (auto& item : instances::ls(inv.ctx()))
            if (item.drift != "not in inventory") all.push_back(item.instance);
        return all;
    }
    return {instances::get(inv.ctx(), inv.arg(0, "instance name (or --all)"))};
}

// Runs `action` on each selected instance; with several, one failing does not stop the others.
template <typename F>
int for_each_instance(Invocation& inv, F&& action) {
    auto list = selected_instances(inv);
    if (list.size() == 1 && !inv.flag("all")) return action(list.front());
    int worst = 0;
    for (const auto& i : list) {
        try {
            worst = std::max(worst, action(i));
        } catch (const Error& e) {
            inv.err << "pgforge: " << i.qualified_name() << ": " << e.what() << "\n";
            worst = std::max(worst, static_cast<int>(e.code()));
        }
    }
    return worst;
}

// for_each_instance for commands whose JSON is one object per instance: `action` fills it. The
// output is that object, or with --all an array of them (with "instance" in each), so that
// --json always prints one JSON document.
template <typename F>
int for_each_instance_json(Invocation& inv, F&& action) {
    json arr = json::array();
    int worst = for_each_instance(inv, [&](const Instance& i) {
        json j = {{"instance", i.qualified_name()}};
        int code = action(i, j);
        arr.push_back(std::move(j));
        return code;
    });
    if (inv.json && (inv.flag("all") || !arr.empty()))
        inv.out << (inv.flag("all") ? arr.dump(2) : arr.at(0).dump(2)) << "\n";
    return worst;
}

// The parameters whose new value waits for a restart, as the running server says.
void print_pending(Invocation& inv, const Instance& i, const std::vector<std::string>& names) {
    if (names.empty() || inv.quiet) return;
    std::string list;
    for (const auto& n : names) list += (list.empty() ? "" : ", ") + n;
    inv.out << "instance " << i.qualified_name() << " needs a restart for " << escape_control(list)
            << " to apply: pgforge instance restart " << i.qualified_name() << "\n";
}

// ---- commands -------------------------------------------------------------------------------

int installation_list(Invocation& inv) {
    auto found = find_installations(inv.ctx().settings());
    for (auto& i : found) describe(i);
    if (inv.json) {
        json arr = json::array();
        for (const auto& i : found) {
            json paths = json::object(), conf = json::object();
            for (const auto& [k, v] : i.paths) paths[k] = v.string();
            for (const auto& [k, v] : i.configure_options) conf[k] = v;
            arr.push_back({{"version", i.version},
                           {"version_info",
                            {{"major", i.version_info.major},
                             {"minor", i.version_info.minor},
                             {"patch", i.version_info.patch},
                             {"state", i.version_info.state},
                             {"level", i.version_info.level}}},
                           {"bindir", i.bindir.string()},
                           {"ssl", i.ssl},
                           {"paths", paths},
                           {"configure_options", conf}});
        }
        inv.out << arr.dump(2) << "\n";
        return 0;
    }
    if (found.empty()) {
        inv.out << "no PostgreSQL installation found\n";
        return 0;
    }
    std::vector<std::vector<std::string>> rows = {{"MAJOR", "VERSION", "BINDIR"}};
    for (const auto& i : found) rows.push_back({i.major(), i.version, i.bindir.string()});
    print_table(inv.out, rows);
    return 0;
}

int instance_create(Invocation& inv) {
    instances::CreateOptions o;
    InstanceRef ref = parse_instance_ref(inv.arg(0, "instance name"));
    o.name = ref.name;
    o.version = inv.opt<std::string>("version").value_or(ref.version);
    if (!ref.version.empty() && o.version != ref.version)
        throw Error(Exit::usage,
                    "instance " + inv.positional[0] + " and --version " + o.version + " disagree",
                    "give the version once");
    if (auto port = inv.opt<int>("port")) {
        o.allow_privileged_port = inv.flag("allow-privileged-port");
        check_port(*port, o.allow_privileged_port, "--port");
        o.port = *port;
    }
    o.owner = inv.opt<std::string>("owner").value_or("");
    o.encoding = *inv.opt<std::string>("encoding");
    o.locale = inv.opt<std::string>("locale").value_or("");
    o.data_checksums = inv.flag("data-checksums");
    o.auth_local = inv.opt<std::string>("auth-local").value_or("");
    o.auth_host = inv.opt<std::string>("auth-host").value_or("");
    o.superuser = inv.opt<std::string>("superuser").value_or("");
    o.superuser_password_file = inv.opt<std::string>("superuser-password-file").value_or("");
    o.waldir = inv.opt<std::string>("waldir").value_or("");
    if (auto sets = inv.opt<std::vector<std::string>>("set"))
        o.settings = configuration::parse_assignments(*sets);
    if (inv.vm.count("option"))
        for (const auto& a : inv.vm["option"].as<std::vector<std::string>>())
            plugin_options::parse_assignment(a, o.plugin_options);
    std::string state = *inv.opt<std::string>("state");
    if (state != "started" && state != "stopped")
        throw Error(Exit::usage, "--state must be started or stopped, not '" + state + "'");
    o.start = state == "started";
    o.standby_for = inv.opt<std::string>("standby-for").value_or("");
    o.slot = inv.opt<std::string>("slot").value_or("");
    o.replication_role = inv.opt<std::string>("replication-role").value_or("");
    o.replication_password_file = inv.opt<std::string>("password-file").value_or("");
    if (o.standby_for.empty() &&
        (!o.slot.empty() || !o.replication_role.empty() || !o.replication_password_file.empty()))
        throw Error(Exit::usage, "--slot, --replication-role and --password-file are for a standby",
                    "add --standby-for PRIMARY, or leave them out");
    if (inv.context == nullptr && !inv.json && !inv.quiet && isatty(STDERR_FILENO))
        inv.err << "creating instance " << (o.version.empty() ? "" : o.version + "/") << o.name
                << "\n";
    Instance i = instances::create(inv.ctx(), o);
    inv.end_progress();
    if (inv.json) {
        json j = instance_json(i);
        j["status"] = status_json(instances::status(inv.ctx(), i));
        j["changed"] = true;
        inv.out << j.dump(2) << "\n";
    } else if (!inv.quiet) {
        inv.out << "instance " << i.qualified_name() << " created"
                << (o.start ? " and started" : "") << " on port " << i.port << "\n";
        if (i.role == "standby")
            inv.out << "  standby of " << i.upstream << (i.slot.empty() ? "" : ", slot " + i.slot)
                    << (o.start ? ", streaming" : "") << "\n";
        inv.out << "  connect: " << connect_hint(i) << "\n";
    }
    return 0;
}

int instance_start(Invocation& inv) {
    if (inv.flag("foreground")) {
        Instance i = instances::get(inv.ctx(), inv.arg(0, "instance name"));
        instances::run_foreground(inv.ctx(), i);
    }
    auto timeout = timeout_value(inv);
    return for_each_instance_json(inv, [&](const Instance& i, json& j) {
        bool started = instances::start(inv.ctx(), i, timeout);
        inv.end_progress();
        j["changed"] = started;
        j["running"] = true;
        if (!inv.quiet && !inv.json)
            inv.out << "instance " << i.qualified_name()
                    << (started ? " started" : " is already running") << "\n";
        return 0;
    });
}

int instance_stop(Invocation& inv) {
    StopMode mode = parse_stop_mode(*inv.opt<std::string>("mode"));
    auto timeout = timeout_value(inv);
    return for_each_instance_json(inv, [&](const Instance& i, json& j) {
        bool stopped = instances::stop(inv.ctx(), i, mode, timeout);
        j["changed"] = stopped;
        j["running"] = false;
        if (!inv.quiet && !inv.json)
            inv.out << "instance " << i.qualified_name()
                    << (stopped ? " stopped" : " was not running") << "\n";
        return 0;
    });
}

int instance_restart(Invocation& inv) {
    StopMode mode = parse_stop_mode(*inv.opt<std::string>("mode"));
    auto timeout = timeout_value(inv);
    return for_each_instance_json(inv, [&](const Instance& i, json& j) {
        instances::restart(inv.ctx(), i, mode, timeout);
        inv.end_progress();
        j["changed"] = true;
        j["restarted"] = true;
        if (!inv.quiet && !inv.json) inv.out << "instance " << i.qualified_name() << " restarted\n";
        return 0;
    });
}

int instance_reload(Invocation& inv) {
    return for_each_instance_json(inv, [&](const Instance& i, json& j) {
        auto out = configuration::reload(inv.ctx(), i);
        json changes = json::array();
        for (const auto& c : out.changes) {
            changes.push_back({{"name", c.name},
                               {"before", c.before ? json(*c.before) : json(nullptr)},
                               {"after", c.after ? json(*c.after) : json(nullptr)},
                               {"effect", c.effect},
                               {"file", c.file.string()},
                               {"note", c.note.empty() ? json(nullptr) : json(c.note)}});
        }
        j["changed"] = out.changed;
        j["reloaded"] = out.reloaded;
        j["changes"] = changes;
        j["pending_restart"] = out.pending_restart_names;
        json restarts = json::array();
        for (const auto& r : out.restart_reasons)
            restarts.push_back({{"plugin", r.plugin}, {"effect", "restart"}, {"reason", r.reason}});
        j["plugin_restarts"] = restarts;
        if (inv.json || inv.quiet) return 0;
        for (const auto& c : out.changes) {
            inv.out << escape_control(c.name + ": " + (c.before ? *c.before : "(not set)") +
                                      " -> " + (c.after ? *c.after : "(not set)"))
                    << " (" << c.effect << ")\n";
            if (!c.note.empty()) inv.out << "  note: " << escape_control(c.note) << "\n";
        }
        for (const auto& r : out.restart_reasons)
            inv.out << escape_control("plugin " + r.plugin + ": " + r.reason) << " (restart)\n";
        inv.out << "instance " << i.qualified_name() << " reloaded\n";
        std::vector<std::string> pending = out.pending_restart_names;
        if (out.pending_restart)
            for (const auto& r : out.restart_reasons) pending.push_back("plugin " + r.plugin);
        print_pending(inv, i, pending);
        return 0;
    });
}

int instance_status(Invocation& inv) {
    json arr = json::array();
    int rc = for_each_instance(inv, [&](const Instance& i) {
        ServerStatus s = instances::status(inv.ctx(), i);
        const auto view = replication_view::observe(inv.ctx(), i);
        if (inv.json) {
            json j = {{"instance", i.qualified_name()}};
            j.update(status_json(s));
            j["replication"] = replication_json(view);
            arr.push_back(j);
        } else if (!inv.quiet) {
            inv.out << describe_status(i, s) << "\n";
            if (std::string line = replication_view::summary(view); !line.empty())
                inv.out << "  " << escape_control(line) << "\n";
        }
        return s.running ? 0 : static_cast<int>(Exit::stopped);
    });
    if (inv.json) inv.out << (inv.flag("all") ? arr.dump(2) : arr.at(0).dump(2)) << "\n";
    return rc;
}

int instance_get(Invocation& inv) {
    Instance i = instances::get(inv.ctx(), inv.arg(0, "instance name"));
    ServerStatus s = instances::status(inv.ctx(), i);
    auto fields = plugin_fields(inv.ctx(), i);
    const auto pending = settings_view::pending_restart(inv.ctx(), i);  // nullopt: stopped
    auto options = plugin_options::values(inv.ctx(), i);
    const auto view = replication_view::observe(inv.ctx(), i);
    if (inv.json) {
        json j = instance_json(i);
        j["replication"] = replication_json(view);
        // The fields of the instance manifest (docs/apply.md), so that this output applied as
        // it is (`instance apply -f -`) changes nothing.
        j["state"] = s.running ? "started" : "stopped";
        for (const char* key : {"encoding", "locale", "data_checksums", "auth_local", "auth_host"})
            if (j["options"].contains(key)) j[key] = j["options"][key];
        j["status"] = status_json(s);
        j["pending_restart"] = pending ? json(*pending) : json(nullptr);
        for (const auto& [plugin, key, value] : fields) j["plugins"][plugin][key] = value;
        // The per-instance options set (not the defaults), as the manifest's section of each
        // plugin, typed as the plugin declares them.
        std::map<std::string, std::string> types;
        if (!options.empty())
            for (const auto& d : plugin_options::declared(inv.ctx()))
                types[d.plugin + "." + d.key] = d.type;
        const json engine_fields = j;
        for (const auto& [plugin, keys] : options)
            for (const auto& [key, value] : keys) {
                // A plugin named like a field of the output above is left out.
                if (engine_fields.contains(plugin)) continue;
                const std::string type = types[plugin + "." + key];
                json v = value;
                if (type == "integer")
                    v = std::stoll(value);
                else if (type == "boolean")
                    v = value == "true";
                j[plugin][key] = v;
            }
        inv.out << j.dump(2) << "\n";
        return 0;
    }
    std::vector<std::vector<std::string>> rows = {
        {"name:", i.qualified_name()},
        {"status:", s.running ? "running (pid " + std::to_string(s.pid) + ")" : "stopped"},
        {"port:", std::to_string(i.port)},
        {"owner:", i.owner},
        {"superuser:", i.superuser},
        {"data directory:", i.data_dir.string()},
        {"WAL directory:",
         i.wal_dir.empty() ? (i.data_dir / "pg_wal").string() : i.wal_dir.string()},
        {"socket directory:", i.socket_dir.string()},
        {"log file:", i.log_file.string()},
        {"created:", i.created_at},
        {"connect:", connect_hint(i)},
        {"pending restart:", pending ? (*pending ? "yes" : "no") : "- (stopped)"},
    };
    if (!i.upgraded_from.empty()) rows.push_back({"upgraded from:", i.upgraded_from});
    replication_rows(view, rows);
    for (const auto& [plugin, keys] : options)
        for (const auto& [key, value] : keys)
            rows.push_back({"option " + plugin + "." + key + ":", value});
    for (const auto& [plugin, key, value] : fields)
        rows.push_back({plugin + " " + key + ":", value});
    print_table(inv.out, rows);
    return 0;
}

void history_options(po::options_description& d) {
    d.add_options()("limit", po::value<int>()->default_value(20), "how many operations");
}

// What happened to an instance: each operation, and with --verbose... each of its steps.
int instance_history(Invocation& inv) {
    std::string ref = inv.arg(0, "instance name");
    const int limit = *inv.opt<int>("limit");
    check_at_least(limit, 1, "--limit");
    std::string name;
    try {
        name = instances::get(inv.ctx(), ref).qualified_name();
    } catch (const Error& e) {
        // A dropped instance still has a history.
        if (e.code() != Exit::not_found || ref.find('/') == std::string::npos) throw;
        name = ref;
    }
    // A site without an inventory has no history; reading it must not create one.
    std::error_code ec;
    if (!std::filesystem::exists(inv.ctx().settings().inventory_file(), ec))
        throw Error(Exit::not_found, "instance " + ref + " has no history",
                    "see pgforge instance list");
    auto& inventory = inv.ctx().inventory();
    auto entries = inventory.journal(name, limit);
    std::reverse(entries.begin(), entries.end());
    auto state_of = [](const JournalEntry& e) {
        if (!e.outcome.empty()) return e.outcome;
        return std::string(process_gone(e.pid, e.process) ? "unfinished" : "running");
    };
    if (inv.json) {
        json arr = json::array();
        for (const auto& e : entries) {
            json steps = json::array();
            for (const auto& st : inventory.steps(e.id))
                steps.push_back({{"kind", st.kind},
                                 {"name", st.name},
                                 {"started_at", st.started_at},
                                 {"duration_ms", st.duration_ms},
                                 {"outcome", st.outcome},
                                 {"message", st.message}});
            arr.push_back({{"id", e.id},
                           {"operation", e.operation},
                           {"started_at", e.started_at},
                           {"ended_at", e.ended_at},
                           {"outcome", state_of(e)},
                           {"message", e.message},
                           {"pid", e.pid},
                           {"steps", steps}});
        }
        inv.out << arr.dump(2) << "\n";
        return 0;
    }
    for (const auto& e : entries) {
        inv.out << e.started_at << "  " << e.operation << "  " << state_of(e);
        if (!e.message.empty()) inv.out << ": " << e.message;
        inv.out << "\n";
        std::vector<std::vector<std::string>> rows;
        for (const auto& st : inventory.steps(e.id)) {
            char ms[32];
            std::snprintf(ms, sizeof ms, "%.1f ms", st.duration_ms);
            std::string msg = st.message;
            if (auto nl = msg.find('\n'); nl != std::string::npos) msg = msg.substr(0, nl) + " ...";
            rows.push_back({"    " + st.kind, st.name, ms, st.outcome, msg});
        }
        print_table(inv.out, rows);
    }
    return 0;
}

int instance_list(Invocation& inv) {
    auto items = instances::ls(inv.ctx(), inv.opt<std::string>("version").value_or(""));
    if (inv.json) {
        json arr = json::array();
        for (const auto& item : items) {
            json j = instance_json(item.instance);
            j["status"] = status_json(item.status);
            j["drift"] = item.drift.empty() ? json(nullptr) : json(item.drift);
            arr.push_back(j);
        }
        inv.out << arr.dump(2) << "\n";
        return 0;
    }
    if (items.empty()) {
        if (!inv.quiet) inv.out << "no instances\n";
        return 0;
    }
    std::vector<std::vector<std::string>> rows = {
        {"NAME", "VERSION", "PORT", "STATUS", "ROLE", "OWNER", "DATA DIRECTORY", "DRIFT"}};
    for (const auto& item : items) {
        const Instance& i = item.instance;
        std::string role = i.role.empty() ? "-" : i.role;
        if (!i.upstream.empty()) role += (i.role == "diverged" ? " from " : " of ") + i.upstream;
        rows.push_back({i.name, i.version, i.port ? std::to_string(i.port) : "-",
                        item.status.running ? "running" : "stopped", role,
                        i.owner.empty() ? "-" : i.owner, i.data_dir.string(), item.drift});
    }
    print_table(inv.out, rows);
    return 0;
}

int instance_drop(Invocation& inv) {
    Instance i = instances::get(inv.ctx(), inv.arg(0, "instance name"));
    instances::drop(inv.ctx(), i, inv.flag("force"));
    inv.end_progress();
    if (inv.json)
        inv.out << json{{"instance", i.qualified_name()}, {"changed", true}}.dump(2) << "\n";
    else if (!inv.quiet)
        inv.out << "instance " << i.qualified_name() << " dropped\n";
    return 0;
}

int instance_logs(Invocation& inv) {
    Instance i = instances::get(inv.ctx(), inv.arg(0, "instance name"));
    int lines = *inv.opt<int>("lines");
    check_at_least(lines, 0, "--lines");
    if (inv.json && inv.flag("follow"))
        throw Error(Exit::usage, "--follow prints the log as the server writes it, not JSON",
                    "drop --json, or --follow");
    // Under --json the text is gathered and printed as one object.
    std::ostringstream gathered;
    std::ostream& sink = inv.json ? static_cast<std::ostream&>(gathered) : inv.out;
    // The log is the owner's: it is opened with the owner's rights (a link to a file the owner
    // cannot read is refused) and read through that descriptor only.
    auto fd = safe_fs::open_for_reading(i.log_file, true);
    if (!fd)
        throw Error(
            Exit::not_found,
            "instance " + i.qualified_name() + " has no log yet (" + i.log_file.string() + ")",
            "start it: pgforge instance start " + i.qualified_name());
    std::string chunk(65536, '\0');
    auto copy_out = [&]() {
        bool any = false;
        for (;;) {
            ssize_t n = read(fd->get(), chunk.data(), chunk.size());
            if (n < 0 && errno == EINTR) continue;
            if (n < 0)
                throw Error(Exit::failure,
                            "cannot read " + i.log_file.string() + ": " + std::strerror(errno));
            if (n == 0) return any;
            sink.write(chunk.data(), n);
            any = true;
        }
    };
    if (lines > 0) {
        // Only the end is read: the last 64 KiB hold the lines asked for, or as many as fit.
        struct stat st {};
        fstat(fd->get(), &st);
        off_t from = st.st_size > 65536 ? st.st_size - 65536 : 0;
        lseek(fd->get(), from, SEEK_SET);
        std::string text;
        for (;;) {
            ssize_t n = read(fd->get(), chunk.data(), chunk.size());
            if (n < 0 && errno == EINTR) continue;
            if (n <= 0) break;
            text.append(chunk.data(), static_cast<size_t>(n));
        }
        if (!text.empty() && text.back() == '\n') text.pop_back();
        // As tail_file: walk back over `lines` newlines.
        size_t begin = text.size();
        bool whole = false;
        for (int k = 0; k < lines && !whole; ++k) {
            size_t nl = begin == 0 ? std::string::npos : text.rfind('\n', begin - 1);
            if (nl == std::string::npos)
                whole = true;
            else
                begin = nl;
        }
        sink << (whole ? text : text.substr(begin + 1)) << "\n";
    } else {
        copy_out();
    }
    if (inv.json) {
        json arr = json::array();
        std::istringstream in(gathered.str());
        for (std::string line; std::getline(in, line);) arr.push_back(line);
        // The log is the server's bytes: what is not UTF-8 is replaced, not refused.
        inv.out << json{{"instance", i.qualified_name()},
                        {"log_file", i.log_file.string()},
                        {"lines", arr}}
                       .dump(2, ' ', false, json::error_handler_t::replace)
                << "\n";
        return 0;
    }
    inv.out.flush();
    if (!inv.flag("follow")) return 0;
    // Follow: print what is appended, as tail -f does, until interrupted.
    while (!interrupted()) {
        if (copy_out()) {
            inv.out.flush();
            continue;
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(200));
    }
    return 0;
}

int instance_env(Invocation& inv) {
    Instance i = instances::get(inv.ctx(), inv.arg(0, "instance name"));
    auto env = instances::environment(inv.ctx(), i);
    if (inv.json) {
        json j = json::object();
        for (const auto& [k, v] : env) j[k] = v;
        inv.out << j.dump(2) << "\n";
        return 0;
    }
    for (const auto& [k, v] : env) inv.out << "export " << k << "=" << shell_quote(v) << "\n";
    return 0;
}

int instance_exec(Invocation& inv) {
    Instance i = instances::get(inv.ctx(), inv.arg(0, "instance name"));
    if (inv.trailing.empty())
        throw Error(Exit::usage, "no command to run",
                    "write it after --: pgforge instance exec " + i.qualified_name() + " -- psql");
    auto env = instances::environment(inv.ctx(), i);
    Command cmd;
    cmd.argv = inv.trailing;
    // A built environment like every program's: the instance's variables, PATH, the locale,
    // and what an interactive program needs from the terminal; not the rest of pgforge's own.
    cmd.inherit = terminal_variables;
    std::string path;
    for (const auto& [k, v] : env) {
        cmd.env.push_back(k + "=" + v);
        if (k == "PATH") path = v;
    }
    // Resolve the program on the instance's PATH (its bindir first).
    if (cmd.argv[0].find('/') == std::string::npos) {
        std::istringstream dirs(path);
        for (std::string dir; std::getline(dirs, dir, ':');) {
            fs::path candidate = fs::path(dir) / cmd.argv[0];
            if (!dir.empty() && access(candidate.c_str(), X_OK) == 0) {
                cmd.argv[0] = candidate.string();
                break;
            }
        }
    }
    cmd.cwd = fs::current_path();
    inv.out.flush();
    exec_replacing(cmd);
}

int instance_checksums(Invocation& inv) {
    Instance i = instances::get(inv.ctx(), inv.arg(0, "instance name"));
    const std::string action = inv.arg(1, "action (enable, disable or status)");
    json j = {{"instance", i.qualified_name()}};
    if (action == "status") {
        auto s = checksums::status(inv.ctx(), i);
        j["data_checksums"] = s.enabled;
        j["version"] = s.version;
        if (inv.json)
            inv.out << j.dump(2) << "\n";
        else
            inv.out << "instance " << i.qualified_name() << ": data checksums "
                    << (s.enabled ? "enabled (version " + std::to_string(s.version) + ")"
                                  : std::string("disabled"))
                    << "\n";
        return 0;
    }
    if (action != "enable" && action != "disable")
        throw Error(Exit::usage, "unknown checksums action '" + action + "'",
                    "say enable, disable or status");
    const bool enable = action == "enable";
    auto out = checksums::set(inv.ctx(), i, enable);
    inv.end_progress();
    j["changed"] = out.changed;
    j["data_checksums"] = out.enabled;
    j["stopped_for_work"] = out.was_running;
    j["running"] = instances::status(inv.ctx(), i).running;
    auto count = [](long n) { return n < 0 ? json(nullptr) : json(n); };
    j["files_scanned"] = count(out.files_scanned);
    j["blocks_scanned"] = count(out.blocks_scanned);
    j["files_written"] = count(out.files_written);
    j["blocks_written"] = count(out.blocks_written);
    if (inv.json) {
        inv.out << j.dump(2) << "\n";
    } else if (!inv.quiet) {
        inv.out << "instance " << i.qualified_name() << ": data checksums "
                << (!out.changed ? std::string("were already ") + (enable ? "enabled" : "disabled")
                                 : std::string(enable ? "enabled" : "disabled"))
                << (out.was_running ? " (the server was stopped for it, and runs again)" : "")
                << "\n";
    }
    return 0;
}

// ---- instance settings ---------------------------------------------------------------------

void settings_options(po::options_description& d) {
    // clang-format off
    d.add_options()
        ("changed", po::bool_switch(), "only the parameters not at their default")
        ("pending-restart", po::bool_switch(), "only those whose new value waits for a restart");
    // clang-format on
}

int instance_settings(Invocation& inv) {
    Instance i = instances::get(inv.ctx(), inv.arg(0, "instance name"));
    settings_view::Query q;
    q.names.assign(inv.positional.begin() + 1, inv.positional.end());
    q.changed = inv.flag("changed");
    q.pending_restart = inv.flag("pending-restart");
    auto view = settings_view::read(inv.ctx(), i, q);
    auto opt = [](const std::optional<std::string>& v) { return v ? json(*v) : json(nullptr); };
    if (inv.json) {
        json arr = json::array();
        for (const auto& s : view.settings)
            arr.push_back({{"name", s.name},
                           {"setting", s.setting},
                           {"value", s.value},
                           {"unit", opt(s.unit)},
                           {"source", s.source},
                           {"sourcefile", s.file.empty() ? json(nullptr) : json(s.file.string())},
                           {"sourceline", s.line ? json(s.line) : json(nullptr)},
                           {"context", s.context.empty() ? json(nullptr) : json(s.context)},
                           {"pending_restart",
                            s.pending_restart ? json(*s.pending_restart) : json(nullptr)}});
        inv.out << json{{"instance", i.qualified_name()},
                        {"running", view.running},
                        {"note", view.note.empty() ? json(nullptr) : json(view.note)},
                        {"settings", arr}}
                       .dump(2)
                << "\n";
        return 0;
    }
    if (!view.note.empty()) inv.out << view.note << "\n";
    std::vector<std::vector<std::string>> rows = {
        {"NAME", "VALUE", "SOURCE", "FILE:LINE", "CONTEXT", "PENDING RESTART"}};
    for (const auto& s : view.settings)
        rows.push_back({s.name, s.value, s.source,
                        s.file.empty() ? "" : s.file.string() + ":" + std::to_string(s.line),
                        s.context, s.pending_restart ? (*s.pending_restart ? "yes" : "no") : "-"});
    print_table(inv.out, rows);
    return 0;
}

// ---- the table ------------------------------------------------------------------------------

const std::vector<CommandSpec> kInstanceCommands = {
    {"installation", "list", "", "PostgreSQL installations found on this machine", no_options,
     installation_list},
    {"instance", "create", "NAME", "initdb, configure, start and record an instance",
     create_options, instance_create},
    {"instance", "start", "NAME|--all", "start and wait until it accepts connections",
     start_options, instance_start},
    {"instance", "stop", "NAME|--all", "stop and wait until the server is gone", stop_options,
     instance_stop},
    {"instance", "restart", "NAME|--all", "stop, then start", stop_options, instance_restart},
    {"instance", "reload", "NAME|--all", "make the server re-read its configuration files",
     all_option, instance_reload},
    {"instance", "status", "NAME|--all", "running (exit 0) or stopped (exit 3)", all_option,
     instance_status},
    {"instance", "get", "NAME", "what pgforge knows of an instance", no_options, instance_get},
    {"instance", "settings", "NAME [PARAM...]",
     "run-time settings: pg_settings when running, else the files as the server would read them",
     settings_options, instance_settings},
    {"instance", "list", "", "instances, their state, and drift from the disk", list_options,
     instance_list},
    {"instance", "drop", "NAME", "stop an instance and remove its files and entry", drop_options,
     instance_drop},
    {"instance", "logs", "NAME", "the server's log", logs_options, instance_logs},
    {"instance", "history", "NAME", "operations on an instance, their steps and hook calls",
     history_options, instance_history},
    {"instance", "env", "NAME", "PGHOST, PGPORT, PGDATA, PGUSER lines to eval", no_options,
     instance_env},
    {"instance", "checksums", "NAME enable|disable|status",
     "data checksums: status, or turn them on or off with pg_checksums (the server stopped "
     "for it if it runs, then started again)",
     no_options, instance_checksums},
    {"instance", "exec", "NAME -- CMD...", "run a command with the instance's environment",
     no_options, instance_exec},
};

}  // namespace

json instance_json(const Instance& i) {
    json options = json::parse(i.options.empty() ? "{}" : i.options, nullptr, false);
    return {{"name", i.name},
            {"version", i.version},
            {"qualified_name", i.qualified_name()},
            {"port", i.port},
            {"owner", i.owner},
            {"superuser", i.superuser},
            {"data_dir", i.data_dir.string()},
            {"wal_dir", i.wal_dir.empty() ? (i.data_dir / "pg_wal").string() : i.wal_dir.string()},
            {"socket_dir", i.socket_dir.string()},
            {"log_file", i.log_file.string()},
            {"created_at", i.created_at},
            {"options", options.is_discarded() ? json::object() : options},
            {"role", i.role},
            {"upstream", i.upstream.empty() ? json(nullptr) : json(i.upstream)},
            {"slot", i.slot.empty() ? json(nullptr) : json(i.slot)},
            {"upgraded_from", i.upgraded_from.empty() ? json(nullptr) : json(i.upgraded_from)}};
}

const std::vector<CommandSpec>& instance_commands() {
    return kInstanceCommands;
}

}  // namespace pgforge::cli
