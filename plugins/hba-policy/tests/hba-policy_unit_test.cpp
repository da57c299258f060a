// The hba-policy plugin without a server (pgforge/testing.hpp): the records it contributes at
// configure, what it refuses at configure and start, and what `hba check` reports, from
// pg_hba.conf records as the engine gives them. tests/hba-policy_test.cpp runs the same plugin on
// real instances.
#include <pgforge/testing.hpp>

#include <catch2/catch.hpp>
#include <cstdlib>
#include <fstream>
#include <nlohmann/json.hpp>

namespace fs = std::filesystem;
using namespace pgforge;
using Catch::Contains;
using testing::hba_record;
using json = nlohmann::json;

namespace {

const char* kPolicy = R"(# the office policy
[local]
users = ${superuser}
method = peer

[host office]
networks = 10.0.0.0/8, 192.168.10.0/24

[replication]
hosts = 10.1.2.3
users = replicator

[never]
trust = host
password = host
md5 = all
open = reject-only
)";

// A private directory holding the policy file, gone with the object.
struct PolicyFile {
    fs::path dir;
    fs::path file;
    explicit PolicyFile(const std::string& text) {
        std::string name = "/tmp/pgforge-hba-policy-XXXXXX";
        REQUIRE(::mkdtemp(name.data()));
        dir = name;
        file = dir / "policy.ini";
        std::ofstream(file) << text;
        fs::permissions(file, fs::perms(0644));
    }
    ~PolicyFile() { fs::remove_all(dir); }
};

// What `instance create` writes before plugins contribute (share/pg_hba.conf).
std::vector<sdk::HbaRecord> engine_file() {
    return {hba_record("local", {"all"}, {"all"}, "", "peer", {{"map", "pgforge"}}),
            hba_record("host", {"all"}, {"all"}, "127.0.0.1/32", "scram-sha-256"),
            hba_record("host", {"all"}, {"all"}, "::1/128", "scram-sha-256")};
}

std::vector<std::string> lines_of(const std::vector<sdk::HbaRecord>& records) {
    std::vector<std::string> out;
    for (const auto& r : records) out.push_back(testing::hba_line(r));
    return out;
}

// A hook context of the plugin with `policy` set in its settings.
template <class Ctx>
void use(Ctx& ctx, const PolicyFile& p) {
    ctx.settings_values["policy"] = p.file.string();
}

}  // namespace

TEST_CASE("create adds the required records first, in the policy's order, as records",
          "[unit][hba-policy]") {
    PolicyFile p(kPolicy);
    testing::FakeHookContext ctx(sdk::HookPoint::pre_configure, "create");
    use(ctx, p);
    ctx.fake_configuration.set_hba(engine_file());
    auto plugin = testing::create_plugin();
    REQUIRE(plugin);
    REQUIRE(testing::plugin_name() == "hba-policy");
    REQUIRE_FALSE(plugin->setup(ctx).refused());

    sdk::Result r = plugin->on_hook(ctx);
    INFO(r.message);
    REQUIRE_FALSE(r.refused());
    const auto& c = ctx.fake_configuration;
    CHECK(c.problems.empty());
    CHECK(c.hba_text_added.empty());  // records, not text
    // The engine's "local all all peer map=pgforge" grants [local]: no record of its own.
    CHECK(lines_of(c.hba_records()) == std::vector<std::string>{
                                           "host all all 10.0.0.0/8 scram-sha-256",
                                           "host all all 192.168.10.0/24 scram-sha-256",
                                           "host replication replicator 10.1.2.3/32 scram-sha-256",
                                           "local all all peer map=pgforge",
                                           "host all all 127.0.0.1/32 scram-sha-256",
                                           "host all all ::1/128 scram-sha-256",
                                       });
    for (const auto& added : c.hba_added) CHECK(added.place == sdk::HbaPlace::first);

    SECTION("a second configure finds them in place and adds nothing") {
        testing::FakeHookContext again(sdk::HookPoint::pre_configure, "configure");
        use(again, p);
        again.is_first_configure = false;
        again.fake_configuration.set_hba(c.hba_records());
        again.hba_on_disk = c.hba_records();
        REQUIRE_FALSE(plugin->on_hook(again).refused());
        CHECK(again.fake_configuration.hba_added.empty());
    }
}

TEST_CASE("a forbidden record in the file as it would be written is refused, naming line and rule",
          "[unit][hba-policy]") {
    PolicyFile p(kPolicy);
    testing::FakeHookContext ctx(sdk::HookPoint::pre_configure, "configure");
    use(ctx, p);
    ctx.is_first_configure = false;
    auto file = engine_file();
    file.push_back(hba_record("host", {"all"}, {"all"}, "192.0.2.0/24", "trust"));
    ctx.fake_configuration.set_hba(file);
    auto plugin = testing::create_plugin();

    sdk::Result r = plugin->on_hook(ctx);
    REQUIRE(r.refused());
    // The three required records go first: the trust line is line 7 of the file then.
    CHECK_THAT(r.message, Contains("line 7: host all all 192.0.2.0/24 trust"));
    CHECK_THAT(r.message, Contains("[never] trust = host"));
    CHECK_THAT(r.message, Contains("nothing was written"));
}

TEST_CASE("a change may not take away what the policy requires and the disk grants",
          "[unit][hba-policy]") {
    PolicyFile p(kPolicy);
    testing::FakeHookContext ctx(sdk::HookPoint::pre_configure, "configure");
    use(ctx, p);
    ctx.is_first_configure = false;
    auto granted = engine_file();
    granted.insert(
        granted.begin(),
        {hba_record("host", {"all"}, {"all"}, "10.0.0.0/8", "scram-sha-256"),
         hba_record("host", {"all"}, {"all"}, "192.168.10.0/24", "scram-sha-256"),
         hba_record("host", {"replication"}, {"replicator"}, "10.1.2.3/32", "scram-sha-256")});
    ctx.hba_on_disk = granted;
    // The change puts a reject for part of the office network before everything.
    auto changed = granted;
    changed.insert(changed.begin(), hba_record("host", {"all"}, {"all"}, "10.0.0.0/16", "reject"));
    ctx.fake_configuration.set_hba(changed);
    auto plugin = testing::create_plugin();

    sdk::Result r = plugin->on_hook(ctx);
    REQUIRE(r.refused());
    CHECK_THAT(r.message, Contains("the change takes away what the policy requires"));
    CHECK_THAT(r.message, Contains("host all all 10.0.0.0/8 scram-sha-256 [rule [host office]]: "
                                   "line 1 (host all all 10.0.0.0/16 reject) would take some of "
                                   "these connections first"));
}

TEST_CASE("a required record the engine refuses fails the configure, naming the rule",
          "[unit][hba-policy]") {
    PolicyFile p(kPolicy);
    testing::FakeHookContext ctx(sdk::HookPoint::pre_configure, "create");
    use(ctx, p);
    ctx.fake_configuration.set_hba(engine_file());
    ctx.fake_configuration.check_hba_record = [](const sdk::HbaRecord& r) -> std::string {
        return r.databases.at(0).is("replication") ? "no replication here" : "";
    };
    auto plugin = testing::create_plugin();
    sdk::Result r = plugin->on_hook(ctx);
    REQUIRE(r.refused());
    CHECK_THAT(r.message, Contains("host replication replicator 10.1.2.3/32 scram-sha-256 "
                                   "[rule [replication]]: no replication here"));
}

TEST_CASE("without the engine's records the plugin refuses rather than guess",
          "[unit][hba-policy]") {
    PolicyFile p(kPolicy);
    auto plugin = testing::create_plugin();
    SECTION("at configure") {
        testing::FakeHookContext ctx(sdk::HookPoint::pre_configure, "create");
        use(ctx, p);
        ctx.fake_configuration.withhold<sdk::HbaConfiguration>();
        sdk::Result r = plugin->on_hook(ctx);
        REQUIRE(r.refused());
        CHECK_THAT(r.message, Contains("pgforge.hba_configuration 1"));
    }
    SECTION("at start") {
        testing::FakeHookContext ctx(sdk::HookPoint::pre_start, "start");
        use(ctx, p);
        ctx.withhold<sdk::HbaFileReader>();
        sdk::Result r = plugin->on_hook(ctx);
        REQUIRE(r.refused());
        CHECK_THAT(r.message, Contains("pgforge.hba_file_reader 1"));
    }
}

TEST_CASE("at start, a forbidden record on disk refuses with the remedy; drift is a warning",
          "[unit][hba-policy]") {
    PolicyFile p(kPolicy);
    testing::FakeHookContext ctx(sdk::HookPoint::pre_start, "start");
    use(ctx, p);
    auto disk = engine_file();
    auto trust = hba_record("host", {"all"}, {"all"}, "192.0.2.0/24", "trust");
    trust.line = 97;
    disk.push_back(trust);
    ctx.hba_on_disk = disk;
    auto plugin = testing::create_plugin();

    sdk::Result r = plugin->on_hook(ctx);
    REQUIRE(r.refused());
    CHECK_THAT(r.message, Contains("line 97: host all all 192.0.2.0/24 trust"));
    CHECK_THAT(r.message, Contains("pgforge hba remove -i 15/main --position 4"));
    // Nothing the policy requires is there: said, not refused.
    CHECK(ctx.logged("pg_hba.conf lacks what the hba policy requires", sdk::LogLevel::warning));
    CHECK(ctx.logged("missing: host all all 10.0.0.0/8 scram-sha-256"));

    SECTION("without the forbidden record it starts") {
        disk.pop_back();
        ctx.hba_on_disk = disk;
        ctx.logs.clear();
        CHECK_FALSE(plugin->on_hook(ctx).refused());
        CHECK(ctx.logged("lacks what the hba policy requires"));
    }
}

TEST_CASE("hba check reports the lines the server refuses and the forbidden ones, as JSON",
          "[unit][hba-policy]") {
    PolicyFile p(kPolicy);
    testing::FakeCommandContext ctx({"--policy", p.file.string()});
    ctx.json_output = true;
    auto disk = engine_file();
    disk.push_back(hba_record("host", {"all"}, {"all"}, "0.0.0.0/0", "scram-sha-256"));
    disk.back().line = 12;
    ctx.hba_on_disk = disk;
    ctx.hba_problems = {{9, "unknown authentication method \"trusted\""}};
    auto plugin = testing::create_plugin();
    auto command = plugin->commands().at(0);

    CHECK(plugin->run_command(command, ctx) == 1);
    json report = json::parse(ctx.out_text);
    CHECK(report.at("ok") == false);
    CHECK(report.at("policy") == p.file.string());
    std::vector<std::string> kinds;
    for (const auto& v : report.at("violations")) kinds.push_back(v.at("kind"));
    CHECK(std::count(kinds.begin(), kinds.end(), "invalid") == 1);
    CHECK(std::count(kinds.begin(), kinds.end(), "forbidden") == 1);
    // The open record grants the office networks; replication is a database of its own.
    CHECK(std::count(kinds.begin(), kinds.end(), "missing") == 1);
    for (const auto& v : report.at("violations")) {
        if (v.at("kind") == "invalid") CHECK(v.at("line") == 9);
        if (v.at("kind") == "forbidden") {
            CHECK(v.at("line") == 12);
            CHECK(v.at("text") == "host all all 0.0.0.0/0 scram-sha-256");
            CHECK(v.at("rule") == "[never] open = reject-only");
        }
    }

    SECTION("a file the engine cannot read is a failure saying why") {
        testing::FakeCommandContext c2;
        c2.hba_read_error = "cannot read pg_hba.conf: permission denied";
        CHECK(plugin->run_command(command, c2) == 1);
        CHECK_THAT(c2.err_text, Contains("permission denied"));
    }
}

TEST_CASE("names needing quotes stay names: a superuser called all, a quoted database",
          "[unit][hba-policy]") {
    PolicyFile p(
        "[local]\nusers = ${superuser}\ndatabases = \"my db\", sales\nmethod = peer\n[never]\n");
    testing::FakeHookContext ctx(sdk::HookPoint::pre_configure, "create");
    use(ctx, p);
    ctx.fake_instance.superuser = "all";
    auto plugin = testing::create_plugin();
    REQUIRE_FALSE(plugin->on_hook(ctx).refused());
    const auto& added = ctx.fake_configuration.hba_added;
    REQUIRE(added.size() == 1);
    const sdk::HbaRecord& r = added[0].record;
    CHECK(r.users == std::vector<sdk::HbaName>{{"all", true}});
    CHECK(r.databases == std::vector<sdk::HbaName>{{"my db", true}, {"sales", false}});
    CHECK(r.options == std::vector<std::pair<std::string, std::string>>{{"map", "pgforge"}});
}

TEST_CASE("an unusable policy refuses configure and start, naming the line", "[unit][hba-policy]") {
    PolicyFile p("[host]\nnetworks = 10.0.0.0/33\n");
    testing::FakeContext setup;
    use(setup, p);
    auto plugin = testing::create_plugin();
    REQUIRE_FALSE(plugin->setup(setup).refused());
    CHECK(setup.logged("line 2", sdk::LogLevel::error));
    for (auto point : {sdk::HookPoint::pre_configure, sdk::HookPoint::pre_start}) {
        testing::FakeHookContext ctx(point, "start");
        use(ctx, p);
        sdk::Result r = plugin->on_hook(ctx);
        REQUIRE(r.refused());
        CHECK_THAT(r.message, Contains("10.0.0.0/33"));
    }
}
