// Unfinished operations in the journal: which process ran them, and resuming only those whose
// process is gone (a live one, even unfinished, is left alone). With the fake driver.
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <fstream>

#include "engine/inventory/inventory.hpp"
#include "engine/operations/instances.hpp"
#include "engine/pipeline/made.hpp"
#include "engine/pipeline/pipeline.hpp"
#include "fake_driver.hpp"
#include "temp_dir.hpp"

namespace fs = std::filesystem;
using namespace pgforge;
using pgforge::test::FakeDriver;
using pgforge::test::TempDir;

namespace {

Context site_context(const TempDir& dir, FakeDriver::Log& log) {
    std::ofstream(dir / "settings.ini") << "prefix = " << (dir / "prefix").string()
                                        << "\nrun_dir = " << (dir / "run").string() << "\n";
    SettingsOverrides o;
    o.settings_file = dir / "settings.ini";
    return Context(load_settings(o), std::make_unique<FakeDriver>(log));
}

// In a child process that then dies without ending it: an operation on 15/main that made a
// directory and the inventory entry.
void killed_create(const Settings& settings, const fs::path& made_dir) {
    pid_t child = fork();
    REQUIRE(child >= 0);
    if (child == 0) {
        Inventory inv(settings.inventory_file());
        auto id = inv.begin_operation("create", "15/main");
        inv.record_steps(id, {{"made", "inventory entry", utc_timestamp(), 0, "ok", "15/main"},
                              {"made", "directory", utc_timestamp(), 0, "ok", made_dir.string()}});
        fs::create_directories(made_dir / "data");
        _exit(0);
    }
    int status = 0;
    waitpid(child, &status, 0);
}

}  // namespace

TEST_CASE("a process is told apart from a later one with the same pid") {
    std::string me = process_identity(getpid());
    CHECK_FALSE(me.empty());
    CHECK_FALSE(process_gone(getpid(), me));
    CHECK(process_gone(getpid(), "another-boot:1"));
    pid_t child = fork();
    if (child == 0) _exit(0);
    waitpid(child, nullptr, 0);
    CHECK(process_gone(child, me));
}

TEST_CASE("only an unfinished create whose process is gone is undone, under the lock") {
    TempDir dir("resume");
    FakeDriver::Log log;
    Context ctx = site_context(dir, log);
    const fs::path base = dir / "prefix" / "15" / "main";
    Inventory& inv = ctx.inventory();

    // Unfinished but alive (this process): left alone.
    auto live = inv.begin_operation("create", "15/main");
    CHECK(inv.unfinished("15/main").at(0).process == process_identity(getpid()));
    CHECK(instances::resume(ctx, "15", "main").empty());
    REQUIRE(inv.unfinished("15/main").size() == 1);
    inv.end_operation(live, false, "test");

    // Its process died: what it made goes, the entry ends saying so.
    killed_create(ctx.settings(), base);
    REQUIRE(fs::exists(base / "data"));
    CHECK(instances::resume(ctx, "15", "main").empty());  // the entry was not written yet
    CHECK_FALSE(fs::exists(base));
    CHECK(inv.unfinished("15/main").empty());
    auto entries = inv.journal("15/main", 2);
    REQUIRE(entries.size() == 2);
    CHECK(entries[0].operation == "resume create");
    CHECK(entries[0].outcome == "ok");
    CHECK(entries[1].operation == "create");
    CHECK(entries[1].outcome == "failed");
    CHECK_THAT(entries[1].message, Catch::Contains("undone"));
}

TEST_CASE("undoing a server never signals a process a forged postmaster.pid names") {
    TempDir dir("resume");
    fs::create_directories(dir / "data");
    pid_t victim = fork();
    REQUIRE(victim >= 0);
    if (victim == 0) {
        // Not a postgres working in the data directory.
        execl("/bin/sleep", "sleep", "30", static_cast<char*>(nullptr));
        _exit(127);
    }
    std::ofstream(dir / "data" / "postmaster.pid")
        << victim << "\n"
        << (dir / "data").string() << "\n1\n5432\n/tmp\nlocalhost\n1 2\nready\n";
    CHECK_FALSE(stop_server_at(dir / "data", 1));
    CHECK(kill(victim, 0) == 0);
    kill(victim, SIGKILL);
    waitpid(victim, nullptr, 0);
}
