// pg_hba.conf as records for plugins (pgforge/hba.hpp): what a configure's draft gives and
// takes, and the instance's file on disk, all read by the engine's own parser.
#include <catch2/catch.hpp>
#include <fstream>

#include "engine/conf/hba.hpp"
#include "engine/pipeline/configure_draft.hpp"
#include "engine/pipeline/hba_records.hpp"
#include "temp_dir.hpp"

namespace fs = std::filesystem;
using namespace pgforge;
using pgforge::test::TempDir;

namespace {

const char* kFile =
    "# a comment\n"
    "local   all  all  peer map=pgforge\n"
    "\n"
    "host \"my db\",sales +admins 10.0.0.0 255.0.0.0 \\\n"
    "    scram-sha-256\n"
    "host all all ::1/128 scram-sha-256 # trailing\n";

sdk::HbaRecord record(std::string type, std::vector<sdk::HbaName> databases,
                      std::vector<sdk::HbaName> users, sdk::HbaName address, std::string method) {
    sdk::HbaRecord r;
    r.type = std::move(type);
    r.databases = std::move(databases);
    r.users = std::move(users);
    r.address = std::move(address);
    r.method = std::move(method);
    return r;
}

struct Draft {
    Instance i;
    std::map<fs::path, conf::ConfDocument> docs;
    conf::HbaFile hba = conf::HbaFile::parse(kFile);
    conf::IdentFile ident = conf::IdentFile::parse("");
    ConfigureDraft draft{i, docs, hba, ident, [](const std::string&) { return fs::path(); }};
    Draft() { draft.begin_contributions("policy"); }
};

}  // namespace

TEST_CASE("the draft gives pg_hba.conf as records with their lines, quotes and options",
          "[unit][hba-records]") {
    Draft d;
    sdk::HbaConfiguration& hba = d.draft;
    auto records = hba.hba_records();
    REQUIRE(records.size() == 3);
    CHECK(records[0].type == "local");
    CHECK(records[0].line == 2);
    CHECK(records[0].databases == std::vector<sdk::HbaName>{{"all", false}});
    CHECK(records[0].databases[0].is("all"));
    CHECK(records[0].options ==
          std::vector<std::pair<std::string, std::string>>{{"map", "pgforge"}});
    CHECK(records[1].line == 4);
    CHECK(records[1].databases == std::vector<sdk::HbaName>{{"my db", true}, {"sales", false}});
    CHECK(records[1].users == std::vector<sdk::HbaName>{{"+admins", false}});
    CHECK(records[1].address == sdk::HbaName{"10.0.0.0", false});
    CHECK(records[1].mask == "255.0.0.0");
    CHECK(records[1].method == "scram-sha-256");
    CHECK(records[2].line == 6);
    CHECK(records[2].address.text == "::1/128");
}

TEST_CASE("records contributed as records or text land at their place, once, with new lines",
          "[unit][hba-records]") {
    Draft d;
    sdk::HbaConfiguration& hba = d.draft;
    std::string error;
    auto office = record("host", {{"all", false}}, {{"all", true}}, {"192.168.0.0/16", false},
                         "scram-sha-256");
    office.options = {{"clientcert", "verify-ca"}};
    office.type = "hostssl";
    REQUIRE(hba.add_hba_record(office, sdk::HbaPlace::first, error));
    d.draft.add_hba_record("host replication all 10.1.2.3/32 scram-sha-256", sdk::HbaPlace::last);
    // The same meaning again, as a record or as text: nothing more.
    REQUIRE(hba.add_hba_record(office, sdk::HbaPlace::last, error));
    d.draft.add_hba_record("hostssl all \"all\" 192.168.0.0/16 scram-sha-256 clientcert=verify-ca",
                           sdk::HbaPlace::first);
    CHECK(d.draft.conflicts().empty());
    CHECK(d.draft.hba_changed());

    auto records = hba.hba_records();
    REQUIRE(records.size() == 5);
    CHECK(records.front().line == 2);  // first among records: after the leading comment
    sdk::HbaRecord got = records.front();
    got.line = 0;
    CHECK(got == office);
    CHECK(records[1].line == 3);  // the engine's first record moved one line down
    CHECK(records.back().databases == std::vector<sdk::HbaName>{{"replication", false}});
    CHECK(records.back().line == 8);
    // The text says the same.
    CHECK_THAT(d.hba.print(), Catch::StartsWith("# a comment\nhostssl all"));
    CHECK_THAT(d.hba.print(), Catch::Contains(" \"all\" "));
}

TEST_CASE("an invalid record is refused as the server would, naming the plugin",
          "[unit][hba-records]") {
    Draft d;
    sdk::HbaConfiguration& hba = d.draft;
    std::string error;
    auto peer_over_tcp =
        record("host", {{"all", false}}, {{"all", false}}, {"10.0.0.0/8", false}, "peer");
    CHECK_FALSE(hba.add_hba_record(peer_over_tcp, sdk::HbaPlace::last, error));
    CHECK_THAT(error, Catch::Contains("peer authentication is only supported on local sockets"));
    auto bad_address =
        record("host", {{"all", false}}, {{"all", false}}, {"10.0.0.0/33", false}, "scram-sha-256");
    error.clear();
    CHECK_FALSE(hba.add_hba_record(bad_address, sdk::HbaPlace::first, error));
    CHECK_THAT(error, Catch::Contains("invalid CIDR mask"));
    auto no_users = record("local", {{"all", false}}, {}, {}, "peer");
    error.clear();
    CHECK_FALSE(hba.add_hba_record(no_users, sdk::HbaPlace::first, error));
    CHECK_FALSE(error.empty());
    REQUIRE(d.draft.conflicts().size() == 3);
    CHECK_THAT(d.draft.conflicts()[0],
               Catch::StartsWith("plugin policy contributes an invalid HBA record"));
    CHECK(hba.hba_records().size() == 3);
    CHECK_FALSE(d.draft.hba_changed());
}

TEST_CASE("the file on disk is read as records, and each line the server refuses is named",
          "[unit][hba-records]") {
    TempDir dir("hbarecords");
    Instance i;
    i.data_dir = dir.path();
    {
        std::ofstream(dir.path() / "pg_hba.conf") << kFile << "host all all 10.0.0.0/8 peer\n"
                                                  << "include other.conf\n"
                                                  << "local all all trust\n";
        // No hba_file: the data directory's pg_hba.conf.
        std::ofstream(dir.path() / "postgresql.conf") << "port = 5432\n";
    }
    InstanceHbaReader reader(i);
    sdk::HbaFileReader& file = reader;
    std::vector<sdk::HbaRecord> records;
    std::vector<sdk::HbaProblem> problems;
    std::string error;
    REQUIRE(file.read_hba(records, problems, error));
    REQUIRE(records.size() == 4);
    CHECK(records[1].line == 4);
    CHECK(records[3].line == 9);
    CHECK(records[3].method == "trust");
    REQUIRE(problems.size() == 2);
    CHECK(problems[0].line == 7);
    CHECK_THAT(problems[0].message, Catch::Contains("peer"));
    CHECK(problems[1].line == 8);
    CHECK_THAT(problems[1].message, Catch::Contains("include"));

    fs::remove(dir.path() / "pg_hba.conf");
    records.clear();
    CHECK_FALSE(file.read_hba(records, problems, error));
    CHECK_THAT(error, Catch::Contains("pg_hba.conf"));
}
