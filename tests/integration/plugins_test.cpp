// Plugins and site hooks around real PostgreSQL servers.
#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <chrono>
#include <cstdlib>
#include <fstream>
#include <nlohmann/json.hpp>
#include <thread>

#include "engine/inventory/inventory.hpp"
#include "engine/operations/instances.hpp"
#include "engine/pg/connection.hpp"
#include "tests/support/test_site.hpp"

namespace fs = std::filesystem;
using namespace pgforge;
using pgforge::test::TestSite;

namespace {

const fs::path fixtures = PGFORGE_TEST_PLUGIN_DIR;

// A test site with the fixture plugins on its path and a hooks directory; `plugin_settings`
// rewrites the [recorder] section and the enabled list.
struct PluginSite {
    TestSite site;
    std::string base;

    PluginSite() {
        std::ifstream in(site.settings_file());
        base.assign(std::istreambuf_iterator<char>(in), {});
        fs::create_directories(hooks());
        fs::permissions(hooks(), fs::perms(0755));
        set("");
    }
    fs::path hooks() const { return site.root() / "hooks"; }
    fs::path log() const { return site.root() / "recorder.log"; }

    void set(const std::string& recorder, const std::string& enabled = "recorder") {
        std::ofstream out(site.settings_file(), std::ios::trunc);
        out << base << "\n[plugins]\npath = " << (fixtures / "recorder").string()
            << "\npath = " << (fixtures / "bad_major").string() << "\nenabled = " << enabled
            << "\n[hooks]\ndir = " << hooks().string()
            << "\ntimeout = 20\n[recorder]\nlog = " << log().string() << "\n"
            << recorder;
    }
    void hook(const std::string& point, const std::string& name, const std::string& script) {
        fs::path d = hooks() / (point + ".d");
        fs::create_directories(d);
        fs::permissions(d, fs::perms(0755));
        std::ofstream(d / name) << "#!/bin/sh\n" << script << "\n";
        fs::permissions(d / name, fs::perms(0755));
    }
    TestSite::Output cli(const std::vector<std::string>& args) const { return site.cli(args); }
    Context context() const { return Context(site.settings()); }
};

bool running(const PluginSite& s, const std::string& name) {
    Context ctx = s.context();
    return instances::status(ctx, instances::get(ctx, name)).running;
}

}  // namespace

TEST_CASE("a plugin and a site hook each veto pre_start on a real instance: it stays stopped") {
    PluginSite s;
    REQUIRE(s.cli({"instance", "create", "vetoed"}).status == 0);
    REQUIRE(s.cli({"instance", "stop", "vetoed"}).status == 0);

    s.set("refuse = pre_start\n");
    auto r = s.cli({"instance", "start", "vetoed"});
    CHECK(r.status == 1);
    CHECK_THAT(r.err, Catch::Contains("refused at pre_start by plugin recorder: recorder says no "
                                      "at pre_start"));
    CHECK_FALSE(running(s, "vetoed"));

    s.set("");
    s.hook("pre_start", "50-maintenance",
           "echo \"maintenance window: $PGFORGE_INSTANCE stays down\" >&2; exit 1");
    r = s.cli({"instance", "start", "vetoed"});
    CHECK(r.status == 1);
    CHECK_THAT(r.err, Catch::Contains("by site hook hooks/pre_start.d/50-maintenance: exited with "
                                      "status 1: maintenance window: 15/vetoed stays down"));
    CHECK_FALSE(running(s, "vetoed"));

    fs::remove(s.hooks() / "pre_start.d" / "50-maintenance");
    CHECK(s.cli({"instance", "start", "vetoed"}).status == 0);
    CHECK(running(s, "vetoed"));

    // The history shows each attempt and who refused.
    auto h = s.cli({"instance", "history", "vetoed", "--json"});
    REQUIRE(h.status == 0);
    auto ops = nlohmann::json::parse(h.out);
    std::vector<std::string> outcomes;
    for (const auto& op : ops)
        outcomes.push_back(op["operation"].get<std::string>() + " " +
                           op["outcome"].get<std::string>());
    CHECK(outcomes == std::vector<std::string>{"create ok", "stop ok", "start failed",
                                               "start failed", "start ok"});
    CHECK(ops[2]["steps"][0]["outcome"] == "refused");
    CHECK(ops[3]["steps"].back()["name"] == "pre_start hooks/pre_start.d/50-maintenance");
}

TEST_CASE("a post_init failure during create leaves nothing behind") {
    PluginSite s;
    s.set("refuse = post_init\n");
    auto r = s.cli({"instance", "create", "doomed"});
    CHECK(r.status == 1);
    CHECK_THAT(r.err, Catch::Contains("refused at post_init by plugin recorder"));
    Context ctx = s.context();
    CHECK_FALSE(instances::exists(ctx, "doomed"));
    CHECK_FALSE(fs::exists(s.site.root() / "prefix" / "15" / "doomed"));
    CHECK_FALSE(fs::exists(s.site.root() / "prefix" / "15"));
    // initdb really ran; the journal says what was undone.
    auto entry = ctx.inventory().journal("15/doomed").at(0);
    CHECK(entry.outcome == "failed");
    std::vector<std::string> undone;
    for (const auto& st : ctx.inventory().steps(entry.id))
        if (st.kind == "undo") undone.push_back(st.name);
    REQUIRE(undone.size() == 2);
    CHECK_THAT(undone[0], Catch::StartsWith("instance directory "));
    CHECK(undone[1] == "inventory entry");
    // The name and port can be used again at once.
    s.set("");
    CHECK(s.cli({"instance", "create", "doomed"}).status == 0);
}

TEST_CASE("configure contributions reach a running instance and conflicts are refused") {
    PluginSite s;
    s.set("parameter = work_mem=12MB\nhba = host all all 10.20.0.0/16 scram-sha-256\n");
    REQUIRE(s.cli({"instance", "create", "contrib"}).status == 0);
    Context ctx = s.context();
    Instance i = instances::get(ctx, "contrib");
    pg::Connection c(i);
    CHECK(c.exec("SHOW work_mem").rows.at(0).at(0) == "12MB");
    CHECK(c.exec("SELECT count(*) FROM pg_hba_file_rules WHERE address = '10.20.0.0'")
              .rows.at(0)
              .at(0) == "1");

    auto r = s.cli({"conf", "set", "-i", "contrib", "work_mem=64MB"});
    CHECK(r.status == 5);
    CHECK_THAT(r.err, Catch::Contains("parameter work_mem: the command sets '64MB', plugin "
                                      "recorder sets '12MB'"));
    CHECK(c.exec("SHOW work_mem").rows.at(0).at(0) == "12MB");

    // A parameter no plugin contributes is the user's to set.
    CHECK(s.cli({"conf", "set", "-i", "contrib", "maintenance_work_mem=80MB"}).status == 0);
    pg::Connection again(i);
    CHECK(again.exec("SHOW maintenance_work_mem").rows.at(0).at(0) == "80MB");

    // A hand edit of a contributed parameter is put back by the next reload.
    fs::path conf = i.data_dir / "postgresql.conf";
    std::string text;
    {
        std::ifstream in(conf);
        text.assign(std::istreambuf_iterator<char>(in), {});
    }
    auto at = text.find("work_mem = 12MB");
    REQUIRE(at != std::string::npos);
    text.replace(at, 15, "work_mem = 1MB");
    std::ofstream(conf) << text;
    REQUIRE(s.cli({"instance", "reload", "contrib"}).status == 0);
    pg::Connection after(i);
    CHECK(after.exec("SHOW work_mem").rows.at(0).at(0) == "12MB");
    std::ifstream in(conf);
    std::string now((std::istreambuf_iterator<char>(in)), {});
    CHECK(now.find("work_mem = 12MB") != std::string::npos);
}

TEST_CASE("plugin list, show, commands, flags and fields through the CLI") {
    PluginSite s;
    s.set("", "recorder, bad_major");
    auto list = s.cli({"plugin", "list", "--json"});
    REQUIRE(list.status == 0);
    auto plugins = nlohmann::json::parse(list.out);
    std::map<std::string, nlohmann::json> by_name;
    for (const auto& p : plugins) by_name[p["name"].get<std::string>()] = p;
    REQUIRE(by_name.count("recorder"));
    CHECK(by_name["recorder"]["loaded"] == true);
    CHECK(by_name["recorder"]["hooks"]["pre_start"] == 50);
    CHECK(by_name["bad_major"]["loaded"] == false);
    CHECK_THAT(by_name["bad_major"]["error"].get<std::string>(), Catch::Contains("SDK 2.0"));

    auto show = s.cli({"plugin", "show", "recorder"});
    CHECK(show.status == 0);
    CHECK_THAT(show.out, Catch::Contains("pgforge recorder sql"));
    CHECK(s.cli({"plugin", "show", "nosuch"}).status == 4);

    // bad_major is broken: the create and the drop below would run its hooks.
    s.set("");
    REQUIRE(s.cli({"instance", "create", "cmds"}).status == 0);
    auto sql = s.cli({"recorder", "sql", "-i", "cmds", "it's; DROP TABLE x"});
    CHECK(sql.status == 0);
    CHECK(sql.out == "it's; DROP TABLE x\n");
    CHECK(s.cli({"recorder", "sql", "cmds"}).status == 2);  // no -i
    CHECK(s.cli({"recorder", "echo", "a", "b"}).out == "a b\n");
    auto typo = s.cli({"recorder", "ech"});
    CHECK(typo.status == 2);
    CHECK_THAT(typo.err, Catch::Contains("did you mean 'pgforge recorder echo'"));

    auto get = s.cli({"instance", "get", "cmds", "--json"});
    CHECK(nlohmann::json::parse(get.out)["plugins"]["recorder"]["instance"] == "15/cmds");

    CHECK(s.cli({"instance", "drop", "cmds", "--no-such-flag"}).status == 2);
    CHECK(s.cli({"instance", "drop", "cmds", "--recorder-flag"}).status == 0);
    std::ifstream in(s.log());
    std::string all((std::istreambuf_iterator<char>(in)), {});
    CHECK_THAT(all, Catch::Contains("recorder pre_drop drop 15/cmds ok flag"));

    // A command that runs hooks loads the plugins, and a required one must be there.
    auto create = s.cli({"--require-plugin", "nosuch", "instance", "create", "req"});
    CHECK(create.status == 1);
    CHECK_THAT(create.err, Catch::Contains("required plugin nosuch is not installed"));
}

TEST_CASE("an operation cut short by kill -9 shows as unfinished in the history") {
    PluginSite s;
    // The marker is written by the owner, in a directory of its own (a hook under a directory
    // others can write would be refused).
    fs::path marks = s.site.root() / "marks";
    fs::create_directories(marks);
    fs::permissions(marks, fs::perms(0777));
    fs::path marker = marks / "hook-started";
    s.hook("pre_start", "10-slow", "echo $$ > " + marker.string() + "; exec sleep 30");
    pid_t pid = fork();
    if (pid == 0) {
        int null = ::open("/dev/null", O_WRONLY);
        dup2(null, 1);
        dup2(null, 2);
        execl(PGFORGE_CLI_PATH, PGFORGE_CLI_PATH, "--settings", s.site.settings_file().c_str(),
              "instance", "create", "cut", static_cast<char*>(nullptr));
        _exit(127);
    }
    auto until = std::chrono::steady_clock::now() + std::chrono::seconds(60);
    while (!fs::exists(marker) && std::chrono::steady_clock::now() < until)
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
    REQUIRE(fs::exists(marker));
    kill(pid, SIGKILL);
    waitpid(pid, nullptr, 0);
    long hook_pid = 0;
    std::ifstream(marker) >> hook_pid;
    if (hook_pid > 1) kill(static_cast<pid_t>(hook_pid), SIGKILL);

    auto h = s.cli({"instance", "history", "cut", "--json"});
    REQUIRE(h.status == 0);
    auto ops = nlohmann::json::parse(h.out);
    REQUIRE(ops.size() == 1);
    CHECK(ops[0]["operation"] == "create");
    CHECK(ops[0]["outcome"] == "unfinished");
    // What ran before the long step was written before it began.
    std::vector<std::string> steps;
    for (const auto& st : ops[0]["steps"]) steps.push_back(st["name"].get<std::string>());
    CHECK(std::find(steps.begin(), steps.end(), "initdb") != steps.end());
    CHECK(s.cli({"instance", "history", "cut"}).out.find("create  unfinished") !=
          std::string::npos);
}

namespace {

std::vector<std::string> outcomes_of(const PluginSite& s, const std::string& name) {
    auto h = s.cli({"instance", "history", name, "--json"});
    REQUIRE(h.status == 0);
    std::vector<std::string> out;
    for (const auto& op : nlohmann::json::parse(h.out))
        out.push_back(op["operation"].get<std::string>() + " " + op["outcome"].get<std::string>());
    return out;
}

}  // namespace

TEST_CASE("an enabled plugin that is broken fails closed until --skip-plugin", "[failclosed]") {
    PluginSite s;
    REQUIRE(s.cli({"instance", "create", "guarded"}).status == 0);

    // The guard's setup refuses (a typo in its section, say): the drop it guards is refused,
    // naming it and why, and nothing is dropped.
    s.set("fail_setup = yes\n");
    auto drop = s.cli({"instance", "drop", "guarded"});
    CHECK(drop.status == 1);
    CHECK_THAT(drop.err,
               Catch::Contains("plugin recorder is enabled but broken, and would run at "
                               "pre_drop: plugin recorder: setup refused by its settings"));
    CHECK_THAT(drop.err, Catch::Contains("--skip-plugin recorder"));
    CHECK(running(s, "guarded"));
    CHECK(outcomes_of(s, "guarded").back() == "drop failed");
    CHECK(s.cli({"instance", "stop", "guarded"}).status == 1);
    CHECK(running(s, "guarded"));

    // Read-only commands work and show it broken (list and status in a warning).
    for (std::string verb : {"list", "status guarded"}) {
        // The pgforge program itself: warnings go to its stderr.
        fs::path log = s.site.root() / "stderr.txt";
        std::string line = std::string(PGFORGE_CLI_PATH) + " --settings '" +
                           s.site.settings_file().string() + "' instance " + verb +
                           " >/dev/null 2>'" + log.string() + "'";
        CHECK(std::system(line.c_str()) == 0);
        std::ifstream in(log);
        std::string said((std::istreambuf_iterator<char>(in)), {});
        CHECK_THAT(said, Catch::Contains("plugin recorder: setup refused by its settings (broken"));
    }
    auto get = s.cli({"instance", "get", "guarded", "--json"});
    REQUIRE(get.status == 0);
    CHECK_THAT(nlohmann::json::parse(get.out)["plugins"]["recorder"]["state"].get<std::string>(),
               Catch::StartsWith("broken: plugin recorder: setup refused"));
    auto list = s.cli({"plugin", "list", "--json"});
    REQUIRE(list.status == 0);
    bool shown = false;
    for (const auto& p : nlohmann::json::parse(list.out))
        if (p["name"] == "recorder") shown = p["state"] == "broken";
    CHECK(shown);

    // An SDK mismatch is broken the same way, and a create that would run its hooks is refused
    // before anything is made.
    s.set("", "recorder, bad_major");
    auto create = s.cli({"instance", "create", "other"});
    CHECK(create.status == 1);
    CHECK_THAT(create.err, Catch::Contains("plugin bad_major is enabled but broken, and would run "
                                           "at pre_init"));
    CHECK_THAT(create.err, Catch::Contains("SDK 2.0"));
    Context ctx = s.context();
    CHECK_FALSE(instances::exists(ctx, "other"));

    // --skip-plugin goes on without it, and the journal says which hooks were skipped.
    CHECK(s.cli({"--skip-plugin", "bad_major", "instance", "stop", "guarded"}).status == 0);
    CHECK_FALSE(running(s, "guarded"));
    auto h = s.cli({"instance", "history", "guarded", "--json"});
    auto last = nlohmann::json::parse(h.out).back();
    CHECK(last["operation"] == "stop");
    bool skipped = false;
    for (const auto& st : last["steps"])
        if (st["name"] == "pre_stop bad_major") skipped = st["outcome"] == "skipped";
    CHECK(skipped);
    s.set("fail_setup = yes\n");
    CHECK(s.cli({"instance", "drop", "guarded", "--skip-plugin", "recorder"}).status == 0);
    CHECK_FALSE(instances::exists(ctx, "guarded"));
}

TEST_CASE("a throw in a plugin reaches the user in one line naming it, and the journal",
          "[failclosed]") {
    PluginSite s;
    REQUIRE(s.cli({"instance", "create", "throws", "--state", "stopped"}).status == 0);

    s.set("throw_in = command,describe\n");
    auto cmd = s.cli({"recorder", "echo", "a"});
    CHECK(cmd.status == 1);
    CHECK_THAT(cmd.err, Catch::Contains("plugin recorder: command recorder echo threw an "
                                        "exception: boom in command"));
    auto sql = s.cli({"recorder", "sql", "-i", "throws", "x"});
    CHECK(sql.status == 1);
    CHECK_THAT(sql.err, Catch::Contains("plugin recorder: command recorder sql threw an "
                                        "exception: boom in command"));
    auto h = s.cli({"instance", "history", "throws", "--json"});
    auto last = nlohmann::json::parse(h.out).back();
    CHECK(last["operation"] == "recorder sql");
    CHECK(last["outcome"] == "failed");
    CHECK_THAT(last["message"].get<std::string>(), Catch::Contains("boom in command"));

    auto get = s.cli({"instance", "get", "throws", "--json"});
    CHECK(get.status == 0);
    // (and a warning naming it on stderr, through the log)
    CHECK_THAT(nlohmann::json::parse(get.out)["plugins"]["recorder"]["error"].get<std::string>(),
               Catch::Contains("boom in describe"));

    // A throw in setup() leaves the plugin broken, with the throw as the reason.
    s.set("throw_in = setup\n");
    auto start = s.cli({"instance", "start", "throws"});
    CHECK(start.status == 1);
    CHECK_THAT(start.err, Catch::Contains("plugin recorder is enabled but broken, and would run at "
                                          "pre_start: plugin recorder: setup() threw an "
                                          "exception: boom in setup"));
}

TEST_CASE("a plugin command over --all labels each instance's output", "[failclosed]") {
    PluginSite s;
    REQUIRE(s.cli({"instance", "create", "one"}).status == 0);
    REQUIRE(s.cli({"instance", "create", "two"}).status == 0);
    auto text = s.cli({"recorder", "sql", "--all", "hi"});
    CHECK(text.status == 0);
    CHECK(text.out == "== 15/one ==\nhi\n== 15/two ==\nhi\n");
    auto js = s.cli({"recorder", "sql", "--all", "hi", "--json"});
    CHECK(js.status == 0);
    auto j = nlohmann::json::parse(js.out);
    REQUIRE(j.is_object());
    CHECK(j["15/one"] == "hi\n");
    CHECK(j["15/two"] == "hi\n");

    // One instance down: its failure is labelled, the other still answers.
    REQUIRE(s.cli({"instance", "stop", "one"}).status == 0);
    auto down = s.cli({"recorder", "sql", "--all", "hi"});
    CHECK(down.status == 1);
    CHECK_THAT(down.out, Catch::Contains("== 15/two ==\nhi\n"));
    CHECK_THAT(down.out + down.err, Catch::Contains("15/one"));
}
