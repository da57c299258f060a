// The ABI test: the plugin of tests/abi/fixture.cpp, compiled against the frozen headers of each
// released SDK (tests/abi/sdk-1.0, sdk-1.1, sdk-1.2, sdk-1.3), is loaded by the current engine and
// its hook and command call every 1.0 method a test can call. Each reports what every call
// returned; a method answered from another vtable slot, or a struct read with another layout,
// changes a line. The fake driver stands for the server.
#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <catch2/catch.hpp>
#include <chrono>
#include <fstream>
#include <sstream>
#include <thread>

#include "engine/core/error.hpp"
#include "engine/operations/instances.hpp"
#include "engine/pipeline/context.hpp"
#include "engine/pipeline/plugin_calls.hpp"
#include "engine/pipeline/plugin_host.hpp"
#include "fake_driver.hpp"
#include "temp_dir.hpp"

namespace fs = std::filesystem;
using namespace pgforge;
using pgforge::test::FakeDriver;
using pgforge::test::TempDir;

namespace {

const fs::path abi_plugins = PGFORGE_TEST_ABI_DIR;
// Every released SDK minor version a plugin may have been built against.
const std::vector<std::string> releases = {"1_0", "1_1", "1_2", "1_3"};

std::string read_all(const fs::path& file) {
    std::ifstream in(file);
    std::stringstream s;
    s << in.rdbuf();
    return s.str();
}

// Standard error (where the engine logs) into a file while alive.
class CaptureStderr {
  public:
    explicit CaptureStderr(const fs::path& file) {
        ::fflush(stderr);
        saved_ = ::dup(2);
        int fd = ::open(file.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
        ::dup2(fd, 2);
        ::close(fd);
    }
    ~CaptureStderr() {
        ::fflush(stderr);
        ::dup2(saved_, 2);
        ::close(saved_);
    }

  private:
    int saved_;
};

struct AbiSite {
    TempDir dir{"abi"};
    FakeDriver::Log driver;
    std::vector<std::string> progress;

    AbiSite() {
        fs::permissions(dir.path(), fs::perms(0755));
        fs::create_directories(dir / "out");
        fs::permissions(dir / "out", fs::perms(0755));  // root writes there for the owner
    }
    fs::path report(const std::string& release) const { return dir / "out" / (release + ".txt"); }
    fs::path undone(const std::string& release) const {
        return dir / "out" / (release + ".undone");
    }

    Context context() {
        std::ostringstream s;
        s << "prefix = " << (dir / "prefix").string() << "\nrun_dir = " << (dir / "run").string()
          << "\n[postgresql]\nport_min = 47000\nport_max = 47499\n[plugins]\n";
        for (const auto& r : releases)
            s << "path = " << (abi_plugins / ("abi_" + r)).string() << "\n";
        for (const auto& r : releases) s << "enabled = abi_" << r << "\n";
        for (const auto& r : releases)
            s << "[abi_" << r << "]\ncolour = blue\nreport = " << report(r).string()
              << "\nundo_file = " << undone(r).string() << "\n";
        std::ofstream(dir / "settings.ini") << s.str();
        SettingsOverrides o;
        o.settings_file = dir / "settings.ini";
        return Context(load_settings(o), std::make_unique<FakeDriver>(driver));
    }
    // Quiet, progress recorded, each plugin's flag given.
    void prepare(Context& ctx) {
        ctx.quiet = true;
        ctx.progress = [this](std::string_view step) { progress.emplace_back(step); };
        for (const auto& r : releases) ctx.flags.insert("abi_" + r + "-flag");
    }
};

// What report_context (tests/abi/fixture.cpp) says when every call works.
std::string context_lines(const std::string& tag, const Instance& i, const fs::path& prefix) {
    std::ostringstream out;
    out << tag << " instance yes\n"
        << tag << " instance.name " << i.name << "\n"
        << tag << " instance.version " << i.version << "\n"
        << tag << " instance.qualified_name " << i.qualified_name() << "\n"
        << tag << " instance.base_dir " << i.base_dir.string() << "\n"
        << tag << " instance.data_dir " << i.data_dir.string() << "\n"
        << tag << " instance.wal_dir " << i.wal_dir.string() << "\n"
        << tag << " instance.log_file " << i.log_file.string() << "\n"
        << tag << " instance.socket_dir " << i.socket_dir.string() << "\n"
        << tag << " instance.bindir set\n"
        << tag << " instance.port " << i.port << "\n"
        << tag << " instance.owner " << i.owner << "\n"
        << tag << " instance.superuser " << i.superuser << "\n"
        << tag << " instance.running no\n"
        << tag << " setting 'blue' none\n"
        << tag << " settings colour;report;undo_file;\n"
        << tag << " prefix " << prefix.string() << "\n"
        << tag << " config_dir set\n"
        << tag << " run yes 3 no [from stdin " << tag << "] [err] no\n"
        << tag << " spawn pid\n"
        << tag << " query no error 0 0\n"
        << tag << " quote_identifier \"a\"\"b\"\n"
        << tag << " quote_literal 'it''s'\n"
        << tag << " set_state yes\n"
        << tag << " state '" << tag << "' none\n"
        << tag << " erase_state yes none\n"
        << tag << " reserve_port in range kept\n"
        << tag << " write_file yes\n"
        << tag << " quiet yes\n"
        << tag << " make_directory yes\n";
    return out.str();
}

}  // namespace

TEST_CASE("plugins built against each released SDK's headers run every 1.0 call in this engine",
          "[abi]") {
    AbiSite site;
    Context ctx = site.context();
    site.prepare(ctx);
    REQUIRE(ctx.plugins().loaded().size() == releases.size());
    {
        CaptureStderr capture(site.dir / "out" / "stderr");
        instances::create(ctx, [] {
            instances::CreateOptions o;
            o.name = "main";
            return o;
        }());
    }
    Instance i = instances::get(ctx, "main");
    std::string log = read_all(site.dir / "out" / "stderr");
    INFO("the engine's log: " << log);
    for (const auto& r : releases) {
        DYNAMIC_SECTION("SDK " << r) {
            const std::string name = "abi_" + r;
            // The hook, at create's pre_configure.
            std::string hook = context_lines("hook", i, site.dir / "prefix") +
                               "hook point pre_configure\n"
                               "hook operation create\n"
                               "hook outcome yes []\n"
                               "hook first_configure yes\n"
                               "hook flag yes no\n"
                               "hook configuration yes\n"
                               "configuration parameter '7MB'\n"
                               "configuration hba_text has the record\n";
            if (r != "1_0")
                hook += "hook find EngineInfo version set sdk 1." +
                        std::to_string(PGFORGE_SDK_VERSION_MINOR) + "\n";
            if (r != "1_0" && r != "1_1")
                hook += "hook find InstanceOptions tone warm, 1 option(s)\n";
            CHECK(read_all(site.report(r)) == hook);
            CHECK_THAT(log, Catch::Contains(name + ": hook logged"));
            CHECK(std::count(site.progress.begin(), site.progress.end(),
                             name + ": hook progressed") == 1);
            CHECK(read_all(i.base_dir / name / "hook.txt") == "hook wrote\n");
            CHECK(fs::is_directory(i.base_dir / "hook-dir"));
            // What the configuration calls contributed reached the files.
            CHECK(fs::exists(i.base_dir / name / "abi.conf"));

            // The command, on the instance.
            LoadedPlugin* p = ctx.plugins().find(name);
            REQUIRE(p);
            auto commands = p->commands();
            REQUIRE(commands.size() == 1);
            CHECK(commands[0].family == name);
            CHECK(commands[0].verb == "report");
            CHECK(commands[0].needs_instance);
            auto flags = p->flags();
            REQUIRE(flags.size() == 1);
            CHECK(flags[0].command == "instance drop");
            CHECK(flags[0].name == name + "-flag");
            std::ostringstream out, err;
            site.progress.clear();
            {
                CaptureStderr capture(site.dir / "out" / "stderr");
                CHECK(run_plugin_command(ctx, *p, commands[0], &i, {"a", "b c"}, true, out, err) ==
                      0);
            }
            CHECK(out.str() == "command " + name + " report\n" +
                                   context_lines("command", i, site.dir / "prefix") +
                                   "command args [a][b c]\ncommand json yes\n");
            CHECK(err.str() == "command err\n");
            CHECK_THAT(read_all(site.dir / "out" / "stderr"),
                       Catch::Contains(name + ": command logged"));
            CHECK(site.progress == std::vector<std::string>{name + ": command progressed"});
            CHECK(read_all(i.base_dir / name / "command.txt") == "command wrote\n");
            // describe()
            auto fields = plugin_fields(ctx, i);
            CHECK(std::count(fields.begin(), fields.end(),
                             std::make_tuple(name, std::string("instance"), i.qualified_name())) ==
                  1);
        }
    }
    // The spawned programs wrote their logs (the last spawn may take a moment).
    for (const char* tag : {"hook", "command"}) {
        fs::path spawned = i.base_dir / (std::string(tag) + "-spawn.log");
        for (int k = 0; k < 100 && read_all(spawned).find("spawned") == std::string::npos; ++k)
            std::this_thread::sleep_for(std::chrono::milliseconds(20));
        CHECK_THAT(read_all(spawned), Catch::Contains("spawned"));
    }
}

TEST_CASE("a 1.3 plugin handling pre_promote loads; plugins of older SDKs are not called there",
          "[abi]") {
    AbiSite site;
    Context ctx = site.context();
    site.prepare(ctx);
    REQUIRE(ctx.plugins().loaded().size() == releases.size());
    LoadedPlugin* p = ctx.plugins().find("abi_1_3");
    REQUIRE(p);
    CHECK(p->manifest().sdk_minor == 3);
    CHECK(p->manifest().priorities.count(sdk::HookPoint::pre_promote) == 1);
    // The values of the older points never moved: a plugin compiled them into its switch.
    CHECK(static_cast<int>(sdk::HookPoint::post_drop) == 9);
    CHECK(static_cast<int>(sdk::HookPoint::pre_promote) == 10);
    CHECK(static_cast<int>(sdk::HookPoint::post_promote) == 11);
    for (const auto& r : releases) {
        INFO("SDK " << r);
        const PluginRecord* record = ctx.plugins().record("abi_" + r);
        REQUIRE(record);
        CHECK(record->hooks_at(sdk::HookPoint::pre_promote) == (r == "1_3"));
        CHECK_FALSE(record->hooks_at(sdk::HookPoint::post_promote));
    }
}

TEST_CASE("the undo a plugin built against each released SDK registered runs with its context",
          "[abi]") {
    AbiSite site;
    site.driver.fail_at = "start";
    Context ctx = site.context();
    site.prepare(ctx);
    instances::CreateOptions o;
    o.name = "main";
    {
        CaptureStderr capture(site.dir / "out" / "stderr");
        CHECK_THROWS_AS(instances::create(ctx, o), Error);
    }
    INFO("the engine's log: " << read_all(site.dir / "out" / "stderr"));
    for (const auto& r : releases) CHECK(read_all(site.undone(r)) == "undone for 15/main\n");
}
