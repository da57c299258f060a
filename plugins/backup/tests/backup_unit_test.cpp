// The backup plugin without a server or pgBackRest (pgforge/testing.hpp): what it contributes at
// configure, how it reads its settings, and how it acts on what pgBackRest answers (scripted).
// tests/backup_test.cpp runs it with pgBackRest on real instances.
#include <pgforge/testing.hpp>

#include <catch2/catch.hpp>
#include <cstdlib>
#include <fstream>

namespace fs = std::filesystem;
using namespace pgforge;
using Catch::Contains;

namespace {

// A private directory for the instance and the repository, gone with the object.
struct Scratch {
    fs::path dir;
    Scratch() {
        std::string name = "/tmp/pgforge-backup-unit-XXXXXX";
        REQUIRE(::mkdtemp(name.data()));
        dir = name;
    }
    ~Scratch() { fs::remove_all(dir); }
};

// Settings every test starts from: a pgBackRest that exists (any executable does: the kit
// answers the runs).
template <class Ctx>
void settings(Ctx& ctx, const fs::path& repository = "/srv/backups") {
    ctx.settings_values["pgbackrest"] = "/bin/true";
    ctx.settings_values["repository"] = repository.string();
}

// What `pgbackrest info --output=json` prints for a stanza with these backup labels.
std::string info_json(const std::string& stanza, const std::vector<std::string>& labels) {
    std::string backups;
    for (const auto& l : labels)
        backups += std::string(backups.empty() ? "" : ",") + R"({"label":")" + l +
                   R"(","type":"full","timestamp":{"start":1700000000,"stop":1700000060},)" +
                   R"("info":{"size":1048576,"delta":1048576}})";
    return R"([{"name":")" + stanza + R"(","backup":[)" + backups + "]}]";
}

bool is_info(const std::vector<std::string>& argv) {
    return argv.size() > 3 && argv[3] == "info";
}

}  // namespace

TEST_CASE("configure turns archiving on through the instance's own pgBackRest file",
          "[unit][backup]") {
    testing::FakeHookContext ctx(sdk::HookPoint::pre_configure, "create");
    settings(ctx);
    auto plugin = testing::create_plugin();
    REQUIRE(testing::plugin_name() == "backup");
    REQUIRE_FALSE(plugin->setup(ctx).refused());
    REQUIRE_FALSE(plugin->on_hook(ctx).refused());

    const auto& c = ctx.fake_configuration;
    CHECK(c.parameters_set.at("archive_mode") == "on");
    CHECK(c.parameters_set.at("wal_level") == "replica");
    CHECK(c.parameters_set.at("archive_command") ==
          "/bin/true --config=/var/lib/pgforge/15/main/backup/pgbackrest.conf --stanza=15-main "
          "archive-push %p");
    REQUIRE(c.files_added.size() == 1);
    CHECK(c.files_added[0].relative_name == "pgbackrest.conf");
    CHECK(c.files_added[0].mode == 0600);
    const std::string& conf = c.files_added[0].content;
    CHECK_THAT(conf, Contains("repo1-path=/srv/backups/15-main\n"));
    CHECK_THAT(conf, Contains("\n[15-main]\npg1-path=/var/lib/pgforge/15/main/data\n"));
    CHECK_THAT(conf, Contains("pg1-port=5432\n"));
    CHECK(ctx.state_values.at("stanza") == "15-main");
    CHECK(ctx.state_values.at("repository") == "/srv/backups/15-main");

    SECTION("wal_level logical and archive_mode always from elsewhere are kept") {
        testing::FakeHookContext again(sdk::HookPoint::pre_configure, "configure");
        settings(again);
        again.fake_configuration.parameters_in_files = {{"wal_level", "logical"},
                                                        {"archive_mode", "always"}};
        REQUIRE_FALSE(plugin->on_hook(again).refused());
        CHECK(again.fake_configuration.parameters_set.count("wal_level") == 0);
        CHECK(again.fake_configuration.parameters_set.at("archive_mode") == "always");
    }
    SECTION("a stanza named in the settings; a % in a path quoted and doubled for the server") {
        testing::FakeHookContext named(sdk::HookPoint::pre_configure, "create");
        settings(named);
        named.settings_values["stanza.15/main"] = "prod";
        named.fake_instance.base_dir = "/srv/100%/15/main";
        REQUIRE_FALSE(plugin->on_hook(named).refused());
        CHECK(named.state_values.at("stanza") == "prod");
        CHECK(named.fake_configuration.parameters_set.at("archive_command") ==
              "/bin/true '--config=/srv/100%%/15/main/backup/pgbackrest.conf' --stanza=prod "
              "archive-push %p");
    }
    SECTION("the stanza chosen at the first configure is kept") {
        testing::FakeHookContext later(sdk::HookPoint::pre_configure, "configure");
        settings(later);
        later.state_values = ctx.state_values;
        later.settings_values["stanza.15/main"] = "renamed";
        REQUIRE_FALSE(plugin->on_hook(later).refused());
        CHECK(later.state_values.at("stanza") == "15-main");
    }
}

TEST_CASE("the instance's option backup.stanza (SDK 1.2) names the stanza, before the settings",
          "[unit][backup]") {
    auto plugin = testing::create_plugin();
    testing::FakeHookContext ctx(sdk::HookPoint::pre_configure, "create");
    settings(ctx);
    ctx.settings_values["stanza.15/main"] = "from-settings";
    ctx.instance_options.values["stanza"] = "prod";
    REQUIRE_FALSE(plugin->setup(ctx).refused());
    REQUIRE_FALSE(plugin->on_hook(ctx).refused());
    CHECK(ctx.state_values.at("stanza") == "prod");
    CHECK(ctx.state_values.at("repository") == "/srv/backups/prod");
    CHECK_THAT(ctx.fake_configuration.parameters_set.at("archive_command"),
               Contains("--stanza=prod archive-push"));

    SECTION("an engine without options (SDK 1.1): the settings decide") {
        testing::FakeHookContext old(sdk::HookPoint::pre_configure, "create");
        settings(old);
        old.settings_values["stanza.15/main"] = "from-settings";
        old.instance_options.values["stanza"] = "prod";
        old.withhold<sdk::InstanceOptions>();
        REQUIRE_FALSE(plugin->on_hook(old).refused());
        CHECK(old.state_values.at("stanza") == "from-settings");
    }
    SECTION("the same option later: kept; another stanza: refused, naming both") {
        testing::FakeHookContext later(sdk::HookPoint::pre_configure, "configure");
        settings(later);
        later.state_values = ctx.state_values;
        later.instance_options.values["stanza"] = "prod";
        REQUIRE_FALSE(plugin->on_hook(later).refused());
        later.instance_options.values["stanza"] = "other";
        auto r = plugin->on_hook(later);
        REQUIRE(r.refused());
        CHECK_THAT(r.message, Contains("has the stanza 'prod'") && Contains("not 'other'"));
        CHECK(later.state_values.at("stanza") == "prod");
    }
    SECTION("an invalid stanza is refused") {
        testing::FakeHookContext bad(sdk::HookPoint::pre_configure, "create");
        settings(bad);
        bad.instance_options.values["stanza"] = "a/b";
        CHECK_THAT(plugin->on_hook(bad).message, Contains("stanza 'a/b'"));
    }
}

TEST_CASE("bad settings leave the plugin out with a message naming the key", "[unit][backup]") {
    auto plugin = testing::create_plugin();
    auto refusal = [&](const std::string& key, const std::string& value) {
        testing::FakeContext ctx;
        settings(ctx);
        ctx.settings_values[key] = value;
        return plugin->setup(ctx);
    };
    CHECK_THAT(refusal("retention_full", "0").message,
               Contains("[backup] retention_full must be a count of backups"));
    CHECK_THAT(refusal("repository", "backups").message,
               Contains("[backup] repository must be an absolute path, not 'backups'"));
    CHECK_THAT(refusal("compression", "rar").message,
               Contains("compression must be none, gz, bz2, lz4 or zst"));
    CHECK_THAT(refusal("stanza.15/main", "a/b").message, Contains("stanza 'a/b'"));
    CHECK_THAT(refusal("colour", "blue").message, Contains("unknown key 'colour'"));
    CHECK_THAT(refusal("pgbackrest", "/nonexistent/pgbackrest").message,
               Contains("is not installed or not executable"));
    testing::FakeContext fine;
    settings(fine);
    CHECK_FALSE(plugin->setup(fine).refused());
}

TEST_CASE("drop is refused while backups exist, unless --purge-backups", "[unit][backup]") {
    testing::FakeHookContext ctx(sdk::HookPoint::pre_drop, "drop");
    settings(ctx);
    ctx.state_values = {
        {"stanza", "15-main"}, {"repository", "/srv/backups/15-main"}, {"stanza_created", "1"}};
    ctx.on_run = [](const std::vector<std::string>& argv, const sdk::RunOptions&) {
        return is_info(argv) ? testing::exited(0, info_json("15-main", {"20240101-000000F"}))
                             : testing::exited(0);
    };
    auto plugin = testing::create_plugin();

    sdk::Result r = plugin->on_hook(ctx);
    REQUIRE(r.refused());
    CHECK_THAT(r.message, Contains("has 1 backup(s) in /srv/backups/15-main (newest "
                                   "20240101-000000F)"));
    CHECK_THAT(r.message, Contains("pgforge instance drop 15/main --purge-backups"));
    const testing::Run* info = ctx.ran({"/bin/true",
                                        "--config=/var/lib/pgforge/15/main/backup/"
                                        "pgbackrest.conf",
                                        "--stanza=15-main", "info"});
    REQUIRE(info);
    CHECK(info->options.timeout > 0);

    SECTION("with the flag it proceeds without asking pgBackRest") {
        testing::FakeHookContext purge(sdk::HookPoint::pre_drop, "drop");
        settings(purge);
        purge.state_values = ctx.state_values;
        purge.flags_given = {"purge-backups"};
        CHECK_FALSE(plugin->on_hook(purge).refused());
        CHECK(purge.runs.empty());
    }
    SECTION("no backups: it proceeds") {
        ctx.on_run = [](const std::vector<std::string>& argv, const sdk::RunOptions&) {
            return testing::exited(0, is_info(argv) ? info_json("15-main", {}) : "");
        };
        CHECK_FALSE(plugin->on_hook(ctx).refused());
    }
    SECTION("pgBackRest failing: refused, in its words") {
        ctx.on_run = [](const std::vector<std::string>&, const sdk::RunOptions&) {
            return testing::exited(56, "", "ERROR: [056]: unable to find primary cluster\n");
        };
        sdk::Result failed = plugin->on_hook(ctx);
        REQUIRE(failed.refused());
        CHECK_THAT(failed.message, Contains("unable to find primary cluster"));
    }
}

TEST_CASE("the first start creates the stanza; a refusal by pgBackRest leaves no repository",
          "[unit][backup]") {
    Scratch s;
    testing::FakeHookContext ctx(sdk::HookPoint::post_start, "create");
    ctx.fake_instance.place_under(s.dir / "prefix");
    settings(ctx, s.dir / "repo");
    const fs::path conf = ctx.fake_instance.base_dir / "backup" / "pgbackrest.conf";
    fs::create_directories(conf.parent_path());
    std::ofstream(conf) << "[global]\n";
    ctx.state_values = {{"stanza", "15-main"}, {"repository", (s.dir / "repo/15-main").string()}};
    ctx.write_to_disk = true;
    auto plugin = testing::create_plugin();

    SECTION("created and checked: recorded, and undone if the operation fails later") {
        REQUIRE_FALSE(plugin->on_hook(ctx).refused());
        REQUIRE(ctx.runs.size() == 2);
        CHECK(ctx.runs[0].argv.at(3) == "stanza-create");
        CHECK(ctx.runs[1].argv.at(3) == "check");
        CHECK(ctx.state_values.at("stanza_created") == "1");
        CHECK(fs::is_directory(s.dir / "repo/15-main"));
        CHECK(ctx.directories_made.count(ctx.fake_instance.base_dir / "backup" / "spool"));
        REQUIRE(ctx.undos.size() == 1);
        CHECK(ctx.undos[0].what == "stanza 15-main");
        testing::FakeContext undo;
        undo.state_values = ctx.state_values;
        CHECK(ctx.run_undos(&undo) == 0);
        CHECK_FALSE(fs::exists(s.dir / "repo/15-main"));
        CHECK(undo.state_values.count("stanza_created") == 0);
    }
    SECTION("stanza-create refused") {
        ctx.script_run({"/bin/true"}, testing::exited(1, "",
                                                      "ERROR: [028]: backup and archive "
                                                      "info files exist but do not match"));
        sdk::Result r = plugin->on_hook(ctx);
        REQUIRE(r.refused());
        CHECK_THAT(r.message, Contains("pgbackrest stanza-create failed: ERROR: [028]"));
        CHECK(ctx.runs.size() == 1);
        CHECK(ctx.state_values.count("stanza_created") == 0);
        CHECK_FALSE(fs::exists(s.dir / "repo/15-main"));
        CHECK(ctx.undos.empty());
    }
}

TEST_CASE("post_promote (SDK 1.3): the promoted instance's stanza is made or checked",
          "[unit][backup]") {
    Scratch s;
    testing::FakeHookContext ctx(sdk::HookPoint::post_promote, "promote");
    ctx.fake_instance.place_under(s.dir / "prefix");
    settings(ctx, s.dir / "repo");
    const fs::path conf = ctx.fake_instance.base_dir / "backup" / "pgbackrest.conf";
    fs::create_directories(conf.parent_path());
    std::ofstream(conf) << "[global]\n";
    ctx.state_values = {{"stanza", "15-main"}, {"repository", (s.dir / "repo/15-main").string()}};
    ctx.write_to_disk = true;
    auto plugin = testing::create_plugin();

    SECTION("a standby made no stanza: stanza-create, then check") {
        REQUIRE_FALSE(plugin->on_hook(ctx).refused());
        REQUIRE(ctx.runs.size() == 2);
        CHECK(ctx.runs[0].argv.at(3) == "stanza-create");
        CHECK(ctx.runs[1].argv.at(3) == "check");
        CHECK(ctx.state_values.at("stanza_created") == "1");
    }
    SECTION("its stanza exists: check alone; a failed check refuses, naming it") {
        ctx.state_values["stanza_created"] = "1";
        REQUIRE_FALSE(plugin->on_hook(ctx).refused());
        REQUIRE(ctx.runs.size() == 1);
        CHECK(ctx.runs[0].argv.at(3) == "check");
        ctx.script_run({"/bin/true"}, testing::exited(1, "",
                                                      "ERROR: [082]: WAL segment was not "
                                                      "archived before the timeout"));
        sdk::Result r = plugin->on_hook(ctx);
        REQUIRE(r.refused());
        CHECK_THAT(r.message, Contains("check (WAL archiving) failed after the promotion"));
        CHECK_THAT(r.message, Contains("ERROR: [082]"));
    }
    SECTION("a failed promotion: nothing run") {
        ctx.step_outcome = {false, "did not finish its promotion"};
        REQUIRE_FALSE(plugin->on_hook(ctx).refused());
        CHECK(ctx.runs.empty());
    }
}
