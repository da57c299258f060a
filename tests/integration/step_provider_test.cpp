// Step providers (pgforge/steps.hpp): a plugin that runs the start and stop steps of the
// instances it manages; every other handler and site hook still runs around the step, the
// instances it declines are started by the engine's driver, and two providers are a conflict.
#include <catch2/catch.hpp>
#include <fstream>
#include <sstream>

#include "engine/core/error.hpp"
#include "engine/inventory/inventory.hpp"
#include "engine/operations/instances.hpp"
#include "tests/support/test_site.hpp"

namespace fs = std::filesystem;
using namespace pgforge;
using pgforge::test::TestSite;

namespace {

const fs::path fixtures = PGFORGE_TEST_PLUGIN_DIR;

struct StepSite {
    TestSite site;
    std::string base;
    StepSite() {
        fs::create_directories(out());
        fs::permissions(out(), fs::perms(0777));
        std::ifstream in(site.settings_file());
        base.assign(std::istreambuf_iterator<char>(in), {});
        settings("stepper, recorder", "");
    }
    fs::path out() const { return site.root() / "out"; }
    fs::path step_log() const { return out() / "steps.log"; }
    fs::path hook_log() const { return out() / "recorder.log"; }
    void settings(const std::string& enabled, const std::string& stepper) const {
        std::ofstream(site.settings_file(), std::ios::trunc)
            << base << "\n[plugins]\npath = " << (fixtures / "stepper").string()
            << "\npath = " << (fixtures / "stepper_b").string()
            << "\npath = " << (fixtures / "recorder").string() << "\nenabled = " << enabled
            << "\n[stepper]\ninstances = ha\nlog = " << step_log().string() << "\n"
            << stepper << "[stepper_b]\ninstances = ha\nlog = " << step_log().string()
            << "\n[recorder]\nlog = " << hook_log().string() << "\n";
        for (const fs::path& f : {step_log(), hook_log()}) {
            std::ofstream(f, std::ios::app).flush();
            fs::permissions(f, fs::perms(0666));
        }
    }
    std::string steps() const {
        std::ifstream in(step_log());
        return std::string(std::istreambuf_iterator<char>(in), {});
    }
    // The points the recorder saw for `operation`, in order.
    std::vector<std::string> points(const std::string& operation) const {
        std::ifstream in(hook_log());
        std::vector<std::string> seen;
        for (std::string line; std::getline(in, line);) {
            auto a = line.find(' '), b = line.find(' ', a + 1);
            std::string rest = line.substr(b + 1);
            if (rest.rfind(operation + " 15/", 0) == 0)
                seen.push_back(line.substr(a + 1, b - a - 1));
        }
        return seen;
    }
    void clear() const {
        for (const fs::path& f : {step_log(), hook_log()})
            std::ofstream(f, std::ios::trunc).flush();
    }
    bool running(const std::string& name) const {
        Context ctx(site.settings());
        return instances::status(ctx, instances::get(ctx, name)).running;
    }
    TestSite::Output cli(const std::vector<std::string>& args) const { return site.cli(args); }
};

}  // namespace

TEST_CASE("a plugin that provides the start and stop steps runs them, hooks around them",
          "[integration][steps]") {
    StepSite s;
    auto created = s.cli({"instance", "create", "ha"});
    INFO(created.err);
    REQUIRE(created.status == 0);
    CHECK(s.running("ha"));
    CHECK_THAT(s.steps(), Catch::Contains("start ha --timeout"));
    CHECK(s.points("create") == std::vector<std::string>{"pre_init", "post_init", "pre_configure",
                                                         "post_configure", "pre_start",
                                                         "post_start"});
    s.clear();
    REQUIRE(s.cli({"instance", "stop", "ha"}).status == 0);
    CHECK_FALSE(s.running("ha"));
    CHECK_THAT(s.steps(), Catch::Contains("stop ha --mode fast --timeout"));
    CHECK(s.points("stop") == std::vector<std::string>{"pre_stop", "post_stop"});
    s.clear();
    REQUIRE(s.cli({"instance", "restart", "ha"}).status == 0);
    CHECK(s.running("ha"));
    // Asked for both steps (it may manage more than the server), it started the stopped server.
    CHECK_THAT(s.steps(), Catch::StartsWith("stop ha --mode fast") && Catch::Contains("start ha"));
    CHECK(s.cli({"database", "list", "-i", "ha"}).status == 0);
    s.clear();
    auto conf = s.cli({"conf", "set", "-i", "ha", "max_connections=44", "--restart"});
    INFO(conf.err);
    REQUIRE(conf.status == 0);
    CHECK_THAT(s.steps(), Catch::Contains("stop ha"));
    CHECK_THAT(s.steps(), Catch::Contains("start ha"));
    CHECK(s.points("configure") == std::vector<std::string>{"pre_configure", "post_configure",
                                                            "pre_stop", "post_stop", "pre_start",
                                                            "post_start"});
    // start --foreground cannot hand the process to a server the plugin starts.
    REQUIRE(s.cli({"instance", "stop", "ha"}).status == 0);
    auto fg = s.cli({"instance", "start", "--foreground", "ha"});
    CHECK(fg.status == static_cast<int>(Exit::usage));
    CHECK_THAT(fg.err, Catch::Contains("plugin stepper provides the start step"));
    REQUIRE(s.cli({"instance", "drop", "ha"}).status == 0);
}

TEST_CASE("an instance the step provider declines is started and stopped by the driver",
          "[integration][steps]") {
    StepSite s;
    REQUIRE(s.cli({"instance", "create", "plain"}).status == 0);
    CHECK(s.running("plain"));
    CHECK(s.steps() == "declined start plain\n");
    REQUIRE(s.cli({"instance", "stop", "plain"}).status == 0);
    CHECK_FALSE(s.running("plain"));
    CHECK_THAT(s.steps(), Catch::Contains("declined stop plain"));
}

TEST_CASE("a step provider that fails fails the operation, naming it", "[integration][steps]") {
    StepSite s;
    REQUIRE(s.cli({"instance", "create", "ha", "--state", "stopped"}).status == 0);
    s.settings("stepper, recorder", "fail = start\n");
    s.clear();
    auto r = s.cli({"instance", "start", "ha"});
    CHECK(r.status == static_cast<int>(Exit::server));
    CHECK_THAT(r.err, Catch::Contains("plugin stepper could not start instance 15/ha"));
    CHECK_THAT(r.err, Catch::Contains("the stepper refuses to start"));
    CHECK_FALSE(s.running("ha"));
    // post_start saw the failed step.
    CHECK(s.points("start") == std::vector<std::string>{"pre_start", "post_start"});
    Context ctx(s.site.settings());
    CHECK(ctx.inventory().journal("15/ha").at(0).outcome == "failed");
}

TEST_CASE("two plugins that provide the same step are a conflict named at load",
          "[integration][steps]") {
    StepSite s;
    s.settings("stepper, stepper_b", "");
    auto r = s.cli({"instance", "create", "ha"});
    CHECK(r.status != 0);
    CHECK_THAT(r.err, Catch::Contains("plugins stepper and stepper_b both provide the start step"));
    auto list = s.cli({"plugin", "list"});
    CHECK_THAT(list.out, Catch::Contains("broken"));
}
