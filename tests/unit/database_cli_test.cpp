// Database commands without a server: the description files apply reads (YAML or JSON) and
// their errors, the "not running" error, dump file names, the values handed to libpq and to
// pg_dump/pg_restore.
#include <catch2/catch.hpp>
#include <filesystem>
#include <sstream>
#include <string>
#include <vector>

#include "cli_site.hpp"
#include "engine/cli/cli.hpp"
#include "engine/core/settings.hpp"
#include "engine/inventory/inventory.hpp"
#include "engine/operations/databases.hpp"
#include "engine/pg/connection.hpp"
#include "temp_dir.hpp"

namespace fs = std::filesystem;
using pgforge::test::ScopedEnv;
using pgforge::test::TempDir;
using pgforge::test::write_text;

namespace {

using Result = pgforge::test::CliResult;

// A private site, as tests/unit/cli_site.hpp describes.
struct Site : pgforge::test::CliSite {
    Site() : CliSite("dbcli") {}
};

bool contains(const std::string& s, const std::string& part) {
    return s.find(part) != std::string::npos;
}

}  // namespace

TEST_CASE("apply -f refuses a malformed description before touching any instance", "[unit]") {
    Site site;
    struct Case {
        const char* content;
        const char* message;
    };
    std::vector<Case> cases = {
        {"name: app\nowenr: alice\n", "test.yaml:2:1: unknown key 'owenr'"},
        {"name: app\nstate: gone\n", "test.yaml:2:8: state: expected one of present, absent"},
        {"owner: alice\n", "test.yaml:1:1: 'name' is required"},
        {"name: app\nsettings: [a, b]\n", "test.yaml:2:11: settings: expected a mapping"},
        {"name: app\nsettings: {a: [b]}\n",
         "test.yaml:2:15: settings.a: expected a string, a number or true or false"},
        {"name: app\nschemas: {a: b}\n", "test.yaml:2:10: schemas: expected a list"},
        {"name: app\nschemas: [{name: s, ownr: x}]\n",
         "test.yaml:2:21: schemas[0]: unknown key 'ownr'"},
        {"name: app\nextensions: [{schema: s}]\n",
         "test.yaml:2:14: extensions[0]: 'name' is required"},
        {"name: app\nforce_drop: maybe\n", "test.yaml:2:13: force_drop: expected true or false"},
        {"name: [a]\n", "test.yaml:1:7: name: expected a string"},
        {"just text\n", "test.yaml:1:1: expected a mapping or a list"},
        {"{\"name\": \"app\", \"settings\": {\"work_mem\": \"1MB\"}", "test.yaml:1:"},
        {"- name: ok\n- name: app\n  tablespace: {x: 1}\n",
         "test.yaml:3:15: [1].tablespace: expected a string"},
    };
    for (const auto& c : cases) {
        INFO(c.content);
        auto f = site.file("test.yaml", c.content);
        auto r = site.run({"database", "apply", "-f", f.string(), "-i", "nowhere"});
        CHECK(r.status == 2);
        CHECK(contains(r.err, c.message));
    }
    auto hint = site.run({"database", "apply", "-f",
                          site.file("t.yaml", "name: a\nowenr: x\n").string(), "-i", "x"});
    CHECK(contains(hint.err, "did you mean 'owner'?"));
    auto missing = site.run({"database", "apply", "-i", "x"});
    CHECK(missing.status == 2);
    CHECK(contains(missing.err, "-f FILE"));
    auto bad_set = site.run({"database", "alter", "app", "--set", "work_mem", "-i", "x"});
    CHECK(bad_set.status == 2);
    CHECK(contains(bad_set.err, "--set takes NAME=VALUE"));
}

TEST_CASE("database commands on an instance that is not running exit 3", "[unit]") {
    Site site;
    site.record("idle");
    auto f = site.file("d.json", R"({"name": "app", "settings": {}})");
    for (std::vector<std::string> args :
         {std::vector<std::string>{"database", "list", "-i", "idle"},
          {"database", "apply", "-f", f.string(), "-i", "idle"},
          {"database", "run", "SELECT 1", "-i", "idle", "--json"},
          {"database", "drop", "app", "-i", "idle"}}) {
        auto r = site.run(args);
        CHECK(r.status == 3);
        CHECK(contains(r.err, "instance 15/idle is not running"));
        CHECK(contains(r.err, "hint: start it: pgforge instance start 15/idle"));
    }
    auto j = site.run({"database", "list", "-i", "idle", "--json"});
    CHECK(contains(j.out, "\"exit\": 3"));
}

TEST_CASE("dump file names hold any database name and read back", "[unit]") {
    using pgforge::databases::decode_file_name;
    using pgforge::databases::encode_file_name;
    std::vector<std::string> names = {
        "app", "a_b-c.d", "a\"; DROP DATABASE x; --", "../etc/passwd", ".", "..", "100%", "é",
        "a/b", "x\ny"};
    for (const auto& name : names) {
        std::string encoded = encode_file_name(name);
        INFO(name << " -> " << encoded);
        CHECK(encoded.find('/') == std::string::npos);
        CHECK(encoded.find('\n') == std::string::npos);
        CHECK(encoded != ".");
        CHECK(encoded != "..");
        CHECK(decode_file_name(encoded) == std::optional<std::string>(name));
    }
    CHECK(encode_file_name("a\"; DROP") == "a%22%3B%20DROP");
    CHECK(decode_file_name("bad%2") == std::nullopt);
    CHECK(decode_file_name("bad%zz") == std::nullopt);
}

TEST_CASE("values for libpq: array parameters and connection strings", "[unit]") {
    using pgforge::pg::array_literal;
    using pgforge::pg::conninfo_value;
    CHECK(array_literal({}) == "{}");
    CHECK(array_literal({"a", "b c"}) == "{\"a\",\"b c\"}");
    CHECK(array_literal({"x\"y", "back\\slash", "NULL", "{}"}) ==
          "{\"x\\\"y\",\"back\\\\slash\",\"NULL\",\"{}\"}");
    CHECK(conninfo_value("app") == "'app'");
    CHECK(conninfo_value("a'b\\c = d") == "'a\\'b\\\\c = d'");
}
