// The backup plugin on real servers with the real pgBackRest: WAL archiving set up by configure,
// the stanza made at the first start, backups, point-in-time restore, retention, and drop.
#include <sys/stat.h>

#include <catch2/catch.hpp>
#include <chrono>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <thread>

#include "engine/inventory/inventory.hpp"
#include "engine/operations/instances.hpp"
#include "engine/pg/connection.hpp"
#include "tests/support/test_site.hpp"

namespace fs = std::filesystem;
using json = nlohmann::json;
using namespace pgforge;
using pgforge::test::TestSite;

namespace {

bool contains(const std::string& haystack, const std::string& needle) {
    return haystack.find(needle) != std::string::npos;
}

std::string read_text(const fs::path& p) {
    std::ifstream in(p);
    std::ostringstream s;
    s << in.rdbuf();
    return s.str();
}

// A site with the backup plugin enabled, and more settings for its section.
struct BackupSite {
    TestSite site;
    explicit BackupSite(const std::string& section = "", const std::string& plugins = "backup",
                        const std::string& more = "") {
        site.add_settings("[plugins]\nenabled = " + plugins + "\n" + more + "[backup]\n" + section);
    }
    Instance create(const std::string& name) const {
        auto r = site.cli({"instance", "create", name});
        INFO(r.err);
        REQUIRE(r.status == 0);
        return get(name);
    }
    Instance get(const std::string& name) const {
        Context ctx(site.settings());
        return instances::get(ctx, name);
    }
    TestSite::Output cli(std::vector<std::string> args) const { return site.cli(std::move(args)); }
    fs::path repository(const std::string& stanza) const {
        return site.root() / "prefix" / "backups" / stanza;
    }
};

std::string one(const Instance& i, const std::string& sql,
                const std::vector<std::string>& params = {}) {
    pg::Connection c(i);
    auto r = c.exec(sql, params);
    return r.rows.empty() ? "(no row)" : r.rows.at(0).at(0).value_or("NULL");
}

void sql(const Instance& i, const std::string& text) {
    pg::Connection c(i);
    c.exec_script(text);
}

// Switches to a new WAL segment and waits until the one just finished reached the archive.
void archive_current_wal(const Instance& i) {
    std::string segment = one(i, "SELECT pg_walfile_name(pg_switch_wal())");
    auto until = std::chrono::steady_clock::now() + std::chrono::seconds(60);
    while (one(i, "SELECT coalesce(last_archived_wal, '') >= $1 FROM pg_stat_archiver",
               {segment}) != "t") {
        REQUIRE(std::chrono::steady_clock::now() < until);
        std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
}

json backups(const BackupSite& s, const std::string& name) {
    auto r = s.cli({"backup", "list", "-i", name, "--json"});
    INFO(r.err);
    REQUIRE(r.status == 0);
    return json::parse(r.out);
}

std::string full_backup(const BackupSite& s, const std::string& name) {
    auto r = s.cli({"backup", "create", "-i", name, "--type", "full", "--json"});
    INFO(r.err);
    REQUIRE(r.status == 0);
    auto b = json::parse(r.out);
    CHECK(b["type"] == "full");
    return b["label"].get<std::string>();
}

unsigned mode_of(const fs::path& p) {
    struct stat st {};
    REQUIRE(::stat(p.c_str(), &st) == 0);
    return st.st_mode & 07777;
}

uid_t owner_of(const fs::path& p) {
    struct stat st {};
    REQUIRE(::stat(p.c_str(), &st) == 0);
    return st.st_uid;
}

}  // namespace

TEST_CASE("an instance archives its WAL through pgBackRest with a configuration of its own",
          "[integration][backup]") {
    BackupSite s;
    Instance i = s.create("arch");

    CHECK(one(i, "SHOW archive_mode") == "on");
    CHECK(one(i, "SHOW wal_level") == "replica");
    fs::path conf = i.base_dir / "backup" / "pgbackrest.conf";
    std::string command = one(i, "SHOW archive_command");
    CHECK(contains(command, "pgbackrest"));
    CHECK(contains(command, "--config=" + conf.string()));
    CHECK(contains(command, "--stanza=15-arch"));
    CHECK(contains(command, "archive-push %p"));

    // The file is the instance owner's alone, and names nothing another instance uses.
    REQUIRE(fs::exists(conf));
    CHECK(mode_of(conf) == 0600);
    CHECK(owner_of(conf) == owner_of(i.data_dir));
    std::string text = read_text(conf);
    CHECK(contains(text, "[15-arch]"));
    CHECK(contains(text, "pg1-path=" + i.data_dir.string() + "\n"));
    CHECK(contains(text, "pg1-port=" + std::to_string(i.port) + "\n"));
    CHECK(contains(text, "pg1-socket-path=" + i.socket_dir.string() + "\n"));
    CHECK(contains(text, "pg1-user=" + i.superuser + "\n"));
    CHECK(contains(text, "repo1-path=" + s.repository("15-arch").string() + "\n"));
    CHECK(contains(text, "lock-path=" + (i.base_dir / "backup" / "lock").string() + "\n"));
    CHECK(contains(text, "log-path=" + (i.base_dir / "backup" / "log").string() + "\n"));
    CHECK(contains(text, "spool-path=" + (i.base_dir / "backup" / "spool").string() + "\n"));
    CHECK(contains(text, "repo1-retention-full=2\n"));
    CHECK(mode_of(s.repository("15-arch")) == 0700);
    CHECK(owner_of(s.repository("15-arch")) == owner_of(i.data_dir));

    // The first start made the stanza and proved archiving works (pgbackrest check).
    CHECK(std::stol(one(i, "SELECT archived_count FROM pg_stat_archiver")) > 0);
    CHECK(one(i, "SELECT failed_count FROM pg_stat_archiver") == "0");
    CHECK(fs::exists(s.repository("15-arch") / "archive" / "15-arch" / "archive.info"));
    CHECK(fs::exists(s.repository("15-arch") / "backup" / "15-arch" / "backup.info"));
    sql(i, "CREATE TABLE t AS SELECT 1 AS x");
    archive_current_wal(i);

    auto got = s.cli({"instance", "get", "arch"});
    CHECK(contains(got.out, "15-arch"));
    CHECK(contains(got.out, s.repository("15-arch").string()));

    auto bad = s.cli({"backup", "create", "-i", "arch", "--type", "weekly"});
    CHECK(bad.status == 2);
    CHECK(contains(bad.err, "full, diff or incr"));
    CHECK(backups(s, "arch").empty());

    // Without backups, a drop needs no flag and leaves no repository behind.
    auto dropped = s.cli({"instance", "drop", "arch"});
    INFO(dropped.err);
    CHECK(dropped.status == 0);
    CHECK_FALSE(fs::exists(s.repository("15-arch")));
    CHECK_FALSE(fs::exists(i.base_dir));
}

TEST_CASE("a stanza named in the settings is used, and wal_level logical from elsewhere is kept",
          "[integration][backup]") {
    // The recorder fixture plugin contributes wal_level = logical before this plugin runs.
    BackupSite s("stanza.15/logi = custom.stanza_1\ncompression = lz4\nretention_diff = 3\n",
                 "backup recorder",
                 "path = " + std::string(PGFORGE_TEST_PLUGIN_DIR) +
                     "/recorder\n[recorder]\nparameter = wal_level=logical\n");
    Instance i = s.create("logi");
    CHECK(one(i, "SHOW wal_level") == "logical");
    CHECK(one(i, "SHOW archive_mode") == "on");
    CHECK(contains(one(i, "SHOW archive_command"), "--stanza=custom.stanza_1"));
    std::string text = read_text(i.base_dir / "backup" / "pgbackrest.conf");
    CHECK(contains(text, "[custom.stanza_1]"));
    CHECK(contains(text, "compress-type=lz4\n"));
    CHECK(contains(text, "repo1-retention-diff=3\n"));
    CHECK(fs::exists(s.repository("custom.stanza_1") / "archive" / "custom.stanza_1"));
    CHECK(std::stol(one(i, "SELECT archived_count FROM pg_stat_archiver")) > 0);
}

TEST_CASE("instance create --option backup.stanza=prod gives the instance that stanza",
          "[integration][backup]") {
    // The option comes before the site's stanza.VERSION/NAME.
    BackupSite s("stanza.15/opt = from.settings\n");
    auto r = s.cli({"instance", "create", "opt", "--option", "backup.stanza=prod"});
    INFO(r.err);
    REQUIRE(r.status == 0);
    Instance i = s.get("opt");
    CHECK(contains(one(i, "SHOW archive_command"), "--stanza=prod "));
    CHECK(contains(read_text(i.base_dir / "backup" / "pgbackrest.conf"), "[prod]"));
    CHECK(fs::exists(s.repository("prod") / "archive" / "prod"));
    auto get = json::parse(s.cli({"--json", "instance", "get", "opt"}).out);
    CHECK(get["backup"] == json{{"stanza", "prod"}});
    CHECK(get["plugins"]["backup"]["stanza"] == "prod");
}

TEST_CASE("bad settings of the backup plugin leave it out with a message naming the key",
          "[integration][backup]") {
    for (const auto& [line, key] : std::vector<std::pair<std::string, std::string>>{
             {"retention_full = 0", "retention_full"},
             {"compression = rar", "compression"},
             {"repository = relative/dir", "repository"},
             {"stanza.15/main = a/b", "stanza.15/main"},
             {"pgbackrest = /nonexistent/pgbackrest", "pgbackrest"},
             {"colour = blue", "colour"}}) {
        BackupSite s(line + "\n");
        auto r = s.cli({"plugin", "show", "backup"});
        INFO(line << "\n" << r.out << r.err);
        CHECK(contains(r.out, "error:"));
        CHECK(contains(r.out, key));
        CHECK(s.cli({"backup", "list", "-i", "main"}).status != 0);
    }
}

TEST_CASE("restore to a point in time brings back exactly the rows committed before it",
          "[integration][backup]") {
    BackupSite s("compression = lz4\n");
    Instance i = s.create("pitr");
    sql(i, "CREATE TABLE t (n int); INSERT INTO t SELECT generate_series(1, 10)");
    full_backup(s, "pitr");
    // pgBackRest picks the newest backup that stopped before the target, to the second.
    std::this_thread::sleep_for(std::chrono::milliseconds(1100));
    sql(i, "INSERT INTO t SELECT generate_series(11, 20)");
    std::this_thread::sleep_for(std::chrono::milliseconds(300));
    std::string target =
        one(i, "SELECT to_char(now() AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS.US') || '+00'");
    std::this_thread::sleep_for(std::chrono::milliseconds(300));
    sql(i, "INSERT INTO t SELECT generate_series(21, 30)");
    archive_current_wal(i);
    CHECK(one(i, "SELECT count(*) FROM t") == "30");

    auto refused = s.cli({"backup", "restore", "-i", "pitr", "--time", target});
    CHECK(refused.status == 5);
    CHECK(contains(refused.err, "is running"));
    CHECK(contains(refused.err, "pgforge instance stop 15/pitr"));

    REQUIRE(s.cli({"instance", "stop", "pitr"}).status == 0);
    auto r = s.cli({"backup", "restore", "-i", "pitr", "--time", target});
    INFO(r.err);
    REQUIRE(r.status == 0);
    CHECK(contains(r.out, "recovering to " + target));
    auto started = s.cli({"instance", "start", "pitr"});
    INFO(started.err);
    REQUIRE(started.status == 0);

    // The start returns once recovery reached the target and the server promoted itself.
    CHECK(one(i, "SELECT pg_is_in_recovery()") == "f");
    CHECK(one(i, "SELECT count(*) FROM t") == "20");
    CHECK(one(i, "SELECT max(n) FROM t") == "20");
    // The server writes again, on a new timeline, and archives it.
    sql(i, "INSERT INTO t VALUES (100)");
    CHECK(one(i, "SELECT substr(pg_walfile_name(pg_current_wal_lsn()), 1, 8)") == "00000002");
    archive_current_wal(i);
    // pgforge's configuration files stay as they are now.
    CHECK(contains(read_text(i.data_dir / "postgresql.conf"), "archive_command"));
}

TEST_CASE("restore of a backup by its label brings the instance back to that backup",
          "[integration][backup]") {
    BackupSite s("compression = lz4\n");
    Instance i = s.create("lbl");
    sql(i, "CREATE TABLE t (n int); INSERT INTO t SELECT generate_series(1, 5)");
    std::string first = full_backup(s, "lbl");
    sql(i, "INSERT INTO t SELECT generate_series(6, 9)");
    auto incr = s.cli({"backup", "create", "-i", "lbl", "--type", "incr"});
    INFO(incr.err);
    REQUIRE(incr.status == 0);
    CHECK(contains(incr.out, "(incr)"));
    REQUIRE(s.cli({"instance", "stop", "lbl"}).status == 0);

    auto missing = s.cli({"backup", "restore", "-i", "lbl", "--label", "19700101-000000F"});
    CHECK(missing.status == 4);
    CHECK(contains(missing.err, "has no backup 19700101-000000F"));
    auto usage = s.cli({"backup", "restore", "-i", "lbl", "--when", "now"});
    CHECK(usage.status == 2);

    auto r = s.cli({"backup", "restore", "-i", "lbl", "--label", first});
    INFO(r.err);
    REQUIRE(r.status == 0);
    REQUIRE(s.cli({"instance", "start", "lbl"}).status == 0);
    CHECK(one(i, "SELECT pg_is_in_recovery()") == "f");
    CHECK(one(i, "SELECT count(*) FROM t") == "5");
}

TEST_CASE("retention keeps the configured full backups; drop is refused while backups exist",
          "[integration][backup]") {
    BackupSite s("retention_full = 1\ncompression = lz4\n");
    Instance i = s.create("keep");
    sql(i, "CREATE TABLE t AS SELECT generate_series(1, 1000) AS n");
    std::string first = full_backup(s, "keep");

    auto list = backups(s, "keep");
    REQUIRE(list.size() == 1);
    const auto& b = list[0];
    CHECK(b["label"] == first);
    CHECK(b["type"] == "full");
    CHECK(b["start"].get<std::string>().size() == 22);  // 2024-05-01 12:00:00+00
    CHECK(b["stop"].get<std::string>() >= b["start"].get<std::string>());
    CHECK(b["size"].get<long>() > 1000000);
    CHECK(b["repository_size"].get<long>() > 0);
    CHECK(b["wal_start"].get<std::string>().size() == 24);
    CHECK(b["wal_stop"].get<std::string>() >= b["wal_start"].get<std::string>());
    auto table = s.cli({"backup", "list", "-i", "keep"});
    CHECK(contains(table.out, "LABEL"));
    CHECK(contains(table.out, first));

    std::string second = full_backup(s, "keep");
    CHECK(second != first);
    list = backups(s, "keep");
    REQUIRE(list.size() == 1);  // pgBackRest expired the older full backup
    CHECK(list[0]["label"] == second);
    auto expired = s.cli({"backup", "expire", "-i", "keep"});
    INFO(expired.err);
    CHECK(expired.status == 0);
    CHECK(contains(expired.out, "1 backup(s) kept: " + second));

    auto refused = s.cli({"instance", "drop", "keep"});
    CHECK(refused.status != 0);
    CHECK(contains(refused.err, "has 1 backup(s)"));
    CHECK(contains(refused.err, "--purge-backups"));
    CHECK(fs::exists(i.data_dir / "PG_VERSION"));
    CHECK(one(i, "SELECT count(*) FROM t") == "1000");  // still running
    CHECK(fs::exists(s.repository("15-keep") / "backup" / "15-keep" / second));

    auto dropped = s.cli({"instance", "drop", "keep", "--purge-backups"});
    INFO(dropped.err);
    CHECK(dropped.status == 0);
    CHECK_FALSE(fs::exists(i.base_dir));
    CHECK_FALSE(fs::exists(s.repository("15-keep")));
    CHECK(s.cli({"instance", "get", "keep"}).status == 4);
}

TEST_CASE("an instance made before the plugin was enabled gets archiving at a reload and restart",
          "[integration][backup]") {
    TestSite site;
    REQUIRE(site.cli({"instance", "create", "late"}).status == 0);
    site.add_settings("[plugins]\nenabled = backup\n");
    Context ctx(site.settings());
    Instance i = instances::get(ctx, "late");
    CHECK(one(i, "SHOW archive_mode") == "off");

    auto early = site.cli({"backup", "create", "-i", "late"});
    CHECK(early.status == 1);
    CHECK(contains(early.err, "pgforge instance reload 15/late"));

    auto reloaded = site.cli({"instance", "reload", "late"});
    INFO(reloaded.out << reloaded.err);
    CHECK(reloaded.status == 0);
    CHECK(fs::exists(i.base_dir / "backup" / "pgbackrest.conf"));
    auto restarted = site.cli({"instance", "restart", "late"});
    INFO(restarted.err);
    REQUIRE(restarted.status == 0);
    CHECK(one(i, "SHOW archive_mode") == "on");
    CHECK(std::stol(one(i, "SELECT archived_count FROM pg_stat_archiver")) > 0);

    auto list = site.cli({"backup", "list", "-i", "late", "--json"});
    CHECK(list.status == 0);
    CHECK(json::parse(list.out).empty());
    REQUIRE(site.cli({"instance", "drop", "late"}).status == 0);
    CHECK_FALSE(fs::exists(site.root() / "prefix" / "backups" / "15-late"));
}

TEST_CASE("a create whose stanza pgBackRest refuses fails with pgBackRest's message and is undone",
          "[integration][backup]") {
    // Two instances told to share a stanza: the second is another cluster for pgBackRest.
    BackupSite s("stanza.15/one = shared\nstanza.15/two = shared\n");
    Instance one_ = s.create("one");
    auto r = s.cli({"instance", "create", "two"});
    INFO(r.err);
    CHECK(r.status != 0);
    CHECK(contains(r.err, "post_start by plugin backup"));
    CHECK(contains(r.err, "pgbackrest stanza-create failed: ERROR: ["));
    CHECK(s.cli({"instance", "get", "two"}).status == 4);
    CHECK_FALSE(fs::exists(s.site.root() / "prefix" / "15" / "two"));
    // The first instance's repository is untouched and still takes its WAL.
    CHECK(fs::exists(s.repository("shared") / "archive" / "shared" / "archive.info"));
    sql(one_, "CREATE TABLE t AS SELECT 1 AS x");
    archive_current_wal(one_);
    CHECK(one(one_, "SELECT failed_count FROM pg_stat_archiver") == "0");
}

TEST_CASE("a create that fails after the stanza was made takes the stanza and its repository away",
          "[integration][backup]") {
    // The recorder fixture refuses at post_start; post_start handlers all run, so the backup
    // plugin still makes the stanza, and the create's undo must remove it.
    BackupSite s("compression = lz4\n", "backup recorder",
                 "path = " + std::string(PGFORGE_TEST_PLUGIN_DIR) +
                     "/recorder\n[recorder]\nrefuse = post_start\n");
    auto r = s.cli({"instance", "create", "undone"});
    INFO(r.err);
    CHECK(r.status == 1);
    CHECK(contains(r.err, "refused at post_start by plugin recorder"));
    CHECK_FALSE(fs::exists(s.repository("15-undone")));
    CHECK_FALSE(fs::exists(s.site.root() / "prefix" / "15" / "undone"));
    auto h = s.cli({"instance", "history", "15/undone"});
    CHECK(contains(h.out, "plugin backup: stanza 15-undone"));
}

TEST_CASE("after a restore, the monitoring plugin makes its role only once recovery has ended",
          "[integration][backup]") {
    // The monitoring plugin's post_start (priority 100) makes its role, which a server still in
    // recovery refuses ("cannot execute CREATE ROLE in a read-only transaction"); it declares
    // after=backup, whose post_start (priority 900) waits for a restored instance's recovery.
    BackupSite s;
    Instance i = s.create("mon");
    sql(i, "CREATE TABLE t (n int); INSERT INTO t VALUES (1)");
    full_backup(s, "mon");
    REQUIRE(s.cli({"instance", "stop", "mon"}).status == 0);
    auto restored = s.cli({"backup", "restore", "-i", "mon"});
    INFO(restored.err);
    REQUIRE(restored.status == 0);
    // Monitoring enabled now: its role is not in the backup.
    s.site.add_settings("[plugins]\nenabled = monitoring\n[monitoring]\nport_min = " +
                        std::to_string(s.site.port_min() + 50) +
                        "\nport_max = " + std::to_string(s.site.port_min() + 99) + "\n");
    auto started = s.cli({"instance", "start", "mon"});
    INFO(started.err);
    CHECK(started.status == 0);
    CHECK(one(i, "SELECT count(*) FROM pg_roles WHERE rolname = 'pgforge_monitor'") == "1");
    auto h = s.cli({"instance", "history", "mon", "--json"});
    REQUIRE(h.status == 0);
    auto start = json::parse(h.out).back();
    CHECK(start["operation"] == "start");
    std::vector<std::string> post_start;
    for (const auto& step : start["steps"])
        if (step["name"].get<std::string>().rfind("post_start ", 0) == 0)
            post_start.push_back(step["name"].get<std::string>() + " " +
                                 step["outcome"].get<std::string>());
    CHECK(post_start ==
          std::vector<std::string>{"post_start backup ok", "post_start monitoring ok"});
    // The exporter goes with the server.
    CHECK(s.cli({"instance", "stop", "mon"}).status == 0);
}

TEST_CASE(
    "a standby archives nothing, has no stanza, and backup create says to back up the primary",
    "[integration][backup][replication]") {
    BackupSite s;
    Instance primary = s.create("main");
    // The primary's archive_mode always would make a standby archive too: it does not.
    REQUIRE(s.cli({"conf", "set", "-i", "main", "archive_mode=always", "--restart"}).status == 0);
    auto made = s.cli({"instance", "create", "replica", "--standby-for", "main"});
    INFO(made.err);
    REQUIRE(made.status == 0);
    Instance standby = s.get("replica");
    CHECK(one(standby, "SELECT setting FROM pg_settings WHERE name = 'archive_mode'") == "on");
    CHECK(!fs::exists(s.repository("15-replica")));
    CHECK(fs::exists(s.repository("15-main")));
    auto refused = s.cli({"backup", "create", "-i", "replica"});
    CHECK(refused.status == 1);
    CHECK(contains(refused.err, "is a standby"));
    CHECK(contains(refused.err, "back up the primary"));
    // The primary still archives into its own stanza.
    archive_current_wal(primary);
    REQUIRE(s.cli({"instance", "drop", "replica"}).status == 0);
}

TEST_CASE("instance upgrade: the new instance gets a stanza of its own, on the old one's port",
          "[integration][backup][upgrade]") {
    BackupSite s;
    Instance old = s.create("up");
    auto r = s.cli({"instance", "upgrade", "up", "--name", "up2", "--no-analyze"});
    INFO(r.err);
    REQUIRE(r.status == 0);
    Instance fresh = s.get("up2");
    CHECK(fresh.port == old.port);
    CHECK(contains(one(fresh, "SHOW archive_command"), "--stanza=15-up2"));
    std::string text = read_text(fresh.base_dir / "backup" / "pgbackrest.conf");
    CHECK(contains(text, "[15-up2]"));
    CHECK(contains(text, "pg1-port=" + std::to_string(fresh.port) + "\n"));
    // Its stanza was made at its start: a backup works.
    CHECK(fs::exists(s.repository("15-up2")));
    auto backup = s.cli({"backup", "create", "-i", "up2"});
    INFO(backup.err);
    CHECK(backup.status == 0);
    // The old instance keeps its own stanza, and its files name its new port.
    Instance moved = s.get("up");
    CHECK(moved.port != old.port);
    CHECK(contains(read_text(moved.base_dir / "backup" / "pgbackrest.conf"),
                   "pg1-port=" + std::to_string(moved.port) + "\n"));
}

TEST_CASE("a promoted standby archives: its stanza made at post_promote, WAL reaching it",
          "[backup][promote]") {
    BackupSite s;
    Instance primary = s.create("main");
    auto r = s.cli({"instance", "create", "replica", "--standby-for", "main"});
    INFO(r.err);
    REQUIRE(r.status == 0);
    // A standby makes no stanza at its start.
    CHECK_FALSE(fs::exists(s.repository("15-replica")));
    r = s.cli({"instance", "promote", "replica"});
    INFO(r.err);
    REQUIRE(r.status == 0);
    Instance promoted = s.get("replica");
    CHECK(promoted.role == "primary");
    // post_promote made its stanza and checked that WAL reaches the repository.
    CHECK(fs::is_directory(s.repository("15-replica") / "archive" / "15-replica"));
    sql(promoted, "CREATE TABLE t AS SELECT 1 AS x");
    archive_current_wal(promoted);
    {
        Context ctx(s.site.settings());
        bool seen = false;
        for (const auto& e : ctx.inventory().journal("15/replica", 5))
            if (e.operation == "promote") {
                seen = true;
                CHECK(e.outcome == "ok");
            }
        CHECK(seen);
    }
    // A backup of the promoted instance is taken from it, now a primary.
    full_backup(s, "replica");
}
