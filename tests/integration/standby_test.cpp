// Standbys on real servers (docs/replication.md): `instance create NAME --standby-for PRIMARY`
// of a pgforge primary and of a conninfo; what it prepares on the primary (role, pg_hba.conf
// record, slot); where the password is (the 0600 passfile, nowhere else under the site); rows
// written on the primary read on the standby; dropping with slots; refusals that leave nothing.
#include <sys/stat.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <chrono>
#include <fstream>
#include <nlohmann/json.hpp>
#include <thread>

#include "engine/core/process.hpp"
#include "engine/operations/instances.hpp"
#include "engine/pg/connection.hpp"
#include "tests/support/test_site.hpp"

namespace fs = std::filesystem;
using namespace pgforge;
using pgforge::test::TestSite;
using json = nlohmann::json;

namespace {

std::string read_all(const fs::path& file) {
    std::ifstream in(file, std::ios::binary);
    return std::string((std::istreambuf_iterator<char>(in)), {});
}

// Files under `root` that hold `secret`.
std::vector<fs::path> files_holding(const fs::path& root, const std::string& secret) {
    std::vector<fs::path> found;
    std::error_code ec;
    for (auto it = fs::recursive_directory_iterator(root, ec);
         it != fs::recursive_directory_iterator(); it.increment(ec)) {
        std::error_code e2;
        if (!it->is_regular_file(e2) || it->file_size(e2) > (256u << 20)) continue;
        if (read_all(it->path()).find(secret) != std::string::npos) found.push_back(it->path());
    }
    return found;
}

std::optional<std::string> one_value(const Instance& i, const std::string& sql,
                                     const std::vector<std::string>& params = {}) {
    pg::Connection c(i);
    auto r = c.exec(sql, params);
    if (r.rows.empty() || !r.rows[0][0]) return std::nullopt;
    return r.rows[0][0];
}

// Polls `sql` on `i` until it returns `want` (or 20 s pass); returns the last value.
std::string eventually(const Instance& i, const std::string& sql, const std::string& want) {
    std::string last;
    for (int k = 0; k < 400; ++k) {
        try {
            last = one_value(i, sql).value_or("(null)");
        } catch (const std::exception& e) {
            last = e.what();
        }
        if (last == want) break;
        std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    return last;
}

Instance instance(const TestSite& site, const std::string& name) {
    Context ctx(site.settings());
    return instances::get(ctx, name);
}

struct SecretFile {
    fs::path path;
    SecretFile(const fs::path& dir, const std::string& secret) : path(dir / "secret") {
        std::ofstream(path) << secret << "\n";
        fs::permissions(path, fs::perms(0600));
    }
};

}  // namespace

TEST_CASE("a standby of a pgforge primary: prepared primary, passfile only, rows replicated",
          "[replication][standby]") {
    TestSite site;
    REQUIRE(site.cli({"instance", "create", "main"}).status == 0);
    auto made = site.cli({"instance", "create", "replica", "--standby-for", "15/main"});
    INFO(made.err);
    REQUIRE(made.status == 0);
    CHECK(made.out.find("standby of 15/main, slot replica, streaming") != std::string::npos);

    Instance primary = instance(site, "main");
    Instance standby = instance(site, "replica");
    CHECK(standby.role == "standby");
    CHECK(standby.upstream == "15/main");
    CHECK(standby.slot == "replica");
    CHECK(standby.superuser == primary.superuser);
    CHECK(standby.port != primary.port);

    // The primary: a replication role with a SCRAM verifier, its own pg_hba.conf record, the slot.
    CHECK(one_value(primary,
                    "SELECT rolreplication AND rolcanlogin AND rolpassword LIKE 'SCRAM-SHA-256$%' "
                    "FROM pg_authid WHERE rolname = 'replicator'") == "t");
    CHECK(one_value(primary,
                    "SELECT count(*) FROM pg_hba_file_rules WHERE type = 'host' AND database = "
                    "'{replication}' AND user_name = '{replicator}' AND auth_method = "
                    "'scram-sha-256'") == "1");
    CHECK(one_value(primary,
                    "SELECT active FROM pg_replication_slots WHERE slot_name = 'replica'") == "t");
    // The standby: in recovery, streaming through the slot, from its own port and files.
    CHECK(one_value(standby, "SELECT pg_is_in_recovery()") == "t");
    CHECK(one_value(standby, "SELECT status FROM pg_stat_wal_receiver") == "streaming");
    CHECK(one_value(standby, "SELECT slot_name FROM pg_stat_wal_receiver") == "replica");
    CHECK(one_value(standby, "SELECT setting FROM pg_settings WHERE name = 'port'") ==
          std::to_string(standby.port));
    CHECK(fs::exists(standby.data_dir / "standby.signal"));

    // Rows written on the primary are read on the standby.
    {
        pg::Connection c(primary);
        c.exec("CREATE TABLE t AS SELECT generate_series(1, 1000) AS n");
    }
    CHECK(eventually(standby, "SELECT sum(n) FROM t", "500500") == "500500");

    // The password: in the 0600 passfile of the owner, and in no other file under the site.
    const fs::path passfile = standby.base_dir / "replication.pgpass";
    struct stat st {};
    REQUIRE(::stat(passfile.c_str(), &st) == 0);
    CHECK((st.st_mode & 0777) == 0600);
    CHECK(st.st_uid == lookup_os_user(standby.owner).uid);
    std::string line = read_all(passfile);
    std::string password = line.substr(line.rfind(':') + 1);
    while (!password.empty() && password.back() == '\n') password.pop_back();
    REQUIRE(password.size() >= 32);
    auto holding = files_holding(site.root(), password);
    REQUIRE(holding.size() == 1);
    CHECK(holding[0] == passfile);
    // primary_conninfo names the passfile, never a password.
    auto conninfo = one_value(standby,
                              "SELECT setting FROM pg_settings WHERE name = "
                              "'primary_conninfo'");
    REQUIRE(conninfo);
    CHECK(conninfo->find("passfile=") != std::string::npos);
    CHECK(conninfo->find("password") == std::string::npos);
    CHECK(read_all(standby.data_dir / "postgresql.auto.conf").find("primary_conninfo") ==
          std::string::npos);

    // A second standby reuses the role and its password, with a slot of its own.
    auto second = site.cli({"instance", "create", "replica2", "--standby-for", "main"});
    INFO(second.err);
    REQUIRE(second.status == 0);
    CHECK(one_value(primary, "SELECT count(*) FROM pg_replication_slots WHERE active") == "2");
    // The first one still streams (its password did not change).
    CHECK(one_value(standby, "SELECT status FROM pg_stat_wal_receiver") == "streaming");

    // Dropping: the primary is refused while standbys stream from it, naming them.
    auto refused = site.cli({"instance", "drop", "main"});
    CHECK(refused.status != 0);
    CHECK(refused.err.find("15/replica") != std::string::npos);
    CHECK(refused.err.find("15/replica2") != std::string::npos);
    CHECK(refused.err.find("--force") != std::string::npos);
    {
        Context ctx(site.settings());
        CHECK(instances::running(ctx, primary));
    }
    // A standby dropped takes its slot with it.
    REQUIRE(site.cli({"instance", "drop", "replica2"}).status == 0);
    CHECK(one_value(primary,
                    "SELECT count(*) FROM pg_replication_slots WHERE slot_name = "
                    "'replica2'") == "0");
    CHECK(one_value(primary, "SELECT count(*) FROM pg_replication_slots") == "1");
    // --force drops the primary all the same; its standby stays, no longer streaming.
    auto forced = site.cli({"instance", "drop", "main", "--force"});
    INFO(forced.err);
    CHECK(forced.status == 0);
    CHECK(site.cli({"instance", "status", "replica"}).status == 0);
}

TEST_CASE("a standby of a conninfo: password from a file, slot made by the backup",
          "[replication][standby]") {
    TestSite site;
    REQUIRE(site.cli({"instance", "create", "main"}).status == 0);
    Instance primary = instance(site, "main");
    const std::string secret = "Conn-Info-Secret-93";
    {
        pg::Connection c(primary);
        c.exec("CREATE ROLE remote_repl LOGIN REPLICATION PASSWORD " + c.quote_literal(secret));
    }
    SecretFile file(site.root(), secret);
    const std::string conninfo =
        "host=127.0.0.1 port=" + std::to_string(primary.port) + " user=remote_repl";

    SECTION("a password in the conninfo is refused, and never echoed") {
        auto r = site.cli(
            {"instance", "create", "replica", "--standby-for", conninfo + " password=" + secret});
        CHECK(r.status == 2);
        CHECK(r.err.find("--password-file") != std::string::npos);
        CHECK(r.err.find(secret) == std::string::npos);
        CHECK(!fs::exists(site.settings().prefix / "15" / "replica"));
    }
    SECTION("made and streaming") {
        auto r = site.cli({"instance", "create", "replica", "--standby-for", conninfo, "--slot",
                           "far_away", "--password-file", file.path.string()});
        INFO(r.err);
        REQUIRE(r.status == 0);
        Instance standby = instance(site, "replica");
        CHECK(standby.role == "standby");
        CHECK(standby.upstream ==
              "host='127.0.0.1' port=" + std::to_string(primary.port) + " user='remote_repl'");
        CHECK(standby.slot == "far_away");
        CHECK(one_value(primary,
                        "SELECT active FROM pg_replication_slots WHERE slot_name = "
                        "'far_away'") == "t");
        // The secret is in the passfile and in the file it was given in, nowhere else.
        auto holding = files_holding(site.settings().prefix, secret);
        REQUIRE(holding.size() == 1);
        CHECK(holding[0] == standby.base_dir / "replication.pgpass");
        {
            pg::Connection c(primary);
            c.exec("CREATE TABLE far AS SELECT 42 AS answer");
        }
        CHECK(eventually(standby, "SELECT answer FROM far", "42") == "42");
        // A remote primary's slot is its administrator's: the drop leaves it.
        REQUIRE(site.cli({"instance", "drop", "replica"}).status == 0);
        CHECK(one_value(primary,
                        "SELECT count(*) FROM pg_replication_slots WHERE slot_name = "
                        "'far_away'") == "1");
    }
}

TEST_CASE("standby refusals leave nothing: stopped primary, initdb options, taken slot, role",
          "[replication][standby]") {
    TestSite site;
    REQUIRE(site.cli({"instance", "create", "main"}).status == 0);
    Instance primary = instance(site, "main");
    const fs::path replica_dir = site.settings().prefix / "15" / "replica";
    auto nothing_made = [&] {
        Context ctx(site.settings());
        CHECK(!instances::exists(ctx, "replica"));
        CHECK(!fs::exists(replica_dir));
        CHECK(one_value(primary, "SELECT count(*) FROM pg_replication_slots") == "0");
    };

    auto checksums =
        site.cli({"instance", "create", "replica", "--standby-for", "main", "--data-checksums"});
    CHECK(checksums.status == 2);
    CHECK(checksums.err.find("copy of its primary") != std::string::npos);
    nothing_made();

    auto unknown = site.cli({"instance", "create", "replica", "--standby-for", "nosuch"});
    CHECK(unknown.status == 4);
    nothing_made();

    {
        pg::Connection c(primary);
        c.exec("SELECT pg_create_physical_replication_slot('replica')");
    }
    auto taken = site.cli({"instance", "create", "replica", "--standby-for", "main"});
    CHECK(taken.status != 0);
    CHECK(taken.err.find("already has a replication slot replica") != std::string::npos);
    {
        pg::Connection c(primary);
        c.exec("SELECT pg_drop_replication_slot('replica')");
        c.exec("CREATE ROLE replicator LOGIN REPLICATION PASSWORD 'unknown-to-pgforge'");
    }
    nothing_made();
    auto role = site.cli({"instance", "create", "replica", "--standby-for", "main"});
    CHECK(role.status == 2);
    CHECK(role.err.find("does not know its password") != std::string::npos);
    nothing_made();

    REQUIRE(site.cli({"instance", "stop", "main"}).status == 0);
    auto stopped = site.cli({"instance", "create", "replica", "--standby-for", "main"});
    CHECK(stopped.status != 0);
    CHECK(stopped.err.find("15/main is not running") != std::string::npos);
    Context ctx(site.settings());
    CHECK(!instances::exists(ctx, "replica"));
    CHECK(!fs::exists(replica_dir));
}

TEST_CASE("a standby whose base backup fails is undone, its slot on the primary too",
          "[replication][standby]") {
    TestSite site;
    REQUIRE(site.cli({"instance", "create", "main"}).status == 0);
    Instance primary = instance(site, "main");
    // No WAL sender for the backup: it fails once the role, record and slot are made.
    REQUIRE(site.cli({"conf", "set", "-i", "main", "max_wal_senders=0", "--restart"}).status == 0);
    auto r = site.cli({"instance", "create", "replica", "--standby-for", "main"});
    INFO(r.err);
    CHECK(r.status != 0);
    CHECK(r.err.find("base backup for instance 15/replica failed") != std::string::npos);
    Context ctx(site.settings());
    CHECK(!instances::exists(ctx, "replica"));
    CHECK(!fs::exists(site.settings().prefix / "15" / "replica"));
    CHECK(one_value(primary, "SELECT count(*) FROM pg_replication_slots") == "0");
}
