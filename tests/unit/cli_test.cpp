// The command line, driven in-process: parsing, dispatch, exit statuses and error output.
// Every run names a settings file whose prefix and run directory lie in a temporary directory,
// and no case here gets as far as running a PostgreSQL program.
#include "engine/cli/cli.hpp"

#include <algorithm>
#include <catch2/catch.hpp>
#include <filesystem>
#include <fstream>
#include <initializer_list>
#include <iostream>
#include <iterator>
#include <nlohmann/json.hpp>
#include <sstream>
#include <streambuf>
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

TEST_CASE("pgforge OBJECT --help lists that object's verbs and exits 0", "[unit]") {
    Site site;
    Result r = site.run({"instance", "--help"});
    INFO(describe(r));
    CHECK(r.status == 0);
    CHECK_THAT(r.out, Catch::Contains("usage: pgforge instance VERB"));
    CHECK_THAT(r.out, Catch::Contains("instance create"));
    CHECK_THAT(r.out, !Catch::Contains("database create"));
    Result bare = site.run({"instance"});
    CHECK(bare.status == 2);
    CHECK_THAT(bare.err, Catch::Contains("instance stop"));
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

// ---- bad input, refused before anything is written -------------------------------------------

namespace {

// Everything under the prefix, to show that a refused command wrote nothing.
std::vector<std::string> tree(const fs::path& dir) {
    std::vector<std::string> out;
    std::error_code ec;
    for (const auto& e : fs::recursive_directory_iterator(dir, ec))
        out.push_back(e.path().lexically_relative(dir).string());
    std::sort(out.begin(), out.end());
    return out;
}

std::string slurp(const fs::path& file) {
    std::ifstream in(file, std::ios::binary);
    return std::string(std::istreambuf_iterator<char>(in), {});
}

// Standard input that never ends ('y' forever), for the duration of a scope.
class EndlessInput : public std::streambuf {
  public:
    EndlessInput() : saved_(std::cin.rdbuf(this)) { setg(buffer_, buffer_, buffer_); }
    ~EndlessInput() override { std::cin.rdbuf(saved_); }
    EndlessInput(const EndlessInput&) = delete;
    EndlessInput& operator=(const EndlessInput&) = delete;
    std::size_t served = 0;

  protected:
    int_type underflow() override {
        std::fill(std::begin(buffer_), std::end(buffer_), 'y');
        setg(buffer_, buffer_, buffer_ + sizeof buffer_);
        served += sizeof buffer_;
        return traits_type::to_int_type('y');
    }

  private:
    char buffer_[4096];
    std::streambuf* saved_;
};

}  // namespace

TEST_CASE("an empty inventory is reported as damaged by every command, and left as it is",
          "[unit]") {
    Site site;
    site.record("main");
    const fs::path inventory = site.prefix() / "inventory.sqlite";
    fs::resize_file(inventory, 0);
    fs::remove(inventory.string() + "-wal");
    fs::remove(inventory.string() + "-shm");
    for (std::vector<std::string> args : {std::vector<std::string>{"instance", "list"},
                                          {"instance", "get", "main"},
                                          {"instance", "history", "15/main"},
                                          {"instance", "create", "other", "--state", "stopped"}}) {
        Result r = site.run(args);
        INFO(args[1] << "\n" << describe(r));
        CHECK(r.status == 1);
        CHECK_THAT(r.err, Catch::Contains("inventory " + inventory.string() + " is damaged"));
        CHECK_THAT(r.err, Catch::Contains("restore it from a copy"));
        CHECK(fs::file_size(inventory) == 0);
    }
    CHECK_FALSE(fs::exists(site.prefix() / "15" / "other"));
    CHECK_FALSE(fs::exists(site.prefix() / "locks"));
}

TEST_CASE("read-only commands on a site without an inventory do not create one", "[unit]") {
    Site site;
    for (std::vector<std::string> args : {std::vector<std::string>{"instance", "list"},
                                          {"instance", "get", "main"},
                                          {"instance", "status", "main"},
                                          {"instance", "history", "15/main"}}) {
        Result r = site.run(args);
        INFO(args[1] << "\n" << describe(r));
        CHECK((r.status == 0 || r.status == 4));
        CHECK_FALSE(fs::exists(site.prefix() / "inventory.sqlite"));
    }
}

TEST_CASE("instance create refuses ports outside 1024-65535 before writing anything", "[unit]") {
    Site site;
    const char* port = GENERATE("0", "80", "1023", "65536", "-1");
    Result r = site.run({"instance", "create", "main", "--port", port});
    INFO(describe(r));
    CHECK(r.status == 2);
    CHECK_THAT(r.err, Catch::Contains(std::string("--port ") + port + " is out of range"));
    CHECK(is_empty_dir(site.prefix()));
}

TEST_CASE("instance create refuses a port of another instance without a lock file or journal row",
          "[unit]") {
    Site site;
    site.record("main");  // port 6001
    const auto before = tree(site.prefix());
    Result r = site.run({"instance", "create", "other", "--port", "6001"});
    INFO(describe(r));
    CHECK(r.status == 5);
    CHECK_THAT(r.err, Catch::Contains("port 6001 belongs to instance 15/main"));
    CHECK(tree(site.prefix()) == before);
    CHECK(pgforge::Inventory(site.prefix() / "inventory.sqlite").journal().empty());
}

TEST_CASE("timeouts must be more than 0 seconds", "[unit]") {
    Site site;
    site.record("main");
    const char* timeout = GENERATE("0", "-5", "nan", "inf");
    for (const char* verb : {"start", "stop", "restart"}) {
        Result r = site.run({"instance", verb, "main", "--timeout", timeout});
        INFO(verb << " --timeout " << timeout << "\n" << describe(r));
        CHECK(r.status == 2);
        CHECK_THAT(r.err, Catch::Contains("--timeout must be a number of seconds > 0"));
    }
    CHECK(pgforge::Inventory(site.prefix() / "inventory.sqlite").journal().empty());
}

TEST_CASE("negative record numbers and counts are refused, not wrapped around", "[unit]") {
    Site site;
    const std::string hba = "local all all peer\n";
    const fs::path file = site.file("pg_hba.conf", hba);
    for (const char* option : {"--position", "--before", "--after"}) {
        Result r = site.run({"hba", "add", "--file", file.string(), option, "-1", "host", "all",
                             "all", "127.0.0.1/32", "trust"});
        INFO(option << "\n" << describe(r));
        CHECK(r.status == 2);
        CHECK_THAT(r.err, Catch::Contains(std::string(option) + " -1 is out of range"));
        CHECK_THAT(r.err, !Catch::Contains("18446744073709551615"));
    }
    Result removed = site.run({"hba", "remove", "--file", file.string(), "--position", "0"});
    CHECK(removed.status == 2);
    CHECK_THAT(removed.err, Catch::Contains("--position 0 is out of range"));
    CHECK(slurp(file) == hba);
    site.record("main");
    Result history = site.run({"instance", "history", "main", "--limit", "-3"});
    CHECK(history.status == 2);
    CHECK_THAT(history.err, Catch::Contains("--limit -3 is out of range"));
}

TEST_CASE("control characters from input are escaped in error messages", "[unit]") {
    Site site;
    Result r = site.run({"instance", "get", "evil\x1b]0;owned\x07\x1b[2J\xc2\x9b"});
    INFO(describe(r));
    CHECK(r.status == 2);
    CHECK_THAT(r.err, Catch::Contains("evil\\x1b]0;owned\\x07\\x1b[2J\\u009b"));
    CHECK(r.err.find('\x1b') == std::string::npos);
    CHECK(r.err.find('\x07') == std::string::npos);
    CHECK(r.err.find("\xc2\x9b") == std::string::npos);
}

TEST_CASE("manifests are read up to 1 MiB, from a file, /dev/zero or standard input", "[unit]") {
    Site site;
    site.record("main");
    const fs::path big = site.file("big.yaml", std::string((1 << 20) + 1, '#'));
    for (const char* verb : {"database", "role"}) {
        for (const std::string& file : {big.string(), std::string("/dev/zero")}) {
            Result r = site.run({verb, "apply", "-i", "main", "-f", file});
            INFO(verb << " apply -f " << file << "\n" << describe(r));
            CHECK(r.status == 2);
            CHECK_THAT(r.err,
                       Catch::Contains("manifest " + file + " is larger than the limit of 1 MiB"));
        }
        EndlessInput endless;
        Result r = site.run({verb, "apply", "-i", "main", "-f", "-"});
        INFO(verb << " apply -f -\n" << describe(r));
        CHECK(r.status == 2);
        CHECK_THAT(r.err,
                   Catch::Contains("manifest standard input is larger than the limit of 1 MiB"));
        CHECK(endless.served <= (2u << 20));
    }
}

TEST_CASE("a password file that its group or others can read is refused before anything is done",
          "[unit]") {
    Site site;
    site.record("main");
    const fs::path file = site.file("password", "secret\n");
    fs::permissions(file, fs::perms(0644));
    const auto before = tree(site.prefix());
    Result role =
        site.run({"role", "create", "-i", "main", "app", "--password-file", file.string()});
    INFO(describe(role));
    CHECK(role.status == 2);
    CHECK_THAT(role.err, Catch::Contains("password file " + file.string() + " has mode 0644"));
    CHECK_THAT(role.err, Catch::Contains("chmod 600 " + file.string()));
    Result create =
        site.run({"instance", "create", "other", "--superuser-password-file", file.string()});
    INFO(describe(create));
    CHECK(create.status == 2);
    CHECK_THAT(create.err, Catch::Contains("chmod 600 " + file.string()));
    CHECK(tree(site.prefix()) == before);
}

TEST_CASE("a password file is read up to 64 KiB: /dev/zero is refused, not read forever",
          "[unit]") {
    Site site;
    site.record("main");
    Result role = site.run({"role", "create", "-i", "main", "app", "--password-file", "/dev/zero"});
    INFO(describe(role));
    CHECK(role.status == 2);
    CHECK_THAT(role.err,
               Catch::Contains("password file /dev/zero is larger than the limit of 64 KiB"));
}

TEST_CASE("control characters in files an owner writes are escaped in tables and values",
          "[unit]") {
    Site site;
    const fs::path hba = site.file("pg_hba.conf", "host all \"x\x1b[2Jy\" 127.0.0.1/32 trust\n");
    Result list = site.run({"hba", "list", "--file", hba.string()});
    INFO(describe(list));
    CHECK(list.status == 0);
    CHECK_THAT(list.out, Catch::Contains("x\\x1b[2Jy"));
    CHECK(list.out.find('\x1b') == std::string::npos);
    const fs::path conf = site.file("postgresql.conf", "application_name = 'a\x1b]0;t\x07'\n");
    Result get = site.run({"conf", "get", "--file", conf.string(), "application_name"});
    INFO(describe(get));
    CHECK(get.status == 0);
    CHECK_THAT(get.out, Catch::Contains("a\\x1b]0;t\\x07"));
    CHECK(get.out.find('\x1b') == std::string::npos);
}
