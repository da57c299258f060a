// Per-instance plugin options (SDK 1.2) on real servers, through the CLI: `instance create
// --option` hands the plugin its values at the create's hooks, a bad key or value is refused
// naming it with nothing made, and `instance get` (text and JSON) shows them.
#include <catch2/catch.hpp>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "engine/operations/instances.hpp"
#include "engine/operations/plugin_options.hpp"
#include "tests/support/test_site.hpp"

namespace fs = std::filesystem;
using namespace pgforge;
using pgforge::test::TestSite;
using json = nlohmann::json;

namespace {

const fs::path fixtures = PGFORGE_TEST_PLUGIN_DIR;

std::string read_text(const fs::path& file) {
    std::ifstream in(file);
    std::stringstream s;
    s << in.rdbuf();
    return s.str();
}

struct OptionsSite {
    TestSite site;
    OptionsSite() {
        site.add_settings("[plugins]\npath = " + (fixtures / "optioned").string() +
                          "\nenabled = optioned\n");
    }
    fs::path written(const std::string& name) const {
        Context ctx(site.settings());
        return instances::get(ctx, name).base_dir / "optioned" / "options.txt";
    }
};

}  // namespace

TEST_CASE("instance create --option hands the plugin its values; get shows them",
          "[plugin-options]") {
    OptionsSite s;
    auto r = s.site.cli({"instance", "create", "opt", "--option", "optioned.label=prod", "--option",
                         "optioned.verbose=on", "--state", "stopped"});
    INFO(r.err);
    REQUIRE(r.status == 0);
    // Read by the plugin at the create's pre_configure: the values set and the default.
    CHECK(read_text(s.written("opt")) == "count=3\nlabel=prod\nverbose=true\n");

    auto get = s.site.cli({"--json", "instance", "get", "opt"});
    REQUIRE(get.status == 0);
    json j = json::parse(get.out);
    // The instance manifest's section of the plugin, so that get | apply changes nothing.
    CHECK(j["optioned"] == json{{"label", "prod"}, {"verbose", true}});

    auto text = s.site.cli({"instance", "get", "opt"});
    REQUIRE(text.status == 0);
    CHECK_THAT(text.out, Catch::Contains("option optioned.label:") &&
                             Catch::Contains("option optioned.verbose:"));

    // A change through the library, then a configure: the plugin reads the new values.
    {
        Context ctx(s.site.settings());
        Instance i = instances::get(ctx, "opt");
        auto changes = plugin_options::store(
            ctx, i, {{"optioned", {{"count", "12"}, {"verbose", std::nullopt}}}});
        CHECK(changes.size() == 2);
    }
    REQUIRE(s.site.cli({"instance", "start", "opt"}).status == 0);
    REQUIRE(s.site.cli({"instance", "reload", "opt"}).status == 0);
    CHECK(read_text(s.written("opt")) == "count=12\nlabel=prod\n");
    auto again = json::parse(s.site.cli({"--json", "instance", "get", "opt"}).out);
    CHECK(again["optioned"] == json{{"count", 12}, {"label", "prod"}});
    REQUIRE(s.site.cli({"instance", "drop", "opt"}).status == 0);
}

TEST_CASE("instance apply: a plugin's section sets its options, get | apply is unchanged",
          "[plugin-options]") {
    OptionsSite s;
    const fs::path file = s.site.root() / "opt.yaml";
    auto apply = [&](const std::string& yaml) {
        std::ofstream(file, std::ios::trunc) << yaml;
        auto r = s.site.cli({"--json", "instance", "apply", "-f", file.string()});
        INFO(r.err);
        REQUIRE(r.status == 0);
        return json::parse(r.out).at("results").at(0);
    };
    auto made = apply("name: ap\noptioned: {label: one, count: 4}\n");
    CHECK(made["result"] == "created");
    CHECK(read_text(s.written("ap")) == "count=4\nlabel=one\n");

    auto changed = apply("name: ap\noptioned: {label: two, count: null}\n");
    CHECK(changed["result"] == "changed");
    CHECK(changed["changes"] == json::parse(R"([
        {"field": "optioned.count", "before": "4", "after": null},
        {"field": "optioned.label", "before": "one", "after": "two"}])"));
    // The configure after the store handed the plugin the new values (count back to default).
    CHECK(read_text(s.written("ap")) == "count=3\nlabel=two\n");

    auto again = apply("name: ap\noptioned: {label: two}\n");
    CHECK(again["result"] == "unchanged");

    auto get = s.site.cli({"--json", "instance", "get", "ap"});
    REQUIRE(get.status == 0);
    std::ofstream(file, std::ios::trunc) << get.out;
    auto round = s.site.cli({"--json", "instance", "apply", "-f", file.string()});
    INFO(round.err);
    REQUIRE(round.status == 0);
    CHECK(json::parse(round.out)["results"][0]["result"] == "unchanged");

    std::ofstream(file, std::ios::trunc) << "name: ap\noptioned: {count: x}\n";
    auto bad = s.site.cli({"--json", "instance", "apply", "-f", file.string()});
    CHECK(bad.status == 2);
    // The section is typed by the plugin's declaration: refused with its place, before anything.
    CHECK_THAT(bad.err, Catch::Contains("opt.yaml:2:19: optioned.count: expected an integer"));
    std::ofstream(file, std::ios::trunc) << "name: ap\noptioned: {cuont: 1}\n";
    auto unknown = s.site.cli({"--json", "instance", "apply", "-f", file.string()});
    CHECK(unknown.status == 2);
    CHECK_THAT(unknown.err, Catch::Contains("optioned: unknown key 'cuont'"));
    REQUIRE(s.site.cli({"instance", "drop", "ap"}).status == 0);
}

TEST_CASE("plugin show lists the options a plugin declares", "[plugin-options]") {
    OptionsSite s;
    auto text = s.site.cli({"plugin", "show", "optioned"});
    REQUIRE(text.status == 0);
    CHECK_THAT(text.out,
               Catch::Contains("optioned.label (string)  a label the fixture writes down") &&
                   Catch::Contains("optioned.count (integer, default 3)  how many (default 3)"));
    auto j = json::parse(s.site.cli({"--json", "plugin", "show", "optioned"}).out);
    REQUIRE(j["options"].size() == 3);
    CHECK(j["options"][1] == json{{"key", "count"},
                                  {"type", "integer"},
                                  {"default", "3"},
                                  {"description", "how many (default 3)"}});
    CHECK(j["options"][0]["default"].is_null());
}

TEST_CASE("instance create refuses a bad option naming it, and makes nothing", "[plugin-options]") {
    OptionsSite s;
    struct Case {
        std::vector<std::string> option;
        std::string message;
    };
    for (const Case& c : std::vector<Case>{
             {{"--option", "optioned.colour=red"},
              "plugin option optioned.colour: plugin optioned declares no option colour"},
             {{"--option", "optioned.count=many"},
              "plugin option optioned.count: 'many' is not an integer"},
             {{"--option", "backup.stanza=prod"},
              "plugin option backup.stanza: plugin backup is not enabled"},
             {{"--option", "nosuch.key=1"},
              "plugin option nosuch.key: no plugin nosuch is installed"},
             {{"--option", "stanza=prod"}, "--option 'stanza=prod' is not PLUGIN.KEY=VALUE"}}) {
        std::vector<std::string> args = {"instance", "create", "bad"};
        args.insert(args.end(), c.option.begin(), c.option.end());
        auto r = s.site.cli(args);
        INFO(c.message);
        CHECK(r.status == 2);
        CHECK_THAT(r.err, Catch::Contains(c.message));
        CHECK(s.site.cli({"instance", "get", "bad"}).status == 4);
    }
    std::error_code ec;
    CHECK_FALSE(fs::exists(s.site.settings().prefix / "15" / "bad", ec));
}
