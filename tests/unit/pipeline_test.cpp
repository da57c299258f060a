// The pipeline with a fake driver: order of steps and hook points, refusals, undo at every step,
// configure contributions and their conflicts, site hooks, the journal. No server.
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <fstream>
#include <sstream>

#include "engine/core/error.hpp"
#include "engine/inventory/inventory.hpp"
#include "engine/operations/instances.hpp"
#include "engine/pg/postmaster_pid.hpp"
#include "engine/pipeline/handlers.hpp"
#include "engine/pipeline/pipeline.hpp"
#include "engine/pipeline/plugin_host.hpp"
#include "fake_driver.hpp"
#include "temp_dir.hpp"

namespace fs = std::filesystem;
using namespace pgforge;
using pgforge::test::FakeDriver;
using pgforge::test::TempDir;

namespace {

std::vector<std::string> lines_of(const fs::path& file) {
    std::ifstream in(file);
    std::vector<std::string> out;
    std::string line;
    while (std::getline(in, line)) out.push_back(line);
    return out;
}

void write_file(const fs::path& file, const std::string& text, unsigned mode = 0644) {
    fs::create_directories(file.parent_path());
    std::ofstream(file) << text;
    fs::permissions(file, fs::perms(mode));
}

// A site under a temporary directory: settings naming the fixture plugins, a recorder log, and
// a hooks directory; contexts over a fake driver.
struct Site {
    TempDir dir{"pipeline"};
    FakeDriver::Log driver;
    std::string extra;
    // The plugin path lists recorder_b before recorder: they load in that order.
    bool b_first = false;

    Site() {
        // Site hooks run as the instance owner when the tests run as root.
        fs::permissions(dir.path(), fs::perms(0755));
        fs::create_directories(dir / "out");
        fs::permissions(dir / "out", fs::perms(0777));
        // Plugins (in this process) and site hooks (as the owner) append to one log.
        write_file(log(), "", 0666);
    }
    fs::path log() const { return dir / "out" / "recorder.log"; }
    fs::path hooks() const { return dir / "hooks"; }

    Context context(const std::string& settings = {}) {
        std::string plugins = PGFORGE_TEST_PLUGIN_DIR;
        write_file(dir / "settings.ini",
                   "prefix = " + (dir / "prefix").string() +
                       "\nrun_dir = " + (dir / "run").string() +
                       "\n[postgresql]\nport_min = 47000\nport_max = 47999\n"
                       "[plugins]\npath = " +
                       plugins +
                       (b_first ? "/recorder_b\npath = " + plugins + "/recorder"
                                : "/recorder\npath = " + plugins + "/recorder_b") +
                       "\npath = " + plugins + "/thrower\n[hooks]\ndir = " + hooks().string() +
                       "\n[recorder]\nlog = " + log().string() +
                       "\n[recorder_b]\nlog = " + log().string() + "\n" + settings);
        SettingsOverrides o;
        o.settings_file = dir / "settings.ini";
        return Context(load_settings(o), std::make_unique<FakeDriver>(driver));
    }

    instances::CreateOptions options(const std::string& name = "main") {
        instances::CreateOptions o;
        o.name = name;
        return o;
    }

    void hook(const std::string& point, const std::string& name, const std::string& script) {
        fs::path d = hooks() / (point + ".d");
        fs::create_directories(d);
        fs::permissions(hooks(), fs::perms(0755));
        fs::permissions(d, fs::perms(0755));
        write_file(d / name, "#!/bin/sh\n" + script + "\n", 0755);
    }

    bool nothing_left(Context& ctx) {
        std::error_code ec;
        return !fs::exists(dir / "prefix" / "15" / "main", ec) && !instances::exists(ctx, "main");
    }
};

}  // namespace

TEST_CASE("create runs its steps with the hook points around them, in order") {
    Site site;
    Context ctx = site.context("[plugins]\nenabled = recorder\n");
    instances::create(ctx, site.options());
    CHECK(lines_of(site.log()) == std::vector<std::string>{
                                      "recorder pre_init create 15/main ok",
                                      "recorder post_init create 15/main ok",
                                      "recorder pre_configure create 15/main ok",
                                      "recorder post_configure create 15/main ok",
                                      "recorder pre_start create 15/main ok",
                                      "recorder post_start create 15/main ok",
                                  });
    CHECK(site.driver.calls == std::vector<std::string>{"initdb 15/main", "start 15/main"});

    // The journal holds each step and handler, in order.
    auto& inv = ctx.inventory();
    auto entry = inv.journal("15/main").at(0);
    CHECK(entry.operation == "create");
    CHECK(entry.outcome == "ok");
    std::vector<std::string> names, made;
    for (const auto& st : inv.steps(entry.id))
        (st.kind == "made" ? made : names).push_back(st.kind + ":" + st.name);
    // What it makes is journaled before it is made, for the next command after a kill.
    CHECK(made == std::vector<std::string>{"made:inventory entry", "made:empty directory",
                                           "made:directory", "made:empty directory",
                                           "made:server"});
    CHECK(names == std::vector<std::string>{
                       "step:inventory entry", "plugin:pre_init recorder", "step:initdb",
                       "plugin:post_init recorder", "plugin:pre_configure recorder",
                       "step:write configuration", "plugin:post_configure recorder",
                       "plugin:pre_start recorder", "step:start", "plugin:post_start recorder"});
}

TEST_CASE("a failure at any point of create undoes exactly what create made") {
    // Each way create can fail, and whether the server had been started by then.
    struct Case {
        std::string settings;
        std::string fail_at;
        std::string message;
        bool stopped;
    };
    std::vector<Case> cases = {
        {"refuse = pre_init\n", "", "refused at pre_init by plugin recorder", false},
        {"", "initdb", "fake initdb failed", false},
        {"refuse = post_init\n", "", "refused at post_init by plugin recorder", false},
        {"refuse = pre_configure\n", "", "refused at pre_configure by plugin recorder", false},
        {"refuse = post_configure\n", "", "refused at post_configure by plugin recorder", false},
        {"refuse = pre_start\n", "", "refused at pre_start by plugin recorder", false},
        {"", "start", "fake start failed", false},
        {"refuse = post_start\n", "", "refused at post_start by plugin recorder", true},
    };
    for (const auto& c : cases) {
        DYNAMIC_SECTION("failing with: " << c.message) {
            Site site;
            site.driver.fail_at = c.fail_at;
            Context ctx = site.context("[plugins]\nenabled = recorder\n[recorder]\n" + c.settings);
            try {
                instances::create(ctx, site.options());
                FAIL("create succeeded");
            } catch (const Error& e) {
                CHECK_THAT(e.what(), Catch::Contains(c.message));
            }
            CHECK(site.nothing_left(ctx));
            bool stop_called = std::find(site.driver.calls.begin(), site.driver.calls.end(),
                                         "stop 15/main") != site.driver.calls.end();
            CHECK(stop_called == c.stopped);
            CHECK_FALSE(site.driver.running);
            auto entry = ctx.inventory().journal("15/main").at(0);
            CHECK(entry.outcome == "failed");
            CHECK_THAT(entry.message, Catch::Contains(c.message));
        }
    }
}

TEST_CASE("a pre_* refusal stops the step: the refused step never reaches the driver") {
    Site site;
    Context ctx = site.context("[plugins]\nenabled = recorder\n[recorder]\nrefuse = pre_init\n");
    CHECK_THROWS(instances::create(ctx, site.options()));
    CHECK(site.driver.calls.empty());
    // No later handler at any point ran.
    CHECK(lines_of(site.log()) == std::vector<std::string>{"recorder pre_init create 15/main ok"});
}

TEST_CASE("post_* handlers all run, see the outcome, and a failed step still reaches them") {
    Site site;
    site.driver.fail_at = "start";
    Context ctx = site.context("[plugins]\nenabled = recorder, recorder_b\n");
    CHECK_THROWS(instances::create(ctx, site.options()));
    auto log = lines_of(site.log());
    CHECK(std::find(log.begin(), log.end(), "recorder post_start create 15/main failed") !=
          log.end());
    CHECK(std::find(log.begin(), log.end(), "recorder_b post_start create 15/main failed") !=
          log.end());

    Site other;
    Context ctx2 = other.context(
        "[plugins]\nenabled = recorder, recorder_b\n[recorder]\nrefuse = post_start\n");
    try {
        instances::create(ctx2, other.options());
        FAIL("create succeeded");
    } catch (const Error& e) {
        CHECK_THAT(e.what(), Catch::Contains("by plugin recorder: recorder says no"));
    }
    // recorder refused first; recorder_b still ran after it.
    auto log2 = lines_of(other.log());
    CHECK(std::find(log2.begin(), log2.end(), "recorder_b post_start create 15/main ok") !=
          log2.end());
}

TEST_CASE("handlers at one point run by priority, then by name, never by load order") {
    Site site;
    site.hook("pre_start", "20-second", "echo hook-20 >> " + site.log().string());
    site.hook("pre_start", "10-first", "echo hook-10 >> " + site.log().string());
    // The settings list recorder_b first: the order must not follow it.
    {
        Context ctx = site.context(
            "[plugins]\nenabled = recorder_b, recorder\n[hooks]\n"
            "priority = 10\n");
        instances::create(ctx, site.options());
    }
    auto log = lines_of(site.log());
    std::vector<std::string> pre_start;
    for (const auto& l : log)
        if (l.find("pre_start") != std::string::npos || l.rfind("hook-", 0) == 0)
            pre_start.push_back(l);
    // Site hooks at priority 10 come before the plugins' 50, in name order.
    CHECK(pre_start == std::vector<std::string>{"hook-10", "hook-20",
                                                "recorder pre_start create 15/main ok",
                                                "recorder_b pre_start create 15/main ok"});
}

TEST_CASE("two plugins setting one parameter differently are a conflict that names both") {
    Site site;
    Context ctx = site.context(
        "[plugins]\nenabled = recorder, recorder_b\n[recorder]\nparameter = work_mem=8MB\n"
        "[recorder_b]\nparameter = work_mem=16MB\n");
    try {
        instances::create(ctx, site.options());
        FAIL("create succeeded");
    } catch (const Error& e) {
        CHECK(e.code() == Exit::conflict);
        CHECK_THAT(e.what(), Catch::Contains("parameter work_mem: plugin recorder sets '8MB', "
                                             "plugin recorder_b sets '16MB'"));
    }
    CHECK(site.nothing_left(ctx));
}

TEST_CASE(
    "two plugins adding a library each through sdk::Contributions compose, whatever the "
    "load order") {
    for (bool b_first : {false, true}) {
        Site site;
        site.b_first = b_first;
        Context ctx = site.context(
            "[plugins]\nenabled = recorder, recorder_b\n"
            "[recorder]\nadd = shared_preload_libraries=pg_stat_statements\n"
            "[recorder_b]\nadd = shared_preload_libraries=auto_explain\n"
            "restart_needed = a reason\n");
        Instance i = instances::create(ctx, site.options());
        std::ifstream conf(i.data_dir / "postgresql.conf");
        std::string text((std::istreambuf_iterator<char>(conf)), {});
        // Equal priorities: recorder's handler runs first, by name.
        CHECK_THAT(
            text, Catch::Contains("shared_preload_libraries = 'pg_stat_statements, auto_explain'"));
    }
}

TEST_CASE("contributions are merged into the files create writes, each once") {
    Site site;
    Context ctx = site.context(
        "[plugins]\nenabled = recorder, recorder_b\n[recorder]\nparameter = work_mem=8MB\n"
        "hba = host all all 10.1.0.0/16 scram-sha-256\nfile = notes.txt\n"
        "[recorder_b]\nparameter = work_mem=8MB\n");
    Instance i = instances::create(ctx, site.options());
    std::ifstream conf(i.data_dir / "postgresql.conf");
    std::string text((std::istreambuf_iterator<char>(conf)), {});
    CHECK_THAT(text, Catch::Contains("work_mem = 8MB"));
    std::ifstream hba(i.data_dir / "pg_hba.conf");
    std::string first_record;
    for (std::string line; std::getline(hba, line);)
        if (!line.empty() && line[0] != '#') {
            first_record = line;
            break;
        }
    CHECK_THAT(first_record, Catch::StartsWith("host"));
    CHECK_THAT(first_record, Catch::Contains("10.1.0.0/16"));
    struct stat st {};
    REQUIRE(stat((i.base_dir / "recorder" / "notes.txt").c_str(), &st) == 0);
    CHECK((st.st_mode & 0777) == 0600);
}

TEST_CASE("a plugin's undo runs when a later handler fails the create") {
    Site site;
    fs::path marker = site.dir / "out" / "undone";
    Context ctx = site.context(
        "[plugins]\nenabled = recorder, recorder_b\n[recorder]\nundo_file = " + marker.string() +
        "\n[recorder_b]\nrefuse = post_start\n");
    CHECK_THROWS_WITH(instances::create(ctx, site.options()),
                      Catch::Contains("refused at post_start by plugin recorder_b"));
    CHECK(lines_of(marker) == std::vector<std::string>{"undone by recorder for 15/main"});
    CHECK(site.nothing_left(ctx));
    // Journaled among the engine's undos, before them (it was registered last).
    auto entry = ctx.inventory().journal("15/main").at(0);
    std::vector<std::string> undos;
    for (const auto& st : ctx.inventory().steps(entry.id))
        if (st.kind == "undo") undos.push_back(st.name);
    REQUIRE(undos.size() == 4);
    CHECK(undos[0] == "plugin recorder: marker");
    CHECK(undos[1] == "server start");
    CHECK(undos[3] == "inventory entry");

    // A create that succeeds runs no undo.
    Site ok;
    fs::path none = ok.dir / "out" / "undone";
    Context ctx2 = ok.context(
        "[plugins]\nenabled = recorder\n[recorder]\nundo_file = " + none.string() + "\n");
    instances::create(ctx2, ok.options());
    CHECK_FALSE(fs::exists(none));
}

TEST_CASE("a plugin that throws is a refusal naming it") {
    Site site;
    Context ctx = site.context("[plugins]\nenabled = thrower\n");
    try {
        instances::create(ctx, site.options());
        FAIL("create succeeded");
    } catch (const Error& e) {
        CHECK_THAT(e.what(), Catch::Contains("refused at pre_init by plugin thrower: threw an "
                                             "exception: boom in thrower"));
    }
    CHECK(site.nothing_left(ctx));
}

TEST_CASE("drop runs pre_drop, the stop with its hooks, removes files, then post_drop") {
    Site site;
    {
        Context ctx = site.context("[plugins]\nenabled = recorder\n");
        instances::create(ctx, site.options());
    }
    fs::remove(site.log());
    Context ctx = site.context("[plugins]\nenabled = recorder\n");
    ctx.flags.insert("recorder-flag");
    instances::drop(ctx, instances::get(ctx, "main"));
    CHECK(lines_of(site.log()) == std::vector<std::string>{
                                      "recorder pre_drop drop 15/main ok flag",
                                      "recorder pre_stop drop 15/main ok flag",
                                      "recorder post_stop drop 15/main ok flag",
                                      "recorder post_drop drop 15/main ok flag",
                                  });
    CHECK(site.nothing_left(ctx));
}

TEST_CASE("a refused drop keeps the instance") {
    Site site;
    Context ctx = site.context("[plugins]\nenabled = recorder\n[recorder]\nrefuse = pre_drop\n");
    instances::create(ctx, site.options());
    CHECK_THROWS_WITH(instances::drop(ctx, instances::get(ctx, "main")),
                      Catch::Contains("refused at pre_drop"));
    CHECK(instances::exists(ctx, "main"));
    CHECK(fs::exists(site.dir / "prefix" / "15" / "main" / "data" / "PG_VERSION"));
}

TEST_CASE("stop and start: a pre_start refusal leaves the server stopped") {
    Site site;
    Context ctx = site.context("[plugins]\nenabled = recorder\n");
    Instance i = instances::create(ctx, site.options());
    instances::stop(ctx, i);
    Context refusing =
        site.context("[plugins]\nenabled = recorder\n[recorder]\nrefuse = pre_start\n");
    site.driver.calls.clear();
    CHECK_THROWS_WITH(instances::start(refusing, i), Catch::Contains("recorder says no"));
    CHECK(site.driver.calls.empty());
    CHECK_FALSE(site.driver.running);
}

// ---------------------------------------------------------------- site hooks

TEST_CASE("a site hook sees the instance in its environment, as the owner") {
    Site site;
    site.hook("pre_start", "env",
              "{ echo \"$PGFORGE_HOOK $PGFORGE_OPERATION $PGFORGE_INSTANCE $PGFORGE_VERSION\"; "
              "echo \"$PGDATA\"; echo \"$PGPORT $PGHOST $PGUSER\"; id -un; } > " +
                  (site.dir / "out" / "env").string());
    Context ctx = site.context();
    Instance i = instances::create(ctx, site.options());
    auto env = lines_of(site.dir / "out" / "env");
    REQUIRE(env.size() == 4);
    CHECK(env[0] == "pre_start create 15/main 15");
    CHECK(env[1] == i.data_dir.string());
    CHECK(env[2] == std::to_string(i.port) + " " + i.socket_dir.string() + " postgres");
    CHECK(env[3] == i.owner);
}

TEST_CASE("a failing pre_* site hook refuses with its stderr") {
    Site site;
    site.hook("pre_init", "check", "echo 'no space left for this site' >&2; exit 3");
    Context ctx = site.context();
    try {
        instances::create(ctx, site.options());
        FAIL("create succeeded");
    } catch (const Error& e) {
        CHECK_THAT(e.what(), Catch::Contains("site hook hooks/pre_init.d/check: exited with status "
                                             "3: no space left for this site"));
    }
    CHECK(site.driver.calls.empty());
    CHECK(site.nothing_left(ctx));
}

TEST_CASE("a site hook that runs too long is killed and refuses") {
    Site site;
    site.hook("pre_init", "slow", "sleep 30");
    Context ctx = site.context("[hooks]\ntimeout = 0.3\n");
    auto began = std::chrono::steady_clock::now();
    CHECK_THROWS_WITH(instances::create(ctx, site.options()), Catch::Contains("timed out after"));
    CHECK(std::chrono::steady_clock::now() - began < std::chrono::seconds(5));
}

TEST_CASE("site hooks: unsafe files refuse, non-executables and backups are skipped") {
    Site site;
    site.hook("pre_init", "ok", "exit 0");
    write_file(site.hooks() / "pre_init.d" / "notes.txt~", "#!/bin/sh\nexit 1\n", 0755);
    write_file(site.hooks() / "pre_init.d" / "readme", "not a program\n", 0644);
    Settings s;
    s.config_dir = site.dir / "nowhere";
    s.hook_dirs = {site.hooks()};
    auto found = find_site_hooks(s, sdk::HookPoint::pre_init);
    REQUIRE(found.size() == 1);
    CHECK(found[0].filename() == "ok");

    fs::permissions(site.hooks() / "pre_init.d" / "ok", fs::perms(0777));
    CHECK_THROWS_WITH(find_site_hooks(s, sdk::HookPoint::pre_init),
                      Catch::Contains("is writable by others than its owner"));
    fs::permissions(site.hooks() / "pre_init.d" / "ok", fs::perms(0755));
    fs::permissions(site.hooks() / "pre_init.d", fs::perms(0775));
    CHECK_THROWS_WITH(find_site_hooks(s, sdk::HookPoint::pre_init),
                      Catch::Contains("pre_init.d is writable by others than its owner"));
}

// ---------------------------------------------------------------- planted bugs

TEST_CASE("handlers of equal priority run in name order even when they load in another order") {
    Site site;
    site.b_first = true;
    Context ctx = site.context("[plugins]\nenabled = recorder, recorder_b\n");
    // The path puts recorder_b first, so it is loaded first.
    auto loaded = ctx.plugins().loaded();
    REQUIRE(loaded.size() == 2);
    REQUIRE(loaded[0]->name() == "recorder_b");
    instances::create(ctx, site.options());
    std::vector<std::string> pre_init;
    for (const auto& l : lines_of(site.log()))
        if (l.find(" pre_init ") != std::string::npos) pre_init.push_back(l);
    CHECK(pre_init == std::vector<std::string>{"recorder pre_init create 15/main ok",
                                               "recorder_b pre_init create 15/main ok"});
}

TEST_CASE("a pre_* refusal stops the handlers after it at the same point") {
    Site site;
    // recorder refuses; recorder_b (same priority, later by name) and a site hook after both
    // must not be asked.
    site.hook("pre_init", "later", "echo hook-ran >> " + site.log().string());
    Context ctx = site.context(
        "[plugins]\nenabled = recorder, recorder_b\n[hooks]\npriority = 90\n[recorder]\n"
        "refuse = pre_init\n");
    CHECK_THROWS_WITH(instances::create(ctx, site.options()),
                      Catch::Contains("refused at pre_init by plugin recorder"));
    CHECK(lines_of(site.log()) == std::vector<std::string>{"recorder pre_init create 15/main ok"});
    CHECK(site.nothing_left(ctx));
}

TEST_CASE("a reload sent to a postmaster that is a zombie is not reported done") {
    TempDir dir("zombie");
    fs::create_directories(dir / "data");
    pid_t child = fork();
    REQUIRE(child >= 0);
    if (child == 0) _exit(0);
    // Not reaped: the postmaster.pid names a process that has exited but is still listed.
    for (int k = 0; k < 200; ++k) {
        std::ifstream stat("/proc/" + std::to_string(child) + "/stat");
        std::string text;
        std::getline(stat, text);
        if (text.find(") Z") != std::string::npos) break;
        usleep(5000);
    }
    std::ofstream(dir / "data" / "postmaster.pid")
        << child << "\n"
        << (dir / "data").string() << "\n1700000000\n5432\n/tmp\nlocalhost\n"
        << "  5432001    32768\nready   \n";
    Cluster c;
    c.instance.name = "zombie";
    c.instance.version = "15";
    c.instance.data_dir = dir / "data";
    PostgresDriver driver;
    try {
        driver.reload(c);
        FAIL("a reload to a zombie was reported done");
    } catch (const Error& e) {
        CHECK(e.code() == Exit::stopped);
        CHECK_THAT(e.what(), Catch::Contains("is not running"));
    }
    CHECK_FALSE(driver.status(c).running);
    waitpid(child, nullptr, 0);
}

// ---------------------------------------------------------------- drop and foreground

TEST_CASE("a post_drop refusal is reported, and the drop is done: files and entry gone") {
    Site site;
    Context ctx = site.context("[plugins]\nenabled = recorder\n[recorder]\nrefuse = post_drop\n");
    instances::create(ctx, site.options());
    try {
        instances::drop(ctx, instances::get(ctx, "main"));
        FAIL("a post_drop refusal was not reported");
    } catch (const Error& e) {
        CHECK(e.code() == Exit::failure);
        CHECK_THAT(e.what(), Catch::Contains("instance 15/main was dropped, but"));
        CHECK_THAT(e.what(), Catch::Contains("refused at post_drop by plugin recorder"));
    }
    CHECK(site.nothing_left(ctx));
    CHECK_FALSE(site.driver.running);
    // The journal says the drop ended, and what the handler said.
    auto entry = ctx.inventory().journal("15/main").at(0);
    CHECK(entry.operation == "drop");
    CHECK(entry.outcome == "ok");
    bool refused = false;
    for (const auto& st : ctx.inventory().steps(entry.id))
        refused = refused || (st.name == "post_drop recorder" && st.outcome == "refused");
    CHECK(refused);
}

TEST_CASE("start --foreground runs pre_start under the lock before handing over") {
    Site site;
    Context ctx = site.context("[plugins]\nenabled = recorder\n");
    Instance i = instances::create(ctx, site.options());
    instances::stop(ctx, i);
    fs::remove(site.log());
    site.driver.calls.clear();
    // The fake driver cannot become the server: it throws where the real one execs.
    CHECK_THROWS_WITH(instances::run_foreground(ctx, i), Catch::Contains("not in tests"));
    CHECK(lines_of(site.log()) ==
          std::vector<std::string>{"recorder pre_start start --foreground 15/main ok"});
    CHECK(site.driver.calls == std::vector<std::string>{"foreground 15/main"});
    auto entry = ctx.inventory().journal("15/main").at(0);
    CHECK(entry.operation == "start --foreground");
    CHECK(entry.outcome == "ok");
    // The lock was let go before the hand-over: another command gets it at once.
    instances::stop(ctx, i);

    Context refusing =
        site.context("[plugins]\nenabled = recorder\n[recorder]\nrefuse = pre_start\n");
    site.driver.calls.clear();
    CHECK_THROWS_WITH(instances::run_foreground(refusing, i),
                      Catch::Contains("refused at pre_start by plugin recorder"));
    CHECK(site.driver.calls.empty());
}

// ---------------------------------------------------------------- failure matrix

TEST_CASE(
    "a failure at every step of every operation leaves the entry, files and server agreeing") {
    // (create has its own test above: everything it made is undone.)
    struct Case {
        std::string operation;
        bool running_before;
        std::string refuse;   // a hook point where the recorder refuses, or
        std::string fail_at;  // a driver call that fails
        bool running_after;
        bool entry_after;
    };
    const std::vector<Case> cases = {
        {"start", false, "pre_start", "", false, true},
        {"start", false, "", "start", false, true},
        {"start", false, "post_start", "", true, true},
        {"stop", true, "pre_stop", "", true, true},
        {"stop", true, "", "stop", true, true},
        {"stop", true, "post_stop", "", false, true},
        {"restart", true, "pre_stop", "", true, true},
        {"restart", true, "", "stop", true, true},
        {"restart", true, "post_stop", "", false, true},
        {"restart", true, "pre_start", "", false, true},
        {"restart", true, "", "start", false, true},
        {"restart", true, "post_start", "", true, true},
        {"reload", true, "pre_configure", "", true, true},
        {"reload", true, "", "reload", true, true},
        {"reload", true, "post_configure", "", true, true},
        {"start --foreground", false, "pre_start", "", false, true},
        {"drop", true, "pre_drop", "", true, true},
        {"drop", true, "pre_stop", "", true, true},
        {"drop", true, "", "stop", true, true},
        {"drop", true, "post_stop", "", false, true},
        {"drop", true, "post_drop", "", false, false},
    };
    for (const auto& c : cases) {
        DYNAMIC_SECTION(c.operation << " failing at " << c.refuse << c.fail_at) {
            Site site;
            {
                Context plain = site.context();
                Instance i = instances::create(plain, site.options());
                if (!c.running_before) instances::stop(plain, i);
            }
            Context ctx = site.context(
                "[plugins]\nenabled = recorder\n[recorder]\nrefuse = " + c.refuse + "\n");
            site.driver.fail_at = c.fail_at;
            Instance i = instances::get(ctx, "main");
            try {
                if (c.operation == "start") instances::start(ctx, i);
                if (c.operation == "stop") instances::stop(ctx, i);
                if (c.operation == "restart") instances::restart(ctx, i);
                if (c.operation == "reload") instances::reload(ctx, i);
                if (c.operation == "start --foreground") instances::run_foreground(ctx, i);
                if (c.operation == "drop") instances::drop(ctx, i);
                FAIL("the operation succeeded");
            } catch (const Error& e) {
                CHECK_THAT(e.what(),
                           Catch::Contains(c.refuse.empty() ? "fake " + c.fail_at + " failed"
                                                            : "refused at " + c.refuse));
            }
            CHECK(site.driver.running == c.running_after);
            std::error_code ec;
            bool files = fs::exists(i.data_dir / "PG_VERSION", ec);
            CHECK(instances::exists(ctx, "main") == c.entry_after);
            CHECK(files == c.entry_after);
            // The journal says how it ended: failed, or (a post_drop failure) done.
            auto entry = ctx.inventory().journal("15/main").at(0);
            CHECK(entry.operation == (c.operation == "reload" ? "reload" : c.operation));
            CHECK(entry.outcome == (c.refuse == "post_drop" ? "ok" : "failed"));
            // The lock is free again: the next command is not kept waiting.
            if (c.entry_after) CHECK(instances::status(ctx, i).running == c.running_after);
            if (c.entry_after) instances::lock(ctx, i);
        }
    }
}

// ---------------------------------------------------------------- order by name

namespace {

// Settings that put the fixture plugins `names` on the plugin path, enable them with recorder
// and recorder_b when asked, and have them log to the site's log.
std::string ordering_settings(const Site& site, const std::vector<std::string>& names,
                              const std::string& enabled) {
    std::string text = "[plugins]\nenabled = " + enabled + "\n";
    for (const auto& n : names)
        text += "path = " + std::string(PGFORGE_TEST_PLUGIN_DIR) + "/" + n + "\n";
    for (const auto& n : names) text += "[" + n + "]\nlog = " + site.log().string() + "\n";
    return text;
}

// Who ran at `point`, in order (the first word of the log lines, "PLUGIN POINT ...").
std::vector<std::string> ran_at(const Site& site, const std::string& point) {
    std::vector<std::string> out;
    for (const auto& l : lines_of(site.log())) {
        auto space = l.find(' ');
        if (space == std::string::npos) continue;
        if (l.compare(space + 1, point.size() + 1, point + " ") == 0)
            out.push_back(l.substr(0, space));
    }
    return out;
}

}  // namespace

TEST_CASE("after: a handler runs after the named plugin's at the point, whatever the priorities") {
    Site site;
    // follower: pre_start 10 after=recorder,not_installed; recorder: pre_start 50.
    Context ctx = site.context(ordering_settings(site, {"follower"}, "recorder, follower"));
    instances::create(ctx, site.options());
    CHECK(ran_at(site, "pre_start") == std::vector<std::string>{"recorder", "follower"});
}

TEST_CASE("after: a constraint naming a plugin that is not loaded is ignored") {
    Site site;
    // recorder is installed but not enabled, not_installed is not installed at all.
    Context ctx = site.context(ordering_settings(site, {"follower"}, "recorder_b, follower"));
    instances::create(ctx, site.options());
    CHECK(ran_at(site, "pre_start") == std::vector<std::string>{"follower", "recorder_b"});
}

TEST_CASE(
    "before: a handler runs before the named plugin's at the point, whatever the priorities") {
    Site site;
    // leader: pre_start 90 before=recorder_b; recorder_b: pre_start 50.
    Context ctx = site.context(ordering_settings(site, {"leader"}, "recorder_b, leader"));
    instances::create(ctx, site.options());
    CHECK(ran_at(site, "pre_start") == std::vector<std::string>{"leader", "recorder_b"});
}

TEST_CASE("order: among handlers free to run, priority then name decide, site hooks included") {
    Site site;
    site.hook("pre_start", "50-site",
              "echo hook-site pre_start by-site-hook >> " + site.log().string());
    // recorder 50, recorder_b 50 before which leader (90) must run, follower 10 after
    // recorder, a site hook at 20: the site hook (20) is first; recorder (50, before recorder_b
    // by name) frees follower, whose 10 puts it before leader's 90; recorder_b waits for leader.
    Context ctx = site.context(
        ordering_settings(site, {"follower", "leader"}, "recorder_b, leader, follower, recorder") +
        "[hooks]\npriority = 20\n");
    instances::create(ctx, site.options());
    CHECK(ran_at(site, "pre_start") ==
          std::vector<std::string>{"hook-site", "recorder", "follower", "leader", "recorder_b"});
    // Without constraints at a point, priority then name.
    CHECK(ran_at(site, "post_start") == std::vector<std::string>{"recorder", "recorder_b"});
}

TEST_CASE("order: a cycle of constraints fails the operation at that point, naming the plugins") {
    Site site;
    // cycle_a: after cycle_b, before cycle_c; cycle_b: after cycle_c.
    Context ctx = site.context(
        ordering_settings(site, {"cycle_a", "cycle_b", "cycle_c"}, "cycle_c, cycle_a, cycle_b"));
    CHECK_THROWS_WITH(instances::create(ctx, site.options()),
                      Catch::Contains("the order constraints of plugins cycle_a, cycle_b, "
                                      "cycle_c at pre_start form a cycle: cycle_a runs after "
                                      "cycle_b, cycle_b runs after cycle_c, cycle_c runs after "
                                      "cycle_a"));
    // No handler ran at pre_start, the server never started, and the create was undone.
    CHECK(ran_at(site, "pre_start").empty());
    CHECK(site.driver.calls == std::vector<std::string>{"initdb 15/main"});
    CHECK(site.nothing_left(ctx));
}

TEST_CASE("order: two of the three plugins of a cycle are no cycle, and keep their constraint") {
    Site site;
    // cycle_a runs after cycle_b; its before=cycle_c and cycle_b's after=cycle_c are ignored.
    Context ctx = site.context(ordering_settings(site, {"cycle_a", "cycle_b"}, "cycle_a, cycle_b"));
    instances::create(ctx, site.options());
    CHECK(ran_at(site, "pre_start") == std::vector<std::string>{"cycle_b", "cycle_a"});
    CHECK(ran_at(site, "post_start") == std::vector<std::string>{"cycle_a", "cycle_b"});
}
