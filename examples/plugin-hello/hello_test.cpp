// The unit test of the hello plugin: its hooks and its command run against the SDK's testing kit
// (pgforge/testing.hpp), no server needed. Plain checks, no test framework: the kit works with
// any.
#include <pgforge/testing.hpp>

#include <cstdio>
#include <string>

using namespace pgforge;

namespace {

int failures = 0;

void check(bool ok, const char* what) {
    if (!ok) {
        std::fprintf(stderr, "FAILED: %s\n", what);
        ++failures;
    }
}

}  // namespace

int main() {
    auto plugin = testing::create_plugin();
    check(plugin != nullptr, "the plugin is made through its descriptor");
    check(testing::plugin_name() == "hello", "the descriptor names it hello");

    // pre_configure: the greeting file, with the greeting of the settings.
    {
        testing::FakeHookContext ctx(sdk::HookPoint::pre_configure, "create");
        ctx.settings_values["greeting"] = "bonjour";
        check(!plugin->on_hook(ctx).refused(), "pre_configure proceeds");
        const auto& files = ctx.fake_configuration.files_added;
        check(files.size() == 1, "one file is contributed");
        check(!files.empty() && files[0].relative_name == "greeting", "named greeting");
        check(!files.empty() && files[0].content == "bonjour, 15/main\n",
              "holding the greeting and the instance");
        check(!files.empty() && files[0].mode == 0644, "readable by all");
    }
    // preload: the library added to shared_preload_libraries, as a list item.
    {
        testing::FakeHookContext ctx(sdk::HookPoint::pre_configure, "create");
        ctx.settings_values["preload"] = "pg_stat_statements";
        check(!plugin->on_hook(ctx).refused(), "pre_configure with preload proceeds");
        const auto& added = ctx.fake_configuration.list_added;
        check(added.count("shared_preload_libraries") &&
                  added.at("shared_preload_libraries") ==
                      std::vector<std::string>{"pg_stat_statements"},
              "the library is added to shared_preload_libraries");
        check(ctx.fake_configuration.parameters_set.empty(), "no whole value is set");
    }
    // An engine without Contributions (withheld, as an SDK 1.0 engine): refused, saying why.
    {
        testing::FakeHookContext ctx(sdk::HookPoint::pre_configure, "create");
        ctx.settings_values["preload"] = "pg_stat_statements";
        ctx.fake_configuration.withhold<sdk::Contributions>();
        sdk::Result r = plugin->on_hook(ctx);
        check(r.refused() && r.message.find("SDK 1.1") != std::string::npos,
              "preload without Contributions is refused");
    }
    // Without a greeting setting: hello.
    {
        testing::FakeHookContext ctx(sdk::HookPoint::pre_configure);
        ctx.fake_instance.name = "other";
        plugin->on_hook(ctx);
        check(!ctx.fake_configuration.files_added.empty() &&
                  ctx.fake_configuration.files_added[0].content == "hello, 15/other\n",
              "the default greeting is hello");
    }
    // post_start: a line in the log with the port.
    {
        testing::FakeHookContext ctx(sdk::HookPoint::post_start, "start");
        ctx.fake_instance.port = 6543;
        check(!plugin->on_hook(ctx).refused(), "post_start proceeds");
        check(ctx.logged("15/main is up on port 6543", sdk::LogLevel::info),
              "post_start logs the port");
        check(ctx.fake_configuration.files_added.empty(), "nothing contributed at post_start");
    }
    // hello greet: the server's version from a query.
    const sdk::Command greet = plugin->commands().at(0);
    {
        testing::FakeCommandContext ctx;
        ctx.script_query("server_version_num", testing::rows({"v"}, {{"150004"}}));
        check(plugin->run_command(greet, ctx) == 0, "greet succeeds");
        check(ctx.out_text == "hello, 15/main (server 150004)\n", "greet prints the version");
        check(ctx.queried("current_setting") != nullptr, "greet asks the server");
    }
    {
        testing::FakeCommandContext ctx;
        ctx.script_query("server_version_num", testing::query_error("the server is gone"));
        check(plugin->run_command(greet, ctx) == 1, "greet fails when the query fails");
        check(ctx.err_text == "hello: the server is gone\n", "saying why");
        check(ctx.out_text.empty(), "printing no result");
    }
    if (failures) {
        std::fprintf(stderr, "%d check(s) failed\n", failures);
        return 1;
    }
    std::printf("hello_test: ok\n");
    return 0;
}
