// The run-time settings view (`instance settings`, `instance get`'s pending_restart), the
// parameters `postgres --describe-config` leaves out, the tolerant pg_hba.conf listing and the
// hba_file / ident_file settings, on real servers.
#include <unistd.h>

#include <algorithm>
#include <catch2/catch.hpp>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "engine/conf/pgconf.hpp"
#include "engine/conf/template.hpp"
#include "engine/core/error.hpp"
#include "engine/operations/instances.hpp"
#include "engine/pg/connection.hpp"
#include "tests/support/test_site.hpp"

namespace fs = std::filesystem;
using namespace pgforge;
using json = nlohmann::json;
using pgforge::test::TestSite;

namespace {

std::string query_one(const Instance& i, const std::string& sql,
                      const std::vector<std::string>& params = {}) {
    pg::Connection c(i);
    auto r = c.exec(sql, params);
    return r.rows.empty() ? "" : r.rows.at(0).at(0).value_or("NULL");
}

struct Running {
    TestSite site;
    Instance instance;
    OsUser owner;
    Running() {
        REQUIRE(site.cli({"instance", "create", "sv"}).status == 0);
        Context ctx(site.settings());
        instance = instances::get(ctx, "sv");
        owner = instances::cluster_for(ctx, instance).owner;
    }
    // Writes a file as the server's user would have it.
    void write(const fs::path& file, const std::string& text) const {
        write_file_atomically(file, text, &owner, fs::perms(0600));
    }
    json cli_json(std::vector<std::string> args, int status = 0) {
        args.insert(args.begin(), "--json");
        auto out = site.cli(args);
        INFO(out.err);
        REQUIRE(out.status == status);
        return json::parse(out.out);
    }
};

// The line of `file` that sets `name` (1-based), 0 when none.
int line_of(const fs::path& file, const std::string& name) {
    std::ifstream in(file);
    int n = 0;
    for (std::string line; std::getline(in, line);) {
        ++n;
        if (line.rfind(name + " ", 0) == 0 || line.rfind(name + "=", 0) == 0) return n;
    }
    return 0;
}

// The value of a "label:   value" line of text output.
std::string field(const std::string& text, const std::string& label) {
    std::istringstream in(text);
    for (std::string line; std::getline(in, line);) {
        if (line.rfind(label, 0) != 0) continue;
        size_t at = line.find_first_not_of(' ', label.size());
        return at == std::string::npos ? "" : line.substr(at);
    }
    return "(no " + label + ")";
}

}  // namespace

TEST_CASE("conf set accepts the parameters --describe-config leaves out, and they apply",
          "[integration][settings]") {
    Running r;
    auto out = r.site.cli({"conf", "set", "-i", "sv", "trace_sort=on",
                           "wal_consistency_checking=heap", "ignore_system_indexes=off"});
    INFO(out.err);
    REQUIRE(out.status == 0);
    CHECK(query_one(r.instance, "SELECT current_setting('trace_sort')") == "on");
    CHECK(query_one(r.instance, "SELECT current_setting('wal_consistency_checking')") == "heap");
    CHECK(query_one(r.instance, "SELECT sourcefile FROM pg_settings WHERE name = 'trace_sort'") ==
          (r.instance.data_dir / "postgresql.conf").string());

    // A name nobody knows is still refused, with the hint, and nothing is written.
    std::string before = read_text_file(r.instance.data_dir / "postgresql.conf");
    auto unknown = r.site.cli({"conf", "set", "-i", "sv", "trace_sortt=on"});
    CHECK(unknown.status == static_cast<int>(Exit::usage));
    CHECK(unknown.err.find("unknown configuration parameter 'trace_sortt'") != std::string::npos);
    auto typo = r.site.cli({"conf", "set", "-i", "sv", "wrok_mem=8MB"});
    CHECK(typo.status == static_cast<int>(Exit::usage));
    CHECK(typo.err.find("did you mean 'work_mem'") != std::string::npos);
    // An internal one the installation knows cannot be changed.
    auto internal = r.site.cli({"conf", "set", "-i", "sv", "block_size=4096"});
    CHECK(internal.status == static_cast<int>(Exit::usage));
    CHECK(internal.err.find("'block_size' cannot be changed") != std::string::npos);
    CHECK(read_text_file(r.instance.data_dir / "postgresql.conf") == before);

    // The same on any file, and the server's parser checks the value.
    fs::path file = r.site.root() / "any.conf";
    r.write(file, "# nothing\n");
    auto on_file = r.site.cli({"conf", "set", "--file", file.string(), "trace_sort=on"});
    INFO(on_file.err);
    CHECK(on_file.status == 0);
    CHECK(read_text_file(file).find("trace_sort = on") != std::string::npos);
    auto bad = r.site.cli({"conf", "set", "--file", file.string(), "trace_sort=maybe"});
    CHECK(bad.status == static_cast<int>(Exit::usage));
    CHECK(bad.err.find("requires a Boolean value") != std::string::npos);
}

TEST_CASE("instance settings shows pg_settings of a running server", "[integration][settings]") {
    Running r;
    REQUIRE(r.site.cli({"conf", "set", "-i", "sv", "work_mem=8MB"}).status == 0);
    const fs::path conf = r.instance.data_dir / "postgresql.conf";

    json j = r.cli_json({"instance", "settings", "sv", "work_mem", "shared_buffers"});
    CHECK(j["running"] == true);
    CHECK(j["note"].is_null());
    REQUIRE(j["settings"].size() == 2);
    json shared = j["settings"][0], work = j["settings"][1];
    CHECK(work["name"] == "work_mem");
    CHECK(work["value"] == "8MB");
    CHECK(work["setting"] == "8192");
    CHECK(work["unit"] == "kB");
    CHECK(work["source"] == "configuration file");
    CHECK(work["sourcefile"] == conf.string());
    CHECK(work["sourceline"] == line_of(conf, "work_mem"));
    CHECK(work["context"] == "user");
    CHECK(work["pending_restart"] == false);
    CHECK(shared["name"] == "shared_buffers");
    CHECK(shared["context"] == "postmaster");

    // --changed leaves the defaults out; all of them without names.
    json all = r.cli_json({"instance", "settings", "sv"});
    json changed = r.cli_json({"instance", "settings", "sv", "--changed"});
    CHECK(all["settings"].size() > 300);
    CHECK(changed["settings"].size() < all["settings"].size());
    bool has_work_mem = false;
    for (const auto& s : changed["settings"]) {
        CHECK(s["source"] != "default");
        has_work_mem = has_work_mem || s["name"] == "work_mem";
    }
    CHECK(has_work_mem);
    CHECK(r.cli_json({"instance", "settings", "sv", "--pending-restart"})["settings"].empty());
    CHECK(r.cli_json({"instance", "get", "sv"})["pending_restart"] == false);

    auto text = r.site.cli({"instance", "settings", "sv", "work_mem"});
    CHECK(text.out.find("work_mem") != std::string::npos);
    CHECK(text.out.find(conf.string() + ":" + std::to_string(line_of(conf, "work_mem"))) !=
          std::string::npos);

    auto unknown = r.site.cli({"instance", "settings", "sv", "wrok_mem"});
    CHECK(unknown.status == static_cast<int>(Exit::usage));
    CHECK(unknown.err.find("did you mean 'work_mem'") != std::string::npos);
}

TEST_CASE("a restart-only change shows as pending in instance settings and instance get",
          "[integration][settings]") {
    Running r;
    auto set = r.site.cli({"conf", "set", "-i", "sv", "shared_buffers=24MB"});
    INFO(set.err);
    REQUIRE(set.status == 0);
    json pending = r.cli_json({"instance", "settings", "sv", "--pending-restart"});
    REQUIRE(pending["settings"].size() == 1);
    CHECK(pending["settings"][0]["name"] == "shared_buffers");
    CHECK(pending["settings"][0]["pending_restart"] == true);
    CHECK(pending["settings"][0]["value"] == "128MB");  // the server still runs on the old one
    CHECK(r.cli_json({"instance", "get", "sv"})["pending_restart"] == true);
    CHECK(field(r.site.cli({"instance", "get", "sv"}).out, "pending restart:") == "yes");

    REQUIRE(r.site.cli({"instance", "restart", "sv"}).status == 0);
    CHECK(r.cli_json({"instance", "settings", "sv", "--pending-restart"})["settings"].empty());
    CHECK(r.cli_json({"instance", "get", "sv"})["pending_restart"] == false);
    CHECK(r.cli_json({"instance", "settings", "sv", "shared_buffers"})["settings"][0]["value"] ==
          "24MB");
}

TEST_CASE("instance settings of a stopped instance reads the files as the server would",
          "[integration][settings]") {
    Running r;
    REQUIRE(r.site.cli({"conf", "set", "-i", "sv", "work_mem=8MB", "trace_sort=on"}).status == 0);
    const fs::path conf = r.instance.data_dir / "postgresql.conf";
    const fs::path auto_conf = r.instance.data_dir / "postgresql.auto.conf";
    {
        pg::Connection c(r.instance);
        c.exec("ALTER SYSTEM SET work_mem = '16MB'");
    }
    REQUIRE(r.site.cli({"instance", "stop", "sv"}).status == 0);

    json j = r.cli_json(
        {"instance", "settings", "sv", "work_mem", "max_prepared_transactions", "trace_sort"});
    CHECK(j["running"] == false);
    CHECK(j["note"] == "instance stopped: values from the files");
    REQUIRE(j["settings"].size() == 3);
    json prepared = j["settings"][0], trace = j["settings"][1], work = j["settings"][2];
    // postgresql.auto.conf wins, as it would at the start.
    CHECK(work["value"] == "16MB");
    CHECK(work["setting"] == "16384");  // the server's own reading (kB)
    CHECK(work["sourcefile"] == auto_conf.string());
    CHECK(work["source"] == "configuration file");
    CHECK(work["pending_restart"].is_null());
    CHECK(work["context"] == "user");
    CHECK(trace["value"] == "on");
    CHECK(trace["sourcefile"] == conf.string());
    CHECK(trace["sourceline"] == line_of(conf, "trace_sort"));
    CHECK(prepared["name"] == "max_prepared_transactions");
    CHECK(prepared["source"] == "default");  // no file sets it: the server's default
    CHECK(prepared["setting"] == "0");
    CHECK(prepared["sourcefile"].is_null());
    CHECK(prepared["context"] == "postmaster");

    // Without names: what the files set, with file and line.
    auto text = r.site.cli({"instance", "settings", "sv"});
    REQUIRE(text.status == 0);
    CHECK(text.out.rfind("instance stopped: values from the files\n", 0) == 0);
    CHECK(text.out.find(conf.string() + ":" + std::to_string(line_of(conf, "trace_sort"))) !=
          std::string::npos);
    json files = r.cli_json({"instance", "settings", "sv"});
    bool has_work_mem = false;
    for (const auto& s : files["settings"]) {
        CHECK_FALSE(s["sourcefile"].is_null());
        if (s["name"] == "work_mem") {
            has_work_mem = true;
            CHECK(s["value"] == "16MB");
        }
    }
    CHECK(has_work_mem);

    CHECK(r.cli_json({"instance", "get", "sv"})["pending_restart"].is_null());
    CHECK(field(r.site.cli({"instance", "get", "sv"}).out, "pending restart:") == "- (stopped)");
    auto unknown = r.site.cli({"instance", "settings", "sv", "wrok_mem"});
    CHECK(unknown.status == static_cast<int>(Exit::usage));
    CHECK(unknown.err.find("did you mean 'work_mem'") != std::string::npos);
}

TEST_CASE("hba list lists every record of a file with a bad line, as pg_hba_file_rules does",
          "[integration][settings][hba]") {
    Running r;
    const fs::path hba = r.instance.data_dir / "pg_hba.conf";
    std::string text = read_text_file(hba);
    text += "host all all 10.0.0.0/33 md5\nhost all app 127.0.0.1/32 scram-sha-256\n";
    r.write(hba, text);
    const int bad_line = static_cast<int>(std::count(text.begin(), text.end(), '\n')) - 1;

    auto listed = r.site.cli({"--json", "hba", "list", "-i", "sv"});
    CHECK(listed.status == 1);
    json j = json::parse(listed.out);
    REQUIRE(j.size() >= 3);
    json bad = j[j.size() - 2], last = j[j.size() - 1];
    CHECK(bad["line"] == bad_line);
    CHECK(bad["number"].is_null());
    CHECK(bad["text"] == "host all all 10.0.0.0/33 md5");
    CHECK(bad["error"].get<std::string>().find("invalid CIDR mask") != std::string::npos);
    CHECK(last["error"].is_null());
    CHECK(last["users"] == json::array({"app"}));
    CHECK(last["number"] == j.size() - 1);
    // The server reads the same file the same way.
    CHECK(query_one(r.instance,
                    "SELECT line_number FROM pg_hba_file_rules WHERE error IS NOT NULL") ==
          std::to_string(bad_line));
    CHECK(query_one(r.instance, "SELECT count(*) FROM pg_hba_file_rules") ==
          std::to_string(j.size()));

    auto plain = r.site.cli({"hba", "list", "--file", hba.string()});
    CHECK(plain.status == 1);
    CHECK(plain.out.find("invalid CIDR mask") != std::string::npos);
    CHECK(plain.out.find("scram-sha-256") != std::string::npos);
    CHECK(plain.err.find("1 line the server would not load") != std::string::npos);
    // Writing stays strict: nothing is added to a file with a bad line.
    auto add = r.site.cli({"hba", "add", "--file", hba.string(), "local", "all", "x", "peer"});
    CHECK(add.status == static_cast<int>(Exit::usage));
    CHECK(read_text_file(hba) == text);
}

TEST_CASE("hba and ident commands follow hba_file and ident_file", "[integration][settings][hba]") {
    Running r;
    const fs::path dir = r.instance.data_dir / "auth";
    fs::create_directories(dir);
    REQUIRE(chown(dir.c_str(), r.owner.uid, r.owner.gid) == 0);  // the server's user reads it
    std::string hba = read_text_file(r.instance.data_dir / "pg_hba.conf") +
                      "host all moved 127.0.0.1/32 scram-sha-256\n";
    r.write(dir / "hba.conf", hba);
    // pgforge's own map stays (it connects through it).
    r.write(dir / "ident.conf",
            read_text_file(r.instance.data_dir / "pg_ident.conf") + "m  alice  moved\n");
    std::string conf = read_text_file(r.instance.data_dir / "postgresql.conf");
    conf += "hba_file = 'auth/hba.conf'\nident_file = '" + (dir / "ident.conf").string() + "'\n";
    r.write(r.instance.data_dir / "postgresql.conf", conf);

    auto files = conf::auth_file_paths(r.instance.data_dir);
    CHECK(files.hba == dir / "hba.conf");
    CHECK(files.ident == dir / "ident.conf");
    json listed = r.cli_json({"hba", "list", "-i", "sv"});
    CHECK(listed.back()["users"] == json::array({"moved"}));
    json idents = r.cli_json({"ident", "list", "-i", "sv"});
    REQUIRE_FALSE(idents.empty());
    CHECK(idents.back()["system_user"] == "alice");

    // The server, restarted, reads the same files.
    REQUIRE(r.site.cli({"instance", "restart", "sv"}).status == 0);
    CHECK(query_one(r.instance, "SELECT current_setting('hba_file')") == files.hba.string());
    CHECK(query_one(r.instance, "SELECT current_setting('ident_file')") == files.ident.string());
    CHECK(query_one(r.instance,
                    "SELECT count(*) FROM pg_hba_file_rules WHERE 'moved' = ANY(user_name)") ==
          "1");
    // Changes go to the files the server reads, through the configure (checked, reloaded);
    // the data directory's own pg_hba.conf is left alone.
    const std::string unused = read_text_file(r.instance.data_dir / "pg_hba.conf");
    auto added = r.site.cli(
        {"hba", "add", "-i", "sv", "host", "all", "added", "127.0.0.1/32", "scram-sha-256"});
    INFO(added.err);
    REQUIRE(added.status == 0);
    CHECK(read_text_file(dir / "hba.conf").find("added") != std::string::npos);
    CHECK(read_text_file(r.instance.data_dir / "pg_hba.conf") == unused);
    CHECK(query_one(r.instance,
                    "SELECT count(*) FROM pg_hba_file_rules WHERE 'added' = ANY(user_name)") ==
          "1");
    REQUIRE(r.site.cli({"ident", "add", "-i", "sv", "m", "bob", "added"}).status == 0);
    CHECK(read_text_file(dir / "ident.conf").find("bob") != std::string::npos);
    CHECK(query_one(r.instance,
                    "SELECT count(*) FROM pg_ident_file_mappings WHERE sys_name = 'bob'") == "1");
    // And the stopped view shows the path the server opens.
    REQUIRE(r.site.cli({"instance", "stop", "sv"}).status == 0);
    json view = r.cli_json({"instance", "settings", "sv"});
    bool seen = false;
    for (const auto& s : view["settings"])
        if (s["name"] == "hba_file") {
            seen = true;
            CHECK(s["value"] == "auth/hba.conf");
            CHECK(s["setting"] == files.hba.string());
        }
    CHECK(seen);
}
