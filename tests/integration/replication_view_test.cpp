// The replication view on real servers: a standby of a pgforge primary shows its upstream, slot,
// positions and a lag that reaches 0; the primary shows it among its standbys; with the primary
// stopped the standby says it does not stream, since when, and that its lag is unknown (never a
// made-up 0), and the primary says its standby is not connected.
#include <catch2/catch.hpp>
#include <chrono>
#include <nlohmann/json.hpp>
#include <thread>

#include "engine/operations/instances.hpp"
#include "engine/pg/connection.hpp"
#include "tests/support/test_site.hpp"

using namespace pgforge;
using pgforge::test::TestSite;
using json = nlohmann::json;

namespace {

json get_json(const TestSite& site, const std::string& name) {
    auto r = site.cli({"--json", "instance", "get", name});
    INFO(r.err);
    REQUIRE(r.status == 0);
    return json::parse(r.out);
}

}  // namespace

TEST_CASE("instance get, status and list show a standby, its lag and its primary's standbys",
          "[replication][view]") {
    TestSite site;
    REQUIRE(site.cli({"instance", "create", "main"}).status == 0);
    auto made = site.cli({"instance", "create", "replica", "--standby-for", "15/main"});
    INFO(made.err);
    REQUIRE(made.status == 0);

    {
        Context ctx(site.settings());
        pg::Connection c(instances::get(ctx, "main"));
        c.exec("CREATE TABLE seen AS SELECT generate_series(1, 5000) AS n");
    }
    // The lag reaches 0 once the standby has replayed everything.
    json standby;
    for (int k = 0; k < 100; ++k) {
        standby = get_json(site, "replica")["replication"];
        if (standby["lag_bytes"].is_number() && standby["lag_bytes"] == 0 &&
            standby["streaming"] == true)
            break;
        std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    INFO(standby.dump(2));
    CHECK(standby["role"] == "standby");
    CHECK(standby["upstream"] == "15/main");
    CHECK(standby["in_recovery"] == true);
    CHECK(standby["streaming"] == true);
    CHECK(standby["lag_bytes"] == 0);
    CHECK(standby["lag_seconds"] == 0.0);
    CHECK(standby["receive_lsn"].is_string());
    CHECK(standby["replay_lsn"] == standby["receive_lsn"]);
    CHECK(standby["not_streaming_since"].is_null());
    const json slot = standby["slot"];
    REQUIRE(slot.is_string());

    json primary = get_json(site, "main")["replication"];
    INFO(primary.dump(2));
    CHECK(primary["role"] == "primary");
    CHECK(primary["in_recovery"] == false);
    REQUIRE(primary["standbys"].size() == 1);
    CHECK(primary["standbys"][0]["instance"] == "15/replica");
    CHECK(primary["standbys"][0]["state"] == "streaming");
    CHECK(primary["standbys"][0]["slot"] == slot);
    CHECK(primary["standbys_not_connected"].empty());
    REQUIRE(primary["slots"].size() == 1);
    CHECK(primary["slots"][0]["name"] == slot);
    CHECK(primary["slots"][0]["active"] == true);

    auto status = site.cli({"--json", "instance", "status", "replica"});
    REQUIRE(status.status == 0);
    CHECK(json::parse(status.out)["replication"]["streaming"] == true);

    auto list = site.cli({"--json", "instance", "list"});
    REQUIRE(list.status == 0);
    for (const auto& item : json::parse(list.out))
        if (item["name"] == "replica") {
            CHECK(item["role"] == "standby");
            CHECK(item["upstream"] == "15/main");
        }
    auto text = site.cli({"instance", "list"});
    CHECK(text.out.find("standby of 15/main") != std::string::npos);

    // The primary goes away: the standby says so, and since when; its lag is unknown.
    REQUIRE(site.cli({"instance", "stop", "main"}).status == 0);
    json lost;
    for (int k = 0; k < 100; ++k) {
        lost = get_json(site, "replica")["replication"];
        if (lost["streaming"] == false && lost["not_streaming_since"].is_string()) break;
        std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    INFO(lost.dump(2));
    CHECK(lost["streaming"] == false);
    CHECK(lost["not_streaming_since"].is_string());
    CHECK(lost["lag_bytes"].is_null());
    auto lost_text = site.cli({"instance", "status", "replica"});
    CHECK(lost_text.out.find("NOT streaming from 15/main since") != std::string::npos);

    json stopped_primary = get_json(site, "main")["replication"];
    REQUIRE(stopped_primary["standbys_not_connected"].size() == 1);
    CHECK(stopped_primary["standbys_not_connected"][0]["instance"] == "15/replica");

    // The primary back: streaming again.
    REQUIRE(site.cli({"instance", "start", "main"}).status == 0);
    json back;
    for (int k = 0; k < 150; ++k) {
        back = get_json(site, "replica")["replication"];
        if (back["streaming"] == true) break;
        std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    CHECK(back["streaming"] == true);
}
