// The manifests of `database apply` and `role apply` on a real instance: a bad manifest is
// refused with the path of its first bad value before anything is done (the catalog and the
// journal as they were), and `--check` / `--diff` say what apply would run without running it.
#include <catch2/catch.hpp>
#include <fstream>
#include <nlohmann/json.hpp>

#include "engine/core/error.hpp"
#include "engine/operations/instances.hpp"
#include "engine/pg/connection.hpp"
#include "tests/support/test_site.hpp"

namespace fs = std::filesystem;
using json = nlohmann::json;
using namespace pgforge;
using pgforge::test::TestSite;

namespace {

struct Running {
    TestSite site;
    std::unique_ptr<Context> ctx;
    Instance instance;
    Running() {
        REQUIRE(site.cli({"instance", "create", "mf"}).status == 0);
        ctx = std::make_unique<Context>(site.settings());
        instance = instances::get(*ctx, "mf");
    }
    TestSite::Output cli(std::vector<std::string> args) const {
        args.push_back("-i");
        args.push_back("mf");
        return site.cli(args);
    }
    std::string one(const std::string& sql, const std::string& dbname = "postgres") const {
        pg::Connection c(instance, dbname);
        auto r = c.exec(sql);
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
    // What apply could change, in one text: databases (owner, tablespace, settings), roles
    // (attributes, password verifier, memberships), and the schemas and extensions of `app`
    // when it exists.
    std::string catalog() const {
        std::string out =
            one("SELECT string_agg(x, E'\\n' ORDER BY x) FROM ("
                " SELECT format('db %s %s %s %s', d.datname, pg_get_userbyid(d.datdba), "
                "  d.dattablespace, s.setconfig) AS x FROM pg_database d "
                "  LEFT JOIN pg_db_role_setting s ON s.setdatabase = d.oid AND s.setrole = 0"
                " UNION ALL SELECT format('role %s', row(a.*)::text) FROM pg_authid a"
                " UNION ALL SELECT format('member %s %s', roleid::regrole, member::regrole) "
                "  FROM pg_auth_members) t");
        if (one("SELECT count(*) FROM pg_database WHERE datname = 'app'") == "1")
            out += "\n" + one("SELECT string_agg(x, E'\\n' ORDER BY x) FROM ("
                              " SELECT format('schema %s %s', nspname, nspowner::regrole) AS x "
                              "  FROM pg_namespace"
                              " UNION ALL SELECT format('ext %s %s %s', extname, "
                              "  extnamespace::regnamespace, extversion) FROM pg_extension) t",
                              "app");
        return out;
    }
    size_t history_size() const {
        auto h = site.cli({"instance", "history", "mf", "--json", "--limit", "1000"});
        REQUIRE(h.status == 0);
        return json::parse(h.out).size();
    }
};

}  // namespace

TEST_CASE("bad database and role manifests are refused with their path; nothing is changed",
          "[integration][manifests]") {
    Running r;
    r.sql("CREATE ROLE alice");
    r.sql("CREATE DATABASE app OWNER alice");
    const std::string catalog = r.catalog();
    const size_t history = r.history_size();
    struct Case {
        const char* object;
        const char* content;
        const char* message;  // after "FILE:"
        const char* hint;
    };
    // In each, what comes before the bad value is valid and would change something.
    const std::vector<Case> cases = {
        {"database", "- {name: fresh}\n- {name: app, owner: bob}\n- name: app2\n  owner: [x]\n",
         "4:10: [2].owner: expected a string", "found a list"},
        {"database", "- {name: fresh}\n- {name: app, onwer: bob}\n",
         "2:15: [1]: unknown key 'onwer'", "did you mean 'owner'?"},
        {"database", "name: app\nowner: bob\nstate: gone\n",
         "3:8: state: expected one of present, absent", "found 'gone'"},
        {"database", "name: app\nowner: bob\nschemas: [s1, {owner: bob}]\n",
         "3:15: schemas[1]: 'name' is required", ""},
        {"database", "name: app\nowner: bob\nsettings: {work_mem: {a: 1}}\n",
         "3:22: settings.work_mem: expected a string, a number or true or false",
         "found a mapping"},
        {"database", "name: app\nowner: bob\nextensions: [hstore\n",
         "4:1: ", "the file is not valid YAML or JSON"},
        {"role", "- {name: carol, login: true}\n- {name: alice, login: maybe}\n",
         "2:24: [1].login: expected true or false", "found 'maybe'"},
        {"role", "- {name: carol}\n- {name: alice, connection_limit: -2}\n",
         "2:35: [1].connection_limit: expected an integer from -1 to 2147483647", "found '-2'"},
        {"role", "- {name: carol}\n- {name: alice, in_roles: [a, [b]]}\n",
         "2:31: [1].in_roles[1]: expected a string", "found a list"},
        {"role", "name: alice\nsuperuser: true\nlogn: true\n", "3:1: unknown key 'logn'",
         "did you mean 'login'?"},
        {"role", "{\"name\": \"alice\", \"superuser\": true, \"state\": \"absnet\"}",
         "1:47: state: expected one of present, absent", "found 'absnet'; did you mean 'absent'?"},
        {"role", "[{\"name\": \"carol\"}, {\"login\": true}]", "1:21: [1]: 'name' is required", ""},
    };
    for (const auto& c : cases) {
        INFO(c.content);
        fs::path f = r.write("bad.yaml", c.content);
        for (const char* extra : {""}) {
            std::vector<std::string> args = {c.object, "apply", "-f", f.string(), "--json"};
            if (*extra) args.push_back(extra);
            auto out = r.cli(args);
            CHECK(out.status == static_cast<int>(Exit::usage));
            CHECK_THAT(out.err, Catch::StartsWith("pgforge: " + f.string() + ":" + c.message));
            auto err = json::parse(out.out);
            const std::string message = f.string() + ":" + c.message;
            if (message.back() == ' ')  // a syntax error: yaml-cpp's words follow
                CHECK_THAT(err["error"]["message"].get<std::string>(), Catch::StartsWith(message));
            else
                CHECK(err["error"]["message"] == message);
            CHECK(err["error"]["hint"] == c.hint);
        }
    }
    CHECK(r.catalog() == catalog);
    CHECK(r.history_size() == history);
}
