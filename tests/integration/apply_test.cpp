// instance apply on real servers: a manifest makes an instance (settings, access rules, roles,
// databases), a second apply changes nothing (no file written, no reload, no DDL), each kind of
// field changes in place, --check changes nothing, --diff shows the files, bad manifests are
// refused before anything is done.
#include <sys/stat.h>

#include <catch2/catch.hpp>
#include <fstream>
#include <nlohmann/json.hpp>

#include "engine/core/error.hpp"
#include "engine/operations/instances.hpp"
#include "engine/pg/connection.hpp"
#include "tests/support/test_site.hpp"

namespace fs = std::filesystem;
using namespace pgforge;
using pgforge::test::TestSite;
using json = nlohmann::json;

namespace {

std::string query_one(const Instance& i, const std::string& sql,
                      const std::vector<std::string>& params = {}) {
    pg::Connection c(i);
    auto r = c.exec(sql, params);
    return r.rows.empty() ? "" : r.rows.at(0).at(0).value_or("NULL");
}

struct Applying {
    TestSite site;
    fs::path manifest = site.root() / "manifest.yaml";

    TestSite::Output apply(const std::string& yaml, std::vector<std::string> extra = {}) {
        { std::ofstream(manifest) << yaml; }
        std::vector<std::string> args = {"--json", "instance", "apply", "-f", manifest.string()};
        args.insert(args.end(), extra.begin(), extra.end());
        return site.cli(args);
    }
    Instance instance(const std::string& name) {
        Context ctx(site.settings());
        return instances::get(ctx, name);
    }
    size_t journal_rows(const std::string& name) {
        auto h = site.cli({"--json", "instance", "history", name, "--limit", "1000"});
        REQUIRE(h.status == 0);
        return json::parse(h.out).size();
    }
};

// What a file's last change was (ns), to see that nothing rewrote it.
long long mtime_of(const fs::path& p) {
    struct stat st {};
    REQUIRE(stat(p.c_str(), &st) == 0);
    return st.st_mtim.tv_sec * 1000000000LL + st.st_mtim.tv_nsec;
}

const char* kManifest = R"(
name: app
settings:
  work_mem: 8MB
  log_min_duration_statement: 250ms
hba:
  - {type: host, database: appdb, user: app, address: 127.0.0.1/32, method: scram-sha-256}
  - "host appdb app ::1/128 scram-sha-256"
ident:
  - {map: ops, system_user: deploy, database_user: app}
roles:
  - {name: app, login: true}
databases:
  - {name: appdb, owner: app}
)";

}  // namespace

TEST_CASE("instance apply makes an instance, and applying it again changes nothing",
          "[integration][apply]") {
    Applying a;
    auto first = a.apply(kManifest);
    INFO(first.out << first.err);
    REQUIRE(first.status == 0);
    auto j = json::parse(first.out);
    CHECK(j["changed"] == true);
    CHECK(j["results"][0]["result"] == "created");
    CHECK(j["results"][0]["roles"][0]["result"] == "created");
    CHECK(j["results"][0]["databases"][0]["result"] == "created");
    Instance i = a.instance("app");
    CHECK(query_one(i, "SELECT current_setting('work_mem')") == "8MB");
    CHECK(query_one(i, "SELECT count(*) FROM pg_hba_file_rules WHERE 'appdb' = ANY(database)") ==
          "2");
    CHECK(query_one(i, "SELECT count(*) FROM pg_ident_file_mappings WHERE map_name = 'ops'") ==
          "1");
    CHECK(query_one(i,
                    "SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = "
                    "'appdb'") == "app");

    // The second time: nothing written, no reload, no DDL, one journal row.
    const fs::path conf = i.data_dir / "postgresql.conf", hba = i.data_dir / "pg_hba.conf",
                   ident = i.data_dir / "pg_ident.conf";
    auto times = std::vector<long long>{mtime_of(conf), mtime_of(hba), mtime_of(ident)};
    std::string loaded = query_one(i, "SELECT pg_conf_load_time()::text");
    size_t rows = a.journal_rows("app");
    auto second = a.apply(kManifest);
    INFO(second.out << second.err);
    REQUIRE(second.status == 0);
    j = json::parse(second.out);
    CHECK(j["changed"] == false);
    CHECK(j["results"][0]["result"] == "unchanged");
    CHECK(j["results"][0]["changes"].empty());
    CHECK(times == std::vector<long long>{mtime_of(conf), mtime_of(hba), mtime_of(ident)});
    CHECK(query_one(i, "SELECT pg_conf_load_time()::text") == loaded);
    CHECK(a.journal_rows("app") == rows + 1);

    SECTION("instance get --json, applied, is unchanged") {
        auto got = a.site.cli({"--json", "instance", "get", "app"});
        REQUIRE(got.status == 0);
        auto again = a.apply(got.out);
        INFO(again.out << again.err);
        REQUIRE(again.status == 0);
        CHECK(json::parse(again.out)["results"][0]["result"] == "unchanged");
        CHECK(query_one(i, "SELECT pg_conf_load_time()::text") == loaded);
    }
    SECTION("a reload setting changes in place, reported with before and after") {
        std::string changed = kManifest;
        changed.replace(changed.find("8MB"), 3, "16MB");
        auto out = a.apply(changed);
        REQUIRE(out.status == 0);
        j = json::parse(out.out)["results"][0];
        CHECK(j["result"] == "changed");
        REQUIRE(j["changes"].size() == 1);
        CHECK(j["changes"][0] ==
              json{{"field", "settings.work_mem"}, {"before", "8MB"}, {"after", "16MB"}});
        CHECK(j["pending_restart"] == false);
        CHECK(query_one(i, "SELECT current_setting('work_mem')") == "16MB");
    }
    SECTION("a restart-only setting is pending unless restart_on_changes says to restart") {
        std::string changed = std::string(kManifest) + "";
        changed.replace(changed.find("settings:\n"), 10, "settings:\n  max_connections: 42\n");
        auto out = a.apply(changed);
        REQUIRE(out.status == 0);
        j = json::parse(out.out)["results"][0];
        CHECK(j["pending_restart"] == true);
        CHECK(j["restarted"] == false);
        CHECK(query_one(i, "SELECT current_setting('max_connections')") == "100");
        // Nothing is written the second time, but the pending value is applied by a restart.
        auto restarting = a.apply(changed + "restart_on_changes: true\n");
        REQUIRE(restarting.status == 0);
        CHECK(json::parse(restarting.out)["results"][0]["restarted"] == true);
        CHECK(query_one(i, "SELECT current_setting('max_connections')") == "42");
        changed.replace(changed.find("max_connections: 42"), 19, "max_connections: 43");
        auto restarted = a.apply(changed + "restart_on_changes: true\n");
        REQUIRE(restarted.status == 0);
        j = json::parse(restarted.out)["results"][0];
        CHECK(j["restarted"] == true);
        CHECK(j["pending_restart"] == false);
        CHECK(query_one(i, "SELECT current_setting('max_connections')") == "43");
    }
    SECTION("--check reports the change and changes nothing; --diff shows the file") {
        std::string changed = kManifest;
        changed.replace(changed.find("8MB"), 3, "32MB");
        changed += "  - {name: other}\n";
        auto out = a.apply(changed, {"--check", "--diff"});
        INFO(out.out << out.err);
        REQUIRE(out.status == 0);
        j = json::parse(out.out);
        CHECK(j["check"] == true);
        CHECK(j["changed"] == true);
        auto r = j["results"][0];
        CHECK(r["result"] == "changed");
        REQUIRE(r["diff"].size() == 1);
        CHECK(r["diff"][0]["diff"].get<std::string>().find("+work_mem = 32MB") !=
              std::string::npos);
        CHECK(r["databases"][1]["result"] == "created");
        CHECK(r["databases"][1]["statements"][0].get<std::string>().find("CREATE DATABASE") !=
              std::string::npos);
        CHECK(times == std::vector<long long>{mtime_of(conf), mtime_of(hba), mtime_of(ident)});
        CHECK(query_one(i, "SELECT current_setting('work_mem')") == "8MB");
        CHECK(query_one(i, "SELECT count(*) FROM pg_database WHERE datname = 'other'") == "0");
        CHECK(a.journal_rows("app") == rows + 1);
    }
    SECTION("state: stopped stops it, absent drops it, absent again is unchanged") {
        std::string stopped = "name: app\nstate: stopped\n";
        auto out = a.apply(stopped);
        REQUIRE(out.status == 0);
        CHECK(json::parse(out.out)["results"][0]["changes"][0] ==
              json{{"field", "state"}, {"before", "started"}, {"after", "stopped"}});
        CHECK_FALSE(fs::exists(i.data_dir / "postmaster.pid"));
        auto dropped = a.apply("name: app\nstate: absent\n");
        REQUIRE(dropped.status == 0);
        CHECK(json::parse(dropped.out)["results"][0]["result"] == "dropped");
        CHECK_FALSE(fs::exists(i.base_dir));
        auto again = a.apply("name: app\nstate: absent\n");
        REQUIRE(again.status == 0);
        CHECK(json::parse(again.out)["results"][0]["result"] == "unchanged");
    }
    SECTION("hba_mode exact makes the list the whole file") {
        std::string exact = "name: app\nhba_mode: exact\nhba:\n  - local all all peer\n";
        auto out = a.apply(exact);
        REQUIRE(out.status == 0);
        // The record pgforge connects through stays first: the manifest cannot lock it out.
        CHECK(query_one(i, "SELECT count(*) FROM pg_hba_file_rules") == "2");
        CHECK(query_one(i,
                        "SELECT options::text FROM pg_hba_file_rules WHERE line_number = "
                        "(SELECT min(line_number) FROM pg_hba_file_rules)") == "{map=pgforge}");
        auto again = a.apply(exact);
        CHECK(json::parse(again.out)["results"][0]["result"] == "unchanged");
    }
    SECTION("a new port: pending on the running server, or taken by a restart when allowed") {
        const int port = a.site.port_min() + 37;
        std::string moved = "name: app\nport: " + std::to_string(port) + "\n";
        auto out = a.apply(moved);
        INFO(out.err);
        REQUIRE(out.status == 0);
        j = json::parse(out.out)["results"][0];
        CHECK(j["changes"][0]["field"] == "port");
        CHECK(j["changes"][0]["after"] == std::to_string(port));
        CHECK(j["pending_restart"] == true);
        CHECK(a.instance("app").port == i.port);  // the server still listens on the old one
        auto restarted = a.apply(moved + "restart_on_changes: true\n");
        INFO(restarted.err);
        REQUIRE(restarted.status == 0);
        CHECK(json::parse(restarted.out)["results"][0]["restarted"] == true);
        Instance now = a.instance("app");
        CHECK(now.port == port);
        CHECK(query_one(now, "SELECT current_setting('port')") == std::to_string(port));
        auto again = a.apply(moved + "restart_on_changes: true\n");
        CHECK(json::parse(again.out)["results"][0]["result"] == "unchanged");
    }
    SECTION("a creation option that differs is refused, naming it") {
        auto out = a.apply("name: app\nencoding: LATIN1\n");
        CHECK(out.status == static_cast<int>(Exit::usage));
        CHECK(out.err.find("encoding is UTF8, the manifest says LATIN1") != std::string::npos);
    }
}

TEST_CASE(
    "instance create --set writes settings at creation; schema instance describes the manifest",
    "[integration][apply]") {
    TestSite site;
    auto bad = site.cli({"instance", "create", "c", "--set", "wrok_mem=1MB"});
    CHECK(bad.status == static_cast<int>(Exit::usage));
    CHECK(bad.err.find("did you mean 'work_mem'") != std::string::npos);
    CHECK_FALSE(fs::exists(site.root() / "prefix" / "15" / "c"));
    auto made = site.cli({"instance", "create", "c", "--set", "work_mem=9MB"});
    REQUIRE(made.status == 0);
    Context ctx(site.settings());
    CHECK(query_one(instances::get(ctx, "c"), "SELECT current_setting('work_mem')") == "9MB");

    auto schema = site.cli({"schema", "instance"});
    REQUIRE(schema.status == 0);
    auto j = json::parse(schema.out);
    CHECK(j["title"] == "pgforge instance manifest");
    const auto& one = j["oneOf"][0];
    CHECK(one["properties"].contains("restart_on_changes"));
    CHECK(one["properties"]["databases"]["items"]["properties"].contains("owner"));
    CHECK(one["required"] == json::array({"name"}));
}

TEST_CASE("a bad manifest is refused before anything is done, naming the bad value",
          "[integration][apply]") {
    Applying a;
    struct Case {
        std::string yaml, says;
    };
    std::vector<Case> cases = {
        {"name: x\ndatabases:\n  - {name: a}\n  - {name: b}\n  - {name: c, owner: [1]}\n",
         "databases[2].owner: expected a string"},
        {"name: x\nsettngs: {work_mem: 1MB}\n", "did you mean 'settings'"},
        {"name: x\nstate: running\n", "state"},
        {"name: x\nport: 70000\n", "port"},
        {"name: x\nsettings: {work_mem: [1\n", ":3:"},
        {"name: x\nhba: [\"host all all 10.0.0.0/8 nosuchmethod\"]\n", "hba[0]"},
        {"name: x\nsettings: {wrok_mem: 1MB}\n", "wrok_mem"},
    };
    // A check of a new instance says what the create would, and fails where it would.
    auto checked = a.apply("name: x\nsettings: {work_mem: 2MB}\n", {"--check"});
    REQUIRE(checked.status == 0);
    CHECK(json::parse(checked.out)["results"][0]["name"] == "15/x");
    CHECK(json::parse(checked.out)["results"][0]["result"] == "created");
    auto refused = a.apply("name: x\nsettings: {wrok_mem: 2MB}\n", {"--check"});
    CHECK(refused.status == static_cast<int>(Exit::usage));
    CHECK(refused.err.find("did you mean 'work_mem'") != std::string::npos);
    {
        Context ctx(a.site.settings());
        CHECK_FALSE(instances::exists(ctx, "x"));
    }
    for (const auto& c : cases) {
        auto out = a.apply(c.yaml);
        INFO(c.yaml << "\n=> " << out.err);
        CHECK(out.status == static_cast<int>(Exit::usage));
        CHECK(out.err.find(c.says) != std::string::npos);
        Context ctx(a.site.settings());
        CHECK_FALSE(instances::exists(ctx, "x"));
    }
}
