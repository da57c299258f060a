// `database privileges` on a real instance: privileges of a role granted on a table, a schema, a
// column, a function and by default privileges, filtered by database (-d) and role (--role).
#include <algorithm>
#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include "engine/core/error.hpp"
#include "engine/operations/instances.hpp"
#include "engine/operations/privileges.hpp"
#include "engine/pg/connection.hpp"
#include "tests/support/test_site.hpp"

using json = nlohmann::json;
using namespace pgforge;
using pgforge::test::TestSite;

namespace {

struct Granted {
    TestSite site;
    std::unique_ptr<Context> ctx;
    Instance instance;
    Granted() {
        REQUIRE(site.cli({"instance", "create", "pv"}).status == 0);
        ctx = std::make_unique<Context>(site.settings());
        instance = instances::get(*ctx, "pv");
        sql("CREATE ROLE reader; CREATE ROLE \"odd \"\"role\"; CREATE ROLE writer;");
        sql("CREATE DATABASE app");
        sql("CREATE DATABASE other");
        sql("CREATE SCHEMA sales; CREATE TABLE sales.orders (id int, amount numeric, note text);"
            "CREATE SEQUENCE sales.ids;"
            "CREATE FUNCTION sales.total(a integer, b text) RETURNS int LANGUAGE sql AS 'SELECT 1';"
            "GRANT USAGE ON SCHEMA sales TO reader;"
            "GRANT SELECT ON sales.orders TO reader;"
            "GRANT INSERT, UPDATE ON sales.orders TO writer WITH GRANT OPTION;"
            "GRANT SELECT (note) ON sales.orders TO \"odd \"\"role\";"
            "GRANT USAGE ON SEQUENCE sales.ids TO writer;"
            "REVOKE EXECUTE ON FUNCTION sales.total(integer, text) FROM PUBLIC;"
            "GRANT EXECUTE ON FUNCTION sales.total(integer, text) TO reader;"
            "GRANT CONNECT, TEMPORARY ON DATABASE app TO reader;"
            "CREATE VIEW sales.v AS SELECT 1 AS one; GRANT SELECT ON sales.v TO reader;"
            "CREATE DOMAIN sales.amount AS numeric; GRANT USAGE ON DOMAIN sales.amount TO writer;"
            "CREATE TYPE sales.mood AS ENUM ('ok'); GRANT USAGE ON TYPE sales.mood TO writer;"
            "CREATE PROCEDURE sales.p() LANGUAGE sql AS 'SELECT 1';"
            "GRANT EXECUTE ON PROCEDURE sales.p() TO writer;"
            "ALTER DEFAULT PRIVILEGES IN SCHEMA sales GRANT SELECT ON TABLES TO reader;"
            "ALTER DEFAULT PRIVILEGES GRANT USAGE ON SEQUENCES TO writer;",
            "app");
        sql("CREATE TABLE t (x int); GRANT SELECT ON t TO reader;", "other");
    }
    void sql(const std::string& text, const std::string& dbname = "postgres") const {
        pg::Connection c(instance, dbname);
        c.exec_script(text);
    }
    json cli(std::vector<std::string> args) const {
        std::vector<std::string> full = {"--json", "database", "privileges", "-i", "pv"};
        full.insert(full.end(), args.begin(), args.end());
        auto r = site.cli(full);
        INFO(r.err);
        REQUIRE(r.status == 0);
        return json::parse(r.out);
    }
};

// The rows of `list` whose fields are as `match` says.
std::vector<json> rows(const json& list, const json& match) {
    std::vector<json> out;
    for (const auto& row : list) {
        bool ok = true;
        for (const auto& [k, v] : match.items())
            if (row[k] != v) ok = false;
        if (ok) out.push_back(row);
    }
    return out;
}

std::set<std::string> values(const json& list, const std::string& field) {
    std::set<std::string> out;
    for (const auto& row : list)
        out.insert(row[field].is_null() ? "" : row[field].get<std::string>());
    return out;
}

}  // namespace

TEST_CASE("database privileges: a table, a schema, a column, a function, default privileges",
          "[integration][privileges]") {
    Granted g;
    auto all = g.cli({"-d", "app"});
    const json& p = all["privileges"];
    CHECK(values(p, "database") == std::set<std::string>{"app"});

    auto table = rows(p, {{"object_type", "table"}, {"object_name", "orders"}, {"role", "reader"}});
    REQUIRE(table.size() == 1);
    CHECK(table[0]["schema"] == "sales");
    CHECK(table[0]["privileges"] == json::array({"SELECT"}));
    CHECK(table[0]["grantable"] == json::array());

    auto writer =
        rows(p, {{"object_type", "table"}, {"object_name", "orders"}, {"role", "writer"}});
    REQUIRE(writer.size() == 1);
    CHECK(writer[0]["privileges"] == json::array({"INSERT", "UPDATE"}));
    CHECK(writer[0]["grantable"] == json::array({"INSERT", "UPDATE"}));

    auto schema =
        rows(p, {{"object_type", "schema"}, {"object_name", "sales"}, {"role", "reader"}});
    REQUIRE(schema.size() == 1);
    CHECK(schema[0]["schema"].is_null());
    CHECK(schema[0]["privileges"] == json::array({"USAGE"}));

    auto column = rows(p, {{"object_type", "column"}, {"role", "odd \"role"}});
    REQUIRE(column.size() == 1);
    CHECK(column[0]["object_name"] == "orders");
    CHECK(column[0]["column"] == "note");
    CHECK(column[0]["privileges"] == json::array({"SELECT"}));

    auto fn = rows(p, {{"object_type", "function"}, {"role", "reader"}});
    REQUIRE(fn.size() == 1);
    CHECK(fn[0]["object_name"] == "total(a integer, b text)");
    CHECK(rows(p, {{"object_type", "function"}, {"role", "PUBLIC"}}).empty());

    auto seq = rows(p, {{"object_type", "sequence"}, {"role", "writer"}});
    REQUIRE(seq.size() == 1);
    CHECK(seq[0]["privileges"] == json::array({"USAGE"}));

    auto db = rows(p, {{"object_type", "database"}, {"role", "reader"}});
    REQUIRE(db.size() == 1);
    CHECK(db[0]["object_name"] == "app");
    CHECK(db[0]["privileges"] == json::array({"CONNECT", "TEMPORARY"}));

    CHECK(rows(p, {{"object_type", "view"}, {"object_name", "v"}, {"role", "reader"}}).size() == 1);
    CHECK(rows(p, {{"object_type", "domain"}, {"object_name", "amount"}, {"role", "writer"}})
              .size() == 1);
    CHECK(rows(p, {{"object_type", "type"}, {"object_name", "mood"}, {"role", "writer"}}).size() ==
          1);
    CHECK(rows(p, {{"object_type", "procedure"}, {"object_name", "p()"}, {"role", "writer"}})
              .size() == 1);

    const json& d = all["default_privileges"];
    auto in_schema = rows(d, {{"schema", "sales"}, {"role", "reader"}});
    REQUIRE(in_schema.size() == 1);
    CHECK(in_schema[0]["object_type"] == "tables");
    CHECK(in_schema[0]["privileges"] == json::array({"SELECT"}));
    CHECK(in_schema[0]["owner"] == g.instance.superuser);
    auto global = rows(d, {{"schema", nullptr}, {"role", "writer"}});
    REQUIRE(global.size() == 1);
    CHECK(global[0]["object_type"] == "sequences");
    CHECK(global[0]["privileges"] == json::array({"USAGE"}));

    // System schemas are left out.
    CHECK_FALSE(values(p, "schema").count("pg_catalog"));
    CHECK_FALSE(values(p, "schema").count("information_schema"));
}

TEST_CASE("database privileges: filtered by database and by role", "[integration][privileges]") {
    Granted g;
    // By role: only reader's, in every database (app and other; postgres has none of reader's).
    auto reader = g.cli({"--role", "reader"});
    CHECK(values(reader["privileges"], "role") == std::set<std::string>{"reader"});
    CHECK(values(reader["privileges"], "database") == std::set<std::string>{"app", "other"});
    CHECK(values(reader["default_privileges"], "role") == std::set<std::string>{"reader"});
    CHECK(rows(reader["privileges"], {{"database", "other"}, {"object_name", "t"}}).size() == 1);

    // Two roles, one database.
    auto two = g.cli({"-d", "other", "--role", "reader", "--role", "writer"});
    CHECK(values(two["privileges"], "database") == std::set<std::string>{"other"});
    CHECK(values(two["privileges"], "role") == std::set<std::string>{"reader"});
    CHECK(two["default_privileges"].empty());

    // A role with a quote in its name is a value, not SQL.
    auto odd = g.cli({"--role", "odd \"role"});
    CHECK(odd["privileges"].size() == 1);

    // PUBLIC names everyone's grants (the public schema's USAGE in PostgreSQL 15).
    auto pub = g.cli({"-d", "app", "--role", "PUBLIC"});
    CHECK(rows(pub["privileges"], {{"object_type", "schema"}, {"object_name", "public"}}).size() ==
          1);

    // Templates are left out unless named; a missing database is not found.
    CHECK_FALSE(values(g.cli({})["privileges"], "database").count("template1"));
    auto missing = g.site.cli({"database", "privileges", "-i", "pv", "-d", "nosuch"});
    CHECK(missing.status == 4);
    CHECK_THAT(missing.err, Catch::Contains("database nosuch does not exist"));

    // Text: a table, grantable privileges marked.
    auto text = g.site.cli({"database", "privileges", "-i", "pv", "-d", "app", "--role", "writer"});
    CHECK(text.status == 0);
    CHECK_THAT(text.out, Catch::Contains("INSERT*, UPDATE*"));
    CHECK_THAT(text.out, Catch::Contains("default privileges:"));

    // A stopped instance: exit 3.
    REQUIRE(g.site.cli({"instance", "stop", "pv"}).status == 0);
    CHECK(g.site.cli({"database", "privileges", "-i", "pv"}).status == 3);
}
