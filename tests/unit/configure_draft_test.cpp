// How configuration contributions compose (ConfigureDraft): list parameters as sets in a
// deterministic order, required and default scalars against the command's values, conflicts only
// for contradictions, restart reasons. No server, no plugin: the draft is driven as the pipeline
// drives it, one contributor after another.
#include <catch2/catch.hpp>

#include "engine/conf/lists.hpp"
#include "engine/pipeline/configure_draft.hpp"
#include "temp_dir.hpp"

namespace fs = std::filesystem;
using namespace pgforge;
using pgforge::test::TempDir;

namespace {

// One configure: postgresql.conf with `conf` (as the files or the command leave it), handlers
// contributing in the order the test calls them.
struct Draft {
    TempDir dir{"draft"};
    Instance instance;
    std::map<fs::path, conf::ConfDocument> docs;
    conf::HbaFile hba = conf::HbaFile::parse("");
    conf::IdentFile ident = conf::IdentFile::parse("");
    fs::path main_conf;
    std::optional<ConfigureDraft> draft;

    explicit Draft(const std::string& conf = "") {
        instance.name = "main";
        instance.version = "15";
        instance.base_dir = dir.path();
        instance.data_dir = dir.path() / "data";
        main_conf = instance.data_dir / "postgresql.conf";
        docs.emplace(main_conf, conf::ConfDocument::parse(conf, main_conf));
        draft.emplace(instance, docs, hba, ident, [this](const std::string&) { return main_conf; });
        draft->server_defaults([](const std::string& name) -> std::optional<std::string> {
            if (name == "search_path") return "\"$user\", public";
            return std::string();
        });
    }
    ConfigureDraft& as(const std::string& plugin) {
        draft->begin_contributions(plugin);
        return *draft;
    }
    // The value written for `name` once the contributions are applied.
    std::optional<std::string> written(const std::string& name) {
        draft->apply_parameters();
        if (auto e = docs.at(main_conf).get(name)) return e->value;
        return std::nullopt;
    }
    const std::vector<std::string>& conflicts() const { return draft->conflicts(); }
};

const std::string spl = "shared_preload_libraries";

}  // namespace

TEST_CASE("list values split and join as the server reads them") {
    auto items = conf::split_list_value(spl, " pg_stat_statements ,\"a,b\" , auto_explain,");
    REQUIRE(items.size() == 3);
    CHECK(items[0].key == "pg_stat_statements");
    CHECK(items[1].text == "\"a,b\"");
    CHECK(items[1].key == "a,b");
    CHECK(items[2].key == "auto_explain");
    CHECK(conf::join_list_value(items) == "pg_stat_statements, \"a,b\", auto_explain");
    CHECK(conf::split_list_value(spl, "").empty());
    CHECK(conf::split_list_value(spl, "  ").empty());
    // search_path folds unquoted names as the server does; libraries do not.
    CHECK(conf::split_list_value("search_path", "App, \"App\"")[0].key == "app");
    CHECK(conf::split_list_value("search_path", "App, \"App\"")[1].key == "App");
    CHECK(conf::split_list_value(spl, "MyLib")[0].key == "MyLib");
    // A plugin's item is quoted where the list needs it.
    CHECK(conf::list_item("search_path", "My Schema").text == "\"My Schema\"");
    CHECK(conf::list_item("search_path", "App").text == "\"App\"");
    CHECK(conf::list_item("search_path", "app").text == "app");
    CHECK(conf::list_item("search_path", "\"$user\"").key == "$user");
    CHECK(conf::list_item(spl, "say\"hi").text == "\"say\"\"hi\"");
    CHECK(conf::is_list_parameter("Shared_Preload_Libraries"));
    CHECK(conf::is_list_parameter("search_path"));
    CHECK_FALSE(conf::is_list_parameter("DateStyle"));
    CHECK_FALSE(conf::is_list_parameter("work_mem"));
}

TEST_CASE("two plugins adding to a list compose, in the order their handlers run") {
    SECTION("pgss first") {
        Draft d;
        d.as("pgss").add_to_list(spl, "pg_stat_statements");
        d.as("autoexplain").add_to_list(spl, "auto_explain");
        CHECK(d.conflicts().empty());
        CHECK(d.written(spl) == "pg_stat_statements, auto_explain");
        CHECK(d.draft->parameters().at(spl).by == "plugins pgss, autoexplain");
    }
    SECTION("autoexplain first") {
        Draft d;
        d.as("autoexplain").add_to_list(spl, "auto_explain");
        d.as("pgss").add_to_list(spl, "pg_stat_statements");
        CHECK(d.conflicts().empty());
        CHECK(d.written(spl) == "auto_explain, pg_stat_statements");
    }
    SECTION("through the 1.0 set_parameter, the second having read the first's value") {
        Draft d;
        d.as("autoexplain").set_parameter(spl, "auto_explain");
        auto seen = d.draft->parameter(spl);
        CHECK(seen == "auto_explain");
        d.as("pgss").set_parameter(spl, *seen + ",pg_stat_statements");
        CHECK(d.conflicts().empty());
        CHECK(d.written(spl) == "auto_explain, pg_stat_statements");
    }
}

TEST_CASE("on an existing list, its entries keep their place and the additions follow") {
    SECTION("one already there") {
        Draft d("shared_preload_libraries = 'auto_explain'\n");
        d.as("autoexplain").add_to_list(spl, "auto_explain");
        d.as("pgss").add_to_list(spl, "pg_stat_statements");
        CHECK(d.conflicts().empty());
        CHECK(d.written(spl) == "auto_explain, pg_stat_statements");
        CHECK(d.draft->parameters().at(spl).by == "plugin pgss");
    }
    SECTION("the user's own entries stay, whatever the order of the plugins") {
        for (bool pgss_first : {true, false}) {
            Draft d("shared_preload_libraries = 'mine,pg_stat_statements'\n");
            if (pgss_first) d.as("pgss").add_to_list(spl, "pg_stat_statements");
            d.as("autoexplain").add_to_list(spl, "auto_explain");
            if (!pgss_first) d.as("pgss").add_to_list(spl, "pg_stat_statements");
            CHECK(d.conflicts().empty());
            CHECK(d.written(spl) == "mine, pg_stat_statements, auto_explain");
        }
    }
    SECTION("all there: nothing is written") {
        Draft d("shared_preload_libraries = 'pg_stat_statements,auto_explain'\n");
        d.as("autoexplain").add_to_list(spl, "auto_explain");
        d.as("pgss").add_to_list(spl, "pg_stat_statements");
        CHECK(d.draft->apply_parameters().empty());
        CHECK(d.docs.at(d.main_conf).get(spl)->raw_value == "'pg_stat_statements,auto_explain'");
    }
    SECTION("a plugin removes an entry") {
        Draft d("shared_preload_libraries = 'old_lib, mine'\n");
        d.as("cleanup").remove_from_list(spl, "old_lib");
        CHECK(d.conflicts().empty());
        CHECK(d.written(spl) == "mine");
    }
    SECTION("a list no file sets starts from the server's default") {
        Draft d;
        d.as("app").add_to_list("search_path", "app");
        d.as("other").add_to_list("search_path", "Other Schema");
        CHECK(d.conflicts().empty());
        CHECK(d.written("search_path") == "\"$user\", public, app, \"Other Schema\"");
    }
}

TEST_CASE("one plugin removing what another adds is a conflict naming both, in either order") {
    SECTION("add, then remove") {
        Draft d;
        d.as("pgss").add_to_list(spl, "pg_stat_statements");
        d.as("lean").remove_from_list(spl, "pg_stat_statements");
        REQUIRE(d.conflicts().size() == 1);
        CHECK(d.conflicts()[0] ==
              "parameter shared_preload_libraries: plugin pgss adds "
              "'pg_stat_statements', plugin lean removes it");
    }
    SECTION("remove, then add") {
        Draft d;
        d.as("lean").remove_from_list(spl, "pg_stat_statements");
        d.as("pgss").set_parameter(spl, "pg_stat_statements");
        REQUIRE(d.conflicts().size() == 1);
        CHECK(d.conflicts()[0] ==
              "parameter shared_preload_libraries: plugin lean removes "
              "'pg_stat_statements', plugin pgss adds it");
    }
    SECTION("adding to a parameter that is not a list") {
        Draft d;
        d.as("pgss").add_to_list("work_mem", "4MB");
        REQUIRE(d.conflicts().size() == 1);
        CHECK_THAT(d.conflicts()[0], Catch::Contains("plugin pgss adds '4MB' to parameter "
                                                     "work_mem, which is not a list"));
    }
}

TEST_CASE(
    "the command's list: kept when it holds the plugins' entries, refused when it drops one") {
    SECTION("kept") {
        Draft d("shared_preload_libraries = 'auto_explain, pg_stat_statements, mine'\n");
        d.draft->user_sets(spl, "auto_explain, pg_stat_statements, mine");
        d.as("pgss").add_to_list(spl, "pg_stat_statements");
        CHECK(d.conflicts().empty());
        CHECK(d.draft->apply_parameters().empty());
    }
    SECTION("drops a plugin's entry") {
        Draft d("shared_preload_libraries = 'mine'\n");
        d.draft->user_sets(spl, "mine");
        d.as("pgss").add_to_list(spl, "pg_stat_statements");
        REQUIRE(d.conflicts().size() == 1);
        CHECK(d.conflicts()[0] ==
              "parameter shared_preload_libraries: the command sets 'mine', "
              "plugin pgss adds 'pg_stat_statements'");
    }
    SECTION("removes the list") {
        Draft d;
        d.draft->user_sets(spl, std::nullopt);
        d.as("pgss").add_to_list(spl, "pg_stat_statements");
        REQUIRE(d.conflicts().size() == 1);
        CHECK_THAT(d.conflicts()[0], Catch::Contains("the command removes it, plugin pgss adds"));
    }
    SECTION("keeps what a plugin removes") {
        Draft d("shared_preload_libraries = 'old_lib'\n");
        d.draft->user_sets(spl, "old_lib");
        d.as("cleanup").remove_from_list(spl, "old_lib");
        REQUIRE(d.conflicts().size() == 1);
        CHECK_THAT(d.conflicts()[0], Catch::Contains("the command sets 'old_lib', plugin cleanup "
                                                     "removes 'old_lib'"));
    }
}

TEST_CASE("a default gives way to the command's value and to the files; a required one does not") {
    const std::string max = "pg_stat_statements.max";
    SECTION("the command's value wins over a default, and the report says so") {
        Draft d("pg_stat_statements.max = 2000\n");
        d.draft->user_sets(max, "2000");
        d.as("pgss").set_parameter(max, "5000", sdk::Strength::default_value);
        CHECK(d.conflicts().empty());
        CHECK(d.written(max) == "2000");
        CHECK_FALSE(d.draft->parameters().count(max));
        CHECK(d.draft->notes().at(max) ==
              "plugin pgss's default '5000' is not used: the command sets '2000'");
    }
    SECTION("the command's removal wins over a default for that command") {
        Draft d;  // conf remove took the line out of the files
        d.draft->user_sets(max, std::nullopt);
        d.as("pgss").set_parameter(max, "5000", sdk::Strength::default_value);
        CHECK(d.conflicts().empty());
        CHECK(d.written(max) == std::nullopt);
        CHECK(d.draft->notes().at(max) ==
              "plugin pgss's default '5000' is not used: the command removes it");
    }
    SECTION("a value in the files wins over a default, silently") {
        Draft d("pg_stat_statements.max = 2000\n");
        d.as("pgss").set_parameter(max, "5000", sdk::Strength::default_value);
        CHECK(d.draft->apply_parameters().empty());
        CHECK(d.draft->notes().empty());
    }
    SECTION("a default is written where nothing sets the parameter") {
        Draft d;
        d.as("pgss").set_parameter(max, "5000", sdk::Strength::default_value);
        CHECK(d.draft->parameter(max) == "5000");
        CHECK(d.written(max) == "5000");
    }
    SECTION("a required value against the command's is a conflict, as in SDK 1.0") {
        Draft d("pg_stat_statements.max = 2000\n");
        d.draft->user_sets(max, "2000");
        d.as("pgss").set_parameter(max, "5000", sdk::Strength::required);
        REQUIRE(d.conflicts().size() == 1);
        CHECK(d.conflicts()[0] ==
              "parameter pg_stat_statements.max: the command sets '2000', "
              "plugin pgss sets '5000'");
    }
    SECTION("a required value wins over another plugin's default, in either order") {
        for (bool default_first : {true, false}) {
            Draft d;
            if (default_first) d.as("a").set_parameter(max, "5000", sdk::Strength::default_value);
            d.as("b").set_parameter(max, "8000", sdk::Strength::required);
            if (!default_first) d.as("a").set_parameter(max, "5000", sdk::Strength::default_value);
            CHECK(d.conflicts().empty());
            CHECK(d.written(max) == "8000");
            CHECK_THAT(d.draft->notes().at(max), Catch::Contains("plugin a's default '5000' is "
                                                                 "not used"));
        }
    }
    SECTION("two different defaults are a conflict") {
        Draft d;
        d.as("a").set_parameter(max, "5000", sdk::Strength::default_value);
        d.as("b").set_parameter(max, "6000", sdk::Strength::default_value);
        REQUIRE(d.conflicts().size() == 1);
        CHECK(d.conflicts()[0] ==
              "parameter pg_stat_statements.max: plugin a's default is "
              "'5000', plugin b's default is '6000'");
    }
}

TEST_CASE("a plugin's restart reasons are kept in order with its name") {
    Draft d;
    d.as("pgss").restart_needed("its library is preloaded");
    d.as("other").restart_needed("reads its file at start");
    REQUIRE(d.draft->restart_reasons().size() == 2);
    CHECK(d.draft->restart_reasons()[0].plugin == "pgss");
    CHECK(d.draft->restart_reasons()[1].reason == "reads its file at start");
}
