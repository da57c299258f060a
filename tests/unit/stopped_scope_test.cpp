// The temporarily stopped scope with a fake driver: the server is started again whatever the
// work did (an exception, an interruption), a failed start after a failed work names both, a
// failed stop runs no work, a stopped server stays stopped, and after a kill the next command
// starts the server the scope had stopped. No server.
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <fstream>

#include "engine/core/error.hpp"
#include "engine/core/interrupt.hpp"
#include "engine/inventory/inventory.hpp"
#include "engine/operations/instances.hpp"
#include "engine/operations/stopped_scope.hpp"
#include "engine/pipeline/pipeline.hpp"
#include "fake_driver.hpp"
#include "temp_dir.hpp"

namespace fs = std::filesystem;
using namespace pgforge;
using pgforge::test::FakeDriver;
using pgforge::test::TempDir;

namespace {

struct Scope {
    TempDir dir{"scope"};
    FakeDriver::Log driver;
    std::unique_ptr<Context> ctx;
    Instance instance;
    Scope() {
        fs::permissions(dir.path(), fs::perms(0755));
        std::ofstream(dir / "settings.ini")
            << "prefix = " << (dir / "prefix").string() << "\nrun_dir = " << (dir / "run").string()
            << "\n[postgresql]\nport_min = 48000\nport_max = 48999\n";
        SettingsOverrides o;
        o.settings_file = dir / "settings.ini";
        ctx = std::make_unique<Context>(load_settings(o), std::make_unique<FakeDriver>(driver));
        instances::CreateOptions c;
        c.name = "main";
        instance = instances::create(*ctx, c);
        driver.calls.clear();
    }
    // The work given, in the scope, as the operation "checksums".
    bool run(const std::function<void()>& work) {
        return instances::run_stopped(*ctx, instance, "checksums", [&](Pipeline&) { work(); });
    }
    JournalEntry last() { return ctx->inventory().journal("15/main").at(0); }
};

}  // namespace

TEST_CASE("stopped scope: the work runs stopped, the server is started again") {
    Scope s;
    bool stopped_meanwhile = false;
    CHECK(s.run([&] { stopped_meanwhile = !s.driver.running; }));
    CHECK(stopped_meanwhile);
    CHECK(s.driver.running);
    CHECK(s.driver.calls == std::vector<std::string>{"stop 15/main", "start 15/main"});
    CHECK(s.last().outcome == "ok");
}

TEST_CASE("stopped scope: a stopped server stays stopped, the work alone runs") {
    Scope s;
    s.driver.running = false;
    bool ran = false;
    CHECK_FALSE(s.run([&] { ran = true; }));
    CHECK(ran);
    CHECK_FALSE(s.driver.running);
    CHECK(s.driver.calls.empty());
}

TEST_CASE("stopped scope: the work fails, the server is started again, its error is thrown") {
    Scope s;
    try {
        s.run([] { throw Error(Exit::conflict, "work failed"); });
        FAIL("no error");
    } catch (const Error& e) {
        CHECK(e.code() == Exit::conflict);
        CHECK(std::string(e.what()) == "work failed");
    }
    CHECK(s.driver.running);
    CHECK(s.driver.calls == std::vector<std::string>{"stop 15/main", "start 15/main"});
    CHECK(s.last().outcome == "failed");
}

TEST_CASE("stopped scope: the work and the start fail: one error names both") {
    Scope s;
    s.driver.fail_at = "start";
    try {
        s.run([] { throw Error(Exit::conflict, "work failed"); });
        FAIL("no error");
    } catch (const Error& e) {
        CHECK(e.code() == Exit::conflict);
        CHECK_THAT(e.what(), Catch::Contains("work failed"));
        CHECK_THAT(e.what(), Catch::Contains("and the server did not start again: fake start"));
        CHECK_THAT(e.hint(), Catch::Contains("pgforge instance start 15/main"));
    }
    CHECK_FALSE(s.driver.running);
}

TEST_CASE("stopped scope: the work is done but the start fails: said so") {
    Scope s;
    s.driver.fail_at = "start";
    try {
        s.run([] {});
        FAIL("no error");
    } catch (const Error& e) {
        CHECK_THAT(e.what(), Catch::Contains("the checksums was done, but the server did not "
                                             "start again"));
    }
}

TEST_CASE("stopped scope: a stop that fails runs no work") {
    Scope s;
    s.driver.fail_at = "stop";
    bool ran = false;
    CHECK_THROWS_WITH(s.run([&] { ran = true; }), Catch::Contains("fake stop failed"));
    CHECK_FALSE(ran);
    CHECK(s.driver.running);
    CHECK(s.driver.calls == std::vector<std::string>{"stop 15/main"});
}

TEST_CASE("stopped scope: an interruption during the work still starts the server") {
    Scope s;
    install_interrupt_handlers();
    try {
        s.run([] {
            ::raise(SIGTERM);
            throw_if_interrupted();
        });
        FAIL("no error");
    } catch (const Error& e) {
        CHECK(e.code() == Exit::interrupted);
    }
    clear_interrupt();
    CHECK(s.driver.running);
    CHECK(s.driver.calls == std::vector<std::string>{"stop 15/main", "start 15/main"});
}

TEST_CASE("stopped scope: killed while stopped, the next command starts the server again") {
    Scope s;
    // A process that journaled the marker and stopped the server, then died.
    pid_t child = fork();
    REQUIRE(child >= 0);
    if (child == 0) {
        Inventory inv(s.ctx->settings().inventory_file());
        auto id = inv.begin_operation("checksums", "15/main");
        inv.record_steps(id, {{"made", instances::stopped_for_work_marker, utc_timestamp(), 0, "ok",
                               s.instance.data_dir.string()}});
        _exit(0);
    }
    int status = 0;
    waitpid(child, &status, 0);
    s.driver.running = false;
    CHECK(instances::resume(*s.ctx, "15", "main").empty());
    CHECK(s.driver.running);
    CHECK(s.driver.calls == std::vector<std::string>{"start 15/main"});
    auto journal = s.ctx->inventory().journal("15/main");
    bool ended = false, started = false;
    for (const auto& e : journal) {
        if (e.operation == "checksums" && e.outcome == "failed" &&
            e.message.find("was started again") != std::string::npos)
            ended = true;
        if (e.operation == "start" && e.outcome == "ok") started = true;
    }
    CHECK(ended);
    CHECK(started);
    CHECK(s.ctx->inventory().unfinished("15/main").empty());

    // Without the marker (the server was stopped before): it stays stopped.
    s.driver.calls.clear();
    s.driver.running = false;
    child = fork();
    if (child == 0) {
        Inventory inv(s.ctx->settings().inventory_file());
        inv.begin_operation("checksums", "15/main");
        _exit(0);
    }
    waitpid(child, &status, 0);
    instances::resume(*s.ctx, "15", "main");
    CHECK_FALSE(s.driver.running);
    CHECK(s.driver.calls.empty());
}
