// Databases of a real instance: apply and its outcomes, get/list/drop, run on many databases at
// once, dump and restore, through the library and the CLI.
#include <pwd.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <catch2/catch.hpp>
#include <chrono>
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <mutex>
#include <nlohmann/json.hpp>

#include "engine/conf/template.hpp"
#include "engine/core/error.hpp"
#include "engine/operations/databases.hpp"
#include "engine/operations/instances.hpp"
#include "engine/pg/connection.hpp"
#include "tests/support/test_site.hpp"

namespace fs = std::filesystem;
using json = nlohmann::json;
using namespace pgforge;
using namespace pgforge::databases;
using pgforge::test::TestSite;

namespace {

struct Running {
    TestSite site;
    std::unique_ptr<Context> ctx;
    Instance instance;
    Running() {
        REQUIRE(site.cli({"instance", "create", "db"}).status == 0);
        ctx = std::make_unique<Context>(site.settings());
        instance = instances::get(*ctx, "db");
    }
    // The CLI with -i db appended.
    TestSite::Output cli(std::vector<std::string> args) const {
        args.push_back("-i");
        args.push_back("db");
        return site.cli(args);
    }
    std::string one(const std::string& sql, const std::vector<std::string>& params = {},
                    const std::string& dbname = "postgres") const {
        pg::Connection c(instance, dbname);
        auto r = c.exec(sql, params);
        return r.rows.empty() ? "(no row)" : r.rows.at(0).at(0).value_or("NULL");
    }
    void sql(const std::string& text, const std::string& dbname = "postgres") const {
        pg::Connection c(instance, dbname);
        c.exec_script(text);
    }
    fs::path write(const std::string& name, const std::string& content) const {
        fs::path p = site.root() / name;
        std::ofstream(p) << content;
        return p;
    }
};

Database named(const std::string& name) {
    Database d;
    d.name = name;
    return d;
}

bool contains(const std::string& haystack, const std::string& needle) {
    return haystack.find(needle) != std::string::npos;
}

std::vector<std::string> lines(const std::string& text) {
    std::vector<std::string> out;
    std::istringstream in(text);
    for (std::string l; std::getline(in, l);) out.push_back(l);
    return out;
}

}  // namespace

TEST_CASE("apply creates, changes only what differs, re-applies as a no-op, drops",
          "[integration][database]") {
    Running r;
    r.sql("CREATE ROLE alice; CREATE ROLE bob");
    fs::path ts_dir = r.site.root() / "ts";
    fs::create_directory(ts_dir);
    struct passwd* pw = getpwnam(test::expected_owner().c_str());
    REQUIRE(pw);
    REQUIRE(chown(ts_dir.c_str(), pw->pw_uid, pw->pw_gid) == 0);
    r.sql("CREATE TABLESPACE fast LOCATION '" + ts_dir.string() + "'");

    Database d;
    d.name = "app";
    d.owner = "alice";
    d.settings = std::map<std::string, std::optional<std::string>>{
        {"work_mem", "64MB"}, {"search_path", "\"$user\", public, extra"}, {"myapp.level", "3"}};
    d.schemas = {{"extra", "bob", State::present}, {"other", std::nullopt, State::present}};
    d.extensions = {{"hstore", "extra", "1.7", State::present}};

    auto created = apply(*r.ctx, r.instance, d);
    CHECK(created.result == Result::created);
    REQUIRE(created.statements.size() == 7);
    CHECK(created.statements[0] == "CREATE DATABASE \"app\" OWNER \"alice\"");
    CHECK(r.one("SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = 'app'") ==
          "alice");
    CHECK(r.one("SHOW work_mem", {}, "app") == "64MB");
    CHECK(r.one("SHOW search_path", {}, "app") == "\"$user\", public, extra");
    CHECK(r.one("SELECT current_setting('myapp.level')", {}, "app") == "3");
    CHECK(r.one("SELECT pg_get_userbyid(nspowner) FROM pg_namespace WHERE nspname = 'extra'", {},
                "app") == "bob");
    CHECK(r.one("SELECT extversion || ' ' || extnamespace::regnamespace FROM pg_extension "
                "WHERE extname = 'hstore'",
                {}, "app") == "1.7 extra");
    CHECK(exists(*r.ctx, r.instance, "app"));

    SECTION("the same description again runs no statement") {
        auto again = apply(*r.ctx, r.instance, d);
        CHECK(again.result == Result::unchanged);
        CHECK(again.statements.empty());
        // and through the CLI, from YAML
        auto file = r.write("app.yaml", R"(
name: app
owner: alice
settings:
  work_mem: 64MB
  search_path: '"$user", public, extra'
  myapp.level: 3
schemas:
  - {name: extra, owner: bob}
  - other
extensions:
  - name: hstore
    schema: extra
    version: "1.7"
)");
        auto out = r.cli({"database", "apply", "-f", file.string()});
        CHECK(out.status == 0);
        CHECK(out.out == "database app: unchanged\n");
        auto j = r.cli({"database", "apply", "-f", file.string(), "--json"});
        REQUIRE(j.status == 0);
        CHECK(json::parse(j.out) ==
              json{{"name", "app"}, {"result", "unchanged"}, {"statements", json::array()}});
    }
    SECTION("only what differs is changed") {
        Database change = d;
        change.owner = "bob";
        (*change.settings)["work_mem"] = "32MB";
        (*change.settings)["myapp.level"] = std::nullopt;  // reset this one
        change.schemas = {{"extra", "alice", State::present}, {"other", {}, State::absent}};
        change.extensions = {{"hstore", std::nullopt, "1.8", State::present}};
        change.tablespace = "fast";
        auto changed = apply(*r.ctx, r.instance, change);
        CHECK(changed.result == Result::changed);
        CHECK(changed.statements == std::vector<std::string>{
                                        "ALTER DATABASE \"app\" OWNER TO \"bob\"",
                                        "ALTER DATABASE \"app\" SET TABLESPACE \"fast\"",
                                        "ALTER DATABASE \"app\" RESET \"myapp\".\"level\"",
                                        "ALTER DATABASE \"app\" SET \"work_mem\" TO '32MB'",
                                        "ALTER SCHEMA \"extra\" OWNER TO \"alice\"",
                                        "ALTER EXTENSION \"hstore\" UPDATE TO '1.8'",
                                        "DROP SCHEMA \"other\"",
                                    });
        CHECK(r.one("SHOW work_mem", {}, "app") == "32MB");
        CHECK(r.one("SELECT spcname FROM pg_database d JOIN pg_tablespace t "
                    "ON t.oid = d.dattablespace WHERE datname = 'app'") == "fast");
        CHECK(apply(*r.ctx, r.instance, change).statements.empty());

        // Settings not given are left alone; an empty map resets them all.
        Database no_settings;
        no_settings.name = "app";
        CHECK(apply(*r.ctx, r.instance, no_settings).result == Result::unchanged);
        CHECK(r.one("SHOW work_mem", {}, "app") == "32MB");
        Database reset_all = no_settings;
        reset_all.settings.emplace();
        auto reset = apply(*r.ctx, r.instance, reset_all);
        CHECK(reset.statements == std::vector<std::string>{"ALTER DATABASE \"app\" RESET ALL"});
        CHECK(r.one("SHOW work_mem", {}, "app") == "4MB");
        CHECK(apply(*r.ctx, r.instance, reset_all).result == Result::unchanged);
    }
    SECTION("state absent drops it, and again is a no-op") {
        Database gone;
        gone.name = "app";
        gone.state = State::absent;
        auto dropped = apply(*r.ctx, r.instance, gone);
        CHECK(dropped.result == Result::dropped);
        CHECK(dropped.statements == std::vector<std::string>{"DROP DATABASE \"app\""});
        CHECK_FALSE(exists(*r.ctx, r.instance, "app"));
        auto again = apply(*r.ctx, r.instance, gone);
        CHECK(again.result == Result::unchanged);
        CHECK(again.statements.empty());
    }
    SECTION("get describes it completely") {
        Database got = get(*r.ctx, r.instance, "app");
        CHECK(got.owner == std::optional<std::string>("alice"));
        CHECK(got.tablespace == std::optional<std::string>("pg_default"));
        REQUIRE(got.settings);
        CHECK(got.settings->size() == 3);
        CHECK(got.settings->at("work_mem") == std::optional<std::string>("64MB"));
        std::vector<std::string> schemas;
        for (const auto& s : got.schemas) schemas.push_back(s.name);
        CHECK(schemas == std::vector<std::string>{"extra", "other", "public"});
        REQUIRE(got.extensions.size() == 1);
        CHECK(got.extensions[0] == Extension{"hstore", "extra", "1.7", State::present});
        CHECK(apply(*r.ctx, r.instance, got).result == Result::unchanged);
    }
}

TEST_CASE("get --json fed to apply -f round-trips as unchanged", "[integration][database]") {
    Running r;
    r.sql("CREATE ROLE owner_role");
    auto created = r.cli({"database", "create", "shop", "--owner", "owner_role", "--set",
                          "work_mem=16MB", "--set", "search_path=\"$user\",public"});
    REQUIRE(created.status == 0);
    CHECK(created.out == "database shop: created\n");
    r.sql("CREATE SCHEMA sales AUTHORIZATION owner_role; CREATE EXTENSION citext SCHEMA sales",
          "shop");

    auto got = r.cli({"database", "get", "shop", "--json"});
    REQUIRE(got.status == 0);
    json j = json::parse(got.out);
    CHECK(j["owner"] == "owner_role");
    CHECK(j["settings"]["work_mem"] == "16MB");
    CHECK(j["extensions"][0]["name"] == "citext");
    CHECK(j["extensions"][0]["schema"] == "sales");
    auto file = r.write("shop.json", got.out);
    auto applied = r.cli({"database", "apply", "-f", file.string()});
    CHECK(applied.status == 0);
    CHECK(applied.out == "database shop: unchanged\n");

    // The YAML that get prints by default reads back the same way.
    auto yaml = r.cli({"database", "get", "shop"});
    REQUIRE(yaml.status == 0);
    CHECK(contains(yaml.out, "owner: owner_role\n"));
    auto yfile = r.write("shop.yaml", yaml.out);
    auto again = r.cli({"database", "apply", "-f", yfile.string(), "--json"});
    CHECK(again.status == 0);
    CHECK(json::parse(again.out)["result"] == "unchanged");

    // Through the pgforge binary and a pipe: get --json | apply -f -
    std::string pgforge =
        std::string(PGFORGE_CLI_PATH) + " --settings " + r.site.settings_file().string();
    std::string piped = pgforge + " database get shop -i db --json | " + pgforge +
                        " database apply -i db -f - > " + (r.site.root() / "piped.out").string();
    CHECK(std::system(piped.c_str()) == 0);
    CHECK(read_text_file(r.site.root() / "piped.out") == "database shop: unchanged\n");

    // After a change by hand, applying the saved description puts it back.
    r.sql("ALTER DATABASE shop SET work_mem = '1MB'; ALTER DATABASE shop SET lock_timeout = '5s'");
    auto restored = r.cli({"database", "apply", "-f", file.string(), "--json"});
    REQUIRE(restored.status == 0);
    json rj = json::parse(restored.out);
    CHECK(rj["result"] == "changed");
    CHECK(rj["statements"] == json::array({"ALTER DATABASE \"shop\" SET \"work_mem\" TO '16MB'"}));
    // The map names the settings to set; lock_timeout was not in it and stays.
    CHECK(r.one("SHOW lock_timeout", {}, "shop") == "5s");
}

TEST_CASE("database names shaped like SQL injection are names", "[integration][database]") {
    Running r;
    r.sql("CREATE DATABASE x");
    r.sql("CREATE ROLE \"r'; DROP DATABASE x; --\"");
    const std::string evil = "a\"; DROP DATABASE x; --";
    const std::string evil_schema = "s'); DROP DATABASE x; --";
    Database d;
    d.name = evil;
    d.owner = "r'; DROP DATABASE x; --";
    d.settings = std::map<std::string, std::optional<std::string>>{
        {"myapp.note", "'); DROP DATABASE x; --"}};
    d.schemas = {{evil_schema, "r'; DROP DATABASE x; --", State::present}};
    CHECK(apply(*r.ctx, r.instance, d).result == Result::created);
    CHECK(apply(*r.ctx, r.instance, d).result == Result::unchanged);
    CHECK(exists(*r.ctx, r.instance, "x"));
    CHECK(r.one("SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = $1", {evil}) ==
          "r'; DROP DATABASE x; --");
    CHECK(r.one("SELECT current_setting('myapp.note')", {}, evil) == "'); DROP DATABASE x; --");
    CHECK(r.one("SELECT count(*) FROM pg_namespace WHERE nspname = $1", {evil_schema}, evil) ==
          "1");

    auto list = r.cli({"database", "list", "--json"});
    REQUIRE(list.status == 0);
    std::vector<std::string> names;
    for (const auto& item : json::parse(list.out)) names.push_back(item["name"]);
    CHECK(names == std::vector<std::string>{evil, "postgres", "x"});

    auto got = r.cli({"database", "get", evil, "--json"});
    REQUIRE(got.status == 0);
    auto file = r.write("evil.json", got.out);
    CHECK(r.cli({"database", "apply", "-f", file.string()}).out ==
          "database " + evil + ": unchanged\n");

    auto ran =
        r.cli({"database", "run", "SELECT current_database() AS db", "--database", evil, "--json"});
    REQUIRE(ran.status == 0);
    CHECK(json::parse(ran.out) == json{{evil, json::array({json{{"db", evil}}})}});

    auto dumped = r.cli({"database", "dump", evil, "--json"});
    REQUIRE(dumped.status == 0);
    CHECK(json::parse(dumped.out)["database"] == evil);
    auto restored = r.cli({"database", "restore", evil, "b\"; DROP DATABASE x; --"});
    CHECK(restored.status == 0);
    CHECK(exists(*r.ctx, r.instance, "b\"; DROP DATABASE x; --"));

    auto dropped = r.cli({"database", "drop", evil});
    CHECK(dropped.status == 0);
    CHECK_FALSE(exists(*r.ctx, r.instance, evil));
    CHECK(exists(*r.ctx, r.instance, "x"));
}

TEST_CASE("drop of a database with open sessions: refused, or forced", "[integration][database]") {
    Running r;
    REQUIRE(r.cli({"database", "create", "busy"}).status == 0);
    pg::Connection session(r.instance, "busy");
    session.exec("SELECT 1");

    auto refused = r.cli({"database", "drop", "busy"});
    CHECK(refused.status == static_cast<int>(Exit::conflict));
    CHECK(contains(refused.err,
                   "database busy in instance 15/db: database \"busy\" is being "
                   "accessed by other users (There is 1 other session using the "
                   "database.)"));
    CHECK(contains(refused.err, "--force"));
    CHECK(exists(*r.ctx, r.instance, "busy"));

    auto forced = r.cli({"database", "drop", "busy", "--force", "--json"});
    CHECK(forced.status == 0);
    CHECK(json::parse(forced.out) == json{{"name", "busy"},
                                          {"result", "dropped"},
                                          {"statements", {"DROP DATABASE \"busy\" WITH (FORCE)"}}});
    CHECK_FALSE(exists(*r.ctx, r.instance, "busy"));
    CHECK_THROWS(session.exec("SELECT 1"));  // its session was terminated
}

TEST_CASE("database commands: every verb, outcomes and exit statuses", "[integration][database]") {
    Running r;
    r.sql("CREATE ROLE app_owner");
    auto created = r.cli({"database", "create", "one", "--owner", "app_owner", "--json"});
    REQUIRE(created.status == 0);
    CHECK(json::parse(created.out)["statements"] ==
          json::array({"CREATE DATABASE \"one\" OWNER \"app_owner\""}));

    auto twice = r.cli({"database", "create", "one"});
    CHECK(twice.status == static_cast<int>(Exit::conflict));
    CHECK(contains(twice.err, "database one already exists in instance 15/db"));

    auto altered = r.cli({"database", "alter", "one", "--set", "work_mem=8MB"});
    CHECK(altered.status == 0);
    CHECK(altered.out == "database one: changed\n");
    CHECK(r.cli({"database", "alter", "one", "--set", "work_mem=8MB"}).out ==
          "database one: unchanged\n");
    CHECK(r.cli({"database", "alter", "one", "--reset", "work_mem"}).out ==
          "database one: changed\n");
    CHECK(r.one("SELECT count(*) FROM pg_db_role_setting s JOIN pg_database d "
                "ON d.oid = s.setdatabase WHERE datname = 'one'") == "0");

    auto missing = r.cli({"database", "alter", "nope", "--owner", "app_owner"});
    CHECK(missing.status == static_cast<int>(Exit::not_found));
    CHECK(contains(missing.err, "database nope does not exist in instance 15/db"));
    CHECK(r.cli({"database", "get", "nope"}).status == static_cast<int>(Exit::not_found));
    auto drop_missing = r.cli({"database", "drop", "nope"});
    CHECK(drop_missing.status == static_cast<int>(Exit::not_found));
    CHECK(contains(drop_missing.err, "database nope does not exist in instance 15/db"));
    CHECK_THROWS_MATCHES(
        get(*r.ctx, r.instance, "nope"), Error, Catch::Predicate<Error>([](const Error& e) {
            return e.code() == Exit::not_found &&
                   std::string(e.what()) == "database nope does not exist in instance 15/db";
        }));

    auto bad_owner = r.cli({"database", "create", "two", "--owner", "nobody"});
    CHECK(bad_owner.status == static_cast<int>(Exit::not_found));
    CHECK(contains(bad_owner.err, "role \"nobody\" does not exist"));
    CHECK_FALSE(exists(*r.ctx, r.instance, "two"));

    auto bad_value = r.cli({"database", "alter", "one", "--set", "work_mem=lots"});
    CHECK(bad_value.status == static_cast<int>(Exit::usage));
    CHECK(contains(bad_value.err, "invalid value for parameter \"work_mem\""));

    r.sql("COMMENT ON DATABASE one IS 'the first'");
    auto list = r.cli({"database", "list"});
    REQUIRE(list.status == 0);
    auto l = lines(list.out);
    REQUIRE(l.size() == 3);
    CHECK(l[0].rfind("NAME", 0) == 0);
    CHECK(contains(l[1], "one"));
    CHECK(contains(l[1], "app_owner"));
    CHECK(contains(l[1], "the first"));
    auto lj = json::parse(r.cli({"database", "list", "one", "--json"}).out);
    REQUIRE(lj.size() == 1);
    CHECK(lj[0]["name"] == "one");
    CHECK(lj[0]["owner"] == "app_owner");
    CHECK(lj[0]["encoding"] == "UTF8");
    CHECK(lj[0]["collation"] == "C.UTF-8");
    CHECK(lj[0]["size"].get<long long>() > 1000000);
    CHECK(lj[0]["tablespace"] == "pg_default");
    CHECK(lj[0]["description"] == "the first");
    auto excluded =
        json::parse(r.cli({"database", "list", "--exclude-database", "one", "--json"}).out);
    REQUIRE(excluded.size() == 1);
    CHECK(excluded[0]["name"] == "postgres");

    // apply of a list: one line each, a JSON array
    auto file = r.write("two.yaml",
                        "- {name: one, state: absent}\n- {name: two}\n- {name: one, "
                        "state: absent}\n");
    auto applied = r.cli({"database", "apply", "-f", file.string()});
    CHECK(applied.status == 0);
    CHECK(applied.out == "database one: dropped\ndatabase two: created\ndatabase one: unchanged\n");

    auto no_instance = r.site.cli({"database", "list"});
    CHECK(no_instance.status == static_cast<int>(Exit::usage));
    CHECK(contains(no_instance.err, "-i NAME"));
}

TEST_CASE("run on 20 databases: one fails, the others' results are there",
          "[integration][database]") {
    Running r;
    std::vector<Database> many;
    for (int k = 0; k < 20; ++k) many.push_back(named("db" + std::to_string(k)));
    for (const auto& a : apply(*r.ctx, r.instance, many)) REQUIRE(a.result == Result::created);
    auto ran =
        run(*r.ctx, r.instance, "CREATE TABLE t AS SELECT current_database() AS db, 42 AS answer",
            RunOptions{{}, {"db7"}, 4, {}});
    REQUIRE(ran.size() == 20);  // 19 databases and postgres
    for (const auto& x : ran) CHECK_FALSE(x.error);

    auto out = r.cli({"database", "run", "SELECT db, answer FROM t", "--exclude-database",
                      "postgres", "--json"});
    CHECK(out.status == static_cast<int>(Exit::failure));
    CHECK(contains(out.err, "1 of 20 databases failed: db7"));
    json j = json::parse(out.out);
    REQUIRE(j.size() == 20);
    for (int k = 0; k < 20; ++k) {
        std::string name = "db" + std::to_string(k);
        if (k == 7) {
            CHECK(j[name] == json{{"error", "relation \"t\" does not exist"}});
        } else {
            CHECK(j[name] == json::array({json{{"db", name}, {"answer", 42}}}));
        }
    }

    auto text = r.cli({"database", "run", "SELECT answer FROM t", "-d", "db1", "-d", "db7"});
    CHECK(text.status == 1);
    CHECK(text.out == "db1:\n  answer\n  42\ndb7: ERROR: relation \"t\" does not exist\n");

    auto named_missing = r.cli({"database", "run", "SELECT 1", "-d", "nosuch", "-d", "db1"});
    CHECK(named_missing.status == 1);
    CHECK(contains(named_missing.out, "nosuch: ERROR: database nosuch does not exist"));
    CHECK(contains(named_missing.out, "db1:\n"));

    // Notices reach the handler, one at a time, named by database.
    std::mutex m;
    std::vector<std::string> notices;
    RunOptions o;
    o.dbnames = {"db1", "db2", "db3"};
    o.on_notice = [&](const std::string& db, const std::string& message) {
        std::lock_guard<std::mutex> held(m);
        notices.push_back(db + ": " + message);
    };
    auto with_notices = run(*r.ctx, r.instance,
                            "DO $$BEGIN RAISE NOTICE 'hello from %', current_database(); END$$", o);
    REQUIRE(with_notices.size() == 3);
    std::sort(notices.begin(), notices.end());
    CHECK(notices == std::vector<std::string>{"db1: NOTICE:  hello from db1",
                                              "db2: NOTICE:  hello from db2",
                                              "db3: NOTICE:  hello from db3"});
    // COPY through stdin/stdout is refused cleanly (not a hang), the others still run.
    auto copy =
        run(*r.ctx, r.instance, "COPY (SELECT 1) TO STDOUT", RunOptions{{"db1", "db2"}, {}, 4, {}});
    REQUIRE(copy.size() == 2);
    CHECK(copy[0].error ==
          std::optional<std::string>("COPY FROM STDIN and COPY TO STDOUT are not supported here"));
    // A script: several statements, the last one's rows.
    auto script =
        run(*r.ctx, r.instance, "SET work_mem = '1MB'; SELECT current_setting('work_mem')",
            RunOptions{{"db2"}, {}, 4, {}});
    REQUIRE(script.size() == 1);
    CHECK(script[0].result.rows.at(0).at(0) == std::optional<std::string>("1MB"));
}

TEST_CASE("dump, drop, restore: the data comes back", "[integration][database]") {
    Running r;
    r.sql("CREATE ROLE keeper");
    REQUIRE(r.cli({"database", "create", "data", "--owner", "keeper"}).status == 0);
    r.sql(
        "CREATE TABLE items AS SELECT g AS id, md5(g::text) AS h FROM generate_series(1, 5000) g;"
        "ALTER TABLE items OWNER TO keeper",
        "data");
    std::string checksum_sql = "SELECT md5(string_agg(h, ',' ORDER BY id)) FROM items";
    std::string before = r.one(checksum_sql, {}, "data");

    auto dumped = r.cli({"database", "dump", "data", "--json"});
    REQUIRE(dumped.status == 0);
    json dj = json::parse(dumped.out);
    fs::path file = dj["file"].get<std::string>();
    CHECK(file.parent_path() == r.instance.base_dir / "dumps");
    CHECK(file.filename().string().rfind("data_", 0) == 0);
    CHECK(fs::file_size(file) == dj["size"].get<std::uintmax_t>());
    struct stat st {};
    REQUIRE(stat(file.parent_path().c_str(), &st) == 0);
    CHECK((st.st_mode & 0777) == 0700);
    CHECK(st.st_uid == getpwnam(test::expected_owner().c_str())->pw_uid);

    auto listed = json::parse(r.cli({"database", "dumps", "--json"}).out);
    REQUIRE(listed.size() == 1);
    CHECK(listed[0]["database"] == "data");
    CHECK(listed[0]["file"] == file.string());
    CHECK(listed[0]["time"] == dj["time"]);

    auto into_existing = r.cli({"database", "restore", file.filename().string()});
    CHECK(into_existing.status == static_cast<int>(Exit::conflict));
    CHECK(contains(into_existing.err, "database data already exists"));

    REQUIRE(r.cli({"database", "drop", "data"}).status == 0);
    auto restored = r.cli({"database", "restore", file.filename().string(), "--jobs", "2"});
    REQUIRE(restored.status == 0);
    CHECK(restored.out == "database data: restored\n");
    CHECK(r.one(checksum_sql, {}, "data") == before);
    CHECK(r.one("SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = 'data'") ==
          "keeper");

    // Into a new name: created first, owned as the original.
    auto copy = r.cli({"database", "restore", "data", "copy", "--json"});
    REQUIRE(copy.status == 0);
    CHECK(json::parse(copy.out)["database"] == "copy");
    CHECK(r.one(checksum_sql, {}, "copy") == before);
    CHECK(r.one("SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = 'copy'") ==
          "keeper");
    CHECK(r.one("SELECT pg_get_userbyid(relowner) FROM pg_class WHERE relname = 'items'", {},
                "copy") == "keeper");

    auto nothing = r.cli({"database", "restore", "nosuch"});
    CHECK(nothing.status == static_cast<int>(Exit::not_found));
    auto no_db = r.cli({"database", "dump", "nosuch"});
    CHECK(no_db.status == static_cast<int>(Exit::not_found));
    CHECK(contains(no_db.err, "database nosuch does not exist in instance 15/db"));
}

TEST_CASE("a stopped instance: a clear error, no connection attempt", "[integration][database]") {
    Running r;
    REQUIRE(r.site.cli({"instance", "stop", "db"}).status == 0);
    for (std::vector<std::string> args : {std::vector<std::string>{"database", "list"},
                                          {"database", "get", "postgres"},
                                          {"database", "run", "SELECT 1"},
                                          {"database", "create", "x"},
                                          {"database", "dump", "postgres"}}) {
        auto out = r.cli(args);
        CHECK(out.status == static_cast<int>(Exit::stopped));
        CHECK(contains(out.err, "instance 15/db is not running"));
        CHECK(contains(out.err, "pgforge instance start 15/db"));
    }
    CHECK_THROWS_MATCHES(
        pg::Connection(r.instance), Error,
        Catch::Predicate<Error>([](const Error& e) { return e.code() == Exit::stopped; }));
}

// Numbers for the report, not a check: `pgforge_integration_tests "[database-bench]"`.
TEST_CASE("run over 100 databases vs a psql loop; no-op apply of 50", "[.][database-bench]") {
    Running r;
    std::vector<Database> hundred;
    for (int k = 0; k < 100; ++k) hundred.push_back(named("db" + std::to_string(k)));
    apply(*r.ctx, r.instance, hundred);
    auto ms_since = [](auto t0) {
        return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0)
            .count();
    };
    auto best_of = [&](int n, auto&& body) {
        double best = 1e18;
        for (int k = 0; k < n; ++k) {
            auto t0 = std::chrono::steady_clock::now();
            body();
            best = std::min(best, ms_since(t0));
        }
        return best;
    };
    std::string pgforge_bin = PGFORGE_CLI_PATH;
    std::string run_cmd = pgforge_bin + " --settings " + r.site.settings_file().string() +
                          " database run -i db 'SELECT 1' --exclude-database postgres >/dev/null";
    double ours = best_of(5, [&] { REQUIRE(std::system(run_cmd.c_str()) == 0); });
    // The same through psql, one process per database: the Debian wrapper (/usr/bin/psql, a
    // perl script) and the binary itself.
    auto psql_loop = [&](const std::string& psql) {
        return r.write("loop.sh", "for k in $(seq 0 99); do " + psql + " -X -q -h " +
                                      r.instance.socket_dir.string() + " -p " +
                                      std::to_string(r.instance.port) +
                                      " -U postgres -d db$k -c 'SELECT 1' >/dev/null || exit 1; "
                                      "done\n");
    };
    std::string psql_cmd = "bash " + psql_loop("psql").string();
    double theirs = best_of(3, [&] { REQUIRE(std::system(psql_cmd.c_str()) == 0); });
    std::string bin_cmd = "bash " + psql_loop("/usr/lib/postgresql/15/bin/psql").string();
    double bin = best_of(3, [&] { REQUIRE(std::system(bin_cmd.c_str()) == 0); });
    std::cout << "database run 'SELECT 1' on 100 databases (pgforge binary): " << ours
              << " ms; psql loop: " << theirs << " ms (ratio " << ours / theirs
              << "); loop of the psql binary without the Debian wrapper: " << bin << " ms (ratio "
              << ours / bin << ")\n";
    double in_process = best_of(5, [&] {
        auto x = run(*r.ctx, r.instance, "SELECT 1", RunOptions{{}, {"postgres"}, 4, {}});
        REQUIRE(x.size() == 100);
    });
    std::cout << "databases::run on 100 databases (in process): " << in_process << " ms\n";

    std::vector<Database> fifty;
    for (int k = 0; k < 50; ++k) {
        Database d = named("db" + std::to_string(k));
        d.owner = "postgres";
        d.settings = std::map<std::string, std::optional<std::string>>{{"work_mem", "8MB"}};
        d.tablespace = "pg_default";
        fifty.push_back(d);
    }
    apply(*r.ctx, r.instance, fifty);
    double noop = best_of(10, [&] {
        for (const auto& a : apply(*r.ctx, r.instance, fifty))
            REQUIRE(a.result == Result::unchanged);
    });
    std::cout << "no-op apply of 50 databases, one apply(vector): " << noop << " ms\n";
    double noop_each = best_of(5, [&] {
        for (const auto& d : fifty) REQUIRE(apply(*r.ctx, r.instance, d).statements.empty());
    });
    std::cout << "no-op apply of 50 databases, 50 apply(database): " << noop_each << " ms\n";
    json j = json::array();
    for (const auto& d : fifty)
        j.push_back({{"name", d.name}, {"owner", "postgres"}, {"settings", {{"work_mem", "8MB"}}}});
    auto file = r.write("fifty.json", j.dump());
    std::string apply_cmd = pgforge_bin + " --settings " + r.site.settings_file().string() +
                            " database apply -i db -f " + file.string() + " >/dev/null";
    double cli = best_of(5, [&] { REQUIRE(std::system(apply_cmd.c_str()) == 0); });
    std::cout << "pgforge database apply -f (50 databases, whole process): " << cli << " ms\n";
    for (auto& d : fifty) d.schemas = {{"public", std::nullopt, State::present}};
    double with_schemas = best_of(5, [&] { apply(*r.ctx, r.instance, fifty); });
    std::cout << "no-op apply of 50 databases naming a schema (a connection each): " << with_schemas
              << " ms\n";
}

TEST_CASE("database and role changes and a refused conf set are journaled; a no-op writes nothing",
          "[integration][database][journal]") {
    Running r;
    auto history = [&] {
        auto h = r.site.cli({"instance", "history", "db", "--json", "--limit", "100"});
        REQUIRE(h.status == 0);
        return json::parse(h.out);
    };
    const size_t before = history().size();

    REQUIRE(r.cli({"database", "create", "journaled"}).status == 0);
    auto h = history();
    REQUIRE(h.size() == before + 1);
    CHECK(h.back()["operation"] == "database create journaled");
    CHECK(h.back()["outcome"] == "ok");
    REQUIRE_FALSE(h.back()["steps"].empty());
    CHECK(h.back()["steps"][0]["kind"] == "sql");
    CHECK_THAT(h.back()["steps"][0]["name"].get<std::string>(), Catch::Contains("CREATE DATABASE"));

    // The same description again changes nothing: no entry.
    fs::path d = r.write("journaled.yaml", "name: journaled\n");
    REQUIRE(r.cli({"database", "apply", "-f", d.string()}).status == 0);
    CHECK(history().size() == before + 1);

    // A refused change is journaled, failed, with the server's reason.
    CHECK(r.cli({"database", "drop", "no_such_db"}).status != 0);
    h = history();
    REQUIRE(h.size() == before + 2);
    CHECK(h.back()["operation"] == "database drop no_such_db");
    CHECK(h.back()["outcome"] == "failed");
    CHECK_FALSE(h.back()["message"].get<std::string>().empty());

    // Roles too, their passwords never in the journal.
    fs::path pw = r.write("pw", "s3cret-pw\n");
    ::chmod(pw.c_str(), 0600);
    REQUIRE(
        r.cli({"role", "create", "app_user", "--login", "--password-file", pw.string()}).status ==
        0);
    h = history();
    REQUIRE(h.size() == before + 3);
    CHECK(h.back()["operation"] == "role create app_user");
    CHECK(h.back()["outcome"] == "ok");
    CHECK_THAT(h.dump(), !Catch::Contains("s3cret-pw"));
    REQUIRE(r.cli({"role", "drop", "app_user"}).status == 0);
    CHECK(history().back()["operation"] == "role drop app_user");

    // A conf set the server's rules refuse never reaches its pipeline, and is journaled too.
    const size_t now = history().size();
    CHECK(r.site.cli({"conf", "set", "-i", "db", "wal_level=bogus"}).status == 2);
    h = history();
    REQUIRE(h.size() == now + 1);
    CHECK(h.back()["operation"] == "configure");
    CHECK(h.back()["outcome"] == "failed");
    CHECK_THAT(h.back()["message"].get<std::string>(), Catch::Contains("wal_level"));
    CHECK(r.site.cli({"conf", "set", "-i", "db", "wal_level=bogus", "--dry-run"}).status == 2);
    CHECK(history().size() == now + 1);
}
