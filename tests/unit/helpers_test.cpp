// Supervised helpers (engine/pipeline/helpers): start, is-running, stop with a timeout, restart on
// a configuration change, ports, across supervisor objects (separate pgforge runs).
#include "engine/pipeline/helpers.hpp"

#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <catch2/catch.hpp>
#include <chrono>
#include <fstream>
#include <nlohmann/json.hpp>
#include <set>
#include <thread>

#include "engine/core/process.hpp"
#include "engine/driver/ports.hpp"
#include "tests/unit/temp_dir.hpp"

namespace fs = std::filesystem;
using pgforge::HelperScope;
using pgforge::HelperSupervisor;
using pgforge::sdk::HelperResult;
using pgforge::sdk::HelperSpec;

namespace {

// An inventory with one instance, and the scope of plugin "mon" on it.
struct Site {
    pgforge::test::TempDir dir{"helpers"};
    pgforge::Inventory inventory{dir.path() / "inventory.sqlite"};
    pgforge::Instance instance;
    Site() {
        instance.name = "main";
        instance.version = "15";
        instance.base_dir = dir.path() / "15" / "main";
        instance.data_dir = instance.base_dir / "data";
        instance.port = 1;
        instance.owner = "root";
        instance.superuser = "postgres";
        inventory.add(instance);
        fs::create_directories(dir.path() / "locks");
    }
    // Whatever a failed test left running goes.
    ~Site() {
        try {
            auto held = state();  // kept: items() of a temporary would dangle
            for (const auto& [name, record] : held["helpers"].items()) {
                long pid = record.value("pid", 0L);
                if (pid > 1 && pgforge::helper_alive(pid, record.value("process", std::string())))
                    kill(-static_cast<pid_t>(pid), SIGKILL);
            }
        } catch (const std::exception&) {
        }
    }
    HelperScope scope() {
        HelperScope s;
        s.inventory = &inventory;
        s.instance = instance;
        s.plugin = "mon";
        s.ports_lock = dir.path() / "locks" / "ports.lock";
        s.lock_timeout = 5;
        return s;
    }
    fs::path log() const { return dir.path() / "helper.log"; }
    HelperSpec sleeper(const std::string& tag = "a") const {
        HelperSpec spec;
        spec.argv = {"/bin/sleep", "1000"};
        spec.env = {"TAG=" + tag};
        spec.log_file = log();
        return spec;
    }
    nlohmann::json state() const {
        return nlohmann::json::parse(inventory.plugin_state(instance, "mon"));
    }
};

bool gone_soon(long pid, double seconds = 5) {
    auto until = std::chrono::steady_clock::now() + std::chrono::milliseconds(long(seconds * 1000));
    while (std::chrono::steady_clock::now() < until) {
        pgforge::reap_if_exited(static_cast<pid_t>(pid));
        if (!pgforge::process_exists(static_cast<pid_t>(pid))) return true;
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    return false;
}

// A first port of a free run of `n` ports, away from the ranges the integration tests use.
int free_ports(int n) {
    for (int base = 30000 + (getpid() % 200) * 50; base < 60000; base += n + 7) {
        bool ok = true;
        for (int p = base; p < base + n && ok; ++p) ok = pgforge::port_is_free(p);
        if (ok) return base;
    }
    FAIL("no free ports");
    return 0;
}

// Listens on 127.0.0.1:port while it lives.
struct Listener {
    int fd = -1;
    explicit Listener(int port) {
        fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        int one = 1;
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
        sockaddr_in a{};
        a.sin_family = AF_INET;
        a.sin_port = htons(static_cast<uint16_t>(port));
        a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        REQUIRE(bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0);
        REQUIRE(listen(fd, 4) == 0);
    }
    ~Listener() { close(fd); }
};

std::string python_listener(int port) {
    return "import socket,time\ns=socket.socket()\ns.setsockopt(socket.SOL_SOCKET, "
           "socket.SO_REUSEADDR, 1)\ns.bind(('127.0.0.1'," +
           std::to_string(port) +
           "))\ns.listen()\nprint('listening', flush=True)\ntime.sleep(1000)\n";
}

}  // namespace

TEST_CASE("a helper starts in its own session, is running, and stops; a later run sees it",
          "[helpers]") {
    Site site;
    long pid = 0;
    {
        HelperSupervisor h(site.scope());
        HelperSpec spec = site.sleeper();
        spec.pid_file = site.dir.path() / "helper.pid";
        HelperResult r = h.ensure("sleeper", spec, false);
        INFO(r.message);
        REQUIRE(r.ok);
        CHECK(r.started);
        CHECK_FALSE(r.restarted);
        pid = r.pid;
        REQUIRE(pid > 1);
        CHECK(getpgid(static_cast<pid_t>(pid)) == pid);  // its own session and process group
        CHECK(getsid(static_cast<pid_t>(pid)) == pid);
        auto st = h.status("sleeper");
        CHECK(st.running);
        CHECK(st.pid == pid);
        CHECK(st.config_hash == h.hash(spec));
        std::ifstream pf(spec.pid_file);
        long written = 0;
        pf >> written;
        CHECK(written == pid);
        // The inventory holds it.
        CHECK(site.state()["helpers"]["sleeper"]["pid"] == pid);
        CHECK_FALSE(site.state()["helpers"]["sleeper"]["process"].get<std::string>().empty());
    }
    // Another run (a new supervisor, a new inventory connection) finds it and stops it.
    pgforge::Inventory again(site.dir.path() / "inventory.sqlite");
    HelperScope scope = site.scope();
    scope.inventory = &again;
    HelperSupervisor later(scope);
    CHECK(later.status("sleeper").running);
    // Same configuration: left alone.
    HelperResult same = later.ensure("sleeper", site.sleeper(), false);
    CHECK(same.ok);
    CHECK_FALSE(same.started);
    CHECK(same.pid == pid);
    std::string error;
    REQUIRE(later.stop("sleeper", 5, error));
    CHECK(error.empty());
    CHECK(gone_soon(pid));
    CHECK_FALSE(later.status("sleeper").running);
    CHECK_FALSE(fs::exists(site.dir.path() / "helper.pid"));
    CHECK_FALSE(site.state()["helpers"]["sleeper"].contains("pid"));
    // Stopping what does not run is fine.
    CHECK(later.stop("sleeper", 5, error));
    CHECK(later.stop("never", 5, error));
}

TEST_CASE("a pid reused by another process, or a zombie, is not the helper", "[helpers]") {
    Site site;
    HelperSupervisor h(site.scope());
    HelperResult r = h.ensure("sleeper", site.sleeper(), false);
    REQUIRE(r.ok);

    SECTION("a zombie is not running") {
        REQUIRE(kill(static_cast<pid_t>(r.pid), SIGKILL) == 0);
        // Not reaped by us: a zombie until the supervisor looks (it may reap its own child).
        std::this_thread::sleep_for(std::chrono::milliseconds(50));
        CHECK_FALSE(h.status("sleeper").running);
    }
    SECTION("the pid of record now names another process") {
        // Another process takes the recorded pid's place: the record keeps the helper's
        // identity, but names a process that started at another time.
        pid_t other = fork();
        if (other == 0) {
            signal(SIGTERM, SIG_DFL);
            pause();
            _exit(0);
        }
        auto state = site.state();
        state["helpers"]["sleeper"]["pid"] = other;
        site.inventory.set_plugin_state(site.instance, "mon", state.dump());
        CHECK_FALSE(h.status("sleeper").running);
        std::string error;
        CHECK(h.stop("sleeper", 1, error));
        // The other process was not signalled.
        std::this_thread::sleep_for(std::chrono::milliseconds(50));
        CHECK(pgforge::process_exists(other));
        kill(other, SIGKILL);
        waitpid(other, nullptr, 0);
        kill(static_cast<pid_t>(r.pid), SIGKILL);
        gone_soon(r.pid);
    }
}

TEST_CASE("stop sends TERM, then KILL after its timeout", "[helpers]") {
    Site site;
    HelperSupervisor h(site.scope());
    HelperSpec spec;
    // TERM ignored (an ignored signal stays ignored across exec).
    spec.argv = {"/bin/sh", "-c", "trap '' TERM; exec /bin/sleep 1000"};
    spec.log_file = site.log();
    HelperResult r = h.ensure("stubborn", spec, false);
    REQUIRE(r.ok);
    auto began = std::chrono::steady_clock::now();
    std::string error;
    REQUIRE(h.stop("stubborn", 0.3, error));
    double took = std::chrono::duration<double>(std::chrono::steady_clock::now() - began).count();
    CHECK(took >= 0.3);
    CHECK(took < 4);
    CHECK(gone_soon(r.pid, 0.5));
    CHECK_FALSE(h.status("stubborn").running);
}

TEST_CASE("a helper is restarted when its configuration hash changes, or when asked", "[helpers]") {
    Site site;
    HelperSupervisor h(site.scope());
    HelperResult first = h.ensure("sleeper", site.sleeper("a"), false);
    REQUIRE(first.ok);
    HelperResult same = h.ensure("sleeper", site.sleeper("a"), false);
    CHECK(same.ok);
    CHECK_FALSE(same.started);
    CHECK(same.pid == first.pid);

    // Another environment: another hash.
    CHECK(h.hash(site.sleeper("a")) != h.hash(site.sleeper("b")));
    HelperResult changed = h.ensure("sleeper", site.sleeper("b"), false);
    REQUIRE(changed.ok);
    CHECK(changed.started);
    CHECK(changed.restarted);
    CHECK(changed.pid != first.pid);
    CHECK(gone_soon(first.pid));

    // A hash the plugin gives replaces the engine's.
    HelperSpec given = site.sleeper("b");
    given.config_hash = "v2";
    CHECK(h.hash(given) == "v2");
    HelperResult rehashed = h.ensure("sleeper", given, false);
    CHECK(rehashed.restarted);
    CHECK(h.status("sleeper").config_hash == "v2");
    HelperResult kept = h.ensure("sleeper", given, false);
    CHECK_FALSE(kept.started);

    HelperResult asked = h.ensure("sleeper", given, true);
    CHECK(asked.restarted);
    CHECK(asked.pid != rehashed.pid);
    std::string error;
    CHECK(h.stop("sleeper", 5, error));
    CHECK(gone_soon(asked.pid));
}

TEST_CASE("a helper's port: reserved, checked free, listened on, a clash names the holder",
          "[helpers]") {
    Site site;
    HelperSupervisor h(site.scope());
    int low = free_ports(5);
    int port = h.reserve_port("web", low, low + 4);
    REQUIRE(port == low);
    CHECK(h.reserve_port("web", low, low + 4) == port);       // the same on later calls
    CHECK(h.reserve_port("other", low, low + 4) == low + 1);  // another helper: another port
    CHECK(h.status("web").port == port);
    // Other plugins and instances see it reserved.
    auto reserved = site.inventory.plugin_ports();
    CHECK(std::count(reserved.begin(), reserved.end(), port) == 1);
    CHECK(std::count(reserved.begin(), reserved.end(), low + 1) == 1);

    HelperSpec spec;
    spec.argv = {"/usr/bin/python3", "-c", python_listener(port)};
    spec.log_file = site.log();
    spec.port = port;
    spec.start_timeout = 20;

    SECTION("listening: started") {
        HelperResult r = h.ensure("web", spec, false);
        INFO(r.message);
        REQUIRE(r.ok);
        CHECK(pgforge::port_listening(port));
        std::string error;
        CHECK(h.stop("web", 5, error));
        CHECK(pgforge::port_is_free(port));
    }
    SECTION("a port in use is refused before the start, naming who holds it") {
        Listener other(port);
        HelperResult r = h.ensure("web", spec, false);
        CHECK_FALSE(r.ok);
        CHECK(r.failure == HelperResult::Failure::port_in_use);
        CHECK_FALSE(r.started);
        CHECK(r.holder == "pid " + std::to_string(getpid()) + " (" + [] {
            std::ifstream comm("/proc/self/comm");
            std::string name;
            std::getline(comm, name);
            return name;
        }() + ")");
        CHECK(r.message.find("port " + std::to_string(port) + " on 127.0.0.1") !=
              std::string::npos);
        CHECK(r.message.find("helper web of 15/main (plugin mon)") != std::string::npos);
        CHECK(r.message.find("is in use by pid " + std::to_string(getpid())) != std::string::npos);
        CHECK_FALSE(h.status("web").running);
    }
    SECTION("a helper that does not listen is stopped after start_timeout") {
        spec.argv = {"/bin/sleep", "1000"};
        spec.start_timeout = 0.3;
        HelperResult r = h.ensure("web", spec, false);
        CHECK_FALSE(r.ok);
        CHECK(r.failure == HelperResult::Failure::not_listening);
        CHECK(r.message.find("does not listen on 127.0.0.1:" + std::to_string(port) +
                             " after 0.3 s") != std::string::npos);
        CHECK(gone_soon(r.pid));
        CHECK_FALSE(h.status("web").running);
    }
    SECTION("a helper that exits says what it wrote") {
        spec.argv = {"/bin/sh", "-c", "echo cannot bind here >&2; exit 3"};
        HelperResult r = h.ensure("web", spec, false);
        CHECK_FALSE(r.ok);
        CHECK(r.failure == HelperResult::Failure::exited);
        CHECK(r.message.find("cannot bind here") != std::string::npos);
    }
    SECTION("a reservation outside a new range is given back; release frees it") {
        int moved = h.reserve_port("web", low + 2, low + 4);
        CHECK(moved == low + 2);
        h.release_port("web");
        CHECK(h.status("web").port == 0);
        reserved = site.inventory.plugin_ports();
        CHECK(std::count(reserved.begin(), reserved.end(), moved) == 0);
    }
}

TEST_CASE("a helper gets the built environment and no descriptor of pgforge's", "[helpers]") {
    Site site;
    HelperSupervisor h(site.scope());
    // A descriptor without close-on-exec, and a variable of pgforge's own.
    int leaked = ::open("/dev/null", O_RDONLY);
    REQUIRE(leaked > 2);
    ::setenv("PGPASSWORD", "not-for-helpers", 1);
    HelperSpec spec = site.sleeper("mine");
    HelperResult r = h.ensure("env", spec, false);
    ::close(leaked);
    ::unsetenv("PGPASSWORD");
    REQUIRE(r.ok);
    std::string proc = "/proc/" + std::to_string(r.pid);
    std::set<std::string> fds;
    for (const auto& e : fs::directory_iterator(proc + "/fd")) fds.insert(e.path().filename());
    CHECK(fds == std::set<std::string>{"0", "1", "2"});
    std::ifstream in(proc + "/environ", std::ios::binary);
    std::set<std::string> env;
    for (std::string v; std::getline(in, v, '\0');) env.insert(v);
    CHECK(env.count("TAG=mine") == 1);
    CHECK(env.count("PGPASSWORD=not-for-helpers") == 0);
    std::string error;
    CHECK(h.stop("env", 5, error));
}
