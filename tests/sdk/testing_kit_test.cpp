// The testing kit itself (pgforge/testing.hpp): what the fakes record and answer, and sdk::find<T>
// answered by the kit's host table for a plugin compiled into the test, as the engine would.
#include <pgforge/testing.hpp>

#include <catch2/catch.hpp>

using namespace pgforge;

namespace {

// A plugin that asks for the versioned interfaces and says what it found.
class Prober final : public sdk::Plugin {
  public:
    sdk::Result on_hook(sdk::HookContext& ctx) override {
        auto* engine = sdk::find<sdk::EngineInfo>(ctx);
        ctx.log(sdk::LogLevel::info, "engine " + (engine ? engine->version() : "none"));
        if (auto* helpers = sdk::find<sdk::Helpers>(ctx)) {
            sdk::HelperSpec spec;
            spec.argv = {"/usr/bin/true"};
            spec.log_file = "/nonexistent/daemon.log";
            spec.port = helpers->reserve_port("daemon", 9100, 9199);
            auto r = helpers->ensure("daemon", spec, false);
            ctx.log(sdk::LogLevel::info, std::string("helper ") + (r.started ? "started" : "kept") +
                                             " on " + std::to_string(spec.port));
        }
        auto* file = sdk::find<sdk::HbaFileReader>(ctx);
        ctx.log(sdk::LogLevel::info, std::string("file ") + (file ? "yes" : "no"));
        if (auto* c = ctx.configuration()) {
            auto* hba = sdk::find<sdk::HbaConfiguration>(*c);
            ctx.log(sdk::LogLevel::info, std::string("hba ") + (hba ? "yes" : "no"));
            if (hba) {
                std::string error;
                sdk::HbaRecord r;
                r.type = "local";
                r.databases = {{"all"}};
                r.users = {{"all"}};
                r.method = "peer";
                if (!hba->add_hba_record(r, sdk::HbaPlace::last, error))
                    return sdk::Result::refuse(error);
            }
            if (auto* more = sdk::find<sdk::Contributions>(*c)) {
                more->add_to_list("shared_preload_libraries", "pg_stat_statements");
                more->set_parameter("pg_stat_statements.max", "5000", sdk::Strength::default_value);
                more->restart_needed("the library is preloaded");
            }
        }
        return sdk::Result::proceed();
    }
};

}  // namespace

PGFORGE_PLUGIN(Prober, "prober", "0.1.0");

TEST_CASE("the plugin is made through its descriptor and finds what the fakes offer",
          "[unit][testing-kit]") {
    auto plugin = testing::create_plugin();
    REQUIRE(plugin);
    CHECK(testing::plugin_name() == "prober");
    CHECK(testing::plugin_version() == "0.1.0");

    testing::FakeHookContext ctx(sdk::HookPoint::pre_configure);
    ctx.engine_info.engine_version = "9.9.9";
    REQUIRE_FALSE(plugin->on_hook(ctx).refused());
    CHECK(ctx.logged("engine 9.9.9"));
    CHECK(ctx.logged("file yes"));
    CHECK(ctx.logged("hba yes"));
    REQUIRE(ctx.fake_configuration.hba_added.size() == 1);
    CHECK(ctx.fake_configuration.hba_added[0].place == sdk::HbaPlace::last);
    const auto& cfg = ctx.fake_configuration;
    CHECK(cfg.list_added.at("shared_preload_libraries") ==
          std::vector<std::string>{"pg_stat_statements"});
    CHECK(cfg.parameters_with_strength.at("pg_stat_statements.max").second ==
          sdk::Strength::default_value);
    CHECK(cfg.restart_reasons == std::vector<std::string>{"the library is preloaded"});
    CHECK(ctx.logged("helper started on 9100"));
    REQUIRE(ctx.helpers.ensured.size() == 1);
    CHECK(ctx.helpers.status("daemon").running);
    // Asked again with the same spec, the helper is left as it runs.
    REQUIRE_FALSE(plugin->on_hook(ctx).refused());
    CHECK(ctx.logged("helper kept on 9100"));

    SECTION("withheld, or without an instance, find answers nullptr") {
        testing::FakeHookContext bare(sdk::HookPoint::pre_configure);
        bare.has_instance = false;
        bare.fake_configuration.withhold<sdk::HbaConfiguration>();
        REQUIRE_FALSE(plugin->on_hook(bare).refused());
        CHECK(bare.logged("file no"));
        CHECK(bare.logged("hba no"));
        CHECK(bare.logged("engine 0.0.0-testing"));
        CHECK(bare.fake_configuration.hba_added.empty());
    }
    SECTION("a record the engine would refuse is refused") {
        testing::FakeHookContext strict(sdk::HookPoint::pre_configure);
        strict.fake_configuration.check_hba_record = [](const sdk::HbaRecord&) {
            return std::string("no local records here");
        };
        sdk::Result r = plugin->on_hook(strict);
        REQUIRE(r.refused());
        CHECK(r.message == "no local records here");
        CHECK(strict.fake_configuration.problems.size() == 1);
    }
}

TEST_CASE("an object gone is not found any more", "[unit][testing-kit]") {
    const void* address;
    {
        testing::FakeContext ctx;
        address = static_cast<const sdk::Context*>(&ctx);
        CHECK(testing::find_interface(address, sdk::EngineInfo::interface_name,
                                      sdk::EngineInfo::interface_version));
        CHECK_FALSE(testing::find_interface(address, sdk::EngineInfo::interface_name, 2));
        CHECK_FALSE(testing::find_interface(address, "pgforge.nothing", 1));
    }
    CHECK_FALSE(testing::find_interface(address, sdk::EngineInfo::interface_name,
                                        sdk::EngineInfo::interface_version));
}

TEST_CASE("pg_hba.conf records are renumbered, text contributions kept in place, duplicates once",
          "[unit][testing-kit]") {
    testing::FakeConfiguration c;
    c.set_hba({testing::hba_record("local", {"all"}, {"all"}, "", "peer"),
               testing::hba_record("host", {"\"all\""}, {"+admins"}, "10.0.0.0/8", "md5")});
    sdk::HbaConfiguration& hba = c;
    sdk::Configuration& conf = c;
    conf.add_hba_record("host all all ::1/128 trust", sdk::HbaPlace::first);
    std::string error;
    CHECK(hba.add_hba_record(testing::hba_record("local", {"all"}, {"all"}, "", "peer"),
                             sdk::HbaPlace::first, error));
    CHECK(c.hba_added.empty());  // already there
    auto records = hba.hba_records();
    REQUIRE(records.size() == 2);
    CHECK(records[0].line == 2);
    CHECK(records[1].line == 3);
    CHECK(records[1].databases.at(0) == sdk::HbaName{"all", true});
    CHECK(conf.hba_text() ==
          "host all all ::1/128 trust\nlocal all all peer\nhost \"all\" +admins 10.0.0.0/8 md5\n");
}

TEST_CASE("programs and queries answer as scripted; the rest is recorded", "[unit][testing-kit]") {
    testing::FakeCommandContext ctx({"--x"});
    ctx.script_run({"pg_ctl", "status"}, testing::exited(3, "no server running"));
    ctx.script_query("FROM pg_roles", testing::rows({"rolname"}, {{"a"}, {std::nullopt}}));
    sdk::CommandContext& c = ctx;
    CHECK(c.run({"pg_ctl", "status", "-D", "x"}, {}).exit_code == 3);
    CHECK(c.run({"pg_ctl", "start"}, {}).ok());
    CHECK(c.query("SELECT rolname FROM pg_roles").rows.size() == 2);
    CHECK(c.query("SELECT 1").ok);
    CHECK(ctx.ran({"pg_ctl", "start"}));
    CHECK_FALSE(ctx.ran({"psql"}));
    CHECK(ctx.queried("SELECT 1"));
    CHECK(c.reserve_port(9000, 9100) == 9000);
    ctx.free_port = 9050;
    CHECK(c.reserve_port(9000, 9100) == 9000);  // the same port on later calls
    CHECK(c.quote_identifier("a\"b") == "\"a\"\"b\"");
    CHECK(c.quote_literal("it's") == "'it''s'");
    c.out("x");
    c.err("y");
    CHECK(ctx.out_text == "x");
    CHECK(ctx.err_text == "y");
    CHECK(c.args() == std::vector<std::string>{"--x"});

    testing::FakeInstance i;
    i.port = 6000;
    testing::FakeInstance copy = i;
    i.port = 7000;
    CHECK(copy.view().port() == 6000);
    CHECK(i.view().port() == 7000);
}
