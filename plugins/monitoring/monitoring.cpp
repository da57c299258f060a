// monitoring: a Prometheus postgres_exporter for each instance, supervised by pgforge.
//
// The exporter runs as the instance owner and connects over the instance's unix socket as a
// monitoring role (member of pg_monitor) with peer authentication: no password anywhere. It
// listens on 127.0.0.1 only, on a port reserved for it in the inventory. pgforge starts it after
// the instance starts, stops it before the instance stops, and restarts it only when its
// configuration changed: a helper the engine supervises (sdk::Helpers: its pid, port and
// configuration hash in the inventory). Its files are in <base_dir>/monitoring/: exporter.env
// (what it runs with, for humans and systemd), exporter.pid, exporter.log.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <nlohmann/json.hpp>
#include <pgforge/helpers.hpp>
#include <pgforge/options.hpp>
#include <pgforge/plugin.hpp>
#include <sstream>

namespace {

using namespace pgforge::sdk;
namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

// The pg_ident.conf map that lets the instance owner log in as the monitoring role.
constexpr const char* ident_map = "pgforge_monitor";
constexpr const char* listen_flag = "--web.listen-address=";
// The exporter's name among the plugin's helpers.
constexpr const char* helper = "exporter";

// ---------------------------------------------------------------- settings

struct Options {
    std::string role = "pgforge_monitor";
    int port_min = 9200;
    int port_max = 9299;
    std::string exporter = "/usr/bin/prometheus-postgres-exporter";
    std::vector<std::string> extra_args;
    double start_timeout = 10;
    double stop_timeout = 10;
};

std::vector<std::string> split_words(const std::string& text) {
    std::istringstream in(text);
    std::vector<std::string> words;
    for (std::string w; in >> w;) words.push_back(w);
    return words;
}

bool parse_number(const std::string& text, double& out) {
    try {
        size_t used = 0;
        out = std::stod(text, &used);
        return used == text.size();
    } catch (const std::exception&) {
        return false;
    }
}

// The [monitoring] section, checked; an error message names the key and says what it takes.
std::string read_options(const Context& ctx, Options& o) {
    for (const auto& [key, value] : ctx.settings()) {
        if (key == "role") {
            bool ok = !value.empty() && value.size() <= 63 &&
                      (std::islower(static_cast<unsigned char>(value[0])) || value[0] == '_');
            for (char c : value)
                ok = ok && (std::islower(static_cast<unsigned char>(c)) ||
                            std::isdigit(static_cast<unsigned char>(c)) || c == '_');
            if (!ok)
                return "[monitoring] role = '" + value +
                       "' is not a plain role name: use lower-case letters, digits and _ (at most "
                       "63), e.g. pgforge_monitor";
            o.role = value;
        } else if (key == "port_min" || key == "port_max") {
            double n = 0;
            if (!parse_number(value, n) || n != static_cast<int>(n) || n < 1024 || n > 65535)
                return "[monitoring] " + key + " = '" + value +
                       "' is not a port: use a whole number between 1024 and 65535";
            (key == "port_min" ? o.port_min : o.port_max) = static_cast<int>(n);
        } else if (key == "exporter") {
            if (value.empty() || value[0] != '/')
                return "[monitoring] exporter = '" + value +
                       "' is not an absolute path: name the program, e.g. "
                       "/usr/bin/prometheus-postgres-exporter";
            o.exporter = value;
        } else if (key == "extra_args") {
            o.extra_args = split_words(value);
            for (const auto& a : o.extra_args)
                if (a.rfind("--web.listen-address", 0) == 0 ||
                    a.rfind("--web.systemd-socket", 0) == 0)
                    return "[monitoring] extra_args may not set " + a +
                           ": pgforge chooses the listen address (port_min/port_max)";
        } else if (key == "start_timeout" || key == "stop_timeout") {
            double n = 0;
            if (!parse_number(value, n) || n <= 0 || n > 3600)
                return "[monitoring] " + key + " = '" + value +
                       "' is not a duration: use seconds, more than 0 (e.g. 10)";
            (key == "start_timeout" ? o.start_timeout : o.stop_timeout) = n;
        } else {
            return "[monitoring] has no setting '" + key +
                   "': the settings are role, port_min, port_max, exporter, extra_args, "
                   "start_timeout, stop_timeout";
        }
    }
    if (o.port_min > o.port_max)
        return "[monitoring] port_min (" + std::to_string(o.port_min) + ") is above port_max (" +
               std::to_string(o.port_max) + "): swap them";
    return {};
}

// ---------------------------------------------------------------- files

fs::path files_dir(const Instance& i) {
    return i.base_dir() / "monitoring";
}
fs::path pid_file(const Instance& i) {
    return files_dir(i) / "exporter.pid";
}
fs::path env_file(const Instance& i) {
    return files_dir(i) / "exporter.env";
}
fs::path log_file(const Instance& i) {
    return files_dir(i) / "exporter.log";
}

// ---------------------------------------------------------------- network

struct HttpReply {
    bool reached = false;
    int status = 0;
    std::string body;
    std::string error;
};

// GET http://127.0.0.1:port/path, HTTP/1.0, read to the end.
HttpReply http_get(int port, const std::string& path, double timeout) {
    HttpReply r;
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        r.error = std::strerror(errno);
        return r;
    }
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(static_cast<uint16_t>(port));
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
        r.error = std::string("cannot connect: ") + std::strerror(errno);
        close(fd);
        return r;
    }
    r.reached = true;
    std::string request = "GET " + path + " HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n";
    if (send(fd, request.data(), request.size(), MSG_NOSIGNAL) !=
        static_cast<ssize_t>(request.size())) {
        r.error = std::string("cannot send: ") + std::strerror(errno);
        close(fd);
        return r;
    }
    std::string reply;
    auto until = Clock::now() + std::chrono::milliseconds(static_cast<long>(timeout * 1000));
    char buf[65536];
    while (true) {
        auto left =
            std::chrono::duration_cast<std::chrono::milliseconds>(until - Clock::now()).count();
        if (left <= 0) {
            r.error =
                "no complete answer within " + std::to_string(static_cast<int>(timeout)) + " s";
            break;
        }
        pollfd p{fd, POLLIN, 0};
        if (poll(&p, 1, static_cast<int>(left)) <= 0) continue;
        ssize_t n = recv(fd, buf, sizeof buf, 0);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) break;
        reply.append(buf, static_cast<size_t>(n));
    }
    close(fd);
    auto space = reply.find(' ');
    if (reply.rfind("HTTP/", 0) == 0 && space != std::string::npos)
        r.status = std::atoi(reply.c_str() + space + 1);
    auto head_end = reply.find("\r\n\r\n");
    if (head_end != std::string::npos) r.body = reply.substr(head_end + 4);
    if (r.status == 0 && r.error.empty()) r.error = "not an HTTP answer";
    return r;
}

// The value of an unlabelled metric in Prometheus' text format.
std::optional<double> metric(const std::string& body, const std::string& name) {
    std::istringstream in(body);
    for (std::string line; std::getline(in, line);) {
        if (line.size() > name.size() && line.compare(0, name.size(), name) == 0 &&
            line[name.size()] == ' ') {
            double v = 0;
            if (parse_number(line.substr(name.size() + 1), v)) return v;
        }
    }
    return std::nullopt;
}

// ---------------------------------------------------------------- the exporter's command

// A value of a libpq-style key=value connection string.
std::string dsn_value(const std::string& v) {
    bool plain = !v.empty();
    for (char c : v)
        if (c == ' ' || c == '\'' || c == '\\' || c == '=') plain = false;
    if (plain) return v;
    std::string out = "'";
    for (char c : v) {
        if (c == '\'' || c == '\\') out += '\\';
        out += c;
    }
    return out + "'";
}

std::string dsn_for(const Options& o, const Instance& i) {
    return "host=" + dsn_value(i.socket_dir().string()) + " port=" + std::to_string(i.port()) +
           " user=" + dsn_value(o.role) + " dbname=postgres sslmode=disable";
}

// What the exporter runs with on `port`: only what is written in exporter.env reaches it (the
// engine builds a helper's environment; nothing of pgforge's own, no PG* variable of its own).
HelperSpec spec_for(const Options& o, const Instance& i, int port) {
    HelperSpec spec;
    spec.argv = {o.exporter, std::string(listen_flag) + "127.0.0.1:" + std::to_string(port)};
    spec.argv.insert(spec.argv.end(), o.extra_args.begin(), o.extra_args.end());
    spec.env = {"DATA_SOURCE_NAME=" + dsn_for(o, i)};
    spec.log_file = log_file(i);
    spec.cwd = files_dir(i);
    spec.port = port;
    spec.pid_file = pid_file(i);
    spec.start_timeout = o.start_timeout;
    spec.stop_timeout = o.stop_timeout;
    return spec;
}

std::string env_file_text(const Instance& i, const Options& o, const HelperSpec& spec,
                          const std::string& hash) {
    std::string args;
    for (size_t k = 1; k < spec.argv.size(); ++k) args += (k > 1 ? " " : "") + spec.argv[k];
    return "# The Prometheus exporter of instance " + i.qualified_name() +
           ", supervised by pgforge (plugin monitoring).\n"
           "# Written by pgforge when the exporter starts; edits are overwritten. No password:\n"
           "# the exporter runs as " +
           i.owner() +
           " and logs in over the unix socket with peer authentication.\n"
           "# Usable as a systemd EnvironmentFile: ExecStart=" +
           spec.argv[0] + " $ARGS\nDATA_SOURCE_NAME=\"" + dsn_for(o, i) + "\"\nARGS=\"" + args +
           "\"\n# configuration " + hash + "\n";
}

// ---------------------------------------------------------------- supervision

// The engine's helper supervision (SDK 1.1), offered on every call about an instance.
Helpers* helpers_of(Context& ctx) {
    return find<Helpers>(ctx);
}

constexpr const char* no_helpers =
    "this pgforge does not supervise helper processes (sdk::Helpers, SDK 1.1): upgrade pgforge";

// Stops the instance's exporter, if it runs; an error says why it could not.
std::string stop_exporter(Context& ctx, const Options& o) {
    Helpers* h = helpers_of(ctx);
    if (!h) return no_helpers;
    std::string error;
    if (!h->stop(helper, o.stop_timeout, error)) return error;
    return {};
}

// Makes the monitoring role exist, log in and read what pg_monitor reads.
std::string ensure_role(Context& ctx, const Options& o) {
    const Instance& i = *ctx.instance();
    auto r = ctx.query(
        "SELECT pg_is_in_recovery()::text, (SELECT rolcanlogin::text FROM pg_roles WHERE rolname "
        "= $1), (SELECT pg_has_role(oid, 'pg_monitor', 'MEMBER')::text FROM pg_roles WHERE "
        "rolname = $1)",
        {o.role});
    if (!r.ok || r.rows.empty())
        return "cannot read the roles of " + i.qualified_name() + ": " + r.error;
    const auto& row = r.rows.at(0);
    bool standby = row.at(0).value_or("") == "true";
    bool exists = row.at(1).has_value();
    bool login = row.at(1).value_or("") == "true";
    bool member = row.at(2).value_or("") == "true";
    if (exists && login && member) return {};
    if (standby) {
        ctx.log(LogLevel::warning,
                "role " + o.role + " is not ready on " + i.qualified_name() +
                    ", a standby: it comes from the primary once monitoring runs there");
        return {};
    }
    std::string role = ctx.quote_identifier(o.role);
    std::vector<std::string> statements;
    if (!exists) statements.push_back("CREATE ROLE " + role + " LOGIN");
    if (exists && !login) statements.push_back("ALTER ROLE " + role + " LOGIN");
    if (!member) statements.push_back("GRANT pg_monitor TO " + role);
    for (const auto& sql : statements) {
        auto done = ctx.query(sql);
        if (!done.ok)
            return "cannot set up the monitoring role " + o.role + " on " + i.qualified_name() +
                   " (" + sql + "): " + done.error;
    }
    ctx.log(LogLevel::info, (exists ? "made role " : "created role ") + o.role + " on " +
                                i.qualified_name() + " (login, member of pg_monitor)");
    return {};
}

// What the server reads lacks for the exporter to log in (an instance created before the plugin
// was enabled, or the role renamed since): the commands that add it, or empty.
std::string login_gaps(Context& ctx, const Options& o) {
    const Instance& i = *ctx.instance();
    auto count = [&](const std::string& sql, const std::vector<std::string>& params) {
        auto r = ctx.query(sql, params);
        return r.ok && !r.rows.empty() ? std::atoi(r.rows[0].at(0).value_or("0").c_str()) : -1;
    };
    std::string fixes;
    // pg_ident_file_mappings is PostgreSQL 15's; before, the mapping is not checked.
    if (count("SELECT (to_regclass('pg_catalog.pg_ident_file_mappings') IS NOT NULL)::int", {}) ==
            1 &&
        count("SELECT count(*) FROM pg_ident_file_mappings WHERE map_name = $1 AND sys_name = $2 "
              "AND pg_username = $3 AND error IS NULL",
              {ident_map, i.owner(), o.role}) == 0)
        fixes += "\n  pgforge ident add -i " + i.qualified_name() + " " + ident_map + " " +
                 i.owner() + " " + o.role;
    if (count("SELECT count(*) FROM pg_hba_file_rules WHERE type = 'local' AND auth_method = "
              "'peer' AND $1 = ANY(user_name) AND ('map=' || $2) = ANY(options) AND error IS NULL",
              {o.role, ident_map}) == 0)
        fixes += "\n  pgforge hba add -i " + i.qualified_name() + " --position 1 local all " +
                 o.role + " peer map=" + ident_map;
    if (fixes.empty()) return {};
    return "the exporter of " + i.qualified_name() + " cannot log in as " + o.role +
           ": the server's pg_hba.conf/pg_ident.conf lack the record and mapping monitoring "
           "contributes (the instance predates the plugin, or [monitoring] role changed); "
           "pgforge instance reload " +
           i.qualified_name() + " adds them, or by hand:" + fixes;
}

// The ports the exporter's reservation may take: the instance's option monitoring.port (SDK 1.2)
// alone when it is set, else [monitoring] port_min..port_max. {0, 0} with `error` for an option
// that is not a port.
std::pair<int, int> port_range(Context& ctx, const Options& o, std::string& error) {
    InstanceOptions* options = find<InstanceOptions>(ctx);
    auto fixed = options ? options->option("port") : std::nullopt;
    if (!fixed) return {o.port_min, o.port_max};
    long n = 0;
    try {
        n = std::stol(*fixed);
    } catch (const std::exception&) {
    }
    if (n < 1024 || n > 65535) {
        error = "the option monitoring.port of instance " + ctx.instance()->qualified_name() +
                " is '" + *fixed + "', not a port between 1024 and 65535: set another";
        return {0, 0};
    }
    return {int(n), int(n)};
}

// Why no port was reserved in `range`, and what to do.
std::string no_port(Context& ctx, const Options& o, const Instance& i) {
    InstanceOptions* options = find<InstanceOptions>(ctx);
    if (auto fixed = options ? options->option("port") : std::nullopt)
        return "port " + *fixed + " (the option monitoring.port of " + i.qualified_name() +
               ") is reserved by another instance's exporter or plugin: choose another port with "
               "the option, or remove it";
    return "no free port between " + std::to_string(o.port_min) + " and " +
           std::to_string(o.port_max) + " for the exporter of " + i.qualified_name() +
           ": widen [monitoring] port_min/port_max in the settings file";
}

// Makes the exporter of a running instance run with the current configuration: started when it
// does not run, restarted when its configuration changed (or `restart`), else left alone.
Result ensure_exporter(Context& ctx, const Options& o, bool restart) {
    const Instance& i = *ctx.instance();
    if (!i.running()) return Result::proceed();
    Helpers* h = helpers_of(ctx);
    if (!h) return Result::refuse(no_helpers);
    if (::access(o.exporter.c_str(), X_OK) != 0)
        return Result::refuse("the exporter " + o.exporter +
                              " is not installed: apt-get install prometheus-postgres-exporter, "
                              "or name the program with [monitoring] exporter = PATH");
    if (auto why = ensure_role(ctx, o); !why.empty()) return Result::refuse(why);
    if (auto gaps = login_gaps(ctx, o); !gaps.empty()) ctx.log(LogLevel::warning, gaps);
    // The reservation, within the current range (one outside it, after the range changed, is
    // given back and another one taken).
    std::string port_error;
    auto range = port_range(ctx, o, port_error);
    if (!port_error.empty()) return Result::refuse(port_error);
    int port = h->reserve_port(helper, range.first, range.second);
    if (port == 0) return Result::refuse(no_port(ctx, o, i));
    HelperSpec spec = spec_for(o, i, port);
    HelperStatus now = h->status(helper);
    if (now.running && !restart && now.config_hash == h->hash(spec)) return Result::proceed();

    std::string error;
    if (!ctx.make_directory(files_dir(i), 0700, error) ||
        !ctx.write_file(env_file(i), env_file_text(i, o, spec, h->hash(spec)), 0600, error))
        return Result::refuse("cannot write " + env_file(i).string() + ": " + error);
    HelperResult r = h->ensure(helper, spec, restart);
    if (r.ok) {
        if (r.started)
            ctx.log(LogLevel::info, "exporter of " + i.qualified_name() +
                                        " on http://127.0.0.1:" + std::to_string(port) +
                                        "/metrics (pid " + std::to_string(r.pid) + ")");
        return Result::proceed();
    }
    if (r.failure == HelperResult::Failure::port_in_use)
        return Result::refuse(r.message +
                              ": stop that program, or move the exporter to another free port: "
                              "pgforge monitoring restart -i " +
                              i.qualified_name() + " --new-port");
    if (r.failure == HelperResult::Failure::not_listening)
        return Result::refuse(r.message +
                              " (raise [monitoring] start_timeout if the machine is slow)");
    return Result::refuse(r.message);
}

// ---------------------------------------------------------------- the plugin

class Monitoring final : public Plugin {
  public:
    Result setup(Context& ctx) override {
        Options o;
        if (auto why = read_options(ctx, o); !why.empty()) return Result::refuse(why);
        return Result::proceed();
    }

    Result on_hook(HookContext& ctx) override {
        Options o;
        if (auto why = read_options(ctx, o); !why.empty()) return Result::refuse(why);
        const Instance& i = *ctx.instance();
        switch (ctx.point()) {
            case declared<HookPoint::pre_configure>():
                // Peer authentication through a map of our own: the owner (who runs the
                // exporter) logs in as the monitoring role over the socket, with no password.
                if (Configuration* c = ctx.configuration()) {
                    c->add_hba_record("local all " + o.role + " peer map=" + ident_map,
                                      HbaPlace::first);
                    c->add_ident_mapping(ident_map, i.owner(), o.role);
                }
                return Result::proceed();
            case declared<HookPoint::post_configure>():
                // A running exporter whose configuration changed (a reload after the settings
                // changed) is restarted; nothing else.
                if (Helpers* h = helpers_of(ctx);
                    ctx.outcome().ok && i.running() && h && h->status(helper).running)
                    return ensure_exporter(ctx, o, false);
                return Result::proceed();
            case declared<HookPoint::post_start>(): {
                if (!ctx.outcome().ok) return Result::proceed();
                Result r = ensure_exporter(ctx, o, false);
                // If the operation fails after this (a later handler refuses), the exporter
                // goes with the server it watches.
                if (!r.refused())
                    ctx.on_undo("exporter of " + i.qualified_name(), [o](Context& undo) {
                        if (auto why = stop_exporter(undo, o); !why.empty())
                            undo.log(LogLevel::warning, why);
                    });
                return r;
            }
            case declared<HookPoint::pre_stop>():
            case declared<HookPoint::pre_drop>():
                if (auto why = stop_exporter(ctx, o); !why.empty()) ctx.log(LogLevel::warning, why);
                return Result::proceed();
            case declared<HookPoint::post_stop>():
                // The server did not stop: its exporter comes back.
                if (!ctx.outcome().ok && i.running()) {
                    Result r = ensure_exporter(ctx, o, false);
                    if (r.refused()) ctx.log(LogLevel::warning, r.message);
                }
                return Result::proceed();
            default:
                return Result::proceed();
        }
    }

    std::vector<Command> commands() const override {
        return {
            {"monitoring", "status", "-i NAME [--json]",
             "whether the instance's exporter runs, its port, and whether a scrape works", true},
            {"monitoring", "restart", "-i NAME [--new-port]",
             "restart the instance's exporter (--new-port: on another free port)", true}};
    }

    int run_command(const Command& command, CommandContext& ctx) override {
        Options o;
        if (auto why = read_options(ctx, o); !why.empty()) {
            ctx.err("monitoring: " + why + "\n");
            return 1;
        }
        if (command.verb == "status") return status(ctx, o);
        if (command.verb == "restart") return restart(ctx, o);
        return 2;
    }

    std::vector<Field> describe(Context& ctx) override {
        Options o;
        if (!ctx.instance() || !read_options(ctx, o).empty()) return {};
        // Without the engine's supervision (a test's fake context): nothing recorded.
        Helpers* h = helpers_of(ctx);
        HelperStatus st = h ? h->status(helper) : HelperStatus{};
        if (!st.port) return {{"exporter", "not started yet (it starts with the instance)"}};
        std::string port = std::to_string(st.port);
        return {{"address", "127.0.0.1:" + port},
                {"metrics", "http://127.0.0.1:" + port + "/metrics"},
                {"exporter", st.running ? "running (pid " + std::to_string(st.pid) + ")"
                                        : std::string("stopped")}};
    }

  private:
    static int status(CommandContext& ctx, const Options& o) {
        for (const auto& a : ctx.args()) {
            ctx.err("monitoring status: unexpected argument '" + a +
                    "'\nusage: pgforge monitoring status -i NAME [--json]\n");
            return 2;
        }
        const Instance& i = *ctx.instance();
        nlohmann::json j = {{"instance", i.qualified_name()}};
        Helpers* h = helpers_of(ctx);
        if (!h) {
            ctx.err(std::string("monitoring: ") + no_helpers + "\n");
            return 1;
        }
        HelperStatus st = h->status(helper);
        int port = st.port;
        long pid = st.running ? st.pid : 0;
        j["running"] = pid != 0;
        j["pid"] = pid ? nlohmann::json(pid) : nlohmann::json(nullptr);
        j["port"] = port ? nlohmann::json(port) : nlohmann::json(nullptr);
        j["address"] = port ? nlohmann::json("127.0.0.1:" + std::to_string(port)) : nullptr;
        j["role"] = o.role;
        j["log_file"] = log_file(i).string();
        j["instance_running"] = i.running();
        bool current = false;
        if (pid && port) current = st.config_hash == h->hash(spec_for(o, i, port));
        j["configuration_current"] = current;
        bool scrape_ok = false;
        std::string scrape_text = "not tried (the exporter does not run)";
        nlohmann::json scrape = nullptr;
        if (pid && port) {
            HttpReply r = http_get(port, "/metrics", 15);
            auto up = metric(r.body, "pg_up");
            auto last_error = metric(r.body, "pg_exporter_last_scrape_error");
            scrape_ok = r.status == 200 && up && *up == 1;
            scrape = {{"http_status", r.status}};
            scrape["pg_up"] = up ? nlohmann::json(static_cast<int>(*up)) : nullptr;
            scrape["last_scrape_error"] =
                last_error ? nlohmann::json(static_cast<int>(*last_error)) : nullptr;
            if (!r.error.empty()) scrape["error"] = r.error;
            if (scrape_ok)
                scrape_text = "ok (pg_up 1)";
            else if (r.status != 200)
                scrape_text =
                    "failed: " +
                    (r.error.empty() ? "HTTP status " + std::to_string(r.status) : r.error);
            else
                scrape_text =
                    "failed: pg_up " +
                    (up ? std::to_string(static_cast<int>(*up)) : std::string("missing")) +
                    " (the exporter cannot reach the server; see " + log_file(i).string() + ")";
        }
        j["scrape_ok"] = scrape_ok;
        j["scrape"] = scrape;
        if (ctx.json()) {
            ctx.out(j.dump(2) + "\n");
        } else {
            std::string text = "instance:    " + i.qualified_name() + "\n";
            text +=
                "exporter:    " +
                (pid ? "running (pid " + std::to_string(pid) + ")" +
                           (current ? "" : ", configuration changed since it started")
                     : std::string("stopped") + (i.running() ? "" : " (the instance is stopped)")) +
                "\n";
            text += "address:     " +
                    (port ? "http://127.0.0.1:" + std::to_string(port) + "/metrics"
                          : std::string("none yet (reserved when the instance starts)")) +
                    "\n";
            text += "last scrape: " + scrape_text + "\n";
            ctx.out(text);
        }
        return pid && scrape_ok ? 0 : 1;
    }

    static int restart(CommandContext& ctx, const Options& o) {
        bool new_port = false;
        for (const auto& a : ctx.args()) {
            if (a == "--new-port") {
                new_port = true;
                continue;
            }
            ctx.err("monitoring restart: unexpected argument '" + a +
                    "'\nusage: pgforge monitoring restart -i NAME [--new-port]\n");
            return 2;
        }
        const Instance& i = *ctx.instance();
        if (InstanceOptions* options = find<InstanceOptions>(ctx);
            new_port && options && options->option("port")) {
            ctx.err("monitoring: the exporter of " + i.qualified_name() + " listens on port " +
                    *options->option("port") +
                    ", the option monitoring.port: --new-port does not move it; set another "
                    "port with the option (or remove it)\n");
            return 2;
        }
        if (auto why = stop_exporter(ctx, o); !why.empty()) {
            ctx.err("monitoring: " + why + "\n");
            return 1;
        }
        if (new_port) {
            // Given back first, so that the reservation can take the next free one; a port
            // someone else holds is not free, so it is not taken again.
            Helpers* h = helpers_of(ctx);
            h->release_port(helper);
            int port = h->reserve_port(helper, o.port_min, o.port_max);
            if (port == 0) {
                ctx.err("monitoring: no free port between " + std::to_string(o.port_min) + " and " +
                        std::to_string(o.port_max) +
                        ": widen [monitoring] port_min/port_max in the settings file\n");
                return 1;
            }
        }
        if (!i.running()) {
            ctx.err("monitoring: instance " + i.qualified_name() +
                    " is stopped; its exporter starts with it: pgforge instance start " +
                    i.qualified_name() + "\n");
            return 1;
        }
        Result r = ensure_exporter(ctx, o, true);
        if (r.refused()) {
            ctx.err("monitoring: " + r.message + "\n");
            return 1;
        }
        HelperStatus st = helpers_of(ctx)->status(helper);
        std::string port = std::to_string(st.port);
        if (ctx.json())
            ctx.out(nlohmann::json({{"instance", i.qualified_name()},
                                    {"pid", st.pid},
                                    {"address", "127.0.0.1:" + port}})
                        .dump(2) +
                    "\n");
        else
            ctx.out("exporter of " + i.qualified_name() + " restarted: http://127.0.0.1:" + port +
                    "/metrics\n");
        return 0;
    }
};

}  // namespace

PGFORGE_PLUGIN(Monitoring);
