// The inventory follows the server (a port change, drift of what it mirrors) and what a
// configure or reload reports is the server's own word (before -> after, reload or restart from
// the parameter's context, pending_restart), in text and in JSON.
#include <fcntl.h>
#include <netinet/in.h>
#include <pwd.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <thread>

#include <catch2/catch.hpp>
#include <fstream>
#include <nlohmann/json.hpp>

#include "engine/core/error.hpp"
#include "engine/driver/ports.hpp"
#include "engine/inventory/inventory.hpp"
#include "engine/operations/instances.hpp"
#include "engine/pg/connection.hpp"
#include "tests/support/test_site.hpp"

namespace fs = std::filesystem;
using namespace pgforge;
using pgforge::test::TestSite;
using json = nlohmann::json;

namespace {

const fs::path fixtures = PGFORGE_TEST_PLUGIN_DIR;

std::string slurp(const fs::path& file) {
    std::ifstream in(file);
    return {std::istreambuf_iterator<char>(in), {}};
}

// HOME pointed at a directory of the test for as long as it lives (.pgpass is read there).
struct Home {
    std::string saved;
    bool had = false;
    explicit Home(const fs::path& dir) {
        if (const char* h = std::getenv("HOME")) {
            saved = h;
            had = true;
        }
        fs::create_directories(dir);
        setenv("HOME", dir.c_str(), 1);
    }
    ~Home() {
        if (had)
            setenv("HOME", saved.c_str(), 1);
        else
            unsetenv("HOME");
    }
};

Instance fresh(const TestSite& site, const std::string& name) {
    Context ctx(site.settings());
    return instances::get(ctx, name);
}

std::string drift_of(const TestSite& site, const std::string& name) {
    auto out = site.cli({"instance", "list", "--json"});
    REQUIRE(out.status == 0);
    for (const auto& j : json::parse(out.out))
        if (j.at("name") == name)
            return j.at("drift").is_null() ? "" : j.at("drift").get<std::string>();
    FAIL("instance " << name << " not listed");
    return {};
}

int free_port_above(const Instance& i) {
    return i.port + 37;
}

}  // namespace

TEST_CASE("a port change by conf set --restart moves the inventory and .pgpass with the server",
          "[integration][follow]") {
    TestSite site;
    Home home(site.root() / "home");
    REQUIRE(site.cli({"instance", "create", "mover"}).status == 0);
    Instance before = fresh(site, "mover");
    const int old_port = before.port;
    const int new_port = free_port_above(before);
    // An entry of this instance's socket and one of another host on the same port.
    const std::string mine =
        before.socket_dir.string() + ":" + std::to_string(old_port) + ":*:app:secret";
    const std::string other = "db.example:" + std::to_string(old_port) + ":*:app:other";
    std::ofstream(site.root() / "home/.pgpass") << mine << "\n" << other << "\n";
    fs::permissions(site.root() / "home/.pgpass", fs::perms(0600));

    auto out =
        site.cli({"conf", "set", "-i", "mover", "port=" + std::to_string(new_port), "--restart"});
    REQUIRE(out.status == 0);
    CHECK_THAT(out.out, Catch::Contains("port: " + std::to_string(old_port) + " -> " +
                                        std::to_string(new_port) + " (restart)"));
    CHECK_THAT(out.out, Catch::Contains("restarted"));
    CHECK_THAT(out.out, Catch::Contains("now listens on port " + std::to_string(new_port)));

    Instance after = fresh(site, "mover");
    CHECK(after.port == new_port);
    {
        pg::Connection c(after);
        CHECK(c.exec("SHOW port").rows.at(0).at(0) == std::to_string(new_port));
    }
    CHECK(site.cli({"database", "list", "-i", "mover"}).status == 0);
    CHECK(drift_of(site, "mover").empty());
    std::string pgpass = slurp(site.root() / "home/.pgpass");
    CHECK_THAT(pgpass, Catch::Contains(before.socket_dir.string() + ":" + std::to_string(new_port) +
                                       ":*:app:secret"));
    CHECK_THAT(pgpass, Catch::Contains(other));  // another host's entry is not this instance's

    // The inventory's change is the configure's: it ended "ok" with it.
    Context ctx(site.settings());
    auto journal = ctx.inventory().journal(after.qualified_name(), 1);
    REQUIRE(journal.size() == 1);
    CHECK(journal[0].operation == "configure");
    CHECK(journal[0].outcome == "ok");
}

TEST_CASE(
    "a port change of a stopped instance is the inventory's at once; of a running one at "
    "its restart",
    "[integration][follow]") {
    TestSite site;
    REQUIRE(site.cli({"instance", "create", "mover"}).status == 0);
    Instance before = fresh(site, "mover");
    const int new_port = free_port_above(before);

    SECTION("stopped: the next start listens on the new port, the inventory says so") {
        REQUIRE(site.cli({"instance", "stop", "mover"}).status == 0);
        REQUIRE(
            site.cli({"conf", "set", "-i", "mover", "port=" + std::to_string(new_port)}).status ==
            0);
        CHECK(fresh(site, "mover").port == new_port);
        CHECK(drift_of(site, "mover").empty());
        REQUIRE(site.cli({"instance", "start", "mover"}).status == 0);
        CHECK(site.cli({"database", "list", "-i", "mover"}).status == 0);
    }
    SECTION("running, no restart: the server keeps its port, the list shows the drift") {
        auto out = site.cli({"conf", "set", "-i", "mover", "port=" + std::to_string(new_port)});
        REQUIRE(out.status == 0);
        CHECK_THAT(out.out, Catch::Contains("a restart is needed for port to apply"));
        CHECK(fresh(site, "mover").port == before.port);
        CHECK(site.cli({"database", "list", "-i", "mover"}).status == 0);
        CHECK(drift_of(site, "mover") == "port " + std::to_string(new_port) +
                                             " in the configuration files, " +
                                             std::to_string(before.port) + " in the inventory");
        // The restart makes it the server's, and the inventory's.
        SECTION("instance restart") {
            REQUIRE(site.cli({"instance", "restart", "mover"}).status == 0);
        }
        SECTION("instance stop, then start") {
            REQUIRE(site.cli({"instance", "stop", "mover"}).status == 0);
            CHECK(fresh(site, "mover").port == before.port);
            REQUIRE(site.cli({"instance", "start", "mover"}).status == 0);
        }
        CHECK(fresh(site, "mover").port == new_port);
        CHECK(drift_of(site, "mover").empty());
        CHECK(site.cli({"database", "list", "-i", "mover"}).status == 0);
    }
}

TEST_CASE("instance list reports drift of the version and the owner", "[integration][follow]") {
    TestSite site;
    REQUIRE(site.cli({"instance", "create", "drifty", "--state", "stopped"}).status == 0);
    CHECK(drift_of(site, "drifty").empty());
    Instance i = fresh(site, "drifty");

    SECTION("PG_VERSION") {
        std::string saved = slurp(i.data_dir / "PG_VERSION");
        std::ofstream(i.data_dir / "PG_VERSION") << "14\n";
        CHECK(drift_of(site, "drifty") == "PG_VERSION says 14, the inventory 15");
        std::ofstream(i.data_dir / "PG_VERSION") << saved;
    }
    SECTION("owner") {
        Context ctx(site.settings());
        Instance other = i;
        other.owner = "pgforge-nobody";
        ctx.inventory().update(other);
        CHECK(drift_of(site, "drifty") ==
              "the data directory belongs to " + i.owner + ", the inventory says pgforge-nobody");
        ctx.inventory().update(i);
    }
    CHECK(drift_of(site, "drifty").empty());
}

TEST_CASE(
    "a plugin's contribution is reported before -> after with its context, and a reload "
    "says what waits for a restart",
    "[integration][follow]") {
    TestSite site;
    const std::string base = slurp(site.settings_file());
    auto plugin = [&](const std::string& section) {
        std::ofstream out(site.settings_file(), std::ios::trunc);
        out << base << "\n[plugins]\npath = " << (fixtures / "recorder").string()
            << "\nenabled = recorder\n[recorder]\nlog = " << (site.root() / "recorder.log").string()
            << "\n"
            << section;
    };
    plugin("");
    REQUIRE(site.cli({"instance", "create", "contrib"}).status == 0);

    SECTION("conf set") {
        plugin("parameter = max_connections=90\n");
        auto out = site.cli({"conf", "set", "-i", "contrib", "work_mem=5MB"});
        REQUIRE(out.status == 0);
        CHECK_THAT(out.out, Catch::Contains("max_connections: 100 -> 90 (restart)"));
        CHECK_THAT(out.out, Catch::Contains("contributed by plugin recorder"));
        CHECK_THAT(out.out, Catch::Contains("a restart is needed for max_connections to apply"));
    }
    SECTION("instance reload, text") {
        plugin("parameter = max_connections=90\n");
        auto out = site.cli({"instance", "reload", "contrib"});
        REQUIRE(out.status == 0);
        CHECK_THAT(out.out, Catch::Contains("max_connections: 100 -> 90 (restart)"));
        CHECK_THAT(out.out, Catch::Contains("15/contrib reloaded"));
        CHECK_THAT(out.out, Catch::Contains("needs a restart for max_connections to apply"));
    }
    SECTION("instance reload and restart, JSON") {
        plugin("parameter = max_connections=90\n");
        auto out = site.cli({"instance", "reload", "contrib", "--json"});
        REQUIRE(out.status == 0);
        json j = json::parse(out.out);
        CHECK(j.at("instance") == "15/contrib");
        CHECK(j.at("reloaded") == true);
        CHECK(j.at("pending_restart") == json::array({"max_connections"}));
        REQUIRE(j.at("changes").size() == 1);
        CHECK(j.at("changes")[0].at("before") == "100");
        CHECK(j.at("changes")[0].at("effect") == "restart");

        // Nothing changed since: the server still says what waits.
        json again = json::parse(site.cli({"instance", "reload", "contrib", "--json"}).out);
        CHECK(again.at("changes").empty());
        CHECK(again.at("pending_restart") == json::array({"max_connections"}));

        auto restarted = site.cli({"instance", "restart", "--all", "--json"});
        REQUIRE(restarted.status == 0);
        json all = json::parse(restarted.out);
        REQUIRE(all.is_array());
        CHECK(all.at(0).at("instance") == "15/contrib");
        CHECK(all.at(0).at("restarted") == true);
        json after = json::parse(site.cli({"instance", "reload", "contrib", "--json"}).out);
        CHECK(after.at("pending_restart").empty());
        CHECK(json::parse(site.cli({"instance", "stop", "contrib", "--json"}).out).at("changed") ==
              true);
        CHECK(json::parse(site.cli({"instance", "start", "contrib", "--json"}).out).at("changed") ==
              true);
        json logs = json::parse(site.cli({"instance", "logs", "contrib", "-n", "3", "--json"}).out);
        CHECK(logs.at("instance") == "15/contrib");
        CHECK(logs.at("lines").size() == 3);
        CHECK(site.cli({"instance", "logs", "contrib", "-f", "--json"}).status == 2);
    }
}

TEST_CASE("conf set port=N refuses a port another instance or program holds, writing nothing",
          "[integration][follow]") {
    TestSite site;
    REQUIRE(site.cli({"instance", "create", "mover", "--state", "stopped"}).status == 0);
    REQUIRE(site.cli({"instance", "create", "holder", "--state", "stopped"}).status == 0);
    Instance mover = fresh(site, "mover");
    Instance holder = fresh(site, "holder");
    const std::string conf_before = slurp(mover.data_dir / "postgresql.conf");

    SECTION("another instance's port") {
        auto out = site.cli({"conf", "set", "-i", "mover", "port=" + std::to_string(holder.port)});
        CHECK(out.status == static_cast<int>(Exit::conflict));
        CHECK_THAT(out.err, Catch::Contains("belongs to instance 15/holder"));
    }
    SECTION("a port something listens on") {
        const int taken = find_free_port(holder.port + 37);
        int fd = socket(AF_INET, SOCK_STREAM, 0);
        REQUIRE(fd >= 0);
        sockaddr_in a{};
        a.sin_family = AF_INET;
        a.sin_port = htons(static_cast<uint16_t>(taken));
        a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        REQUIRE(bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0);
        REQUIRE(listen(fd, 1) == 0);
        auto out = site.cli({"conf", "set", "-i", "mover", "port=" + std::to_string(taken)});
        close(fd);
        CHECK(out.status == static_cast<int>(Exit::conflict));
        CHECK_THAT(out.err, Catch::Contains("is in use on this machine"));
    }
    CHECK(slurp(mover.data_dir / "postgresql.conf") == conf_before);
    CHECK(fresh(site, "mover").port == mover.port);
}

TEST_CASE("start --foreground takes the port of the files into the inventory",
          "[integration][follow]") {
    TestSite site;
    REQUIRE(site.cli({"instance", "create", "fg", "--state", "stopped"}).status == 0);
    Instance before = fresh(site, "fg");
    const int new_port = find_free_port(before.port + 41);
    {
        // Edited by hand while stopped: the inventory learns it at the next start.
        std::ofstream conf(before.data_dir / "postgresql.conf", std::ios::app);
        conf << "port = " << new_port << "\n";
    }
    pid_t pid = fork();
    if (pid == 0) {
        int null = open("/dev/null", O_RDWR);
        dup2(null, 1);
        dup2(null, 2);
        execl(PGFORGE_CLI_PATH, PGFORGE_CLI_PATH, "--settings", site.settings_file().c_str(),
              "instance", "start", "--foreground", "fg", static_cast<char*>(nullptr));
        _exit(127);
    }
    REQUIRE(pid > 0);
    auto running = [&] {
        Context ctx(site.settings());
        return instances::status(ctx, instances::get(ctx, "fg")).running;
    };
    // Ready when its socket on the new port is there and the server accepts connections (the
    // socket comes first, while it still says "the database system is starting up").
    const fs::path socket = before.socket_dir / (".s.PGSQL." + std::to_string(new_port));
    auto accepting = [&] {
        Context ctx(site.settings());
        return instances::status(ctx, instances::get(ctx, "fg")).accepting;
    };
    auto until = std::chrono::steady_clock::now() + std::chrono::seconds(30);
    while (!(fs::exists(socket) && accepting()) && std::chrono::steady_clock::now() < until)
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
    CHECK(running());
    CHECK(fs::exists(socket));
    CHECK(fresh(site, "fg").port == new_port);
    CHECK(drift_of(site, "fg").empty());
    auto listed = site.cli({"database", "list", "-i", "fg"});
    INFO(listed.err);
    CHECK(listed.status == 0);
    CHECK(site.cli({"instance", "stop", "fg"}).status == 0);
    int status = 0;
    waitpid(pid, &status, 0);
}
