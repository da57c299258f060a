// Configuration contributions that compose, on real servers: two plugins preloading
// pg_stat_statements and auto_explain (PostgreSQL's contrib), in both orders and priorities, on a
// new instance and on one that already preloads a library; the user's conf set against a
// plugin's list entry and default; a plugin's restart reason.
#include <algorithm>
#include <catch2/catch.hpp>
#include <fstream>
#include <nlohmann/json.hpp>

#include "engine/conf/lists.hpp"
#include "engine/core/text.hpp"
#include "engine/operations/instances.hpp"
#include "engine/pg/connection.hpp"
#include "tests/support/test_site.hpp"

namespace fs = std::filesystem;
using namespace pgforge;
using pgforge::test::TestSite;
using json = nlohmann::json;

namespace {

const fs::path fixtures = PGFORGE_TEST_PLUGIN_DIR;

// A test site with the fixture plugins `early` (priority 10) and `late` (priority 90) on its
// path; `set` rewrites their sections and the enabled list.
struct ComposeSite {
    TestSite site;
    std::string base;

    ComposeSite() {
        std::ifstream in(site.settings_file());
        base.assign(std::istreambuf_iterator<char>(in), {});
        set("");
    }
    void set(const std::string& sections, const std::string& enabled = "early, late") {
        std::ofstream out(site.settings_file(), std::ios::trunc);
        out << base << "\n[plugins]\npath = " << (fixtures / "early").string()
            << "\npath = " << (fixtures / "late").string() << "\nenabled = " << enabled << "\n"
            << sections;
    }
    TestSite::Output cli(const std::vector<std::string>& args) const { return site.cli(args); }
    std::string show(const std::string& instance, const std::string& name) const {
        Context ctx(site.settings());
        pg::Connection c(instances::get(ctx, instance));
        return c.exec("SHOW " + name).rows.at(0).at(0).value_or("NULL");
    }
    // Whether both libraries are loaded: their parameters exist only then.
    bool both_loaded(const std::string& instance) const {
        Context ctx(site.settings());
        pg::Connection c(instances::get(ctx, instance));
        return c.exec(
                    "SELECT count(*) FROM pg_settings WHERE name IN "
                    "('pg_stat_statements.max', 'auto_explain.log_min_duration')")
                   .rows.at(0)
                   .at(0) == "2";
    }
    std::string conf_file(const std::string& instance) const {
        Context ctx(site.settings());
        std::ifstream in(instances::get(ctx, instance).data_dir / "postgresql.conf");
        return std::string(std::istreambuf_iterator<char>(in), {});
    }
};

const json* change_named(const json& j, const std::string& name) {
    for (const auto& c : j.at("changes"))
        if (c.at("name") == name) return &c;
    return nullptr;
}

}  // namespace

TEST_CASE(
    "two plugins preloading pg_stat_statements and auto_explain compose on a new instance, "
    "whichever runs first",
    "[compose]") {
    ComposeSite s;
    SECTION("SDK 1.1 add_to_list, pg_stat_statements's plugin first") {
        s.set(
            "[early]\nadd = shared_preload_libraries=pg_stat_statements\n"
            "[late]\nadd = shared_preload_libraries=auto_explain\n");
        auto r = s.cli({"instance", "create", "ab"});
        REQUIRE(r.status == 0);
        CHECK(s.show("ab", "shared_preload_libraries") == "pg_stat_statements, auto_explain");
        CHECK(s.both_loaded("ab"));
    }
    SECTION("SDK 1.1 add_to_list, auto_explain's plugin first") {
        s.set(
            "[early]\nadd = shared_preload_libraries=auto_explain\n"
            "[late]\nadd = shared_preload_libraries=pg_stat_statements\n");
        auto r = s.cli({"instance", "create", "ba"});
        REQUIRE(r.status == 0);
        CHECK(s.show("ba", "shared_preload_libraries") == "auto_explain, pg_stat_statements");
        CHECK(s.both_loaded("ba"));
    }
    SECTION("SDK 1.0 set_parameter, the second extending the first's value (exit 5 before)") {
        s.set(
            "[early]\nparameter = shared_preload_libraries=auto_explain\n"
            "[late]\nparameter = shared_preload_libraries=auto_explain,pg_stat_statements\n");
        auto r = s.cli({"instance", "create", "legacy"});
        REQUIRE(r.status == 0);
        CHECK(s.show("legacy", "shared_preload_libraries") == "auto_explain, pg_stat_statements");
        CHECK(s.both_loaded("legacy"));
    }
}

TEST_CASE(
    "on an instance that already preloads one library, the plugins add the other after it "
    "and the restart applies it",
    "[compose]") {
    ComposeSite s;
    s.set("", "");
    REQUIRE(s.cli({"instance", "create", "old"}).status == 0);
    REQUIRE(
        s.cli({"conf", "set", "-i", "old", "shared_preload_libraries=auto_explain", "--restart"})
            .status == 0);
    // pg_stat_statements's plugin runs first, yet the entry already there keeps its place.
    s.set(
        "[early]\nadd = shared_preload_libraries=pg_stat_statements\n"
        "default = auto_explain.log_min_duration=250ms\n"
        "[late]\nadd = shared_preload_libraries=auto_explain\n");
    auto r = s.cli({"conf", "set", "-i", "old", "work_mem=8MB", "--restart", "--json"});
    REQUIRE(r.status == 0);
    json j = json::parse(r.out);
    const json* spl = change_named(j, "shared_preload_libraries");
    REQUIRE(spl);
    CHECK(spl->at("before") == "auto_explain");
    CHECK(spl->at("after") == "auto_explain, pg_stat_statements");
    CHECK(spl->at("effect") == "restart");  // postmaster context
    CHECK(spl->at("note") == "contributed by plugin early");
    const json* lmd = change_named(j, "auto_explain.log_min_duration");
    REQUIRE(lmd);
    CHECK(lmd->at("effect") == "reload");  // superuser context
    CHECK(j.at("restarted") == true);
    CHECK(s.show("old", "shared_preload_libraries") == "auto_explain, pg_stat_statements");
    CHECK(s.both_loaded("old"));
    CHECK(s.show("old", "auto_explain.log_min_duration") == "250ms");

    // Everything in place: the next configure writes nothing.
    auto again = s.cli({"instance", "reload", "old", "--json"});
    REQUIRE(again.status == 0);
    CHECK(json::parse(again.out).at("changes").empty());
}

TEST_CASE(
    "the user's conf set: a list keeping the plugins' entries passes, one dropping an entry "
    "is refused, a value over a plugin's default wins",
    "[compose]") {
    ComposeSite s;
    s.set(
        "[early]\nadd = shared_preload_libraries=pg_stat_statements\n"
        "default = pg_stat_statements.max=5000\n"
        "[late]\nadd = shared_preload_libraries=auto_explain\n"
        "parameter = pg_stat_statements.track=all\n");
    REQUIRE(s.cli({"instance", "create", "user"}).status == 0);
    CHECK(s.show("user", "pg_stat_statements.max") == "5000");

    auto dropped = s.cli({"conf", "set", "-i", "user", "shared_preload_libraries=auto_explain"});
    CHECK(dropped.status == 5);
    CHECK_THAT(dropped.err, Catch::Contains("parameter shared_preload_libraries: the command sets "
                                            "'auto_explain', plugin early adds "
                                            "'pg_stat_statements'"));
    CHECK_THAT(s.conf_file("user"),
               Catch::Contains("shared_preload_libraries = 'pg_stat_statements, auto_explain'"));

    auto reordered = s.cli(
        {"conf", "set", "-i", "user", "shared_preload_libraries=auto_explain,pg_stat_statements"});
    CHECK(reordered.status == 0);
    CHECK_THAT(s.conf_file("user"),
               Catch::Contains("shared_preload_libraries = 'auto_explain,pg_stat_statements'"));

    auto mine = s.cli({"conf", "set", "-i", "user", "pg_stat_statements.max=2000", "--restart"});
    CHECK(mine.status == 0);
    CHECK_THAT(mine.out, Catch::Contains("pg_stat_statements.max: 5000 -> 2000 (restart)"));
    CHECK_THAT(mine.out, Catch::Contains("plugin early's default '5000' is not used: the command "
                                         "sets '2000'"));
    CHECK(s.show("user", "pg_stat_statements.max") == "2000");
    // Later configures leave the user's value alone.
    REQUIRE(s.cli({"instance", "reload", "user"}).status == 0);
    CHECK_THAT(s.conf_file("user"), Catch::Contains("pg_stat_statements.max = 2000"));

    // A required value (an SDK 1.0 plugin's set_parameter) is still the plugin's.
    auto required = s.cli({"conf", "set", "-i", "user", "pg_stat_statements.track=top"});
    CHECK(required.status == 5);
    CHECK_THAT(required.err, Catch::Contains("parameter pg_stat_statements.track: the command sets "
                                             "'top', plugin late sets 'all'"));
}

TEST_CASE("a plugin's restart reason is printed with the changes and makes the restart pending",
          "[compose]") {
    ComposeSite s;
    REQUIRE(s.cli({"instance", "create", "why"}).status == 0);
    s.set("[late]\nrestart_needed = reads late.conf at start\n");

    auto text = s.cli({"conf", "set", "-i", "why", "work_mem=9MB"});
    REQUIRE(text.status == 0);
    CHECK_THAT(text.out, Catch::Contains("work_mem: (not set) -> 9MB (reload)"));
    CHECK_THAT(text.out, Catch::Contains("plugin late: reads late.conf at start (restart)"));
    CHECK_THAT(text.out, Catch::Contains("a restart is needed for plugin late to apply"));

    auto j = s.cli({"conf", "set", "-i", "why", "work_mem=10MB", "--json"});
    REQUIRE(j.status == 0);
    json out = json::parse(j.out);
    CHECK(out.at("pending_restart") == true);
    REQUIRE(out.at("plugin_restarts").size() == 1);
    CHECK(out.at("plugin_restarts")[0] ==
          json{{"plugin", "late"}, {"effect", "restart"}, {"reason", "reads late.conf at start"}});

    auto restarted = s.cli({"conf", "set", "-i", "why", "work_mem=11MB", "--restart", "--json"});
    REQUIRE(restarted.status == 0);
    CHECK(json::parse(restarted.out).at("restarted") == true);
    CHECK(json::parse(restarted.out).at("pending_restart") == false);

    auto reload = s.cli({"instance", "reload", "why"});
    REQUIRE(reload.status == 0);
    CHECK_THAT(reload.out, Catch::Contains("plugin late: reads late.conf at start (restart)"));
    CHECK_THAT(reload.out, Catch::Contains("needs a restart for plugin late to apply"));

    // A stopped server reads everything at its next start: nothing is pending.
    REQUIRE(s.cli({"instance", "stop", "why"}).status == 0);
    auto stopped = s.cli({"conf", "set", "-i", "why", "work_mem=12MB", "--json"});
    REQUIRE(stopped.status == 0);
    CHECK(json::parse(stopped.out).at("pending_restart") == false);
    CHECK(json::parse(stopped.out).at("plugin_restarts").size() == 1);
}

TEST_CASE("the list parameters are the server's list-valued parameters whose items are a set",
          "[compose]") {
    ComposeSite s;
    s.set("", "");
    REQUIRE(s.cli({"instance", "create", "guc"}).status == 0);
    Context ctx(s.site.settings());
    pg::Connection c(instances::get(ctx, "guc"));
    // The server takes several values in SET only for a GUC_LIST_INPUT parameter; any other says
    // "SET name takes only one argument" before it looks at the value or the context.
    std::vector<std::string> lists;
    for (const auto& row :
         c.exec("SELECT name FROM pg_settings WHERE vartype = 'string' ORDER BY lower(name)")
             .rows) {
        std::string name = row.at(0).value_or("");
        try {
            c.exec("SET " + c.quote_identifier(name) + " = 'x', 'y'");
            lists.push_back(to_lower(name));
        } catch (const std::exception& e) {
            if (std::string(e.what()).find("takes only one argument") == std::string::npos)
                lists.push_back(to_lower(name));
        }
    }
    std::vector<std::string> expected = conf::list_parameters();
    // Lists whose items are not a set: they stay scalars.
    expected.push_back("datestyle");
    expected.push_back("synchronous_standby_names");
    std::sort(expected.begin(), expected.end());
    CHECK(lists == expected);
}
