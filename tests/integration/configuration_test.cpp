// Configuration files of real instances: postgresql.conf through `conf`, pg_hba.conf and
// pg_ident.conf through `hba` and `ident`, checked against what the server says.
#include <pwd.h>
#include <sys/stat.h>

#include <catch2/catch.hpp>
#include <fstream>

#include "engine/conf/template.hpp"
#include "engine/core/error.hpp"
#include "engine/operations/configuration.hpp"
#include "engine/operations/instances.hpp"
#include "engine/pg/connection.hpp"
#include "tests/support/test_site.hpp"

namespace fs = std::filesystem;
using namespace pgforge;
using pgforge::test::TestSite;

namespace {

std::string show(const Instance& i, const std::string& name) {
    pg::Connection c(i);
    return c.exec("SELECT current_setting($1)", {name}).rows.at(0).at(0).value_or("");
}

std::string query_one(const Instance& i, const std::string& sql,
                      const std::vector<std::string>& params = {}) {
    pg::Connection c(i);
    auto r = c.exec(sql, params);
    return r.rows.empty() ? "" : r.rows.at(0).at(0).value_or("NULL");
}

struct Running {
    TestSite site;
    Instance instance;
    Running() {
        REQUIRE(site.cli({"instance", "create", "conf"}).status == 0);
        Context ctx(site.settings());
        instance = instances::get(ctx, "conf");
    }
};

}  // namespace

TEST_CASE("conf set changes a reload parameter and the running server applies it",
          "[integration][conf]") {
    Running r;
    auto out = r.site.cli(
        {"conf", "set", "-i", "conf", "work_mem=64MB", "log_min_duration_statement=250ms"});
    REQUIRE(out.status == 0);
    CHECK(out.out.find("work_mem: (not set) -> 64MB (reload)") != std::string::npos);
    CHECK(out.out.find("15/conf reloaded") != std::string::npos);
    CHECK(show(r.instance, "work_mem") == "64MB");
    CHECK(show(r.instance, "log_min_duration_statement") == "250ms");
    CHECK(query_one(r.instance,
                    "SELECT applied::text FROM pg_file_settings WHERE name = 'work_mem' "
                    "ORDER BY seqno DESC LIMIT 1") == "true");
    // The file was replaced, not rewritten in place, and kept its owner and mode.
    struct stat st {};
    REQUIRE(stat((r.instance.data_dir / "postgresql.conf").c_str(), &st) == 0);
    CHECK((st.st_mode & 0777) == 0600);
    CHECK(st.st_uid == getpwnam(test::expected_owner().c_str())->pw_uid);
    CHECK_FALSE(fs::exists(r.instance.data_dir / "postgresql.conf.pgforge-tmp"));

    SECTION("setting the same value again changes nothing") {
        std::string before = read_text_file(r.instance.data_dir / "postgresql.conf");
        auto again = r.site.cli({"conf", "set", "-i", "conf", "work_mem=64MB", "--json"});
        REQUIRE(again.status == 0);
        CHECK(again.out.find("\"changed\": false") != std::string::npos);
        CHECK(again.out.find("\"effect\": \"unchanged\"") != std::string::npos);
        CHECK(read_text_file(r.instance.data_dir / "postgresql.conf") == before);
    }
    SECTION("conf get says where the value comes from") {
        auto get = r.site.cli({"conf", "get", "-i", "conf", "work_mem"});
        CHECK(get.out.find("work_mem = 64MB  # " +
                           (r.instance.data_dir / "postgresql.conf").string()) !=
              std::string::npos);
    }
    SECTION("conf remove comments it out and the default comes back") {
        REQUIRE(r.site.cli({"conf", "remove", "-i", "conf", "work_mem"}).status == 0);
        CHECK(show(r.instance, "work_mem") == "4MB");
        CHECK(read_text_file(r.instance.data_dir / "postgresql.conf").find("#work_mem = 64MB") !=
              std::string::npos);
    }
}

TEST_CASE("a restart parameter is reported pending, and applied with --restart",
          "[integration][conf]") {
    Running r;
    auto out = r.site.cli({"conf", "set", "-i", "conf", "max_connections=42"});
    REQUIRE(out.status == 0);
    CHECK(out.out.find("max_connections: 100 -> 42 (restart)") != std::string::npos);
    CHECK(out.out.find("a restart is needed") != std::string::npos);
    CHECK(show(r.instance, "max_connections") == "100");
    CHECK(
        query_one(r.instance,
                  "SELECT pending_restart::text FROM pg_settings WHERE name = 'max_connections'") ==
        "true");

    // Setting the value again writes nothing, and still says what the server has pending.
    auto again = r.site.cli({"conf", "set", "-i", "conf", "max_connections=42", "--json"});
    REQUIRE(again.status == 0);
    CHECK(again.out.find("\"changed\": false") != std::string::npos);
    CHECK(again.out.find("\"pending_restart\": true") != std::string::npos);

    auto restarted = r.site.cli({"conf", "set", "-i", "conf", "max_connections=43", "--restart"});
    REQUIRE(restarted.status == 0);
    CHECK(restarted.out.find("15/conf restarted") != std::string::npos);
    CHECK(show(r.instance, "max_connections") == "43");
}

TEST_CASE("a value the server refuses is not written", "[integration][conf]") {
    Running r;
    std::string before = read_text_file(r.instance.data_dir / "postgresql.conf");
    auto out = r.site.cli({"conf", "set", "-i", "conf", "work_mem=8MB", "wal_level=bogus"});
    CHECK(out.status == static_cast<int>(Exit::usage));
    CHECK(out.err.find("invalid value for parameter \"wal_level\": \"bogus\"") !=
          std::string::npos);
    CHECK(out.err.find("Available values: minimal, replica, logical") != std::string::npos);
    CHECK(read_text_file(r.instance.data_dir / "postgresql.conf") == before);

    auto unknown = r.site.cli({"conf", "set", "-i", "conf", "wrok_mem=8MB"});
    CHECK(unknown.status == static_cast<int>(Exit::usage));
    CHECK(unknown.err.find("did you mean 'work_mem'") != std::string::npos);
    CHECK(read_text_file(r.instance.data_dir / "postgresql.conf") == before);
}

TEST_CASE("a configuration the running server refuses is put back as it was",
          "[integration][conf]") {
    Running r;
    fs::path conf = r.instance.data_dir / "postgresql.conf";
    // A hand edit the server does not accept, made before pgforge's change.
    { std::ofstream(conf, std::ios::app) << "log_min_duration_statement = 'plenty'\n"; }
    std::string before = read_text_file(conf);
    auto out = r.site.cli({"conf", "set", "-i", "conf", "work_mem=16MB"});
    CHECK(out.status == static_cast<int>(Exit::usage));
    CHECK(out.err.find("refuses the new configuration") != std::string::npos);
    CHECK(out.err.find("log_min_duration_statement") != std::string::npos);
    CHECK(read_text_file(conf) == before);
    CHECK(show(r.instance, "work_mem") == "4MB");
}

TEST_CASE("conf set on any file un-comments the sample's default in place", "[integration][conf]") {
    TestSite site;
    fs::path file = site.root() / "postgresql.conf";
    fs::copy_file("/usr/share/postgresql/15/postgresql.conf.sample", file);
    std::string before = read_text_file(file);
    auto out = site.cli({"conf", "set", "--file", file.string(), "work_mem=64MB"});
    REQUIRE(out.status == 0);
    std::string after = read_text_file(file);
    CHECK(after.find("\nwork_mem = 64MB") != std::string::npos);
    CHECK(after.find("#work_mem = 4MB") == std::string::npos);
    CHECK(after.size() == before.size());  // "#work_mem = 4MB" -> "work_mem = 64MB"
}

TEST_CASE("conf set on a file edits the line that wins, in the file it includes",
          "[integration][conf]") {
    TestSite site;
    fs::path file = site.root() / "main.conf";
    fs::path included = site.root() / "tuning.conf";
    { std::ofstream(file) << "work_mem = 2MB\ninclude 'tuning.conf'\n"; }
    { std::ofstream(included) << "work_mem = 9MB\n"; }
    auto out = site.cli({"conf", "set", "--file", file.string(), "work_mem=16MB", "--json"});
    REQUIRE(out.status == 0);
    CHECK(out.out.find("\"before\": \"9MB\"") != std::string::npos);
    CHECK(out.out.find("which wins: edited there") != std::string::npos);
    CHECK(read_text_file(included) == "work_mem = 16MB\n");
    CHECK(read_text_file(file) == "work_mem = 2MB\ninclude 'tuning.conf'\n");
}

TEST_CASE("settings and pg_hba.conf change in one configure, with a diff of each file",
          "[integration][conf][hba]") {
    Running r;
    Context ctx(r.site.settings());
    configuration::Request req;
    req.settings["work_mem"] = "12MB";
    req.hba = [](conf::HbaFile& f) {
        auto wanted = conf::HbaRecord::parse_fields({"host", "all", "all", "127.0.0.2/32", "md5"});
        for (const auto& r : f.records())
            if (r.same_as(wanted)) return;
        f.insert(f.records().size(), wanted);
    };
    std::string conf_before = read_text_file(r.instance.data_dir / "postgresql.conf");
    auto dry = configuration::configure(ctx, r.instance, req, {.dry_run = true, .diff = true});
    CHECK(dry.hba_changed);
    REQUIRE(dry.diffs.size() == 2);
    CHECK(dry.diffs.at(0).diff.find("+work_mem = 12MB") != std::string::npos);
    CHECK(dry.diffs.at(1).diff.find("127.0.0.2/32") != std::string::npos);
    CHECK(dry.diffs.at(1).diff.find("\n+host") != std::string::npos);
    CHECK(read_text_file(r.instance.data_dir / "postgresql.conf") == conf_before);
    CHECK(show(r.instance, "work_mem") == "4MB");

    auto out = configuration::configure(ctx, r.instance, req);
    CHECK(out.reloaded);
    CHECK(show(r.instance, "work_mem") == "12MB");
    CHECK(query_one(r.instance,
                    "SELECT count(*) FROM pg_hba_file_rules WHERE address = "
                    "'127.0.0.2'") == "1");
    // One configure in the journal for both.
    auto history = r.site.cli({"instance", "history", "conf", "--json"});
    CHECK(history.out.find("\"configure\"") != std::string::npos);
    auto again = configuration::configure(ctx, r.instance, req, {.diff = true});
    CHECK_FALSE(again.changed);
    CHECK(again.diffs.empty());
}

TEST_CASE("hba add on a running instance is what the server reads", "[integration][hba]") {
    Running r;
    auto out = r.site.cli({"hba", "add", "-i", "conf", "host", "all", "all", "10.0.0.0/8",
                           "scram-sha-256", "--before", "2"});
    REQUIRE(out.status == 0);
    CHECK(out.out.find("changed pg_hba.conf of 15/conf (reloaded)") != std::string::npos);
    CHECK(query_one(r.instance,
                    "SELECT line_number::text FROM pg_hba_file_rules WHERE address = '10.0.0.0'") !=
          "");
    CHECK(query_one(r.instance,
                    "SELECT count(*)::text FROM pg_hba_file_rules WHERE error IS NOT NULL") == "0");
    auto list = r.site.cli({"hba", "list", "-i", "conf", "--json"});
    CHECK(list.out.find("\"address\": \"10.0.0.0/8\"") != std::string::npos);

    SECTION("adding it again changes nothing") {
        auto again = r.site.cli(
            {"hba", "add", "-i", "conf", "host", "all", "all", "10.0.0.0/8", "scram-sha-256"});
        CHECK(again.out.find("no change") != std::string::npos);
    }
    SECTION("removing it by fields takes it away") {
        REQUIRE(r.site.cli({"hba", "remove", "-i", "conf", "--address", "10.0.0.0/8"}).status == 0);
        CHECK(
            query_one(r.instance,
                      "SELECT count(*)::text FROM pg_hba_file_rules WHERE address = '10.0.0.0'") ==
            "0");
    }
}

TEST_CASE("an hba record the server refuses is put back", "[integration][hba]") {
    Running r;
    fs::path hba = r.instance.data_dir / "pg_hba.conf";
    std::string before = read_text_file(hba);
    // SSL is off: the server refuses hostssl records.
    auto out = r.site.cli(
        {"hba", "add", "-i", "conf", "hostssl", "all", "all", "192.0.2.0/24", "scram-sha-256"});
    CHECK(out.status == static_cast<int>(Exit::usage));
    CHECK(out.err.find("refuses the new pg_hba.conf") != std::string::npos);
    CHECK(out.err.find("SSL") != std::string::npos);
    CHECK(read_text_file(hba) == before);
    CHECK(query_one(r.instance,
                    "SELECT count(*)::text FROM pg_hba_file_rules WHERE error IS NOT NULL") == "0");
}

TEST_CASE("ident add and remove edit the map the server reads", "[integration][hba]") {
    Running r;
    REQUIRE(r.site.cli({"ident", "add", "-i", "conf", "app", "alice", "app_owner"}).status == 0);
    CHECK(query_one(r.instance,
                    "SELECT pg_username FROM pg_ident_file_mappings WHERE map_name = 'app'") ==
          "app_owner");
    REQUIRE(r.site.cli({"ident", "remove", "-i", "conf", "--map", "app"}).status == 0);
    CHECK(query_one(r.instance,
                    "SELECT count(*)::text FROM pg_ident_file_mappings WHERE map_name = 'app'") ==
          "0");
    // pgforge's own map is untouched.
    CHECK(
        query_one(r.instance,
                  "SELECT count(*)::text FROM pg_ident_file_mappings WHERE map_name = 'pgforge'") ==
        "3");
}

TEST_CASE("a hand edit the server would refuse at its next start blocks conf set",
          "[integration][conf]") {
    Running r;
    fs::path conf = r.instance.data_dir / "postgresql.conf";
    // pg_file_settings cannot tell a bad postmaster-context value from one awaiting a restart;
    // the server's own parser (postgres -C) can.
    { std::ofstream(conf, std::ios::app) << "shared_buffers = 'plenty'\n"; }
    std::string before = read_text_file(conf);
    SECTION("while it runs") {}
    SECTION("while it is stopped") {
        REQUIRE(r.site.cli({"instance", "stop", "conf"}).status == 0);
    }
    auto out = r.site.cli({"conf", "set", "-i", "conf", "work_mem=16MB"});
    CHECK(out.status == static_cast<int>(Exit::usage));
    CHECK(out.err.find("invalid value for parameter \"shared_buffers\"") != std::string::npos);
    CHECK(read_text_file(conf) == before);
}
