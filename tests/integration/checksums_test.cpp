// `instance checksums NAME enable|disable|status` on real servers, and the stopped scope it runs
// in (engine/operations/stopped_scope.hpp): a running instance ends running, a stopped one ends
// stopped, and when pg_checksums fails the server runs again and the failure is reported.
#include <catch2/catch.hpp>
#include <fstream>
#include <nlohmann/json.hpp>

#include "engine/core/error.hpp"
#include "engine/inventory/inventory.hpp"
#include "engine/operations/checksums.hpp"
#include "engine/operations/instances.hpp"
#include "engine/operations/stopped_scope.hpp"
#include "engine/pipeline/pipeline.hpp"
#include "tests/support/test_site.hpp"

namespace fs = std::filesystem;
using namespace pgforge;
using pgforge::test::TestSite;
using json = nlohmann::json;

namespace {

bool running(const TestSite& site, const std::string& name) {
    return site.cli({"instance", "status", name}).status == 0;
}

json run_checksums(const TestSite& site, const std::string& name, const std::string& action) {
    auto r = site.cli({"--json", "instance", "checksums", name, action});
    INFO(action << ": " << r.err);
    REQUIRE(r.status == 0);
    return json::parse(r.out);
}

// The last journal entry of `operation` on 15/NAME.
JournalEntry last(const TestSite& site, const std::string& name, const std::string& operation) {
    Inventory inv(site.settings().inventory_file());
    for (const auto& e : inv.journal("15/" + name, 50))
        if (e.operation == operation) return e;
    return {};
}

// A relation file pg_checksums must rewrite but cannot open (mode 000: not even its owner,
// who pg_checksums runs as): its --enable fails.
fs::path plant_unreadable_relation(const TestSite& site, const std::string& name) {
    Context ctx(site.settings());
    fs::path f = instances::get(ctx, name).data_dir / "base" / "1" / "999999";
    std::ofstream(f).flush();
    fs::permissions(f, fs::perms::none);
    return f;
}

}  // namespace

TEST_CASE("checksums on a running instance: enabled and disabled, the server runs again",
          "[integration][checksums]") {
    TestSite site;
    REQUIRE(site.cli({"instance", "create", "ck"}).status == 0);
    CHECK(run_checksums(site, "ck", "status")["data_checksums"] == false);

    auto on = run_checksums(site, "ck", "enable");
    CHECK(on["changed"] == true);
    CHECK(on["data_checksums"] == true);
    CHECK(on["stopped_for_work"] == true);
    CHECK(on["running"] == true);
    CHECK(on["files_scanned"].get<long>() > 0);
    CHECK(running(site, "ck"));
    auto st = run_checksums(site, "ck", "status");
    CHECK(st["data_checksums"] == true);
    CHECK(st["version"] == 1);
    CHECK(last(site, "ck", "checksums").outcome == "ok");
    // instance get follows.
    auto get = site.cli({"--json", "instance", "get", "ck"});
    REQUIRE(get.status == 0);
    CHECK(json::parse(get.out)["options"]["data_checksums"] == true);
    // ... so that its output applied again is unchanged (data_checksums cannot change by apply).
    {
        const fs::path manifest = site.root() / "ck.json";
        std::ofstream(manifest) << get.out;
        auto apply = site.cli({"--json", "instance", "apply", "-f", manifest.string()});
        INFO(apply.err);
        CHECK(apply.status == 0);
        if (apply.status == 0) CHECK(json::parse(apply.out)["results"][0]["result"] == "unchanged");
    }

    // Already enabled: nothing stopped, nothing journaled.
    Inventory inv(site.settings().inventory_file());
    const auto journaled = inv.journal("15/ck", 100).size();
    auto again = run_checksums(site, "ck", "enable");
    CHECK(again["changed"] == false);
    CHECK(again["stopped_for_work"] == false);
    CHECK(inv.journal("15/ck", 100).size() == journaled);

    auto off = run_checksums(site, "ck", "disable");
    CHECK(off["changed"] == true);
    CHECK(off["data_checksums"] == false);
    CHECK(off["running"] == true);
    CHECK(running(site, "ck"));
    CHECK(run_checksums(site, "ck", "status")["data_checksums"] == false);

    // Text output.
    auto text = site.cli({"instance", "checksums", "ck", "status"});
    CHECK(text.status == 0);
    CHECK_THAT(text.out, Catch::Contains("data checksums disabled"));
    CHECK(site.cli({"instance", "checksums", "ck", "toggle"}).status == 2);
}

TEST_CASE("checksums on a stopped instance: it stays stopped", "[integration][checksums]") {
    TestSite site;
    REQUIRE(site.cli({"instance", "create", "cs", "--state", "stopped"}).status == 0);
    REQUIRE_FALSE(running(site, "cs"));
    auto on = run_checksums(site, "cs", "enable");
    CHECK(on["changed"] == true);
    CHECK(on["stopped_for_work"] == false);
    CHECK(on["running"] == false);
    CHECK_FALSE(running(site, "cs"));
    CHECK(run_checksums(site, "cs", "status")["data_checksums"] == true);
    // The journal has no stop nor start for it.
    auto e = last(site, "cs", "checksums");
    CHECK(e.outcome == "ok");
    for (const auto& step : Inventory(site.settings().inventory_file()).steps(e.id)) {
        CHECK(step.name != "stop");
        CHECK(step.name != "start");
    }
    auto off = run_checksums(site, "cs", "disable");
    CHECK(off["data_checksums"] == false);
    CHECK_FALSE(running(site, "cs"));
    CHECK(run_checksums(site, "cs", "status")["data_checksums"] == false);
}

TEST_CASE("checksums: pg_checksums fails, the server is started again and the error reported",
          "[integration][checksums]") {
    TestSite site;
    REQUIRE(site.cli({"instance", "create", "cf"}).status == 0);
    fs::path bad = plant_unreadable_relation(site, "cf");
    auto r = site.cli({"instance", "checksums", "cf", "enable"});
    CHECK(r.status == 1);
    CHECK_THAT(r.err, Catch::Contains("pg_checksums --enable failed"));
    CHECK_THAT(r.err, Catch::Contains("999999"));
    CHECK(running(site, "cf"));
    CHECK(run_checksums(site, "cf", "status")["data_checksums"] == false);
    auto e = last(site, "cf", "checksums");
    CHECK(e.outcome == "failed");
    // Stopped, the work failed, started again: in that order in the journal.
    std::vector<std::string> steps;
    for (const auto& st : Inventory(site.settings().inventory_file()).steps(e.id))
        if (st.kind == "step") steps.push_back(st.name + " " + st.outcome);
    CHECK(steps == std::vector<std::string>{"stop ok", "pg_checksums failed", "start ok"});
    fs::remove(bad);
    CHECK(run_checksums(site, "cf", "enable")["data_checksums"] == true);
    CHECK(running(site, "cf"));
}

TEST_CASE("checksums: the work and the start fail: both reported, the server stopped",
          "[integration][checksums]") {
    TestSite site;
    REQUIRE(site.cli({"instance", "create", "cb"}).status == 0);
    fs::path bad = plant_unreadable_relation(site, "cb");
    // A site hook that refuses every start.
    fs::path hooks = site.root() / "hooks";
    fs::create_directories(hooks / "pre_start.d");
    for (const fs::path& d : {hooks, hooks / "pre_start.d"}) fs::permissions(d, fs::perms(0755));
    std::ofstream(hooks / "pre_start.d" / "refuse")
        << "#!/bin/sh\necho 'no starts now' >&2\nexit 1\n";
    fs::permissions(hooks / "pre_start.d" / "refuse", fs::perms(0755));
    site.add_settings("[hooks]\ndir = " + hooks.string() + "\n");
    auto r = site.cli({"instance", "checksums", "cb", "enable"});
    CHECK(r.status == 1);
    CHECK_THAT(r.err, Catch::Contains("pg_checksums --enable failed"));
    CHECK_THAT(r.err, Catch::Contains("and the server did not start again"));
    CHECK_THAT(r.err, Catch::Contains("no starts now"));
    CHECK_FALSE(running(site, "cb"));
    fs::remove(hooks / "pre_start.d" / "refuse");
    fs::remove(bad);
    CHECK(site.cli({"instance", "start", "cb"}).status == 0);
}

TEST_CASE("the stopped scope: the work throws, the server runs again, the error is the work's",
          "[integration][checksums][stopped-scope]") {
    TestSite site;
    REQUIRE(site.cli({"instance", "create", "sc"}).status == 0);
    Context ctx(site.settings());
    Instance i = instances::get(ctx, "sc");
    bool ran_stopped = false;
    try {
        instances::run_stopped(ctx, i, "checksums", [&](Pipeline&) {
            ran_stopped = !instances::status(ctx, i).running;
            throw Error(Exit::conflict, "the work failed on purpose");
        });
        FAIL("no error");
    } catch (const Error& e) {
        CHECK(e.code() == Exit::conflict);
        CHECK(std::string(e.what()) == "the work failed on purpose");
    }
    CHECK(ran_stopped);
    CHECK(instances::status(ctx, i).running);

    // Not running: the work alone, and it stays stopped.
    REQUIRE(site.cli({"instance", "stop", "sc"}).status == 0);
    bool ran = false;
    CHECK_FALSE(instances::run_stopped(ctx, i, "checksums", [&](Pipeline&) { ran = true; }));
    CHECK(ran);
    CHECK_FALSE(instances::status(ctx, i).running);
}
