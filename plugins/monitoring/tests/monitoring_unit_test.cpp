// The monitoring plugin without a server (pgforge/testing.hpp): what it contributes at configure
// and how it reads its settings. tests/monitoring_test.cpp runs the exporter on real instances.
#include <pgforge/testing.hpp>

#include <catch2/catch.hpp>

using namespace pgforge;
using Catch::Contains;

TEST_CASE("configure lets the owner log in as the monitoring role, by peer through a map",
          "[unit][monitoring]") {
    testing::FakeHookContext ctx(sdk::HookPoint::pre_configure, "create");
    ctx.fake_instance.owner = "pgowner";
    auto plugin = testing::create_plugin();
    REQUIRE(testing::plugin_name() == "monitoring");
    REQUIRE_FALSE(plugin->on_hook(ctx).refused());
    const auto& c = ctx.fake_configuration;
    REQUIRE(c.hba_text_added.size() == 1);
    CHECK(c.hba_text_added[0].text == "local all pgforge_monitor peer map=pgforge_monitor");
    CHECK(c.hba_text_added[0].place == sdk::HbaPlace::first);
    REQUIRE(c.ident_mappings.size() == 1);
    CHECK(c.ident_mappings[0].map == "pgforge_monitor");
    CHECK(c.ident_mappings[0].system_user == "pgowner");
    CHECK(c.ident_mappings[0].database_user == "pgforge_monitor");
    CHECK(c.parameters_set.empty());
    CHECK(ctx.spawns.empty());  // the exporter starts with the server, not at configure

    SECTION("another role from the settings") {
        testing::FakeHookContext other(sdk::HookPoint::pre_configure, "configure");
        other.settings_values["role"] = "metrics";
        REQUIRE_FALSE(plugin->on_hook(other).refused());
        CHECK(other.fake_configuration.hba_text_added.at(0).text ==
              "local all metrics peer map=pgforge_monitor");
        CHECK(other.fake_configuration.ident_mappings.at(0).database_user == "metrics");
    }
}

TEST_CASE("wrong settings leave the plugin out, naming the key and what it takes",
          "[unit][monitoring]") {
    auto plugin = testing::create_plugin();
    auto refusal = [&](std::map<std::string, std::string> settings) {
        testing::FakeContext ctx;
        ctx.settings_values = std::move(settings);
        return plugin->setup(ctx);
    };
    CHECK_THAT(refusal({{"role", "Monitor"}}).message,
               Contains("[monitoring] role = 'Monitor' is not a plain role name"));
    CHECK_THAT(refusal({{"port_min", "80"}}).message,
               Contains("[monitoring] port_min = '80' is not a port"));
    CHECK_THAT(refusal({{"port_min", "9300"}, {"port_max", "9299"}}).message,
               Contains("port_min (9300) is above port_max (9299)"));
    CHECK_THAT(refusal({{"exporter", "postgres_exporter"}}).message,
               Contains("is not an absolute path"));
    CHECK_THAT(refusal({{"extra_args", "--log.level=debug --web.listen-address=:9187"}}).message,
               Contains("extra_args may not set --web.listen-address=:9187"));
    CHECK_THAT(refusal({{"stop_timeout", "0"}}).message, Contains("is not a duration"));
    CHECK_THAT(refusal({{"colour", "blue"}}).message, Contains("has no setting 'colour'"));
    CHECK_FALSE(
        refusal({{"role", "metrics"}, {"port_min", "9400"}, {"port_max", "9410"}}).refused());

    SECTION("a hook with wrong settings refuses too, before anything") {
        testing::FakeHookContext ctx(sdk::HookPoint::pre_configure);
        ctx.settings_values["port_max"] = "70000";
        sdk::Result r = plugin->on_hook(ctx);
        REQUIRE(r.refused());
        CHECK_THAT(r.message, Contains("port_max"));
        CHECK(ctx.fake_configuration.hba_text_added.empty());
    }
}

TEST_CASE("instance get before the first start, and bad arguments of monitoring status",
          "[unit][monitoring]") {
    auto plugin = testing::create_plugin();
    testing::FakeContext ctx;
    auto fields = plugin->describe(ctx);
    REQUIRE(fields.size() == 1);
    CHECK(fields[0].key == "exporter");
    CHECK(fields[0].value == "not started yet (it starts with the instance)");

    testing::FakeCommandContext status({"--verbose"});
    CHECK(plugin->run_command(plugin->commands().at(0), status) == 2);
    CHECK_THAT(status.err_text, Contains("unexpected argument '--verbose'"));
    CHECK(status.out_text.empty());
}
