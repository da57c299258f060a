// Instances on real PostgreSQL servers, through the library and the CLI.
#include <netinet/in.h>
#include <pwd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <fstream>
#include <sstream>

#include "engine/core/error.hpp"
#include "engine/inventory/inventory.hpp"
#include "engine/operations/instances.hpp"
#include "engine/pg/connection.hpp"
#include "engine/pg/postmaster_pid.hpp"
#include "tests/support/test_site.hpp"

namespace fs = std::filesystem;
using namespace pgforge;
using pgforge::test::Listener;
using pgforge::test::TestSite;

namespace {

std::string select_one(const Instance& i) {
    pg::Connection c(i);
    auto r = c.exec("SELECT 1 AS one, current_user");
    REQUIRE(r.rows.size() == 1);
    return r.rows[0][0].value_or("") + " " + r.rows[0][1].value_or("");
}

uid_t uid_of_process(pid_t pid) {
    std::ifstream in("/proc/" + std::to_string(pid) + "/status");
    for (std::string line; std::getline(in, line);)
        if (line.rfind("Uid:", 0) == 0) return static_cast<uid_t>(std::stoul(line.substr(4)));
    return static_cast<uid_t>(-1);
}

uid_t uid_of_user(const std::string& name) {
    const passwd* pw = getpwnam(name.c_str());
    REQUIRE(pw != nullptr);
    return pw->pw_uid;
}

uid_t owner_of(const fs::path& p) {
    struct stat st {};
    REQUIRE(stat(p.c_str(), &st) == 0);
    return st.st_uid;
}

}  // namespace

TEST_CASE("an instance goes through create, status, connect, restart, reload, stop, start, drop",
          "[integration][instance]") {
    TestSite site;
    Context ctx(site.settings());
    instances::CreateOptions o;
    o.name = "main";
    Instance i = instances::create(ctx, o);

    CHECK(i.version == "15");
    CHECK(i.port >= site.port_min());
    CHECK(i.owner == test::expected_owner());
    CHECK(instances::exists(ctx, "main"));
    CHECK(instances::exists(ctx, "15/main"));
    auto s = instances::status(ctx, i);
    REQUIRE(s.running);
    CHECK(s.accepting);
    CHECK(select_one(i) == "1 postgres");

    pid_t first_pid = s.pid;
    instances::restart(ctx, i);
    s = instances::status(ctx, i);
    REQUIRE(s.running);
    CHECK(s.pid != first_pid);
    CHECK(select_one(i) == "1 postgres");

    instances::reload(ctx, i);
    CHECK(instances::status(ctx, i).pid == s.pid);

    CHECK(instances::stop(ctx, i));
    CHECK_FALSE(instances::status(ctx, i).running);
    CHECK_FALSE(fs::exists(i.data_dir / "postmaster.pid"));
    CHECK_FALSE(instances::stop(ctx, i));  // stopping a stopped instance changes nothing

    CHECK(instances::start(ctx, i));
    CHECK_FALSE(instances::start(ctx, i));  // already running
    CHECK(select_one(i) == "1 postgres");

    instances::drop(ctx, i);
    CHECK_FALSE(instances::exists(ctx, "main"));
    CHECK_FALSE(fs::exists(i.base_dir));
    CHECK_FALSE(fs::exists(i.socket_dir));
    CHECK_FALSE(process_exists(s.pid));

    auto journal = ctx.inventory().journal("15/main");
    REQUIRE(journal.size() >= 6);
    CHECK(journal.front().operation == "drop");
    CHECK(journal.front().outcome == "ok");
    CHECK(journal.back().operation == "create");
}

TEST_CASE("the server runs as the instance owner and its directories belong to it",
          "[integration][instance]") {
    TestSite site;
    auto r = site.cli({"instance", "create", "owned"});
    REQUIRE(r.status == 0);
    Context ctx(site.settings());
    Instance i = instances::get(ctx, "owned");
    auto s = instances::status(ctx, i);
    REQUIRE(s.running);
    uid_t owner = uid_of_user(test::expected_owner());
    CHECK(uid_of_process(s.pid) == owner);
    CHECK(owner_of(i.data_dir) == owner);
    CHECK(owner_of(i.base_dir) == owner);
    CHECK(owner_of(i.socket_dir) == owner);
    CHECK(owner_of(i.data_dir / "postgresql.conf") == owner);
    struct stat st {};
    REQUIRE(stat(i.data_dir.c_str(), &st) == 0);
    CHECK((st.st_mode & 0777) == 0700);
    if (running_as_root()) CHECK(uid_of_process(s.pid) != 0);
}

TEST_CASE("the CLI starts, checks and stops all instances with --all", "[integration][cli]") {
    TestSite site;
    for (const char* name : {"one", "two", "three"})
        REQUIRE(site.cli({"instance", "create", name, "--state", "stopped"}).status == 0);
    CHECK(site.cli({"instance", "status", "--all"}).status == 3);
    auto started = site.cli({"instance", "start", "--all"});
    REQUIRE(started.status == 0);
    CHECK(started.out.find("instance 15/two started") != std::string::npos);
    auto status = site.cli({"instance", "status", "--all"});
    CHECK(status.status == 0);
    CHECK(status.out.find("15/three is running") != std::string::npos);

    auto list = site.cli({"instance", "list", "--json"});
    REQUIRE(list.status == 0);
    CHECK(list.out.find("\"running\": true") != std::string::npos);

    REQUIRE(site.cli({"instance", "stop", "one"}).status == 0);
    CHECK(site.cli({"instance", "status", "--all"}).status == 3);
    CHECK(site.cli({"instance", "status", "one"}).status == 3);
    CHECK(site.cli({"instance", "status", "two"}).status == 0);
    REQUIRE(site.cli({"instance", "stop", "--all"}).status == 0);
    auto after = site.cli({"instance", "status", "--all", "--json"});
    CHECK(after.status == 3);
    CHECK(after.out.find("\"running\": true") == std::string::npos);
}

TEST_CASE("create on a port in use fails cleanly and leaves nothing behind",
          "[integration][instance]") {
    TestSite site;
    Listener busy(site.port_min() + 50);
    auto r =
        site.cli({"instance", "create", "clash", "--port", std::to_string(site.port_min() + 50)});
    CHECK(r.status == static_cast<int>(Exit::conflict));
    CHECK(r.err.find("in use") != std::string::npos);
    Context ctx(site.settings());
    CHECK_FALSE(instances::exists(ctx, "clash"));
    CHECK_FALSE(fs::exists(site.root() / "prefix" / "15" / "clash"));

    SECTION("a port of another inventoried instance is refused too") {
        REQUIRE(site.cli({"instance", "create", "first", "--state", "stopped"}).status == 0);
        int port = instances::get(ctx, "first").port;
        auto again = site.cli({"instance", "create", "second", "--port", std::to_string(port)});
        CHECK(again.status == static_cast<int>(Exit::conflict));
        CHECK(again.err.find("belongs to instance 15/first") != std::string::npos);
    }
    SECTION("an automatic port skips the busy one") {
        Listener first(site.port_min());
        REQUIRE(site.cli({"instance", "create", "auto", "--state", "stopped"}).status == 0);
        CHECK(instances::get(ctx, "auto").port == site.port_min() + 1);
    }
}

TEST_CASE("a server that cannot start reports the end of its log", "[integration][instance]") {
    TestSite site;
    REQUIRE(site.cli({"instance", "create", "broken", "--state", "stopped"}).status == 0);
    Context ctx(site.settings());
    Instance i = instances::get(ctx, "broken");
    {
        std::ofstream conf(i.data_dir / "postgresql.conf", std::ios::app);
        conf << "shared_buffers = 'lots'\n";
    }
    auto r = site.cli({"instance", "start", "broken"});
    CHECK(r.status == static_cast<int>(Exit::server));
    CHECK(r.err.find("exited during start-up") != std::string::npos);
    CHECK(r.err.find("last lines of") != std::string::npos);
    CHECK(r.err.find("shared_buffers") != std::string::npos);
    CHECK_FALSE(instances::status(ctx, i).running);
    auto journal = ctx.inventory().journal("15/broken", 1);
    REQUIRE(journal.size() == 1);
    CHECK(journal[0].outcome == "failed");
}

TEST_CASE("a create whose server cannot start removes everything it made",
          "[integration][instance]") {
    TestSite site;
    Settings s = site.settings();
    // A site template with a setting the server refuses.
    s.config_dir = site.root() / "config";
    fs::create_directories(s.config_dir / "templates");
    {
        std::ofstream t(s.config_dir / "templates" / "postgresql.conf");
        t << "port = {{port}}\nunix_socket_directories = {{socket_dir}}\n"
             "listen_addresses = {{listen_addresses}}\nmax_connections = -5\n";
    }
    Context ctx(s);
    instances::CreateOptions o;
    o.name = "doomed";
    try {
        instances::create(ctx, o);
        FAIL("create should have failed");
    } catch (const Error& e) {
        CHECK(e.code() == Exit::server);
        CHECK(std::string(e.what()).find("max_connections") != std::string::npos);
    }
    CHECK_FALSE(instances::exists(ctx, "doomed"));
    CHECK_FALSE(fs::exists(s.prefix / "15" / "doomed"));
    CHECK_FALSE(fs::exists(s.prefix / "15"));
    auto journal = ctx.inventory().journal("15/doomed", 1);
    REQUIRE(journal.size() == 1);
    CHECK(journal[0].outcome == "failed");
}

TEST_CASE("create never removes a directory that existed before", "[integration][instance]") {
    TestSite site;
    Settings s = site.settings();
    fs::path base = s.prefix / "15" / "keep";
    fs::create_directories(base / "data");
    { std::ofstream(base / "data" / "precious") << "do not lose me\n"; }
    auto r = site.cli({"instance", "create", "keep"});
    CHECK(r.status == static_cast<int>(Exit::conflict));
    CHECK(r.err.find("not in the inventory") != std::string::npos);
    CHECK(fs::exists(base / "data" / "precious"));

    SECTION("and instance list reports it as drift") {
        { std::ofstream(base / "data" / "PG_VERSION") << "15\n"; }
        auto list = site.cli({"instance", "list"});
        CHECK(list.out.find("not in inventory") != std::string::npos);
    }
}

TEST_CASE("instance list reports an entry whose data directory is gone", "[integration][cli]") {
    TestSite site;
    REQUIRE(site.cli({"instance", "create", "gone", "--state", "stopped"}).status == 0);
    Context ctx(site.settings());
    fs::remove_all(instances::get(ctx, "gone").data_dir);
    auto list = site.cli({"instance", "list"});
    CHECK(list.out.find("data directory missing") != std::string::npos);
    auto start = site.cli({"instance", "start", "gone"});
    CHECK(start.status == static_cast<int>(Exit::not_found));
    CHECK(site.cli({"instance", "drop", "gone"}).status == 0);
    CHECK(site.cli({"instance", "list"}).out == "no instances\n");
}

TEST_CASE("bad input gets a clear error and changes nothing", "[integration][cli]") {
    TestSite site;
    SECTION("drop of an unknown instance") {
        auto r = site.cli({"instance", "drop", "nosuch"});
        CHECK(r.status == static_cast<int>(Exit::not_found));
        CHECK(r.err.find("instance nosuch does not exist") != std::string::npos);
    }
    SECTION("a malformed name") {
        auto r = site.cli({"instance", "create", "Bad-Name"});
        CHECK(r.status == static_cast<int>(Exit::usage));
        CHECK(r.err.find("may only contain a-z, 0-9 and _") != std::string::npos);
    }
    SECTION("a version that is not installed") {
        auto r = site.cli({"instance", "create", "old", "--version", "9"});
        CHECK(r.status == static_cast<int>(Exit::not_found));
        CHECK(r.err.find("PostgreSQL 9 is not installed") != std::string::npos);
    }
    SECTION("an owner that does not exist") {
        auto r = site.cli({"instance", "create", "x", "--owner", "nosuchuser_pgforge"});
        if (running_as_root()) {
            CHECK(r.status == static_cast<int>(Exit::not_found));
            CHECK(r.err.find("OS user 'nosuchuser_pgforge' does not exist") != std::string::npos);
            CHECK(r.err.find("adduser") != std::string::npos);
        } else {
            CHECK(r.status == static_cast<int>(Exit::usage));
            CHECK(r.err.find("only root") != std::string::npos);
        }
    }
    SECTION("an unknown command gets a suggestion") {
        auto r = site.cli({"instance", "strat", "main"});
        CHECK(r.status == static_cast<int>(Exit::usage));
        CHECK(r.err.find("did you mean 'pgforge instance start'") != std::string::npos);
    }
    CHECK_FALSE(fs::exists(site.root() / "prefix" / "15"));
}

TEST_CASE("the superuser password goes through a file and is not left behind",
          "[integration][instance]") {
    TestSite site;
    fs::path pw = site.root() / "pw";
    { std::ofstream(pw) << "s3cret-Pa55\n"; }
    chmod(pw.c_str(), 0600);
    auto r = site.cli({"instance", "create", "secure", "--superuser-password-file", pw.string(),
                       "--log-level", "debug"});
    REQUIRE(r.status == 0);
    CHECK(r.err.find("s3cret") == std::string::npos);
    CHECK(r.out.find("s3cret") == std::string::npos);
    Context ctx(site.settings());
    Instance i = instances::get(ctx, "secure");
    CHECK_FALSE(fs::exists(i.base_dir / ".pwfile"));
    CHECK(i.options.find("s3cret") == std::string::npos);
    pg::Connection c(i);
    auto rows =
        c.exec("SELECT rolpassword LIKE 'SCRAM-SHA-256$%' FROM pg_authid WHERE rolname = $1",
               {"postgres"});
    REQUIRE(rows.rows.size() == 1);
    CHECK(rows.rows[0][0] == std::optional<std::string>("t"));
}

TEST_CASE("a second process acting on a locked instance fails clearly", "[integration][instance]") {
    TestSite site;
    REQUIRE(site.cli({"instance", "create", "locked", "--state", "stopped"}).status == 0);
    Settings s = site.settings();
    FileLock held(s.lock_file("15", "locked"), std::chrono::milliseconds(100), "test");
    // fork: flock conflicts between open file descriptions, and a child makes it plain.
    pid_t child = fork();
    if (child == 0) {
        auto r = site.cli({"instance", "start", "locked"});
        _exit(r.status);
    }
    int status = 0;
    waitpid(child, &status, 0);
    REQUIRE(WIFEXITED(status));
    CHECK(WEXITSTATUS(status) == static_cast<int>(Exit::busy));
}

TEST_CASE("env, get and logs describe the instance", "[integration][cli]") {
    TestSite site;
    REQUIRE(site.cli({"instance", "create", "described"}).status == 0);
    auto env = site.cli({"instance", "env", "described"});
    REQUIRE(env.status == 0);
    CHECK(env.out.find("export PGPORT='") != std::string::npos);
    CHECK(env.out.find("export PGHOST='" + (site.root() / "run" / "15-described").string()) !=
          std::string::npos);
    auto get = site.cli({"instance", "get", "15/described", "--json"});
    REQUIRE(get.status == 0);
    CHECK(get.out.find("\"qualified_name\": \"15/described\"") != std::string::npos);
    CHECK(get.out.find("\"accepting_connections\": true") != std::string::npos);
    auto logs = site.cli({"instance", "logs", "described"});
    REQUIRE(logs.status == 0);
    CHECK(logs.out.find("ready to accept connections") != std::string::npos);
}
