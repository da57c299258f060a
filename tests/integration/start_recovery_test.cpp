// `instance start` on a server that is already running but still starting up (recovering): it
// waits until the server accepts connections, as a start that launched it would.
#include <unistd.h>

#include <catch2/catch.hpp>
#include <chrono>
#include <fstream>
#include <thread>

#include "engine/core/error.hpp"
#include "engine/operations/instances.hpp"
#include "engine/pg/postmaster_pid.hpp"
#include "tests/support/test_site.hpp"

namespace fs = std::filesystem;
using namespace pgforge;
using pgforge::test::TestSite;

TEST_CASE("instance start on a server still in recovery waits until it accepts connections",
          "[integration][instance][recovery]") {
    TestSite site;
    Context ctx(site.settings());
    instances::CreateOptions o;
    o.name = "main";
    Instance i = instances::create(ctx, o);
    REQUIRE(instances::stop(ctx, i));

    // Archive recovery whose restore_command takes its time: before reading its first record the
    // server asks the archive for the newest timeline's history, and stays "starting" meanwhile.
    std::ofstream(i.data_dir / "postgresql.conf", std::ios::app)
        << "\nrestore_command = 'sleep 3; false'\n";
    std::ofstream{i.data_dir / "recovery.signal"};

    // Launched without waiting, as another pgforge (or a crash restart) would have left it.
    ctx.driver().start(instances::cluster_for(ctx, i), 0, {});
    const auto began = std::chrono::steady_clock::now();
    for (;;) {
        auto pm = read_postmaster_pid(i.data_dir);
        if (pm && pm->status == "starting") break;
        REQUIRE(std::chrono::steady_clock::now() - began < std::chrono::seconds(10));
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    REQUIRE_FALSE(instances::status(ctx, i).accepting);

    SECTION("within the timeout, it reports the server still starting") {
        try {
            instances::start(ctx, i, 0.5);
            FAIL("start returned while the server was still starting");
        } catch (const Error& e) {
            CHECK(e.code() == Exit::server);
            CHECK_THAT(e.what(), Catch::Contains("did not accept connections within"));
        }
    }
    SECTION("it returns once the server accepts connections") {
        CHECK_FALSE(instances::start(ctx, i));  // it was running already
        CHECK(instances::status(ctx, i).accepting);
    }
    instances::stop(ctx, i, StopMode::immediate);
    instances::drop(ctx, i);
}
