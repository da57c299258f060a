// The command line, driven in-process: parsing, dispatch, exit statuses and error output.
// Every run names a settings file whose prefix and run directory lie in a temporary directory,
// and no case here gets as far as running a PostgreSQL program.
#include "engine/cli/cli.hpp"

#include <catch2/catch.hpp>
#include <filesystem>
#include <initializer_list>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <vector>

#include "cli_site.hpp"
#include "engine/core/instance.hpp"
#include "engine/core/settings.hpp"
#include "engine/inventory/inventory.hpp"
#include "temp_dir.hpp"

namespace fs = std::filesystem;
using json = nlohmann::json;
using pgforge::test::ScopedEnv;
using pgforge::test::TempDir;
using pgforge::test::write_text;

namespace {

using Result = pgforge::test::CliResult;

// A private site, as tests/unit/cli_site.hpp describes.
struct Site : pgforge::test::CliSite {
    Site() : CliSite("cli") {}
};

// What a run did, for failure messages.
std::string describe(const Result& r) {
    return "exit " + std::to_string(r.status) + "\n--- stdout\n" + r.out + "--- stderr\n" + r.err;
}

bool is_empty_dir(const fs::path& dir) {
    return !fs::exists(dir) || fs::is_empty(dir);
}

}  // namespace

TEST_CASE("pgforge --help lists the commands and exits 0", "[unit]") {
    Site site;
    Result r = site.run({"--help"});
    INFO(describe(r));
    CHECK(r.status == 0);
    CHECK_THAT(r.out, Catch::Contains("instance create"));
    CHECK_THAT(r.out, Catch::Contains("installation list"));
    CHECK_THAT(r.out, Catch::Contains("--prefix"));
}

TEST_CASE("pgforge with no command prints the usage and exits 2", "[unit]") {
    Site site;
    Result r = site.run({});
    INFO(describe(r));
    CHECK(r.status == 2);
    CHECK_THAT(r.out + r.err, Catch::Contains("usage: pgforge"));
}

TEST_CASE("pgforge OBJECT VERB --help describes that command and exits 0", "[unit]") {
    Site site;
    Result r = site.run({"instance", "stop", "--help"});
    INFO(describe(r));
    CHECK(r.status == 0);
    CHECK_THAT(r.out, Catch::Contains("usage: pgforge instance stop"));
    CHECK_THAT(r.out, Catch::Contains("--mode"));
}

TEST_CASE("an unknown verb exits 2 and suggests the closest command", "[unit]") {
    Site site;
    Result r = site.run({"instance", "strat", "main"});
    INFO(describe(r));
    CHECK(r.status == 2);
    CHECK_THAT(r.err, Catch::Contains("unknown command 'instance strat'"));
    CHECK_THAT(r.err, Catch::Contains("did you mean 'pgforge instance start'"));
}

TEST_CASE("an unknown object far from any command exits 2 without a suggestion", "[unit]") {
    Site site;
    Result r = site.run({"database", "vacuumfull"});
    INFO(describe(r));
    CHECK(r.status == 2);
    CHECK_THAT(r.err, Catch::Contains("unknown command"));
    CHECK_THAT(r.err, !Catch::Contains("did you mean"));
}

TEST_CASE("instance create without a name exits 2 saying the name is missing", "[unit]") {
    Site site;
    Result r = site.run({"instance", "create"});
    INFO(describe(r));
    CHECK(r.status == 2);
    CHECK_THAT(r.err, Catch::Contains("missing instance name"));
    CHECK(is_empty_dir(site.prefix()));
}

TEST_CASE("instance create with an invalid name exits 2 naming it", "[unit]") {
    Site site;
    Result r = site.run({"instance", "create", "Bad-Name"});
    INFO(describe(r));
    CHECK(r.status == 2);
    CHECK_THAT(r.err, Catch::Contains("Bad-Name"));
    CHECK(is_empty_dir(site.prefix()));
}

TEST_CASE("an unknown option exits 2 naming it", "[unit]") {
    Site site;
    Result r = site.run({"instance", "list", "--sideways"});
    INFO(describe(r));
    CHECK(r.status == 2);
    CHECK_THAT(r.err, Catch::Contains("--sideways"));
}

TEST_CASE("an option of another command is unknown here", "[unit]") {
    Site site;
    Result r = site.run({"instance", "get", "main", "--mode", "fast"});
    INFO(describe(r));
    CHECK(r.status == 2);
    CHECK_THAT(r.err, Catch::Contains("mode"));
}

TEST_CASE("an unknown --log-level exits 2 naming it", "[unit]") {
    Site site;
    Result r = site.run({"--log-level", "bogus", "instance", "list"});
    INFO(describe(r));
    CHECK(r.status == 2);
    CHECK_THAT(r.err, Catch::Contains("bogus"));
}

TEST_CASE("instance list on an empty site says there are no instances and exits 0", "[unit]") {
    Site site;
    Result r = site.run({"instance", "list"});
    INFO(describe(r));
    CHECK(r.status == 0);
    CHECK_THAT(r.out, Catch::Contains("no instances"));
}

TEST_CASE("instance list --quiet on an empty site prints nothing", "[unit]") {
    Site site;
    Result r = site.run({"instance", "list", "--quiet"});
    INFO(describe(r));
    CHECK(r.status == 0);
    CHECK(r.out.empty());
}

TEST_CASE("instance list --json on an empty site prints an empty array", "[unit]") {
    Site site;
    Result r = site.run({"instance", "list", "--json"});
    INFO(describe(r));
    CHECK(r.status == 0);
    CHECK(json::parse(r.out) == json::array());
}

TEST_CASE("instance list shows an inventoried instance whose data directory is missing", "[unit]") {
    Site site;
    Site::record(site.prefix(), "15", "main");
    Result r = site.run({"instance", "list", "--json"});
    INFO(describe(r));
    REQUIRE(r.status == 0);
    json list = json::parse(r.out);
    REQUIRE(list.size() == 1);
    CHECK(list[0]["qualified_name"] == "15/main");
    CHECK(list[0]["port"] == 6001);
    CHECK(list[0]["status"]["running"] == false);
    CHECK(list[0]["drift"] == "data directory missing");
}

TEST_CASE("instance list shows a data directory under the prefix that is not in the inventory",
          "[unit]") {
    Site site;
    write_text(site.prefix() / "15" / "orphan" / "data" / "PG_VERSION", "15\n");

    SECTION("with an inventory that knows other instances") {
        Site::record(site.prefix(), "15", "main");
        Result r = site.run({"instance", "list", "--json"});
        INFO(describe(r));
        REQUIRE(r.status == 0);
        json list = json::parse(r.out);
        REQUIRE(list.size() == 2);
        CHECK(list[1]["qualified_name"] == "15/orphan");
        CHECK(list[1]["drift"] == "not in inventory");
    }

    SECTION("with no inventory at all") {
        Result r = site.run({"instance", "list", "--json"});
        INFO(describe(r));
        REQUIRE(r.status == 0);
        json list = json::parse(r.out);
        REQUIRE(list.size() == 1);
        CHECK(list[0]["qualified_name"] == "15/orphan");
        CHECK(list[0]["drift"] == "not in inventory");
    }
}

TEST_CASE("instance get of an unknown instance exits 4", "[unit]") {
    Site site;
    Result r = site.run({"instance", "get", "nosuch"});
    INFO(describe(r));
    CHECK(r.status == 4);
    CHECK_THAT(r.err, Catch::Contains("nosuch"));
    CHECK(r.out.empty());
}

TEST_CASE("instance get --json of an unknown instance prints the error as JSON", "[unit]") {
    Site site;
    Result r = site.run({"instance", "get", "nosuch", "--json"});
    INFO(describe(r));
    CHECK(r.status == 4);
    json j = json::parse(r.out);
    REQUIRE(j.contains("error"));
    CHECK(j["error"]["exit"] == 4);
    CHECK_THAT(j["error"]["message"].get<std::string>(), Catch::Contains("nosuch"));
    CHECK(j["error"].contains("hint"));
}

TEST_CASE("instance get --json of an inventoried, stopped instance describes it", "[unit]") {
    Site site;
    Site::record(site.prefix(), "15", "main");
    Result r = site.run({"instance", "get", "main", "--json"});
    INFO(describe(r));
    REQUIRE(r.status == 0);
    json j = json::parse(r.out);
    CHECK(j["name"] == "main");
    CHECK(j["version"] == "15");
    CHECK(j["data_dir"] == (site.prefix() / "15" / "main" / "data").string());
    CHECK(j["wal_dir"] == (site.prefix() / "15" / "main" / "data" / "pg_wal").string());
    CHECK(j["status"] == json{{"running", false}});
}

TEST_CASE("instance status of an unknown instance exits 4", "[unit]") {
    Site site;
    Result r = site.run({"instance", "status", "nosuch"});
    INFO(describe(r));
    CHECK(r.status == 4);
}

TEST_CASE("instance status of an inventoried instance that is not running exits 3", "[unit]") {
    Site site;
    Site::record(site.prefix(), "15", "main");
    Result r = site.run({"instance", "status", "15/main"});
    INFO(describe(r));
    CHECK(r.status == 3);
    CHECK_THAT(r.out, Catch::Contains("instance 15/main is stopped"));
}

TEST_CASE("instance create with an unknown --state exits 2 and creates nothing", "[unit]") {
    Site site;
    Result r = site.run({"instance", "create", "x", "--state", "sideways"});
    INFO(describe(r));
    CHECK(r.status == 2);
    CHECK_THAT(r.err, Catch::Contains("sideways"));
    CHECK_FALSE(fs::exists(site.prefix() / "15"));
    CHECK(is_empty_dir(site.prefix()));
}

TEST_CASE("instance create with --json reports a usage error as JSON", "[unit]") {
    Site site;
    Result r = site.run({"instance", "create", "x", "--state", "sideways", "--json"});
    INFO(describe(r));
    CHECK(r.status == 2);
    json j = json::parse(r.out);
    CHECK(j["error"]["exit"] == 2);
    CHECK_THAT(j["error"]["message"].get<std::string>(), Catch::Contains("sideways"));
}

TEST_CASE("instance create VERSION/NAME with a different --version exits 2", "[unit]") {
    Site site;
    Result r = site.run({"instance", "create", "15/main", "--version", "14"});
    INFO(describe(r));
    CHECK(r.status == 2);
    CHECK_THAT(r.err, Catch::Contains("disagree"));
    CHECK(is_empty_dir(site.prefix()));
}

TEST_CASE("instance stop with an unknown --mode exits 2 before looking the instance up", "[unit]") {
    Site site;
    Result unknown = site.run({"instance", "stop", "nosuch"});
    CHECK(unknown.status == 4);  // the instance alone: not found

    Result r = site.run({"instance", "stop", "nosuch", "--mode", "sideways"});
    INFO(describe(r));
    CHECK(r.status == 2);
    CHECK_THAT(r.err, Catch::Contains("sideways"));
}

TEST_CASE("instance exec without a command exits 2", "[unit]") {
    Site site;
    Site::record(site.prefix(), "15", "main");
    Result r = site.run({"instance", "exec", "main"});
    INFO(describe(r));
    CHECK(r.status == 2);
    CHECK_THAT(r.err, Catch::Contains("no command to run"));
}

TEST_CASE("global options may follow the verb", "[unit]") {
    Site site;
    TempDir other("cli-other");
    Site::record(other.path(), "16", "elsewhere");

    Result after = site.run({"instance", "list", "--prefix", other.path().string()});
    INFO(describe(after));
    CHECK(after.status == 0);
    CHECK_THAT(after.out, Catch::Contains("elsewhere"));

    Result before = site.run({"--prefix", other.path().string(), "instance", "list"});
    INFO(describe(before));
    CHECK(before.status == 0);
    CHECK_THAT(before.out, Catch::Contains("elsewhere"));

    Result joined = site.run({"instance", "list", "--prefix=" + other.path().string()});
    INFO(describe(joined));
    CHECK(joined.status == 0);
    CHECK_THAT(joined.out, Catch::Contains("elsewhere"));

    // The site's own prefix is untouched.
    CHECK(is_empty_dir(site.prefix()));
}

TEST_CASE("instance list --version shows only that major version", "[unit]") {
    Site site;
    Site::record(site.prefix(), "15", "main");
    Site::record(site.prefix(), "16", "next");
    Result r = site.run({"instance", "list", "--version", "16", "--json"});
    INFO(describe(r));
    REQUIRE(r.status == 0);
    json list = json::parse(r.out);
    REQUIRE(list.size() == 1);
    CHECK(list[0]["qualified_name"] == "16/next");
}

TEST_CASE("a bare name shared by two versions is ambiguous and exits 2", "[unit]") {
    Site site;
    Site::record(site.prefix(), "15", "main");
    Site::record(site.prefix(), "16", "main");
    Result r = site.run({"instance", "get", "main"});
    INFO(describe(r));
    CHECK(r.status == 2);
    CHECK_THAT(r.err, Catch::Contains("15/main"));
    CHECK_THAT(r.err, Catch::Contains("16/main"));
}
