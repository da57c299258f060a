// The role description reader (engine/operations/role_manifest) and `pgforge schema`, without a
// server: what each key becomes, the round trip from description_yaml/json, the refusals of
// `role apply -f` before any instance is looked up, and the JSON Schemas printed.
#include "engine/operations/role_manifest.hpp"

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include "cli_site.hpp"
#include "engine/core/error.hpp"
#include "engine/operations/database_manifest.hpp"

using namespace pgforge;
using json = nlohmann::json;

namespace {

std::vector<roles::Role> parse(const std::string& text, bool& is_list) {
    return roles::parse_descriptions(text, "r.yaml", is_list);
}

}  // namespace

TEST_CASE("role manifest: every key read", "[role_manifest]") {
    bool is_list = true;
    auto list = parse(
        "name: app\nlogin: yes\nsuperuser: false\ncreatedb: true\ncreaterole: false\n"
        "replication: false\ninherit: true\nconnection_limit: 7\nvalid_until: 2031-06-01\n"
        "in_roles: [readers, writers]\npassword: 1234\npgpass: false\n",
        is_list);
    CHECK_FALSE(is_list);
    REQUIRE(list.size() == 1);
    const roles::Role& r = list[0];
    CHECK(r.name == "app");
    CHECK(r.login == true);
    CHECK(r.superuser == false);
    CHECK(r.createdb == true);
    CHECK(r.createrole == false);
    CHECK(r.replication == false);
    CHECK(r.inherit == true);
    CHECK(r.connection_limit == 7);
    CHECK(r.valid_until == "2031-06-01");
    CHECK(r.in_roles == std::vector<std::string>{"readers", "writers"});
    CHECK(r.password == "1234");  // a YAML number is the string it is written as
    CHECK(r.pgpass == false);
    CHECK(r.state == roles::State::present);

    // null is "not given"; a list is read in order.
    auto two = parse(
        "- {name: a, login: null, connection_limit: ~, in_roles: null}\n"
        "- {name: b, state: absent, reassign_owned: heir, drop_owned: false}\n",
        is_list);
    CHECK(is_list);
    REQUIRE(two.size() == 2);
    CHECK_FALSE(two[0].login);
    CHECK_FALSE(two[0].connection_limit);
    CHECK_FALSE(two[0].in_roles);
    CHECK(two[1].state == roles::State::absent);
    CHECK(two[1].reassign_owned == "heir");
    CHECK_FALSE(two[1].drop_owned);
    CHECK(parse("{\"name\": \"c\", \"in_roles\": []}", is_list)[0].in_roles ==
          std::vector<std::string>{});
}

TEST_CASE("role manifest: get's YAML and JSON read back as they were", "[role_manifest]") {
    roles::Role r;
    r.name = "odd: \"name\"";
    r.login = true;
    r.superuser = false;
    r.createdb = false;
    r.createrole = true;
    r.replication = false;
    r.inherit = true;
    r.connection_limit = -1;
    r.valid_until = "infinity";
    r.in_roles = std::vector<std::string>{"a b", "c"};
    r.pgpass = false;
    bool is_list = true;
    for (const std::string& text : {roles::description_yaml(r), roles::description_json(r)}) {
        INFO(text);
        auto back = parse(text, is_list);
        REQUIRE(back.size() == 1);
        CHECK(back[0].name == r.name);
        CHECK(back[0].login == r.login);
        CHECK(back[0].createrole == r.createrole);
        CHECK(back[0].connection_limit == r.connection_limit);
        CHECK(back[0].valid_until == r.valid_until);
        CHECK(back[0].in_roles == r.in_roles);
        CHECK(back[0].pgpass == r.pgpass);
    }
}

TEST_CASE("role apply -f refuses a bad description before looking for the instance",
          "[role_manifest]") {
    test::CliSite site("rolecli");
    struct Case {
        const char* content;
        const char* message;
        const char* hint;
    };
    const std::vector<Case> cases = {
        {"login: true\n", "r.yaml:1:1: 'name' is required", ""},
        {"name: a\nlogn: true\n", "r.yaml:2:1: unknown key 'logn'", "did you mean 'login'?"},
        {"name: a\nconnection_limit: lots\n",
         "r.yaml:2:19: connection_limit: expected an integer from -1 to 2147483647",
         "found 'lots'"},
        {"name: a\nin_roles: readers\n", "r.yaml:2:11: in_roles: expected a list",
         "found 'readers'"},
        {"- name: a\n- [b]\n", "r.yaml:2:3: [1]: expected a mapping", "found a list"},
        {"name: a\nstate: gone\n", "r.yaml:2:8: state: expected one of present, absent",
         "found 'gone'"},
        {"name: [a\n", "r.yaml:2:1: ", "the file is not valid YAML or JSON"},
    };
    for (const auto& c : cases) {
        INFO(c.content);
        auto f = site.file("r.yaml", c.content);
        auto r = site.run({"role", "apply", "-f", f.string(), "-i", "nowhere"});
        CHECK(r.status == 2);
        CHECK_THAT(r.err, Catch::StartsWith("pgforge: " + (f.parent_path() / c.message).string()));
        if (*c.hint) CHECK_THAT(r.err, Catch::Contains("hint: " + std::string(c.hint)));
    }
}

TEST_CASE("pgforge schema prints the JSON Schema of each manifest", "[role_manifest]") {
    test::CliSite site("schemacli");
    auto db = site.run({"schema", "database"});
    REQUIRE(db.status == 0);
    auto d = json::parse(db.out);
    CHECK(d["$schema"] == "https://json-schema.org/draft/2020-12/schema");
    CHECK(d["title"] == "pgforge database manifest");
    // One database or a list of them, the same object in both.
    REQUIRE(d["oneOf"].size() == 2);
    CHECK(d["oneOf"][1]["type"] == "array");
    CHECK(d["oneOf"][1]["items"] == d["oneOf"][0]);
    const auto& props = d["oneOf"][0]["properties"];
    CHECK(d["oneOf"][0]["required"] == json::array({"name"}));
    CHECK(d["oneOf"][0]["additionalProperties"] == false);
    for (const char* key : {"name", "state", "owner", "settings", "schemas", "extensions",
                            "tablespace", "force_drop"})
        CHECK(props.contains(key));
    CHECK(props.size() == 8);
    CHECK(props["owner"]["type"] == json::array({"string", "null"}));
    CHECK(props["schemas"]["items"]["oneOf"][0]["type"] == "string");
    CHECK(props["schemas"]["items"]["oneOf"][1]["required"] == json::array({"name"}));

    auto role = site.run({"schema", "role"});
    REQUIRE(role.status == 0);
    auto r = json::parse(role.out)["oneOf"][0];
    CHECK(r["properties"].size() == 15);
    CHECK(r["properties"]["connection_limit"]["minimum"] == -1);
    CHECK(r["properties"]["in_roles"]["items"]["type"] == "string");
    CHECK(r["properties"]["state"]["enum"] == json::array({"present", "absent", nullptr}));

    // The library's schemas are the ones printed.
    CHECK(json::parse(manifest_schema::json_schema(databases::descriptions_schema(),
                                                   "pgforge database manifest")) == d);
    auto names = manifest_schema::registered_names();
    CHECK(std::count(names.begin(), names.end(), "database") == 1);
    CHECK(std::count(names.begin(), names.end(), "role") == 1);

    // The instance manifest registers itself when it exists; until then, exit 4.
    if (!manifest_schema::registered("instance")) {
        auto instance = site.run({"schema", "instance"});
        CHECK(instance.status == 4);
        CHECK_THAT(instance.err, Catch::Contains("the schema of the instance manifest is not "
                                                 "available"));
    }
    CHECK(site.run({"schema", "database", "extra"}).status == 2);
}
