// The monitoring plugin on real servers with the real prometheus-postgres-exporter: one
// exporter per instance on loopback, supervised with the instance.
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <nlohmann/json.hpp>
#include <thread>

#include "engine/core/instance.hpp"
#include "engine/core/process.hpp"
#include "engine/pg/connection.hpp"
#include "engine/pg/postmaster_pid.hpp"
#include "tests/support/test_site.hpp"

namespace fs = std::filesystem;
using json = nlohmann::json;
using pgforge::test::Listener;
using pgforge::test::TestSite;

namespace {

const char* const exporter_program = "/usr/bin/prometheus-postgres-exporter";

// A site with the plugin enabled; exporters take ports in the upper half of the site's range.
struct MonitoredSite {
    TestSite site;
    int port_min = site.port_min() + 50;
    int port_max = site.port_min() + 99;
    explicit MonitoredSite(const std::string& extra = "", bool enabled = true) {
        if (enabled) enable(extra);
    }
    void enable(const std::string& extra = "") const {
        site.add_settings("[plugins]\nenabled = monitoring\n[monitoring]\nport_min = " +
                          std::to_string(port_min) + "\nport_max = " + std::to_string(port_max) +
                          "\n" + extra);
    }
    TestSite::Output cli(std::vector<std::string> args) const { return site.cli(std::move(args)); }
    fs::path base_dir(const std::string& name) const {
        return site.root() / "prefix" / "15" / name;
    }
    fs::path files(const std::string& name) const { return base_dir(name) / "monitoring"; }
    json status(const std::string& name) const {
        auto r = cli({"monitoring", "status", "-i", name, "--json"});
        INFO(r.err);
        return json::parse(r.out);
    }
};

// GET /metrics over loopback, as Prometheus would; the exporter may need a moment.
std::string get_metrics(int port, double seconds = 10) {
    auto until = std::chrono::steady_clock::now() + std::chrono::milliseconds(long(seconds * 1000));
    std::string reply;
    while (std::chrono::steady_clock::now() < until) {
        int fd = socket(AF_INET, SOCK_STREAM, 0);
        sockaddr_in a{};
        a.sin_family = AF_INET;
        a.sin_port = htons(static_cast<uint16_t>(port));
        a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        timeval tv{10, 0};
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
        if (connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0) {
            std::string req = "GET /metrics HTTP/1.0\r\n\r\n";
            if (send(fd, req.data(), req.size(), MSG_NOSIGNAL) ==
                static_cast<ssize_t>(req.size())) {
                reply.clear();
                char buf[8192];
                ssize_t n;
                while ((n = recv(fd, buf, sizeof buf, 0)) > 0) reply.append(buf, size_t(n));
            }
        }
        close(fd);
        if (reply.find("\npg_up 1\n") != std::string::npos) return reply;
        std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    return reply;
}

long read_pid(const fs::path& file) {
    std::ifstream in(file);
    long pid = 0;
    in >> pid;
    return pid;
}

bool gone(long pid) {
    return pid > 0 && !pgforge::process_exists(static_cast<pid_t>(pid));
}

std::string command_line(long pid) {
    std::ifstream in("/proc/" + std::to_string(pid) + "/cmdline", std::ios::binary);
    std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    for (char& c : text)
        if (c == '\0') c = ' ';
    return text;
}

uid_t uid_of_process(long pid) {
    struct stat st {};
    REQUIRE(stat(("/proc/" + std::to_string(pid)).c_str(), &st) == 0);
    return st.st_uid;
}

std::string read_text(const fs::path& file) {
    std::ifstream in(file);
    return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}

// Sends this process's standard error to a file while it lives.
struct StderrTo {
    int saved = -1;
    explicit StderrTo(const fs::path& file) {
        std::fflush(stderr);
        saved = dup(STDERR_FILENO);
        int fd = open(file.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
        REQUIRE(fd >= 0);
        dup2(fd, STDERR_FILENO);
        close(fd);
    }
    ~StderrTo() {
        std::fflush(stderr);
        dup2(saved, STDERR_FILENO);
        close(saved);
    }
};

pgforge::Instance instance_of(const MonitoredSite& m, const std::string& name) {
    auto get = m.cli({"instance", "get", name, "--json"});
    REQUIRE(get.status == 0);
    auto j = json::parse(get.out);
    pgforge::Instance i;
    i.name = name;
    i.version = "15";
    i.port = j.at("port").get<int>();
    i.socket_dir = j.at("socket_dir").get<std::string>();
    i.superuser = j.at("superuser").get<std::string>();
    i.data_dir = j.at("data_dir").get<std::string>();
    return i;
}

}  // namespace

TEST_CASE("an instance created with monitoring serves pg_up 1 on loopback, with no password",
          "[integration][monitoring]") {
    REQUIRE(access(exporter_program, X_OK) == 0);
    MonitoredSite m;
    auto created = m.cli({"instance", "create", "mon"});
    INFO(created.err);
    REQUIRE(created.status == 0);

    json s = m.status("mon");
    REQUIRE(s.at("running") == true);
    int port = s.at("port").get<int>();
    CHECK(port >= m.port_min);
    CHECK(port <= m.port_max);
    CHECK(s.at("address") == "127.0.0.1:" + std::to_string(port));
    CHECK(s.at("scrape_ok") == true);
    CHECK(s.at("scrape").at("pg_up") == 1);

    std::string metrics = get_metrics(port);
    CHECK(metrics.rfind("HTTP/1.0 200", 0) == 0);
    CHECK(metrics.find("\npg_up 1\n") != std::string::npos);

    // The exporter is the instance owner's process, listening on loopback only, pid and log
    // under the instance's directory.
    long pid = read_pid(m.files("mon") / "exporter.pid");
    REQUIRE(pid > 1);
    CHECK(s.at("pid") == pid);
    CHECK_FALSE(gone(pid));
    CHECK(uid_of_process(pid) == pgforge::lookup_os_user(pgforge::test::expected_owner()).uid);
    CHECK(command_line(pid).find("--web.listen-address=127.0.0.1:" + std::to_string(port)) !=
          std::string::npos);
    CHECK(fs::exists(m.files("mon") / "exporter.log"));

    // Its environment file names the socket and the role; no password anywhere.
    fs::path env = m.files("mon") / "exporter.env";
    REQUIRE(fs::exists(env));
    CHECK((fs::status(env).permissions() & fs::perms::all) ==
          (fs::perms::owner_read | fs::perms::owner_write));
    std::string env_text = read_text(env);
    CHECK(env_text.find("user=pgforge_monitor") != std::string::npos);
    CHECK(env_text.find("127.0.0.1:" + std::to_string(port)) != std::string::npos);
    CHECK(env_text.find("password=") == std::string::npos);
    CHECK(env_text.find("DATA_SOURCE_PASS") == std::string::npos);
    CHECK(command_line(pid).find("password") == std::string::npos);

    // The role: can log in, member of pg_monitor, no password; reached by peer over the socket.
    pgforge::Instance i = instance_of(m, "mon");
    {
        pgforge::pg::Connection c(i);
        auto r = c.exec(
            "SELECT rolcanlogin::text, pg_has_role(oid, 'pg_monitor', 'MEMBER')::text, "
            "(rolpassword IS NULL)::text FROM pg_authid WHERE rolname = 'pgforge_monitor'");
        REQUIRE(r.rows.size() == 1);
        CHECK(r.rows[0][0] == "true");
        CHECK(r.rows[0][1] == "true");
        CHECK(r.rows[0][2] == "true");
        auto hba = c.exec(
            "SELECT type, user_name::text, auth_method, options::text FROM pg_hba_file_rules "
            "ORDER BY line_number LIMIT 1");
        REQUIRE(hba.rows.size() == 1);
        CHECK(hba.rows[0][0] == "local");
        CHECK(hba.rows[0][1] == "{pgforge_monitor}");
        CHECK(hba.rows[0][2] == "peer");
        CHECK(hba.rows[0][3] == "{map=pgforge_monitor}");
    }

    // instance get shows where to scrape.
    auto get = m.cli({"instance", "get", "mon", "--json"});
    REQUIRE(get.status == 0);
    auto g = json::parse(get.out);
    CHECK(g.at("plugins").at("monitoring").at("address") == "127.0.0.1:" + std::to_string(port));
    CHECK(g.at("plugins").at("monitoring").at("exporter") ==
          "running (pid " + std::to_string(pid) + ")");
    auto text = m.cli({"monitoring", "status", "-i", "mon"});
    CHECK(text.status == 0);
    CHECK(text.out.find("last scrape: ok") != std::string::npos);
}

TEST_CASE(
    "the exporter stops before its instance, comes back with it, and restarts only when "
    "its configuration changed",
    "[integration][monitoring]") {
    MonitoredSite m;
    REQUIRE(m.cli({"instance", "create", "mon"}).status == 0);
    int port = m.status("mon").at("port").get<int>();
    long first = read_pid(m.files("mon") / "exporter.pid");
    REQUIRE(first > 1);

    // Starting a running instance again leaves its exporter alone.
    auto again = m.cli({"instance", "start", "mon"});
    INFO(again.err);
    REQUIRE(again.status == 0);
    CHECK(read_pid(m.files("mon") / "exporter.pid") == first);
    CHECK_FALSE(gone(first));

    auto stopped = m.cli({"instance", "stop", "mon"});
    INFO(stopped.err);
    REQUIRE(stopped.status == 0);
    CHECK(gone(first));
    CHECK_FALSE(fs::exists(m.files("mon") / "exporter.pid"));
    json s = m.status("mon");
    CHECK(s.at("running") == false);
    CHECK(s.at("port") == port);  // still reserved
    CHECK(m.cli({"monitoring", "status", "-i", "mon"}).status == 1);

    REQUIRE(m.cli({"instance", "start", "mon"}).status == 0);
    long second = read_pid(m.files("mon") / "exporter.pid");
    CHECK(second != first);
    CHECK_FALSE(gone(second));
    CHECK(m.status("mon").at("port") == port);
    CHECK(get_metrics(port).find("\npg_up 1\n") != std::string::npos);

    // A changed configuration (a flag added in the settings) restarts it at the next reload,
    // on the same port; a reload without a change does not.
    REQUIRE(m.cli({"instance", "reload", "mon"}).status == 0);
    CHECK(read_pid(m.files("mon") / "exporter.pid") == second);
    m.site.add_settings("[monitoring]\nextra_args = --disable-settings-metrics\n");
    auto reloaded = m.cli({"instance", "reload", "mon"});
    INFO(reloaded.err);
    REQUIRE(reloaded.status == 0);
    long third = read_pid(m.files("mon") / "exporter.pid");
    CHECK(third != second);
    CHECK(gone(second));
    CHECK(command_line(third).find("--disable-settings-metrics") != std::string::npos);
    std::string metrics = get_metrics(port);
    CHECK(metrics.find("\npg_up 1\n") != std::string::npos);
    CHECK(metrics.find("pg_settings_") == std::string::npos);
    CHECK(m.status("mon").at("configuration_current") == true);
}

TEST_CASE(
    "the option monitoring.port puts the exporter on that port; another instance cannot "
    "take it",
    "[integration][monitoring]") {
    MonitoredSite m;
    const int fixed = m.port_max - 3;
    auto r = m.cli(
        {"instance", "create", "fixed", "--option", "monitoring.port=" + std::to_string(fixed)});
    INFO(r.err);
    REQUIRE(r.status == 0);
    CHECK(m.status("fixed").at("port") == fixed);
    CHECK(get_metrics(fixed).find("\npg_up 1\n") != std::string::npos);
    auto moved = m.cli({"monitoring", "restart", "-i", "fixed", "--new-port"});
    CHECK(moved.status == 2);
    CHECK_THAT(moved.err, Catch::Contains("the option monitoring.port"));

    auto clash = m.cli(
        {"instance", "create", "clash", "--option", "monitoring.port=" + std::to_string(fixed)});
    CHECK(clash.status != 0);
    CHECK_THAT(clash.err, Catch::Contains("port " + std::to_string(fixed) +
                                          " (the option monitoring.port of 15/clash) is reserved"));
    CHECK(m.cli({"instance", "get", "clash"}).status == 4);
    REQUIRE(m.cli({"instance", "drop", "fixed"}).status == 0);
}

TEST_CASE("drop stops the exporter and removes its files, role and port reservation",
          "[integration][monitoring]") {
    MonitoredSite m;
    REQUIRE(m.cli({"instance", "create", "mon"}).status == 0);
    int port = m.status("mon").at("port").get<int>();
    long pid = read_pid(m.files("mon") / "exporter.pid");
    REQUIRE(pid > 1);
    fs::path data_dir = instance_of(m, "mon").data_dir;

    auto dropped = m.cli({"instance", "drop", "mon"});
    INFO(dropped.err);
    REQUIRE(dropped.status == 0);
    CHECK(gone(pid));
    CHECK_FALSE(fs::exists(m.files("mon")));
    CHECK_FALSE(fs::exists(data_dir));  // the role lived there
    // The port is free again: the next instance's exporter takes it.
    REQUIRE(m.cli({"instance", "create", "next"}).status == 0);
    CHECK(m.status("next").at("port") == port);
    CHECK(get_metrics(port).find("\npg_up 1\n") != std::string::npos);
}

TEST_CASE("a port clash names the port and what to do, and --new-port moves the exporter",
          "[integration][monitoring]") {
    MonitoredSite m;
    REQUIRE(m.cli({"instance", "create", "mon"}).status == 0);
    int port = m.status("mon").at("port").get<int>();
    REQUIRE(m.cli({"instance", "stop", "mon"}).status == 0);

    {
        Listener other(port);
        auto started = m.cli({"instance", "start", "mon"});
        CHECK(started.status != 0);
        CHECK(started.err.find("port " + std::to_string(port)) != std::string::npos);
        CHECK(started.err.find("is in use by pid " + std::to_string(getpid())) !=
              std::string::npos);
        CHECK(started.err.find("pgforge monitoring restart -i 15/mon --new-port") !=
              std::string::npos);
        CHECK_FALSE(fs::exists(m.files("mon") / "exporter.pid"));
        // The server itself is up; only its exporter is missing.
        CHECK(m.cli({"instance", "status", "mon"}).status == 0);

        auto moved = m.cli({"monitoring", "restart", "-i", "mon", "--new-port"});
        INFO(moved.err);
        REQUIRE(moved.status == 0);
        int now = m.status("mon").at("port").get<int>();
        CHECK(now != port);
        CHECK(get_metrics(now).find("\npg_up 1\n") != std::string::npos);
    }
    REQUIRE(m.cli({"instance", "stop", "mon"}).status == 0);
}

TEST_CASE(
    "an exporter that cannot start fails the create with its own message, and leaves "
    "nothing behind",
    "[integration][monitoring]") {
    MonitoredSite m("extra_args = --no-such-flag\n");
    auto created = m.cli({"instance", "create", "mon"});
    CHECK(created.status != 0);
    CHECK(created.err.find("plugin monitoring") != std::string::npos);
    CHECK(created.err.find("exited before it listened") != std::string::npos);
    CHECK(created.err.find("no-such-flag") != std::string::npos);  // the exporter's own words
    CHECK_FALSE(fs::exists(m.base_dir("mon")));
    CHECK(m.cli({"instance", "get", "mon"}).status != 0);
}

TEST_CASE(
    "an instance made before monitoring was enabled gets its exporter at its next start, "
    "and a reload lets it log in, as its warning says",
    "[integration][monitoring]") {
    MonitoredSite m("", false);
    REQUIRE(m.cli({"instance", "create", "old"}).status == 0);
    m.enable();
    fs::path log = m.site.root() / "stderr.txt";
    TestSite::Output started;
    {
        StderrTo capture(log);  // the engine logs warnings to standard error
        started = m.cli({"instance", "start", "old"});
    }
    INFO(started.err);
    REQUIRE(started.status == 0);
    std::string warning = read_text(log);
    CHECK(warning.find("cannot log in as pgforge_monitor") != std::string::npos);
    CHECK(warning.find("pgforge instance reload 15/old adds them") != std::string::npos);
    CHECK(warning.find("pgforge hba add -i 15/old --position 1 local all pgforge_monitor peer "
                       "map=pgforge_monitor") != std::string::npos);
    std::string owner = pgforge::test::expected_owner();
    CHECK(warning.find("pgforge ident add -i 15/old pgforge_monitor " + owner +
                       " pgforge_monitor") != std::string::npos);

    // It runs, but the server turns its login away: pg_up 0, and status says so.
    json s = m.status("old");
    REQUIRE(s.at("running") == true);
    CHECK(s.at("scrape_ok") == false);
    CHECK(s.at("scrape").at("pg_up") == 0);
    CHECK(m.cli({"monitoring", "status", "-i", "old"}).status == 1);

    // A reload applies the plugin's contributions again: the record and the mapping arrive,
    // and the running exporter (same configuration) is left alone.
    long pid = s.at("pid").get<long>();
    auto reloaded = m.cli({"instance", "reload", "old"});
    INFO(reloaded.err);
    REQUIRE(reloaded.status == 0);
    auto hba = m.cli({"hba", "list", "-i", "old"});
    REQUIRE(hba.status == 0);
    CHECK(hba.out.find("map=pgforge_monitor") != std::string::npos);
    CHECK(read_pid(m.files("old") / "exporter.pid") == pid);
    int port = s.at("port").get<int>();
    CHECK(get_metrics(port).find("\npg_up 1\n") != std::string::npos);
    CHECK(m.status("old").at("scrape_ok") == true);
}

TEST_CASE("wrong monitoring settings leave the plugin out, naming the key and what it takes",
          "[integration][monitoring]") {
    MonitoredSite m("role = Bad-Name\n");
    auto list = m.cli({"plugin", "list"});
    CHECK(list.err.find("[monitoring] role = 'Bad-Name' is not a plain role name") !=
          std::string::npos);
    CHECK(list.err.find("pgforge_monitor") != std::string::npos);
}

namespace {

// Exporters of this site still running: processes of the exporter program listening on a port
// of the site's range.
std::vector<long> exporters_in(const MonitoredSite& m) {
    std::vector<long> pids;
    for (const auto& e : fs::directory_iterator("/proc")) {
        std::string name = e.path().filename().string();
        if (name.find_first_not_of("0123456789") != std::string::npos) continue;
        long pid = std::stol(name);
        std::string cmd = command_line(pid);
        if (cmd.find(exporter_program) == std::string::npos || gone(pid)) continue;
        // Each argument ends in a NUL, read here as a space.
        for (int p = m.port_min; p <= m.port_max; ++p)
            if (cmd.find("127.0.0.1:" + std::to_string(p) + " ") != std::string::npos)
                pids.push_back(pid);
    }
    return pids;
}

}  // namespace

TEST_CASE("a create that fails after the exporter started stops it again",
          "[integration][monitoring]") {
    MonitoredSite m("", false);
    // The recorder fixture refuses at post_start; post_start handlers all run, so the exporter
    // starts, and the create's undo must stop it.
    m.site.add_settings("[plugins]\npath = " + std::string(PGFORGE_TEST_PLUGIN_DIR) +
                        "/recorder\nenabled = monitoring, recorder\n[monitoring]\nport_min = " +
                        std::to_string(m.port_min) + "\nport_max = " + std::to_string(m.port_max) +
                        "\n[recorder]\nrefuse = post_start\n");
    auto r = m.cli({"instance", "create", "short"});
    INFO(r.err);
    CHECK(r.status == 1);
    CHECK(r.err.find("refused at post_start by plugin recorder") != std::string::npos);
    CHECK_FALSE(fs::exists(m.base_dir("short")));
    CHECK(exporters_in(m).empty());
    auto h = m.cli({"instance", "history", "15/short"});
    CHECK(h.out.find("plugin monitoring: exporter of 15/short") != std::string::npos);
}

TEST_CASE("a standby's exporter serves pg_up 1 with the role its primary made",
          "[integration][monitoring][replication]") {
    MonitoredSite m;
    REQUIRE(m.cli({"instance", "create", "main"}).status == 0);
    auto made = m.cli({"instance", "create", "replica", "--standby-for", "main"});
    INFO(made.err);
    REQUIRE(made.status == 0);
    json s = m.status("replica");
    REQUIRE(s.at("running") == true);
    CHECK(s.at("port") != m.status("main").at("port"));
    CHECK(s.at("scrape_ok") == true);
    CHECK(s.at("scrape").at("pg_up") == 1);
    CHECK(get_metrics(s.at("port").get<int>()).find("\npg_up 1\n") != std::string::npos);
    // Dropped before its primary, with its exporter.
    long pid = read_pid(m.files("replica") / "exporter.pid");
    REQUIRE(m.cli({"instance", "drop", "replica"}).status == 0);
    CHECK(gone(pid));
}
