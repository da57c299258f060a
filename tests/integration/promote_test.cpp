// instance promote and instance rebuild on real servers: a standby of a pgforge primary promoted
// and written to, the roles the inventory records, the hook points site hooks see; the old
// primary rebuilt with pg_rewind (data checksums) or, without checksums nor wal_log_hints, with
// a fresh base backup, then following the new primary; refusals; a promote killed after the
// server took it, finished by the next command.
#include <fcntl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <chrono>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <thread>

#include "engine/core/fault.hpp"
#include "engine/inventory/inventory.hpp"
#include "engine/operations/instances.hpp"
#include "engine/pg/connection.hpp"
#include "tests/support/test_site.hpp"

namespace fs = std::filesystem;
using namespace pgforge;
using pgforge::test::TestSite;

namespace {

Instance entry(const TestSite& site, const std::string& name) {
    Context ctx(site.settings());
    auto found = ctx.inventory().find("15", name);
    REQUIRE(found);
    return *found;
}

pg::QueryResult sql(const TestSite& site, const std::string& name, const std::string& statement) {
    return pg::Connection(entry(site, name)).exec(statement);
}

// The first value of a query's first row.
std::string value(const TestSite& site, const std::string& name, const std::string& statement) {
    auto r = sql(site, name, statement);
    REQUIRE_FALSE(r.rows.empty());
    return r.rows[0][0].value_or("");
}

bool eventually(const std::function<bool()>& condition, double seconds = 60) {
    auto until = std::chrono::steady_clock::now() + std::chrono::duration<double>(seconds);
    while (std::chrono::steady_clock::now() < until) {
        try {
            if (condition()) return true;
        } catch (const std::exception&) {
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    return false;
}

// Site hooks at the promote points that record "POINT OPERATION INSTANCE" in a file.
fs::path record_promote_hooks(const TestSite& site) {
    fs::path out = site.root() / "out";
    fs::create_directories(out);
    fs::permissions(out, fs::perms(0777));
    fs::path log = out / "hooks.log";
    std::ofstream(log).flush();
    fs::permissions(log, fs::perms(0666));
    fs::path hooks = site.root() / "hooks";
    for (const char* point : {"pre_promote", "post_promote"}) {
        fs::path d = hooks / (std::string(point) + ".d");
        fs::create_directories(d);
        fs::permissions(hooks, fs::perms(0755));
        fs::permissions(d, fs::perms(0755));
        std::ofstream(d / "record") << "#!/bin/sh\necho \"$PGFORGE_HOOK $PGFORGE_OPERATION "
                                       "$PGFORGE_INSTANCE\" >> "
                                    << log.string() << "\n";
        fs::permissions(d / "record", fs::perms(0755));
    }
    site.add_settings("[hooks]\ndir = " + hooks.string() + "\n");
    return log;
}

std::string read_all(const fs::path& file) {
    std::ifstream in(file);
    return std::string(std::istreambuf_iterator<char>(in), {});
}

// A primary `primary` (with `create_args`), a table t with one row, and a standby `standby`
// streaming from it.
void primary_and_standby(const TestSite& site, const std::string& primary,
                         const std::string& standby,
                         const std::vector<std::string>& create_args = {}) {
    std::vector<std::string> create = {"instance", "create", primary};
    create.insert(create.end(), create_args.begin(), create_args.end());
    auto r = site.cli(create);
    INFO(r.err);
    REQUIRE(r.status == 0);
    sql(site, primary, "CREATE TABLE t (x int)");
    sql(site, primary, "INSERT INTO t VALUES (1)");
    r = site.cli({"instance", "create", standby, "--standby-for", primary});
    INFO(r.err);
    REQUIRE(r.status == 0);
    REQUIRE(entry(site, standby).role == "standby");
    REQUIRE(eventually([&] { return value(site, standby, "SELECT count(*) FROM t") == "1"; }));
}

}  // namespace

TEST_CASE("promote a standby, write on it; rebuild the old primary with pg_rewind", "[promote]") {
    TestSite site;
    fs::path hooks = record_promote_hooks(site);
    primary_and_standby(site, "main", "replica", {"--data-checksums"});

    // Refusals first: a primary is not promoted, a standby of a live primary is not rebuilt.
    auto r = site.cli({"instance", "promote", "main"});
    CHECK(r.status == 2);
    CHECK_THAT(r.err, Catch::Contains("instance 15/main is not a standby (its role is primary)"));
    r = site.cli({"instance", "rebuild", "replica", "--from", "main"});
    CHECK(r.status == 2);
    r = site.cli({"instance", "rebuild", "main", "--from", "replica"});
    CHECK(r.status == 2);
    CHECK_THAT(r.err, Catch::Contains("instance 15/main is a primary"));
    CHECK(read_all(hooks).empty());

    // A checkpoint the standby replays before its promotion: pg_rewind reads the old primary's
    // WAL back to the last checkpoint before the fork, and the one of the base backup is in a
    // segment the old primary recycles (a server makes one every checkpoint_timeout anyway).
    sql(site, "main", "CHECKPOINT");
    std::string lsn = value(site, "main", "SELECT pg_current_wal_lsn()");
    REQUIRE(eventually([&] {
        return value(site, "replica", "SELECT pg_last_wal_replay_lsn() >= '" + lsn + "'::pg_lsn") ==
               "t";
    }));
    r = site.cli({"instance", "promote", "replica"});
    INFO(r.err);
    REQUIRE(r.status == 0);
    CHECK_THAT(r.out, Catch::Contains("instance 15/replica promoted: it is a primary"));
    CHECK_THAT(r.out, Catch::Contains("instance 15/main is diverged from it and still runs"));
    CHECK_THAT(r.out, Catch::Contains("pgforge instance rebuild 15/main --from 15/replica"));
    // Writable at once.
    sql(site, "replica", "INSERT INTO t VALUES (2)");
    CHECK(value(site, "replica", "SELECT pg_is_in_recovery()") == "f");
    CHECK(read_all(hooks) == "pre_promote promote 15/replica\npost_promote promote 15/replica\n");

    Instance promoted = entry(site, "replica");
    CHECK(promoted.role == "primary");
    CHECK(promoted.upstream.empty());
    CHECK(promoted.slot.empty());
    Instance old = entry(site, "main");
    CHECK(old.role == "diverged");
    CHECK(old.upstream == "15/replica");
    {
        Context ctx(site.settings());
        auto journal = ctx.inventory().journal("15/main", 1);
        REQUIRE(journal.size() == 1);
        CHECK(journal[0].operation == "diverged");
        CHECK(journal[0].outcome == "ok");
    }
    // Promoting it again: it is no standby any more.
    r = site.cli({"instance", "promote", "replica"});
    CHECK(r.status == 2);

    // The old primary diverges for real (a write the new primary never sees), then is rebuilt:
    // --from a diverged instance or from itself is refused.
    sql(site, "main", "INSERT INTO t VALUES (99)");
    r = site.cli({"instance", "rebuild", "main", "--from", "main"});
    CHECK(r.status == 2);
    r = site.cli({"instance", "rebuild", "main", "--from", "replica", "--json"});
    INFO(r.err);
    REQUIRE(r.status == 0);
    auto j = nlohmann::json::parse(r.out);
    CHECK(j["method"] == "pg_rewind");
    CHECK(j["role"] == "standby");
    CHECK(j["upstream"] == "15/replica");
    Instance rebuilt = entry(site, "main");
    CHECK(rebuilt.role == "standby");
    CHECK(rebuilt.upstream == "15/replica");
    CHECK(rebuilt.slot == "main");
    CHECK(rebuilt.port == old.port);
    // Rows written on the new primary are read on the rebuilt standby; its own write is gone.
    sql(site, "replica", "INSERT INTO t VALUES (3)");
    CHECK(eventually([&] {
        return value(site, "main", "SELECT string_agg(x::text, ',' ORDER BY x) FROM t") == "1,2,3";
    }));
    CHECK(value(site, "main", "SELECT pg_is_in_recovery()") == "t");
    CHECK(value(site, "replica",
                "SELECT active FROM pg_replication_slots WHERE slot_name = 'main'") == "t");
    // Its own configuration was kept: the port and socket of its files are its own.
    auto list = site.cli({"instance", "list", "--json"});
    CHECK(list.status == 0);
    CHECK_THAT(list.out, !Catch::Contains("drift\": \"p"));
}

TEST_CASE("rebuild without checksums nor wal_log_hints takes a fresh base backup", "[promote]") {
    TestSite site;
    primary_and_standby(site, "old", "new");
    // A second standby of the old primary, left behind by the failover.
    auto r = site.cli({"instance", "create", "other", "--standby-for", "old"});
    INFO(r.err);
    REQUIRE(r.status == 0);
    r = site.cli({"instance", "promote", "new"});
    INFO(r.err);
    REQUIRE(r.status == 0);
    CHECK(entry(site, "old").role == "diverged");
    // --from a standby is refused: only a primary is followed.
    r = site.cli({"instance", "rebuild", "old", "--from", "other"});
    CHECK(r.status == 2);
    CHECK_THAT(r.err, Catch::Contains("instance 15/other is not a primary (its role is standby)"));
    // A diverged instance that is stopped is rebuilt the same way.
    REQUIRE(site.cli({"instance", "stop", "old"}).status == 0);
    sql(site, "new", "INSERT INTO t VALUES (2)");

    r = site.cli({"instance", "rebuild", "old", "--from", "new", "--json"});
    INFO(r.err);
    REQUIRE(r.status == 0);
    auto j = nlohmann::json::parse(r.out);
    CHECK(j["method"] == "base backup");
    CHECK_THAT(j["rewind_refused"].get<std::string>(),
               Catch::Contains("neither data checksums nor wal_log_hints"));
    Instance rebuilt = entry(site, "old");
    CHECK(rebuilt.role == "standby");
    CHECK(rebuilt.upstream == "15/new");
    // The previous data directory is gone once the new one streams.
    CHECK_FALSE(fs::exists(rebuilt.data_dir.parent_path() / "data.pgforge-rebuild-previous"));
    sql(site, "new", "INSERT INTO t VALUES (3)");
    CHECK(eventually([&] {
        return value(site, "old", "SELECT string_agg(x::text, ',' ORDER BY x) FROM t") == "1,2,3";
    }));

    // The standby whose upstream diverged follows the new primary too.
    r = site.cli({"instance", "rebuild", "other", "--from", "new", "--json"});
    INFO(r.err);
    REQUIRE(r.status == 0);
    CHECK(entry(site, "other").upstream == "15/new");
    CHECK(eventually([&] {
        return value(site, "other", "SELECT string_agg(x::text, ',' ORDER BY x) FROM t") == "1,2,3";
    }));
}

TEST_CASE("a promote killed after the server took it is finished by the next command",
          "[promote][crash]") {
    if (!fault_injection_built()) FAIL("built without PGFORGE_FAULT_INJECTION");
    TestSite site;
    primary_and_standby(site, "main", "replica");
    // The CLI in a child, killed (SIGKILL) right after the promote step: the server is a
    // primary, the inventory still says standby, post_promote has not run.
    pid_t pid = fork();
    REQUIRE(pid >= 0);
    if (pid == 0) {
        int null = ::open("/dev/null", O_WRONLY);
        dup2(null, 1);
        dup2(null, 2);
        setenv("PGFORGE_FAULT_KILL_AT", "promote:promote:after", 1);
        execl(PGFORGE_CLI_PATH, PGFORGE_CLI_PATH, "--settings", site.settings_file().c_str(),
              "instance", "promote", "replica", static_cast<char*>(nullptr));
        _exit(127);
    }
    int status = 0;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }
    REQUIRE(WIFSIGNALED(status));
    CHECK(WTERMSIG(status) == SIGKILL);
    CHECK(entry(site, "replica").role == "standby");
    CHECK(value(site, "replica", "SELECT pg_is_in_recovery()") == "f");

    // Any command on the instance resumes it: the inventory follows the server.
    auto r = site.cli({"instance", "list"});
    INFO(r.err);
    CHECK(r.status == 0);
    CHECK(entry(site, "replica").role == "primary");
    CHECK(entry(site, "main").role == "diverged");
    CHECK(entry(site, "main").upstream == "15/replica");
    Context ctx(site.settings());
    auto journal = ctx.inventory().journal("15/replica", 2);
    REQUIRE(journal.size() == 2);
    CHECK(journal[0].operation == "promote");
    CHECK(journal[0].outcome == "ok");
    CHECK(journal[1].operation == "promote");
    CHECK_THAT(journal[1].message, Catch::Contains("the server had been promoted: finished"));
    // Running promote again says it is a primary now.
    r = site.cli({"instance", "promote", "replica"});
    CHECK(r.status == 2);
}

TEST_CASE("a rebuild killed after its base backup is undone by the next command and runs again",
          "[promote][crash]") {
    if (!fault_injection_built()) FAIL("built without PGFORGE_FAULT_INJECTION");
    TestSite site;
    primary_and_standby(site, "old", "new");
    REQUIRE(site.cli({"instance", "promote", "new"}).status == 0);
    REQUIRE(site.cli({"instance", "stop", "old"}).status == 0);
    Instance old = entry(site, "old");
    std::ofstream(old.data_dir / "previous-marker") << "the data directory before the rebuild\n";
    pid_t pid = fork();
    REQUIRE(pid >= 0);
    if (pid == 0) {
        int null = ::open("/dev/null", O_WRONLY);
        dup2(null, 1);
        dup2(null, 2);
        setenv("PGFORGE_FAULT_KILL_AT", "rebuild:base backup:after", 1);
        execl(PGFORGE_CLI_PATH, PGFORGE_CLI_PATH, "--settings", site.settings_file().c_str(),
              "instance", "rebuild", "old", "--from", "new", static_cast<char*>(nullptr));
        _exit(127);
    }
    int status = 0;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }
    REQUIRE(WIFSIGNALED(status));
    const fs::path aside = old.data_dir.parent_path() / "data.pgforge-rebuild-previous";
    CHECK(fs::exists(aside / "previous-marker"));

    // The next command on it puts the previous data directory back and drops the slot.
    auto r = site.cli({"instance", "list"});
    CHECK(r.status == 0);
    CHECK(fs::exists(old.data_dir / "previous-marker"));
    CHECK_FALSE(fs::exists(aside));
    CHECK(entry(site, "old").role == "diverged");
    CHECK(value(site, "new", "SELECT count(*) FROM pg_replication_slots WHERE slot_name = 'old'") ==
          "0");

    // The same rebuild again converges.
    r = site.cli({"instance", "rebuild", "old", "--from", "new"});
    INFO(r.err);
    REQUIRE(r.status == 0);
    CHECK(entry(site, "old").role == "standby");
    CHECK_FALSE(fs::exists(old.data_dir / "previous-marker"));
    CHECK_FALSE(fs::exists(aside));
}
