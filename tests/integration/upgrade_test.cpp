// `instance upgrade` on real servers (docs/upgrade.md): with each method the new instance has
// the old one's data, settings, roles and HBA records, takes its port and runs; the old one is
// left stopped (and, after --link, refuses to start); a refused pg_upgrade --check, and --check
// alone, leave nothing behind.
#include <fcntl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "engine/core/error.hpp"
#include "engine/inventory/inventory.hpp"
#include "engine/operations/instances.hpp"
#include "engine/pg/connection.hpp"
#include "tests/support/test_site.hpp"

namespace fs = std::filesystem;
using namespace pgforge;
using pgforge::test::TestSite;
using json = nlohmann::json;

namespace {

std::string one(const TestSite& site, const std::string& name, const std::string& sql,
                const std::string& dbname = "postgres") {
    Context ctx(site.settings());
    pg::Connection c(instances::get(ctx, name), dbname);
    auto r = c.exec(sql);
    return r.rows.empty() ? "(no row)" : r.rows.at(0).at(0).value_or("NULL");
}

void script(const TestSite& site, const std::string& name, const std::string& sql,
            const std::string& dbname = "postgres") {
    Context ctx(site.settings());
    pg::Connection c(instances::get(ctx, name), dbname);
    c.exec_script(sql);
}

bool running(const TestSite& site, const std::string& name) {
    return site.cli({"instance", "status", name}).status == 0;
}

json get(const TestSite& site, const std::string& name) {
    auto r = site.cli({"--json", "instance", "get", name});
    INFO(r.err);
    REQUIRE(r.status == 0);
    return json::parse(r.out);
}

std::string read(const fs::path& file) {
    std::ifstream in(file);
    std::stringstream s;
    s << in.rdbuf();
    return s.str();
}

// An instance with data, a role, a setting and an HBA record of its own.
void prepare(const TestSite& site, const std::string& name) {
    auto c = site.cli({"instance", "create", name});
    INFO(c.err);
    REQUIRE(c.status == 0);
    script(site, name, "CREATE ROLE app LOGIN");
    script(site, name, "CREATE DATABASE appdb OWNER app");
    script(site, name,
           "CREATE TABLE t (id int PRIMARY KEY, v text);"
           "INSERT INTO t SELECT g, 'row ' || g FROM generate_series(1, 1000) g;",
           "appdb");
    auto s =
        site.cli({"conf", "set", "-i", name, "work_mem=7MB", "log_min_duration_statement=250ms"});
    INFO(s.err);
    REQUIRE(s.status == 0);
    auto h = site.cli(
        {"hba", "add", "-i", name, "host", "appdb", "app", "10.7.0.0/16", "scram-sha-256"});
    INFO(h.err);
    REQUIRE(h.status == 0);
}

// Nothing of the instance 15/NAME: no entry, no directory, no socket directory.
void check_absent(const TestSite& site, const std::string& name) {
    Inventory inv(site.settings().inventory_file());
    CHECK_FALSE(inv.find("15", name).has_value());
    Instance i;
    i.name = name;
    i.version = "15";
    assign_instance_paths(site.settings(), i);
    CHECK_FALSE(fs::exists(i.base_dir));
    CHECK_FALSE(fs::exists(i.socket_dir));
}

// The CLI binary killed by its fault point `where` (PGFORGE_FAULT_KILL_AT): whether it was.
bool killed_at(const TestSite& site, const std::vector<std::string>& args,
               const std::string& where) {
    std::vector<std::string> argv = {PGFORGE_CLI_PATH, "--settings", site.settings_file().string()};
    argv.insert(argv.end(), args.begin(), args.end());
    const std::string env = "PGFORGE_FAULT_KILL_AT=" + where;
    pid_t pid = fork();
    REQUIRE(pid >= 0);
    if (pid == 0) {
        int null = ::open("/dev/null", O_WRONLY);
        dup2(null, 1);
        dup2(null, 2);
        putenv(const_cast<char*>(env.c_str()));
        std::vector<char*> v;
        for (auto& a : argv) v.push_back(const_cast<char*>(a.c_str()));
        v.push_back(nullptr);
        execv(v[0], v.data());
        _exit(127);
    }
    int status = 0;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }
    return WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL;
}

}  // namespace

TEST_CASE("upgrade with each method: data, settings, roles and HBA kept; the old left stopped",
          "[integration][upgrade]") {
    for (const std::string method : {"link", "copy", "clone"}) {
        DYNAMIC_SECTION("method " << method) {
            TestSite site;
            prepare(site, "old");
            const int port = get(site, "old")["port"];
            auto r = site.cli(
                {"--json", "instance", "upgrade", "old", "--name", "new", "--method", method});
            INFO(r.err);
            if (method == "clone" && r.status != 0) {
                // The file system cannot clone: said clearly, nothing left, the old as it was.
                CHECK_THAT(r.err, Catch::Contains("cannot clone files"));
                CHECK_THAT(r.err, Catch::Contains("--method copy"));
                check_absent(site, "new");
                CHECK(running(site, "old"));
                CHECK(get(site, "old")["port"] == port);
                continue;
            }
            REQUIRE(r.status == 0);
            auto out = json::parse(r.out);
            CHECK(out["report"]["method"] == method);
            CHECK(out["report"]["old_was_running"] == true);
            CHECK(out["report"]["analyzed"] == true);
            CHECK(out["report"]["old_startable"] == (method != "link"));
            CHECK(out["instance"]["upgraded_from"] == "15/old");

            // The new instance runs on the old one's port, with its data, roles and settings.
            CHECK(running(site, "new"));
            auto fresh = get(site, "new");
            CHECK(fresh["port"] == port);
            CHECK(fresh["upgraded_from"] == "15/old");
            CHECK(one(site, "new", "SELECT count(*) FROM t", "appdb") == "1000");
            CHECK(one(site, "new", "SELECT v FROM t WHERE id = 7", "appdb") == "row 7");
            CHECK(one(site, "new", "SELECT rolcanlogin FROM pg_roles WHERE rolname = 'app'") ==
                  "t");
            CHECK(one(site, "new", "SHOW work_mem") == "7MB");
            CHECK(one(site, "new", "SHOW log_min_duration_statement") == "250ms");
            CHECK(one(site, "new",
                      "SELECT count(*) FROM pg_hba_file_rules WHERE address = '10.7.0.0' "
                      "AND 'appdb' = ANY(database)") == "1");
            // Statistics were rebuilt.
            CHECK(one(site, "new", "SELECT count(*) > 0 FROM pg_stats WHERE tablename = 't'",
                      "appdb") == "t");
            // Its own socket and paths, not the old one's.
            CHECK_THAT(read(fs::path(fresh["data_dir"].get<std::string>()) / "postgresql.conf"),
                       !Catch::Contains("/15/old/"));

            // The old one: stopped, on another port, its lineage recorded.
            CHECK_FALSE(running(site, "old"));
            auto old = get(site, "old");
            CHECK(old["port"] != port);
            CHECK(old["port"] == out["report"]["old_port"]);
            CHECK(old["options"]["upgraded_to"] == "15/new");
            auto text = site.cli({"instance", "get", "new"});
            CHECK_THAT(text.out, Catch::Contains("upgraded from"));
            Inventory inv(site.settings().inventory_file());
            auto journal = inv.journal("15/old", 20);
            REQUIRE_FALSE(journal.empty());
            bool upgraded = false;
            for (const auto& e : journal)
                if (e.operation == "upgrade") upgraded = e.outcome == "ok";
            CHECK(upgraded);

            auto start = site.cli({"instance", "start", "old"});
            if (method == "link") {
                // Its control file went with --link: a clear refusal, not a server's failure.
                CHECK(start.status != 0);
                CHECK_THAT(start.err, Catch::Contains("pg_upgrade --link"));
                CHECK_THAT(start.err, Catch::Contains("15/new"));
            } else {
                // A copy is whole: it starts on its own port, beside the new one.
                INFO(start.err);
                CHECK(start.status == 0);
                CHECK(one(site, "old", "SELECT count(*) FROM t", "appdb") == "1000");
                CHECK(site.cli({"instance", "stop", "old"}).status == 0);
            }
            // Dropping the old leaves the new whole (after --link too: its files are links).
            REQUIRE(site.cli({"instance", "drop", "old"}).status == 0);
            CHECK(one(site, "new", "SELECT sum(id) FROM t", "appdb") == "500500");
            REQUIRE(site.cli({"instance", "restart", "new"}).status == 0);
            CHECK(one(site, "new", "SELECT count(*) FROM t", "appdb") == "1000");
        }
    }
}

TEST_CASE("a refused pg_upgrade --check leaves nothing; --check alone keeps nothing",
          "[integration][upgrade]") {
    TestSite site;
    REQUIRE(site.cli({"instance", "create", "old"}).status == 0);
    const int port = get(site, "old")["port"];

    // Without --name the new instance would be the old one: refused before anything is made.
    auto same = site.cli({"instance", "upgrade", "old"});
    CHECK(same.status == 2);
    CHECK_THAT(same.err, Catch::Contains("--name"));

    // --check on an upgradable instance: it passes, nothing is kept, the old still runs.
    auto ok = site.cli({"instance", "upgrade", "old", "--name", "new", "--check"});
    INFO(ok.err);
    CHECK(ok.status == 0);
    CHECK_THAT(ok.out, Catch::Contains("can be upgraded"));
    check_absent(site, "new");
    CHECK(running(site, "old"));

    // A reg* column (regproc stores OIDs pg_upgrade cannot carry): pg_upgrade refuses.
    script(site, "old", "CREATE TABLE r (p regproc); INSERT INTO r VALUES ('now');");
    for (bool check : {true, false}) {
        std::vector<std::string> args = {"instance", "upgrade", "old", "--name", "new"};
        if (check) args.push_back("--check");
        auto r = site.cli(args);
        INFO(r.err);
        CHECK(r.status == 1);
        CHECK_THAT(r.err, Catch::Contains("pg_upgrade --check refused"));
        // Its report, with the file it names.
        CHECK_THAT(r.err, Catch::Contains("reg*"));
        CHECK_THAT(r.err, Catch::Contains("tables_using_reg.txt"));
        CHECK_THAT(r.err, Catch::Contains("public.r.p"));
        check_absent(site, "new");
        CHECK(running(site, "old"));
        CHECK(get(site, "old")["port"] == port);
        CHECK_FALSE(get(site, "old")["options"].contains("upgraded_to"));
    }
    // The inventory has the old one alone.
    CHECK(Inventory(site.settings().inventory_file()).list().size() == 1);
}

TEST_CASE("upgrade of a stopped instance with --drop-old and --no-analyze",
          "[integration][upgrade]") {
    TestSite site;
    prepare(site, "old");
    const int port = get(site, "old")["port"];
    REQUIRE(site.cli({"instance", "stop", "old"}).status == 0);
    auto r = site.cli({"instance", "upgrade", "old", "--name", "new", "--method", "link",
                       "--drop-old", "--no-analyze"});
    INFO(r.err);
    REQUIRE(r.status == 0);
    CHECK_THAT(r.out, Catch::Contains("runs on port " + std::to_string(port)));
    CHECK_THAT(r.out, Catch::Contains("vacuumdb"));
    CHECK_THAT(r.out, Catch::Contains("--analyze-in-stages"));
    CHECK_THAT(r.out, Catch::Contains("15/old was dropped"));
    check_absent(site, "old");
    CHECK(running(site, "new"));
    CHECK(one(site, "new", "SELECT count(*) FROM t", "appdb") == "1000");
    CHECK(get(site, "new")["upgraded_from"] == "15/old");
}

TEST_CASE("an upgrade killed before pg_upgrade ended is undone by the next command on the old",
          "[integration][upgrade]") {
    for (const std::string where :
         {"upgrade:pg_upgrade:before", "upgrade:made server:after", "upgrade:pg_upgrade:after"}) {
        DYNAMIC_SECTION("killed at " << where) {
            TestSite site;
            prepare(site, "old");
            const int port = get(site, "old")["port"];
            REQUIRE(killed_at(site, {"instance", "upgrade", "old", "--name", "new"}, where));
            // The next command on the old instance resumes: the new one goes, the old runs.
            auto start = site.cli({"instance", "start", "old"});
            INFO(start.err);
            CHECK(start.status == 0);
            check_absent(site, "new");
            CHECK(running(site, "old"));
            CHECK(get(site, "old")["port"] == port);
            CHECK(one(site, "old", "SELECT count(*) FROM t", "appdb") == "1000");
            Inventory inv(site.settings().inventory_file());
            bool interrupted = false;
            for (const auto& e : inv.journal("15/old", 20))
                if (e.operation == "upgrade")
                    interrupted = e.outcome == "failed" &&
                                  e.message.find("15/new was removed") != std::string::npos;
            CHECK(interrupted);
            // And the upgrade can be run again.
            auto again = site.cli({"instance", "upgrade", "old", "--name", "new", "--no-analyze"});
            INFO(again.err);
            CHECK(again.status == 0);
        }
    }
}

TEST_CASE("an upgrade --link killed after pg_upgrade linked keeps the new instance",
          "[integration][upgrade]") {
    TestSite site;
    prepare(site, "old");
    REQUIRE(killed_at(site, {"instance", "upgrade", "old", "--name", "new", "--method", "link"},
                      "upgrade:pg_upgrade:after"));
    // The old data directory is the new instance's now: the old refuses to start, the new one
    // (whole: pg_upgrade had ended) is kept and starts.
    auto start = site.cli({"instance", "start", "old"});
    CHECK(start.status != 0);
    CHECK_THAT(start.err, Catch::Contains("pg_upgrade --link"));
    auto fresh = site.cli({"instance", "start", "new"});
    INFO(fresh.err);
    REQUIRE(fresh.status == 0);
    CHECK(one(site, "new", "SELECT count(*) FROM t", "appdb") == "1000");
}

TEST_CASE("a standby is not upgraded; a primary's upgrade says its standbys follow the old one",
          "[integration][upgrade][replication]") {
    TestSite site;
    REQUIRE(site.cli({"instance", "create", "main"}).status == 0);
    REQUIRE(site.cli({"instance", "create", "replica", "--standby-for", "main"}).status == 0);
    auto refused = site.cli({"instance", "upgrade", "replica", "--name", "replica2"});
    CHECK(refused.status == 2);
    CHECK(refused.err.find("is a standby of 15/main") != std::string::npos);
    {
        Context ctx(site.settings());
        CHECK(!instances::exists(ctx, "replica2"));
    }
    auto up = site.cli({"instance", "upgrade", "main", "--name", "main2", "--no-analyze"});
    INFO(up.err);
    REQUIRE(up.status == 0);
    CHECK((up.out + up.err).find("standby 15/replica follows 15/main") != std::string::npos);
}
