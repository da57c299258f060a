// The configuration files and the server agree, always: a check that cannot be completed, a
// setting the server would refuse at its next start, a restart that fails, a name with a # in
// pg_hba.conf, and a configure killed half way.
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <memory>

#include "engine/conf/file_set.hpp"
#include "engine/conf/template.hpp"
#include "engine/core/error.hpp"
#include "engine/operations/instances.hpp"
#include "engine/pg/connection.hpp"
#include "tests/support/test_site.hpp"

namespace fs = std::filesystem;
using namespace pgforge;
using pgforge::test::TestSite;

namespace {

std::string query_one(const Instance& i, const std::string& sql) {
    pg::Connection c(i);
    auto r = c.exec(sql);
    return r.rows.empty() ? "" : r.rows.at(0).at(0).value_or("NULL");
}

struct Running {
    TestSite site;
    Instance instance;
    Running() {
        REQUIRE(site.cli({"instance", "create", "safe"}).status == 0);
        Context ctx(site.settings());
        instance = instances::get(ctx, "safe");
    }
    fs::path file(const char* name) const { return instance.data_dir / name; }
    bool running() const {
        Context ctx(site.settings());
        return instances::status(ctx, instance).running;
    }
};

// Every configuration file of the instance, to compare before and after.
std::map<std::string, std::string> snapshot(const Running& r) {
    std::map<std::string, std::string> files;
    for (const char* name :
         {"postgresql.conf", "postgresql.auto.conf", "pg_hba.conf", "pg_ident.conf"})
        if (fs::exists(r.file(name))) files[name] = read_text_file(r.file(name));
    return files;
}

// Nothing of a configure is left beside the files: no manifest, no staged file.
void check_no_leftovers(const Running& r) {
    CHECK_FALSE(fs::exists(conf::FileSet::manifest_path(r.instance.data_dir)));
    for (const auto& entry : fs::directory_iterator(r.instance.data_dir))
        CHECK(entry.path().filename().string().rfind(".pgforge-", 0) != 0);
}

}  // namespace

TEST_CASE("a check that cannot connect puts every file back and fails", "[integration][safety]") {
    Running r;
    REQUIRE(r.site
                .cli({"conf", "set", "-i", "safe", "max_connections=3",
                      "superuser_reserved_connections=0", "--restart"})
                .status == 0);
    REQUIRE(r.running());
    auto before = snapshot(r);
    // Every connection slot taken, as busy clients would.
    std::vector<std::unique_ptr<pg::Connection>> held;
    for (int k = 0; k < 3; ++k) held.push_back(std::make_unique<pg::Connection>(r.instance));

    SECTION("conf set") {
        auto out = r.site.cli({"conf", "set", "-i", "safe", "work_mem=11MB"});
        CHECK(out.status != 0);
        CHECK(out.err.find("could not be checked") != std::string::npos);
        CHECK(out.err.find("put back") != std::string::npos);
    }
    SECTION("hba add") {
        auto out =
            r.site.cli({"hba", "add", "-i", "safe", "host", "all", "all", "10.9.0.0/16", "sspi"});
        CHECK(out.status != 0);
        CHECK(out.err.find("put back") != std::string::npos);
    }
    CHECK(snapshot(r) == before);
    check_no_leftovers(r);
    held.clear();
    // The server counts a closed session until its backend has exited.
    for (int k = 0; k < 500; ++k) {
        try {
            pg::Connection probe(r.instance);
            break;
        } catch (const Error&) {
            usleep(10000);
        }
    }
    CHECK(query_one(r.instance,
                    "SELECT count(*)::text FROM pg_hba_file_rules WHERE error IS NOT NULL") == "0");
}

TEST_CASE("settings the server refuses together are refused before writing",
          "[integration][safety]") {
    Running r;
    auto before = snapshot(r);
    auto out = r.site.cli({"conf", "set", "-i", "safe", "wal_level=minimal"});
    CHECK(out.status == static_cast<int>(Exit::usage));
    CHECK(out.err.find("would not start") != std::string::npos);
    CHECK(out.err.find("max_wal_senders") != std::string::npos);
    CHECK(snapshot(r) == before);
    check_no_leftovers(r);

    SECTION("with max_wal_senders = 0 as well, it is accepted") {
        auto both = r.site.cli(
            {"conf", "set", "-i", "safe", "wal_level=minimal", "max_wal_senders=0", "--restart"});
        CHECK(both.status == 0);
        CHECK(r.running());
        CHECK(query_one(r.instance, "SHOW wal_level") == "minimal");
    }
    SECTION("min_wal_size must hold two WAL segments") {
        auto small = r.site.cli({"conf", "set", "-i", "safe", "min_wal_size=20MB"});
        CHECK(small.status == static_cast<int>(Exit::usage));
        CHECK(small.err.find("min_wal_size (20MB) must be at least twice wal_segment_size") !=
              std::string::npos);
        CHECK(snapshot(r) == before);
    }
    SECTION("superuser_reserved_connections must stay below max_connections") {
        auto reserved = r.site.cli(
            {"conf", "set", "-i", "safe", "max_connections=5", "superuser_reserved_connections=5"});
        CHECK(reserved.status == static_cast<int>(Exit::usage));
        CHECK(reserved.err.find("superuser_reserved_connections (5) must be less than "
                                "max_connections (5)") != std::string::npos);
        CHECK(snapshot(r) == before);
    }
}

TEST_CASE("a restart that fails puts the files back and starts the server as it was",
          "[integration][safety]") {
    Running r;
    auto before = snapshot(r);
    // The parser takes any library name; only the start finds that it does not exist.
    auto out = r.site.cli({"conf", "set", "-i", "safe",
                           "shared_preload_libraries=pgforge_no_such_library", "--restart"});
    CHECK(out.status == static_cast<int>(Exit::server));
    CHECK(out.err.find("did not start with the new configuration") != std::string::npos);
    CHECK(out.err.find("runs again on the previous configuration") != std::string::npos);
    CHECK(snapshot(r) == before);
    check_no_leftovers(r);
    REQUIRE(r.running());
    CHECK(query_one(r.instance, "SHOW shared_preload_libraries") == "");

    SECTION("without --restart, the value waits for a restart and nothing is restarted") {
        Context ctx(r.site.settings());
        auto started = instances::status(ctx, r.instance).start_time;
        auto later = r.site.cli(
            {"conf", "set", "-i", "safe", "shared_preload_libraries=pgforge_no_such_library"});
        CHECK(later.status == 0);
        CHECK(instances::status(ctx, r.instance).start_time == started);
    }
}

TEST_CASE("a # in an hba name is part of the name the server reads", "[integration][safety]") {
    Running r;
    auto out = r.site.cli(
        {"hba", "add", "-i", "safe", "host", "all", "postgres#ro", "10.1.0.0/16", "trust"});
    REQUIRE(out.status == 0);
    CHECK(read_text_file(r.file("pg_hba.conf")).find("\"postgres#ro\"") != std::string::npos);
    CHECK(query_one(r.instance,
                    "SELECT user_name::text FROM pg_hba_file_rules WHERE address = '10.1.0.0'") ==
          "{postgres#ro}");
    CHECK(query_one(r.instance,
                    "SELECT count(*)::text FROM pg_hba_file_rules WHERE error IS NOT NULL") == "0");
}

TEST_CASE("an hba option value with a comma is read as one value", "[integration][safety]") {
    Running r;
    auto out = r.site.cli({"hba", "add", "-i", "safe", "host", "all", "all", "10.2.0.0/16", "ldap",
                           "ldapserver=ldap.example.net", "ldapbasedn=\"dc=a,dc=b\""});
    REQUIRE(out.status == 0);
    // The server lists the options it read (and the LDAP scope it defaults).
    CHECK(query_one(r.instance,
                    "SELECT options::text FROM pg_hba_file_rules WHERE address = '10.2.0.0'") ==
          "{ldapserver=ldap.example.net,\"ldapbasedn=dc=a,dc=b\",ldapscope=2}");
    CHECK(query_one(r.instance,
                    "SELECT ('ldapbasedn=dc=a,dc=b' = ANY(options))::text FROM pg_hba_file_rules "
                    "WHERE address = '10.2.0.0'") == "true");

    SECTION("unquoted, the comma makes two options and the record is refused") {
        auto before = snapshot(r);
        auto bad = r.site.cli({"hba", "add", "-i", "safe", "host", "all", "all", "10.3.0.0/16",
                               "ldap", "ldapserver=ldap.example.net", "ldapbasedn=dc=a,dc=b"});
        CHECK(bad.status == static_cast<int>(Exit::usage));
        CHECK(bad.err.find("double quotes") != std::string::npos);
        CHECK(snapshot(r) == before);
    }
}

TEST_CASE("a configure killed half way is undone by the next command", "[integration][safety]") {
    Running r;
    auto before = snapshot(r);
    const fs::path hba = r.file("pg_hba.conf"), ident = r.file("pg_ident.conf");
    // A configure killed after its files were renamed into place, before its check: pg_hba.conf
    // names a map that the half-written pg_ident.conf lacks.
    pid_t child = fork();
    REQUIRE(child >= 0);
    if (child == 0) {
        conf::FileSet set(r.instance.data_dir);
        set.add(hba, before["pg_hba.conf"] + "local all all peer map=lost\n", nullptr,
                fs::perms(0600));
        set.add(ident, "# emptied\n", nullptr, fs::perms(0600));
        set.apply();
        kill(getpid(), SIGKILL);
        _exit(0);
    }
    int status = 0;
    REQUIRE(waitpid(child, &status, 0) == child);
    REQUIRE(WIFSIGNALED(status));
    REQUIRE(fs::exists(conf::FileSet::manifest_path(r.instance.data_dir)));
    REQUIRE(read_text_file(ident) == "# emptied\n");

    SECTION("conf set") {
        auto out = r.site.cli({"conf", "set", "-i", "safe", "work_mem=12MB"});
        REQUIRE(out.status == 0);
        CHECK(read_text_file(hba) == before["pg_hba.conf"]);
        CHECK(read_text_file(ident) == before["pg_ident.conf"]);
        CHECK(query_one(r.instance, "SHOW work_mem") == "12MB");
    }
    SECTION("hba add") {
        auto out = r.site.cli(
            {"hba", "add", "-i", "safe", "host", "all", "all", "10.4.0.0/16", "scram-sha-256"});
        REQUIRE(out.status == 0);
        CHECK(read_text_file(ident) == before["pg_ident.conf"]);
        CHECK(read_text_file(hba).find("map=lost") == std::string::npos);
        CHECK(read_text_file(hba).find("10.4.0.0/16") != std::string::npos);
    }
    check_no_leftovers(r);
    CHECK(query_one(r.instance,
                    "SELECT count(*)::text FROM pg_ident_file_mappings WHERE map_name = "
                    "'pgforge'") == "3");
}
