// The hba-policy plugin on real instances: the records a policy requires are in the pg_hba.conf
// the server loads, a forbidden record is refused whether it comes from `hba add` or from a hand
// edit, and `hba check` reports the drift.
#include <sys/stat.h>

#include <catch2/catch.hpp>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "engine/operations/instances.hpp"
#include "engine/pg/connection.hpp"
#include "tests/support/test_site.hpp"

namespace fs = std::filesystem;
using namespace pgforge;
using pgforge::test::TestSite;
using json = nlohmann::json;
using Catch::Contains;

namespace {

const char* kPolicy = R"(# the office policy
[local]
users = ${superuser}
method = peer

[host office]
networks = 10.0.0.0/8, 192.168.10.0/24

[replication]
hosts = 10.1.2.3
users = replicator

[never]
trust = host
password = host
md5 = all
open = reject-only
)";

// A test site with the plugin enabled and, unless `policy` is empty, a policy file.
struct PolicySite {
    TestSite site;
    fs::path policy;

    explicit PolicySite(const std::string& text) {
        std::string settings = "[plugins]\nenabled = hba-policy\n";
        if (!text.empty()) {
            policy = site.root() / "hba-policy.ini";
            std::ofstream(policy) << text;
            fs::permissions(policy, fs::perms(0644));
            settings += "[hba-policy]\npolicy = " + policy.string() + "\n";
        }
        site.add_settings(settings);
    }
    TestSite::Output cli(const std::vector<std::string>& args) const { return site.cli(args); }
    Instance instance(const std::string& name) const {
        Context ctx(site.settings());
        return instances::get(ctx, name);
    }
    bool running(const std::string& name) const {
        Context ctx(site.settings());
        return instances::status(ctx, instances::get(ctx, name)).running;
    }
};

std::string read_file(const fs::path& p) {
    std::ifstream in(p, std::ios::binary);
    std::ostringstream s;
    s << in.rdbuf();
    return s.str();
}

// Rewrites a file in place, as its owner editing it would (same inode, owner and mode).
void write_in_place(const fs::path& p, const std::string& text) {
    std::ofstream out(p, std::ios::binary | std::ios::trunc);
    out << text;
    REQUIRE(out.good());
}

int line_count(const std::string& text) {
    int n = 0;
    for (char c : text) n += c == '\n';
    return n;
}

// The rules the server reads from pg_hba.conf, one string per line:
// "LINE TYPE {DATABASES} {USERS} ADDRESS NETMASK METHOD".
std::vector<std::string> file_rules(const Instance& i) {
    pg::Connection c(i);
    auto r = c.exec(
        "SELECT concat_ws(' ', line_number, type, database::text, user_name::text, address, "
        "netmask, auth_method) FROM pg_hba_file_rules WHERE error IS NULL ORDER BY line_number");
    std::vector<std::string> out;
    for (const auto& row : r.rows) out.push_back(row.at(0).value_or(""));
    return out;
}

int hba_errors(const Instance& i) {
    pg::Connection c(i);
    return std::stoi(c.exec("SELECT count(*)::text FROM pg_hba_file_rules WHERE error IS NOT NULL")
                         .rows.at(0)
                         .at(0)
                         .value_or("-1"));
}

// The line number of the first rule whose text ends with `suffix` (0 if none).
int line_of(const std::vector<std::string>& rules, const std::string& suffix) {
    for (const auto& r : rules)
        if (r.size() >= suffix.size() &&
            r.compare(r.size() - suffix.size(), suffix.size(), suffix) == 0)
            return std::stoi(r);
    return 0;
}

json violations_of(const json& report, const std::string& kind) {
    json out = json::array();
    for (const auto& v : report.at("violations"))
        if (v.at("kind") == kind) out.push_back(v);
    return out;
}

}  // namespace

TEST_CASE("instance create adds the records the policy requires and the server loads them",
          "[integration][hba-policy]") {
    PolicySite s(kPolicy);
    REQUIRE(s.cli({"instance", "create", "office"}).status == 0);
    Instance i = s.instance("office");
    auto rules = file_rules(i);
    CHECK(hba_errors(i) == 0);

    int office_a = line_of(rules, "host {all} {all} 10.0.0.0 255.0.0.0 scram-sha-256");
    int office_b = line_of(rules, "host {all} {all} 192.168.10.0 255.255.255.0 scram-sha-256");
    int replica =
        line_of(rules, "host {replication} {replicator} 10.1.2.3 255.255.255.255 scram-sha-256");
    int first_local = line_of(rules, "local {all} {all} peer");
    REQUIRE(office_a > 0);
    REQUIRE(office_b > 0);
    REQUIRE(replica > 0);
    REQUIRE(first_local > 0);
    // Placed first, in the policy's order, before the engine's own records.
    CHECK(office_a < office_b);
    CHECK(office_b < replica);
    CHECK(replica < first_local);
    // The engine's "local all all peer map=pgforge" grants [local]: no record of its own.
    int locals = 0;
    for (const auto& r : rules) locals += r.find(" local ") != std::string::npos;
    CHECK(locals == 2);

    // The engine's ident map still lets pgforge in as the superuser.
    pg::Connection c(i);
    CHECK(c.exec("SELECT current_user::text").rows.at(0).at(0) == i.superuser);

    auto text = s.cli({"hba", "check", "-i", "office"});
    CHECK(text.status == 0);
    CHECK_THAT(text.out, Contains("15/office: pg_hba.conf follows the hba policy " +
                                  s.policy.string() + " (4 required record(s) in place)"));
    auto report = json::parse(s.cli({"hba", "check", "-i", "office", "--json"}).out);
    CHECK(report.at("ok") == true);
    REQUIRE(report.at("required").size() == 4);
    for (const auto& r : report.at("required")) CHECK(r.at("status") == "present");
    CHECK(report.at("required").at(0).at("rule") == "[local]");
    CHECK(report.at("required").at(0).at("line") == first_local);

    auto get = s.cli({"instance", "get", "office"});
    CHECK_THAT(get.out, Contains(s.policy.string()));
    CHECK_THAT(get.out, Contains("follows the policy"));
}

TEST_CASE("hba add of a forbidden record is refused, naming the line and the rule; the file stays",
          "[integration][hba-policy]") {
    PolicySite s(kPolicy);
    REQUIRE(s.cli({"instance", "create", "main"}).status == 0);
    Instance i = s.instance("main");
    const fs::path hba = i.data_dir / "pg_hba.conf";
    const std::string before = read_file(hba);
    const std::string next_line = "line " + std::to_string(line_count(before) + 1);

    SECTION("trust on a host line") {
        auto r = s.cli({"hba", "add", "-i", "main", "host", "all", "all", "192.0.2.0/24", "trust"});
        CHECK(r.status != 0);
        CHECK_THAT(r.err, Contains("refused at pre_configure by plugin hba-policy"));
        CHECK_THAT(r.err, Contains(next_line + ": host all all 192.0.2.0/24 trust"));
        CHECK_THAT(r.err, Contains("[never] trust = host"));
    }
    SECTION("every address with anything but reject") {
        auto r =
            s.cli({"hba", "add", "-i", "main", "host", "all", "all", "0.0.0.0/0", "scram-sha-256"});
        CHECK(r.status != 0);
        CHECK_THAT(r.err, Contains(next_line + ": host all all 0.0.0.0/0 scram-sha-256"));
        CHECK_THAT(r.err, Contains("[never] open = reject-only"));
    }
    SECTION("md5, which this site forbids on every line") {
        auto r =
            s.cli({"hba", "add", "-i", "main", "local", "app", "app", "md5", "--position", "1"});
        CHECK(r.status != 0);
        CHECK_THAT(r.err, Contains("local app app md5"));
        CHECK_THAT(r.err, Contains("[never] md5 = all"));
    }
    CHECK(read_file(hba) == before);
    CHECK(hba_errors(i) == 0);
    for (const auto& rule : file_rules(i)) {
        CHECK(rule.find("trust") == std::string::npos);
        CHECK(rule.find("md5") == std::string::npos);
        CHECK(rule.find("0.0.0.0 0.0.0.0") == std::string::npos);
    }
}

TEST_CASE("hba remove or add cannot take away what the policy requires; the file stays",
          "[integration][hba-policy]") {
    PolicySite s(kPolicy);
    REQUIRE(s.cli({"instance", "create", "main"}).status == 0);
    Instance i = s.instance("main");
    const fs::path hba = i.data_dir / "pg_hba.conf";
    const std::string before = read_file(hba);
    const int office = line_of(file_rules(i), "10.0.0.0 255.0.0.0 scram-sha-256");
    REQUIRE(office > 0);

    SECTION("removing a required record") {
        auto r = s.cli({"hba", "remove", "-i", "main", "--address", "10.0.0.0/8"});
        CHECK(r.status != 0);
        CHECK_THAT(r.err, Contains("the change takes away what the policy requires"));
        CHECK_THAT(r.err, Contains("host all all 10.0.0.0/8 scram-sha-256 [rule [host office]]: "
                                   "no record would grant it"));
    }
    SECTION("a reject carved out before it") {
        auto r = s.cli({"hba", "add", "-i", "main", "host", "all", "all", "10.0.0.0/16", "reject",
                        "--position", "1"});
        CHECK(r.status != 0);
        CHECK_THAT(r.err, Contains("host all all 10.0.0.0/8 scram-sha-256 [rule [host office]]: "
                                   "line " +
                                   std::to_string(office) +
                                   " (host all all 10.0.0.0/16 reject) would take some of these "
                                   "connections first"));
    }
    SECTION("another method for the superuser's local connections") {
        auto r = s.cli({"hba", "add", "-i", "main", "local", "all", "all", "scram-sha-256",
                        "--position", "1"});
        CHECK(r.status != 0);
        CHECK_THAT(r.err, Contains("local all postgres peer map=pgforge [rule [local]]"));
    }
    CHECK(read_file(hba) == before);

    SECTION("the same reject after the record that grants the network is allowed") {
        auto r = s.cli({"hba", "add", "-i", "main", "host", "all", "all", "10.0.0.0/16", "reject",
                        "--after", "3"});
        CHECK(r.status == 0);
        CHECK(line_of(file_rules(i), "10.0.0.0 255.255.0.0 reject") > office);
        CHECK(s.cli({"hba", "check", "-i", "main"}).status == 0);
    }
}

TEST_CASE("a forbidden record written by hand fails hba check and blocks the next start",
          "[integration][hba-policy]") {
    PolicySite s(kPolicy);
    REQUIRE(s.cli({"instance", "create", "main"}).status == 0);
    Instance i = s.instance("main");
    const fs::path hba = i.data_dir / "pg_hba.conf";
    const std::string clean = read_file(hba);
    const int line = line_count(clean) + 1;
    const std::string position = std::to_string(file_rules(i).size() + 1);
    write_in_place(hba, clean + "host    all    all    192.0.2.0/24    trust\n");

    auto text = s.cli({"hba", "check", "-i", "main"});
    CHECK(text.status == 1);
    CHECK_THAT(text.out, Contains("15/main: pg_hba.conf breaks the hba policy"));
    CHECK_THAT(text.out,
               Contains("line " + std::to_string(line) + ": host all all 192.0.2.0/24 trust"));

    auto out = s.cli({"hba", "check", "-i", "main", "--json"});
    CHECK(out.status == 1);
    json report = json::parse(out.out);
    CHECK(report.at("ok") == false);
    CHECK(report.at("instance") == "15/main");
    REQUIRE(report.at("violations").size() == 1);
    const json& v = report.at("violations").at(0);
    CHECK(v.at("kind") == "forbidden");
    CHECK(v.at("line") == line);
    CHECK(v.at("text") == "host all all 192.0.2.0/24 trust");
    CHECK(v.at("rule") == "[never] trust = host");

    SECTION("hba check --all collects one report per instance") {
        REQUIRE(s.cli({"instance", "create", "other"}).status == 0);
        auto all = s.cli({"hba", "check", "--all", "--json"});
        CHECK(all.status == 1);
        json reports = json::parse(all.out);
        REQUIRE(reports.is_object());  // keyed by instance
        REQUIRE(reports.size() == 2);
        for (const auto& [name, r] : reports.items()) {
            CHECK(r.at("instance") == name);
            CHECK(r.at("ok") == (name == "15/other"));
        }
    }
    SECTION("a reload is refused before the server reads the file") {
        auto r = s.cli({"instance", "reload", "main"});
        CHECK(r.status != 0);
        CHECK_THAT(r.err, Contains("refused at pre_configure by plugin hba-policy"));
        CHECK_THAT(r.err, Contains("[never] trust = host"));
    }
    SECTION("stopped, it cannot start again until the line goes") {
        REQUIRE(s.cli({"instance", "stop", "main"}).status == 0);
        auto r = s.cli({"instance", "start", "main"});
        CHECK(r.status != 0);
        CHECK_THAT(r.err, Contains("refused at pre_start by plugin hba-policy"));
        CHECK_THAT(r.err,
                   Contains("line " + std::to_string(line) + ": host all all 192.0.2.0/24 trust"));
        CHECK_THAT(r.err, Contains("[never] trust = host"));
        CHECK_THAT(r.err, Contains("pgforge hba remove -i 15/main --position " + position));
        CHECK_FALSE(s.running("main"));
        CHECK_FALSE(fs::exists(i.data_dir / "postmaster.pid"));

        // The remedy the message names works on the stopped instance, and then it starts.
        REQUIRE(s.cli({"hba", "remove", "-i", "main", "--position", position}).status == 0);
        CHECK(read_file(hba) == clean);
        CHECK(s.cli({"instance", "start", "main"}).status == 0);
        CHECK(s.running("main"));
        CHECK(s.cli({"hba", "check", "-i", "main"}).status == 0);
    }
}

TEST_CASE("an allowed change passes: hba add, a hand edit, restart and check",
          "[integration][hba-policy]") {
    PolicySite s(kPolicy);
    REQUIRE(s.cli({"instance", "create", "main"}).status == 0);
    Instance i = s.instance("main");
    auto add =
        s.cli({"hba", "add", "-i", "main", "host", "app", "app", "10.20.0.0/16", "scram-sha-256"});
    REQUIRE(add.status == 0);
    CHECK_THAT(add.out, Contains("(reloaded)"));
    CHECK(line_of(file_rules(i), "host {app} {app} 10.20.0.0 255.255.0.0 scram-sha-256") > 0);
    // A reject for every address is allowed.
    REQUIRE(s.cli({"hba", "add", "-i", "main", "host", "all", "all", "::/0", "reject"}).status ==
            0);
    CHECK(s.cli({"hba", "check", "-i", "main"}).status == 0);
    CHECK(s.cli({"instance", "restart", "main"}).status == 0);
    CHECK(s.running("main"));

    REQUIRE(s.cli({"instance", "stop", "main"}).status == 0);
    const fs::path hba = i.data_dir / "pg_hba.conf";
    write_in_place(hba, read_file(hba) + "local   all   all   trust   # local trust is allowed\n");
    CHECK(s.cli({"instance", "start", "main"}).status == 0);
    CHECK(s.running("main"));
    CHECK(s.cli({"hba", "check", "-i", "main"}).status == 0);
}

TEST_CASE("required records removed or shadowed by hand are drift that hba check reports",
          "[integration][hba-policy]") {
    PolicySite s(kPolicy);
    REQUIRE(s.cli({"instance", "create", "main"}).status == 0);
    Instance i = s.instance("main");
    const fs::path hba = i.data_dir / "pg_hba.conf";
    // Without the replication record, and with a reject carved out of the office network
    // before the record that grants it.
    std::istringstream in(read_file(hba));
    std::string edited = "host all all 10.0.0.0/16 reject\n", l;
    while (std::getline(in, l))
        if (l.find("10.1.2.3") == std::string::npos) edited += l + "\n";
    write_in_place(hba, edited);

    auto out = s.cli({"hba", "check", "-i", "main", "--json"});
    CHECK(out.status == 1);
    json report = json::parse(out.out);
    json missing = violations_of(report, "missing");
    json shadowed = violations_of(report, "shadowed");
    REQUIRE(missing.size() == 1);
    CHECK(missing[0].at("record") == "host replication replicator 10.1.2.3/32 scram-sha-256");
    CHECK(missing[0].at("rule") == "[replication]");
    REQUIRE(shadowed.size() == 1);
    CHECK(shadowed[0].at("record") == "host all all 10.0.0.0/8 scram-sha-256");
    CHECK(shadowed[0].at("rule") == "[host office]");
    CHECK(shadowed[0].at("line") == 1);
    CHECK(shadowed[0].at("text") == "host all all 10.0.0.0/16 reject");
    CHECK(violations_of(report, "forbidden").empty());

    // Drift is no reason to refuse a start.
    REQUIRE(s.cli({"instance", "restart", "main"}).status == 0);

    SECTION("the next configure puts the missing record back; the carve-out stays") {
        REQUIRE(s.cli({"conf", "set", "-i", "main", "work_mem=8MB"}).status == 0);
        CHECK(line_of(file_rules(i),
                      "host {replication} {replicator} 10.1.2.3 255.255.255.255 "
                      "scram-sha-256") > 0);
        json again = json::parse(s.cli({"hba", "check", "-i", "main", "--json"}).out);
        CHECK(violations_of(again, "missing").empty());
        CHECK(violations_of(again, "shadowed").size() == 1);
    }
}

TEST_CASE("without a policy file only the never rules apply, and an engine-made file passes",
          "[integration][hba-policy]") {
    PolicySite s("");
    REQUIRE(s.cli({"instance", "create", "main"}).status == 0);
    Instance i = s.instance("main");
    CHECK(file_rules(i).size() == 6);  // the engine's records, nothing added
    auto ok = s.cli({"hba", "check", "-i", "main"});
    CHECK(ok.status == 0);
    CHECK_THAT(ok.out, Contains("follows the hba policy (default)"));

    const fs::path hba = i.data_dir / "pg_hba.conf";
    const int line = line_count(read_file(hba)) + 2;
    write_in_place(hba, read_file(hba) +
                            "host all all ::/0 reject\n"
                            "host all all 0.0.0.0 0.0.0.0 scram-sha-256\n"
                            "host all all 192.0.2.0/24 md5\n");
    auto out = s.cli({"hba", "check", "-i", "main", "--json"});
    CHECK(out.status == 1);
    json report = json::parse(out.out);
    REQUIRE(report.at("violations").size() == 1);
    CHECK(report.at("violations")[0].at("line") == line);
    CHECK(report.at("violations")[0].at("rule") == "[never] open = reject-only");
}

TEST_CASE("pg_hba.conf is read as the server reads it: quotes, comments, continued lines",
          "[integration][hba-policy]") {
    PolicySite s("");
    REQUIRE(s.cli({"instance", "create", "main"}).status == 0);
    Instance i = s.instance("main");
    const fs::path hba = i.data_dir / "pg_hba.conf";
    const std::string clean = read_file(hba);
    const int continued = line_count(clean) + 3;
    write_in_place(hba, clean +
                            "# host all all 0.0.0.0/0 trust: only a comment\n"
                            "host \"all\",app \"trust\" 198.51.100.0/24 scram-sha-256 # trust\n"
                            "host all all \\\n"
                            "    203.0.113.0/24 \\\n"
                            "    password\n"
                            "local all all peer map=pgforge\n");
    REQUIRE(hba_errors(i) == 0);  // the server reads it too
    auto out = s.cli({"hba", "check", "-i", "main", "--json"});
    CHECK(out.status == 1);
    json report = json::parse(out.out);
    REQUIRE(report.at("violations").size() == 1);
    const json& v = report.at("violations")[0];
    CHECK(v.at("line") == continued);
    CHECK(v.at("text") == "host all all 203.0.113.0/24 password");
    CHECK(v.at("rule") == "[never] password = host");
    // The server numbers the continued record the same way.
    CHECK(line_of(file_rules(i), "host {all} {all} 203.0.113.0 255.255.255.0 password") ==
          continued);
}

TEST_CASE("records other plugins contribute are judged too", "[integration][hba-policy]") {
    PolicySite s(kPolicy);
    s.site.add_settings(std::string("[plugins]\npath = ") + PGFORGE_TEST_PLUGIN_DIR +
                        "/recorder\nenabled = recorder\n[recorder]\nhba = host all all "
                        "198.51.100.7/32 password\n");
    auto r = s.cli({"instance", "create", "main"});
    CHECK(r.status != 0);
    CHECK_THAT(r.err, Contains("refused at pre_configure by plugin hba-policy"));
    CHECK_THAT(r.err, Contains("host all all 198.51.100.7/32 password"));
    CHECK_THAT(r.err, Contains("[never] password = host"));
    Context ctx(s.site.settings());
    CHECK_FALSE(instances::exists(ctx, "main"));
}

TEST_CASE("a policy that cannot be used refuses every configure and start, naming the line",
          "[integration][hba-policy]") {
    SECTION("a network that is not one") {
        PolicySite s("[host]\nnetworks = 10.0.0.300/8\n");
        auto r = s.cli({"instance", "create", "main"});
        CHECK(r.status != 0);
        CHECK_THAT(r.err, Contains("policy " + s.policy.string() + " line 2"));
        CHECK_THAT(r.err, Contains("'10.0.0.300/8' is not an IP address or network"));
        Context ctx(s.site.settings());
        CHECK_FALSE(instances::exists(ctx, "main"));
    }
    SECTION("a requirement that a never rule forbids") {
        PolicySite s("[host lab]\nnetworks = 10.9.0.0/16\nmethod = trust\n");
        auto r = s.cli({"instance", "create", "main"});
        CHECK(r.status != 0);
        CHECK_THAT(r.err, Contains("line 1 ([host lab])"));
        CHECK_THAT(r.err, Contains("which [never] trust = host forbids"));
    }
    SECTION("a policy file others may write") {
        PolicySite s(kPolicy);
        fs::permissions(s.policy, fs::perms(0666));
        auto r = s.cli({"instance", "create", "main"});
        CHECK(r.status != 0);
        CHECK_THAT(r.err, Contains("is writable by others than its owner"));
        auto check = s.cli({"hba", "check", "--all", "--json"});
        CHECK(check.status == 0);  // no instance to check
    }
}

TEST_CASE("place = last, [never] methods, and hba check against another policy file",
          "[integration][hba-policy]") {
    PolicySite s(
        "[host vpn]\nnetworks = fd00::/8\nplace = last\n\n[never]\nmethods = ident, ldap\n");
    REQUIRE(s.cli({"instance", "create", "main"}).status == 0);
    Instance i = s.instance("main");
    auto rules = file_rules(i);
    REQUIRE_FALSE(rules.empty());
    CHECK_THAT(rules.back(), Contains("host {all} {all} fd00:: ff00:: scram-sha-256"));

    auto r = s.cli({"hba", "add", "-i", "main", "host", "all", "all", "10.5.0.0/16", "ident"});
    CHECK(r.status != 0);
    CHECK_THAT(r.err, Contains("host all all 10.5.0.0/16 ident"));
    CHECK_THAT(r.err, Contains("[never] methods = ident, ldap"));

    // A stricter policy, tried before it is deployed.
    fs::path proposed = s.site.root() / "proposed.ini";
    std::ofstream(proposed) << "[replication]\nhosts = 10.1.2.3\n";
    fs::permissions(proposed, fs::perms(0644));
    auto out = s.cli({"hba", "check", "-i", "main", "--json", "--policy", proposed.string()});
    CHECK(out.status == 1);
    json report = json::parse(out.out);
    CHECK(report.at("policy") == proposed.string());
    REQUIRE(violations_of(report, "missing").size() == 1);
    CHECK(violations_of(report, "missing")[0].at("record") ==
          "host replication all 10.1.2.3/32 scram-sha-256");
    CHECK(s.cli({"hba", "check", "-i", "main", "--bogus"}).status == 2);
}

TEST_CASE(
    "a standby's replication record goes through the policy: granted, or refused before "
    "anything is copied",
    "[integration][hba-policy][replication]") {
    SECTION("a policy the record meets: the standby is made") {
        PolicySite s("[replication]\nhosts = 127.0.0.1\nusers = replicator\n");
        REQUIRE(s.cli({"instance", "create", "main"}).status == 0);
        auto made = s.cli({"instance", "create", "replica", "--standby-for", "main"});
        INFO(made.err);
        CHECK(made.status == 0);
        CHECK(s.running("replica"));
    }
    SECTION("a record that would shadow what the policy requires: refused, nothing copied") {
        // The policy wants the role in by md5: pgforge's scram-sha-256 record first would take
        // its connections with another method.
        PolicySite s("[replication]\nhosts = 127.0.0.1\nusers = replicator\nmethod = md5\n");
        REQUIRE(s.cli({"instance", "create", "main"}).status == 0);
        const std::string before = read_file(s.instance("main").data_dir / "pg_hba.conf");
        auto refused = s.cli({"instance", "create", "replica", "--standby-for", "main"});
        INFO(refused.err);
        CHECK(refused.status != 0);
        CHECK(refused.err.find("hba-policy") != std::string::npos);
        CHECK(read_file(s.instance("main").data_dir / "pg_hba.conf") == before);
        Context ctx(s.site.settings());
        CHECK(!instances::exists(ctx, "replica"));
        CHECK(!fs::exists(s.site.settings().prefix / "15" / "replica"));
        pg::Connection c(s.instance("main"));
        CHECK(c.exec("SELECT count(*) FROM pg_replication_slots").rows.at(0).at(0) == "0");
    }
}
