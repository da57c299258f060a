// Per-instance plugin options (SDK 1.2): the manifest's [options], the values' checks, the
// library (engine/operations/plugin_options), and what a plugin reads, over a fake driver.
#include <sys/stat.h>

#include <catch2/catch.hpp>
#include <fstream>
#include <sstream>

#include "engine/core/error.hpp"
#include "engine/inventory/inventory.hpp"
#include "engine/operations/instances.hpp"
#include "engine/operations/plugin_options.hpp"
#include "engine/pipeline/plugin_host.hpp"
#include "fake_driver.hpp"
#include "temp_dir.hpp"

namespace fs = std::filesystem;
using namespace pgforge;
using Catch::Contains;
using pgforge::test::FakeDriver;
using pgforge::test::TempDir;

namespace {

void write_text(const fs::path& file, const std::string& text) {
    std::ofstream(file) << text;
}

std::string read_text(const fs::path& file) {
    std::ifstream in(file);
    std::stringstream s;
    s << in.rdbuf();
    return s.str();
}

std::string manifest_error(const TempDir& dir, const std::string& options) {
    fs::path file = dir / "p.plugin";
    write_text(file, "name = p\nsdk = 1.2\nlibrary = p.so\n[options]\n" + options);
    try {
        read_plugin_manifest(file);
    } catch (const Error& e) {
        return e.what();
    }
    return "";
}

struct Site {
    TempDir dir{"options"};
    FakeDriver::Log driver;
    // The configuration is read as the instance's owner when the tests run as root.
    Site() { fs::permissions(dir.path(), fs::perms(0755)); }

    Context context(const std::string& extra = "[plugins]\nenabled = optioned\n") {
        write_text(dir / "settings.ini", "prefix = " + (dir / "prefix").string() +
                                             "\nrun_dir = " + (dir / "run").string() +
                                             "\n[postgresql]\nport_min = 47000\nport_max = "
                                             "47999\n[plugins]\npath = " PGFORGE_TEST_PLUGIN_DIR
                                             "/optioned\npath = " PGFORGE_TEST_PLUGIN_DIR
                                             "/recorder\n" +
                                             extra);
        SettingsOverrides o;
        o.settings_file = dir / "settings.ini";
        return Context(load_settings(o), std::make_unique<FakeDriver>(driver));
    }
    fs::path written(const std::string& name = "main") const {
        return dir / "prefix" / "15" / name / "optioned" / "options.txt";
    }
};

std::string usage_error(const std::function<void()>& f) {
    try {
        f();
    } catch (const Error& e) {
        CHECK(e.code() == Exit::usage);
        return e.what() + std::string(" / ") + e.hint();
    }
    return "";
}

}  // namespace

TEST_CASE("a manifest's [options]: key = type[=default]: description", "[options]") {
    TempDir dir("options-manifest");
    fs::path file = dir / "p.plugin";
    write_text(file,
               "name = p\nsdk = 1.2\nlibrary = p.so\n[options]\n"
               "stanza = string: the pgBackRest stanza: of the instance\n"
               "port = integer=09187: the exporter's port\n"
               "verbose = boolean=on\n");
    PluginManifest m = read_plugin_manifest(file);
    REQUIRE(m.options.size() == 3);
    CHECK(m.options[0] == ManifestOption{"stanza", "string",
                                         "the pgBackRest stanza: of the instance", std::nullopt});
    CHECK(m.options[1] == ManifestOption{"port", "integer", "the exporter's port", "9187"});
    CHECK(m.options[2] == ManifestOption{"verbose", "boolean", "", "true"});
    CHECK(m.option("port") == &m.options[1]);
    CHECK(m.option("nope") == nullptr);

    CHECK_THAT(manifest_error(dir, "a = float: x\n"),
               Contains("p.plugin: option a: unknown type 'float'"));
    CHECK_THAT(manifest_error(dir, "a = integer=x: x\n"),
               Contains("option a: its default: 'x' is not an integer"));
    CHECK_THAT(manifest_error(dir, "a = boolean=maybe: x\n"),
               Contains("option a: its default: 'maybe' is not a boolean"));
    CHECK_THAT(manifest_error(dir, "Bad = string: x\n"),
               Contains("option 'Bad' is not a valid key"));
    CHECK_THAT(manifest_error(dir, "a = string: x\na = string: y\n"),
               Contains("option a is there twice"));
}

TEST_CASE("the generated manifest has the [options] of pgforge_add_plugin(OPTIONS)", "[options]") {
    PluginManifest m =
        read_plugin_manifest(fs::path(PGFORGE_TEST_PLUGIN_DIR) / "optioned" / "optioned.plugin");
    CHECK(m.sdk_major == 1);
    CHECK(m.sdk_minor == PGFORGE_SDK_VERSION_MINOR);
    REQUIRE(m.options.size() == 3);
    CHECK(m.options[0] ==
          ManifestOption{"label", "string", "a label the fixture writes down", std::nullopt});
    CHECK(m.options[1] == ManifestOption{"count", "integer", "how many (default 3)", "3"});
    CHECK(m.options[2] ==
          ManifestOption{"verbose", "boolean", "whether to say more", std::nullopt});
}

TEST_CASE("option values are checked against their type and stored normalized", "[options]") {
    std::string n;
    CHECK(check_option_value("integer", "+042", n).empty());
    CHECK(n == "42");
    CHECK(check_option_value("integer", "-7", n).empty());
    CHECK(n == "-7");
    CHECK(check_option_value("integer", "4x", n) == "'4x' is not an integer");
    CHECK(check_option_value("integer", "", n) == "'' is not an integer");
    CHECK(check_option_value("integer", "99999999999999999999", n) ==
          "'99999999999999999999' is not an integer");
    CHECK(check_option_value("boolean", "Yes", n).empty());
    CHECK(n == "true");
    CHECK(check_option_value("boolean", "off", n).empty());
    CHECK(n == "false");
    CHECK_THAT(check_option_value("boolean", "2", n), Contains("is not a boolean"));
    CHECK(check_option_value("string", "prod", n).empty());
    CHECK(n == "prod");
    CHECK(check_option_value("string", "", n) == "the value is empty");
    CHECK(check_option_value("string", "a\nb", n) == "the value has a control character");
}

TEST_CASE("the library: declared, check, plan, store; refusals name plugin.key", "[options]") {
    Site site;
    Context ctx = site.context();
    auto declared = plugin_options::declared(ctx);
    REQUIRE(declared.size() == 3);
    CHECK(declared[1].plugin == "optioned");
    CHECK(declared[1].key == "count");
    CHECK(declared[1].type == "integer");
    CHECK(declared[1].default_value == "3");

    CHECK_THAT(usage_error([&] {
                   plugin_options::check(ctx, {{"optioned", {{"colour", "red"}}}});
               }),
               Contains("plugin option optioned.colour: plugin optioned declares no option "
                        "colour") &&
                   Contains("optioned.label (string), optioned.count (integer)"));
    CHECK_THAT(usage_error([&] {
                   plugin_options::check(ctx, {{"optioned", {{"count", "many"}}}});
               }),
               Contains("plugin option optioned.count: 'many' is not an integer") &&
                   Contains("give optioned.count an integer value (how many (default 3))"));
    CHECK_THAT(usage_error([&] {
                   plugin_options::check(ctx, {{"recorder", {{"x", "1"}}}});
               }),
               Contains("plugin option recorder.x: plugin recorder is not enabled"));
    CHECK_THAT(usage_error([&] {
                   plugin_options::check(ctx, {{"nosuch", {{"x", "1"}}}});
               }),
               Contains("plugin option nosuch.x: no plugin nosuch is installed"));
    CHECK_NOTHROW(plugin_options::check(ctx, {{"optioned", {{"gone", std::nullopt}}}}));

    instances::CreateOptions o;
    o.name = "main";
    o.plugin_options = {{"optioned", {{"label", "prod"}, {"verbose", "yes"}}}};
    Instance i = instances::create(ctx, o);
    // The plugin read them at the create's pre_configure, with the default of count.
    CHECK(read_text(site.written()) == "count=3\nlabel=prod\nverbose=true\n");
    CHECK(plugin_options::values(ctx, i) ==
          plugin_options::Values{{"optioned", {{"label", "prod"}, {"verbose", "true"}}}});

    plugin_options::Wanted wanted = {
        {"optioned", {{"label", "prod"}, {"count", "+5"}, {"verbose", std::nullopt}}}};
    auto changes = plugin_options::plan(ctx, i, wanted);
    REQUIRE(changes.size() == 2);
    CHECK(changes[0] == plugin_options::OptionChange{"optioned.count", std::nullopt, "5"});
    CHECK(changes[1] == plugin_options::OptionChange{"optioned.verbose", "true", std::nullopt});
    // plan() changes nothing.
    CHECK(plugin_options::values(ctx, i).at("optioned").count("verbose") == 1);

    const auto journal_before = ctx.inventory().journal(i.qualified_name()).size();
    CHECK(plugin_options::store(ctx, i, wanted) == changes);
    CHECK(plugin_options::values(ctx, i) ==
          plugin_options::Values{{"optioned", {{"label", "prod"}, {"count", "5"}}}});
    auto journal = ctx.inventory().journal(i.qualified_name());
    REQUIRE(journal.size() == journal_before + 1);
    CHECK(journal[0].operation == "options");
    CHECK(journal[0].outcome == "ok");
    auto steps = ctx.inventory().steps(journal[0].id);
    REQUIRE(steps.size() == 2);
    CHECK(steps[0].name == "option optioned.count");
    CHECK(steps[0].message == "(unset) -> '5'");

    // The same again: nothing to change, nothing journaled.
    CHECK(plugin_options::store(ctx, i, wanted).empty());
    CHECK(ctx.inventory().journal(i.qualified_name()).size() == journal_before + 1);

    // A configure afterwards hands the plugin the new values.
    instances::reload(ctx, i);
    CHECK(read_text(site.written()) == "count=5\nlabel=prod\n");

    // A bad value stores nothing.
    CHECK_THAT(usage_error([&] {
                   plugin_options::store(ctx, i, {{"optioned", {{"label", "x"}, {"count", "y"}}}});
               }),
               Contains("optioned.count"));
    CHECK(plugin_options::values(ctx, i).at("optioned").at("label") == "prod");

    // They go with the instance.
    instances::drop(ctx, i);
    CHECK(ctx.inventory().plugin_options(i).empty());
}

TEST_CASE("create refuses a bad option before it makes anything", "[options]") {
    Site site;
    Context ctx = site.context();
    instances::CreateOptions o;
    o.name = "main";
    o.plugin_options = {{"optioned", {{"count", "lots"}}}};
    CHECK_THAT(usage_error([&] { instances::create(ctx, o); }),
               Contains("plugin option optioned.count: 'lots' is not an integer"));
    CHECK_FALSE(instances::exists(ctx, "main"));
    CHECK_FALSE(fs::exists(site.dir / "prefix" / "15" / "main"));
    CHECK(ctx.inventory().journal().empty());
}

TEST_CASE("instance create's --option is PLUGIN.KEY=VALUE", "[options]") {
    plugin_options::Values v;
    plugin_options::parse_assignment("backup.stanza=a=b", v);
    CHECK(v.at("backup").at("stanza") == "a=b");
    for (const char* bad : {"stanza=prod", ".stanza=x", "backup.=x", "backup.stanza", "a=b.c"})
        CHECK_THAT(usage_error([&] { plugin_options::parse_assignment(bad, v); }),
                   Contains("is not PLUGIN.KEY=VALUE"));
}
