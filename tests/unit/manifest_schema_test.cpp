// The manifest schema module: the JSON Schema it prints and the messages of its validation.
#include "engine/operations/manifest_schema.hpp"

#include <yaml-cpp/yaml.h>

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include "engine/core/error.hpp"

using namespace pgforge;
using namespace pgforge::manifest_schema;

namespace {

Schema database() {
    return object(
        {required("name", string().describe("the database")), optional("owner", string()),
         optional("state", enumeration({"present", "absent"})),
         optional("connection_limit", integer(-1, 1000)), optional("force_drop", boolean()),
         optional("settings", map_of(one_of({string(), number(), boolean()}).allow_null())),
         optional("schemas", list(one_of({string(), object({required("name", string()),
                                                            optional("owner", string())})})))});
}

Schema file() {
    return object({required("name", string()), optional("databases", list(database()))});
}

// The message of the Error validating `text` against `schema`; "" when it is valid.
std::string message(const std::string& text, const Schema& schema, std::string* hint = nullptr) {
    try {
        validate(parse(text, "m.yaml"), schema, "m.yaml");
    } catch (const Error& e) {
        REQUIRE(e.code() == Exit::usage);
        if (hint) *hint = e.hint();
        return e.what();
    }
    return {};
}

}  // namespace

TEST_CASE("manifest schema: a valid manifest passes", "[manifest_schema]") {
    CHECK(message("name: x\n"
                  "databases:\n"
                  "  - name: a\n"
                  "    owner: bob\n"
                  "    state: absent\n"
                  "    connection_limit: 5\n"
                  "    force_drop: yes\n"
                  "    settings: {work_mem: 4MB, jit: false, n: 3, gone: null}\n"
                  "    schemas: [s1, {name: s2, owner: bob}]\n",
                  file()) == "");
    // JSON is read by the same parser.
    CHECK(message(R"({"name": "x", "databases": [{"name": "a", "owner": "b"}]})", file()) == "");
}

TEST_CASE("manifest schema: the path, line and column of the first bad value",
          "[manifest_schema]") {
    const std::string text =
        "name: x\n"
        "databases:\n"
        "  - name: a\n"
        "  - name: b\n"
        "  - name: c\n"
        "    owner: [bob]\n"
        "    state: gone\n";
    CHECK(message(text, file()) == "m.yaml:6:12: databases[2].owner: expected a string");
    CHECK(message("name: x\ndatabases: {name: a}\n", file()) ==
          "m.yaml:2:12: databases: expected a list");
    CHECK(message("- a\n", file()) == "m.yaml:1:1: expected a mapping");
}

TEST_CASE("manifest schema: types", "[manifest_schema]") {
    auto db = [](const std::string& field) {
        return message("name: a\n" + field + "\n", database());
    };
    CHECK(db("connection_limit: many") ==
          "m.yaml:2:19: connection_limit: expected an integer from -1 to 1000");
    CHECK(db("connection_limit: 1001") ==
          "m.yaml:2:19: connection_limit: expected an integer from -1 to 1000");
    CHECK(db("connection_limit: -1") == "");
    CHECK(db("force_drop: maybe") == "m.yaml:2:13: force_drop: expected true or false");
    CHECK(db("owner:") == "m.yaml:2:1: owner: expected a string");
    CHECK(db("owner: null") == "m.yaml:2:1: owner: expected a string");
    CHECK(message("name: a\nowner: null\n",
                  object({required("name", string()), optional("owner", string().allow_null())})) ==
          "");
    CHECK(db("settings: {work_mem: [1]}") ==
          "m.yaml:2:22: settings.work_mem: expected a string, a number or true or false");
    CHECK(db("settings: []") == "m.yaml:2:11: settings: expected a mapping");
    CHECK(db("schemas: [{name: s, ownr: x}]") == "m.yaml:2:21: schemas[0]: unknown key 'ownr'");
    CHECK(db("schemas: [[s]]") == "m.yaml:2:11: schemas[0]: expected a string or a mapping");
}

TEST_CASE("manifest schema: unknown keys, required keys and keys given twice",
          "[manifest_schema]") {
    std::string hint;
    CHECK(message("name: a\nonwer: b\n", database(), &hint) == "m.yaml:2:1: unknown key 'onwer'");
    CHECK(hint == "did you mean 'owner'?");
    CHECK(message("name: a\nzzzzzzzzzzzz: b\n", database(), &hint) ==
          "m.yaml:2:1: unknown key 'zzzzzzzzzzzz'");
    CHECK(hint.rfind("known keys: name, owner,", 0) == 0);
    CHECK(message("owner: b\n", database()) == "m.yaml:1:1: 'name' is required");
    CHECK(message("name: x\ndatabases:\n  - owner: b\n", file()) ==
          "m.yaml:3:5: databases[0]: 'name' is required");
    CHECK(message("name: a\nowner: b\nowner: c\n", database()) ==
          "m.yaml:3:1: 'owner' is given twice");
}

TEST_CASE("manifest schema: enumerations are named", "[manifest_schema]") {
    std::string hint;
    CHECK(message("name: a\nstate: absnt\n", database(), &hint) ==
          "m.yaml:2:8: state: expected one of present, absent");
    CHECK(hint == "found 'absnt'; did you mean 'absent'?");
    CHECK(message("name: a\nstate: {x: 1}\n", database()) ==
          "m.yaml:2:8: state: expected one of present, absent");
}

TEST_CASE("manifest schema: YAML syntax errors name line and column", "[manifest_schema]") {
    try {
        parse("name: a\nowner: [b\nstate: c\n", "m.yaml");
        FAIL("no error");
    } catch (const Error& e) {
        CHECK(e.code() == Exit::usage);
        CHECK(std::string(e.what()).rfind("m.yaml:", 0) == 0);
        CHECK_THAT(e.what(), Catch::Matches(R"(m\.yaml:\d+:\d+: .+)"));
    }
    try {
        parse("{\"name\": \"a\"", "m.json");
        FAIL("no error");
    } catch (const Error& e) {
        CHECK_THAT(e.what(), Catch::Matches(R"(m\.json:1:\d+: .+)"));
    }
}

TEST_CASE("manifest schema: nesting, and sections added at run time", "[manifest_schema]") {
    Schema s = file();
    s.add("backup", object({optional("stanza", string())}));
    CHECK(message("name: x\nbackup: {stanza: s}\n", s) == "");
    CHECK(message("name: x\nbackup: {stanzas: s}\n", s) ==
          "m.yaml:2:10: backup: unknown key 'stanzas'");
    CHECK(message("name: x\nbackup: {stanza: s}\n", file()) == "m.yaml:2:1: unknown key 'backup'");
    CHECK(s.remove("backup"));
    CHECK_FALSE(s.remove("backup"));
    // A path given for the root (a manifest nested in another file).
    try {
        validate(parse("owner: x\n", "m.yaml"), database(), "m.yaml", "databases[3]");
        FAIL("no error");
    } catch (const Error& e) {
        CHECK(std::string(e.what()) == "m.yaml:1:1: databases[3]: 'name' is required");
    }
}

TEST_CASE("manifest schema: the JSON Schema", "[manifest_schema]") {
    Schema s = file();
    s.describe("an instance");
    auto j = nlohmann::json::parse(json_schema(s, "instance"));
    CHECK(j["$schema"] == "https://json-schema.org/draft/2020-12/schema");
    CHECK(j["title"] == "instance");
    CHECK(j["description"] == "an instance");
    CHECK(j["type"] == "object");
    CHECK(j["additionalProperties"] == false);
    CHECK(j["required"] == nlohmann::json::array({"name"}));
    const auto& db = j["properties"]["databases"]["items"];
    CHECK(j["properties"]["databases"]["type"] == "array");
    CHECK(db["properties"]["name"]["description"] == "the database");
    CHECK(db["properties"]["state"]["enum"] == nlohmann::json::array({"present", "absent"}));
    CHECK(db["properties"]["connection_limit"]["minimum"] == -1);
    CHECK(db["properties"]["connection_limit"]["maximum"] == 1000);
    CHECK(db["properties"]["force_drop"]["type"] == "boolean");
    const auto& settings = db["properties"]["settings"];
    CHECK(settings["type"] == "object");
    CHECK(settings["additionalProperties"]["oneOf"].size() == 4);
    CHECK(settings["additionalProperties"]["oneOf"][3] == nlohmann::json({{"type", "null"}}));
    CHECK(db["properties"]["schemas"]["items"]["oneOf"][0]["type"] == "string");
    CHECK(db["properties"]["schemas"]["items"]["oneOf"][1]["type"] == "object");
    auto nullable = nlohmann::json::parse(json_schema(string().allow_null()));
    CHECK(nullable["type"] == nlohmann::json::array({"string", "null"}));
    auto nullable_enum = nlohmann::json::parse(json_schema(enumeration({"a"}).allow_null()));
    CHECK(nullable_enum["enum"] == nlohmann::json::array({"a", nullptr}));
}

TEST_CASE("manifest schema: the registry", "[manifest_schema]") {
    CHECK_FALSE(registered("no such manifest"));
    register_schema("test manifest", [] { return object({required("x", integer())}); });
    auto s = registered("test manifest");
    REQUIRE(s);
    CHECK(s->kind() == Kind::object);
    CHECK(s->field("x"));
    auto names = registered_names();
    CHECK(std::find(names.begin(), names.end(), "test manifest") != names.end());
}
