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

bool contains(const std::string& haystack, const std::string& needle) {
    return haystack.find(needle) != std::string::npos;
}

// HOME pointed at a private directory for the test (~/.pgpass), restored after.
class ScopedHome {
  public:
    explicit ScopedHome(const fs::path& home) {
        if (const char* h = std::getenv("HOME")) old_ = h;
        fs::create_directories(home);
        setenv("HOME", home.c_str(), 1);
    }
    ~ScopedHome() {
        if (old_)
            setenv("HOME", old_->c_str(), 1);
        else
            unsetenv("HOME");
    }
    ScopedHome(const ScopedHome&) = delete;
    ScopedHome& operator=(const ScopedHome&) = delete;

  private:
    std::optional<std::string> old_;
};

// The "statements" of each result of an apply --json of a list.
std::vector<json> statements_of(const json& results) {
    std::vector<json> out;
    for (const auto& r : results) out.push_back(r["statements"]);
    return out;
}

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
        for (const char* extra : {"", "--check"}) {
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

TEST_CASE(
    "database apply --check: the statements apply would run, nothing run; then apply runs "
    "exactly those",
    "[integration][manifests][check]") {
    Running r;
    r.sql("CREATE ROLE alice");
    r.sql("CREATE ROLE bob");
    r.sql("CREATE DATABASE app OWNER alice");
    r.sql("CREATE DATABASE old");
    r.sql("CREATE SCHEMA s1 AUTHORIZATION alice", "app");
    r.sql("ALTER DATABASE app SET work_mem TO '4MB'");
    // Every kind of change: owner, a setting changed and one reset, a schema created and one
    // whose owner changes, an extension; a database created (whose `public` schema comes from
    // template1, so is not created), one dropped, one left as it is.
    fs::path f = r.write("dbs.yaml",
                         "- name: app\n"
                         "  owner: bob\n"
                         "  settings: {work_mem: 8MB, statement_timeout: null}\n"
                         "  schemas: [{name: s1, owner: bob}, {name: s2, owner: alice}]\n"
                         "  extensions: [hstore]\n"
                         "- name: fresh\n"
                         "  owner: alice\n"
                         "  settings: {work_mem: 2MB}\n"
                         "  schemas: [public, s3]\n"
                         "- {name: old, state: absent}\n"
                         "- {name: postgres}\n");
    const std::string catalog = r.catalog();
    const size_t history = r.history_size();

    auto check = r.cli({"database", "apply", "-f", f.string(), "--check", "--json"});
    REQUIRE(check.status == 0);
    json planned = json::parse(check.out);
    REQUIRE(planned.size() == 4);
    CHECK(planned[0]["result"] == "changed");
    CHECK(planned[0]["statements"] ==
          json::array({"ALTER DATABASE \"app\" OWNER TO \"bob\"",
                       "ALTER DATABASE \"app\" SET \"work_mem\" TO '8MB'",
                       "ALTER SCHEMA \"s1\" OWNER TO \"bob\"",
                       "CREATE SCHEMA \"s2\" AUTHORIZATION \"alice\"",
                       "CREATE EXTENSION IF NOT EXISTS \"hstore\" CASCADE"}));
    CHECK(planned[1]["result"] == "created");
    CHECK(planned[1]["statements"] ==
          json::array({"CREATE DATABASE \"fresh\" OWNER \"alice\"",
                       "ALTER DATABASE \"fresh\" SET \"work_mem\" TO '2MB'",
                       "CREATE SCHEMA \"s3\""}));
    CHECK(planned[2] == json{{"name", "old"},
                             {"result", "dropped"},
                             {"statements", json::array({"DROP DATABASE \"old\""})}});
    CHECK(planned[3] ==
          json{{"name", "postgres"}, {"result", "unchanged"}, {"statements", json::array()}});
    // Nothing changed, nothing journaled.
    CHECK(r.catalog() == catalog);
    CHECK(r.history_size() == history);

    // Text: the outcomes, with --diff the SQL, and a line saying nothing was done.
    auto text = r.cli({"database", "apply", "-f", f.string(), "--check", "--diff"});
    REQUIRE(text.status == 0);
    CHECK(
        contains(text.out, "database app: changed\n  ALTER DATABASE \"app\" OWNER TO \"bob\";\n"));
    CHECK(contains(text.out,
                   "database fresh: created\n  CREATE DATABASE \"fresh\" OWNER "
                   "\"alice\";\n"));
    CHECK(contains(text.out, "database postgres: unchanged\ncheck: nothing was changed\n"));
    auto brief = r.cli({"database", "apply", "-f", f.string(), "--check"});
    CHECK(brief.out ==
          "database app: changed\ndatabase fresh: created\ndatabase old: dropped\n"
          "database postgres: unchanged\ncheck: nothing was changed\n");
    CHECK(r.catalog() == catalog);
    CHECK(r.history_size() == history);

    // The real apply runs exactly what check said.
    auto applied = r.cli({"database", "apply", "-f", f.string(), "--json"});
    REQUIRE(applied.status == 0);
    json done = json::parse(applied.out);
    CHECK(statements_of(done) == statements_of(planned));
    CHECK(done[1]["result"] == "created");
    CHECK(r.catalog() != catalog);
    CHECK(r.history_size() == history + 1);
    CHECK(r.one("SELECT pg_get_userbyid(nspowner) FROM pg_namespace WHERE nspname = 's1'", "app") ==
          "bob");

    // Then both are unchanged, and run nothing.
    for (const char* mode : {"--check", "--diff"}) {
        auto again = r.cli({"database", "apply", "-f", f.string(), mode, "--json"});
        REQUIRE(again.status == 0);
        for (const auto& x : json::parse(again.out)) {
            CHECK(x["result"] == "unchanged");
            CHECK(x["statements"].empty());
        }
    }
    CHECK(r.history_size() == history + 1);
}

TEST_CASE(
    "role apply --check: the statements apply would run, passwords never shown; then apply "
    "runs exactly those",
    "[integration][manifests][check]") {
    Running r;
    ScopedHome home(r.site.root() / "home");
    r.sql("CREATE ROLE alice LOGIN PASSWORD 'first-secret'");
    r.sql("CREATE ROLE gone");
    r.sql("CREATE ROLE readers");
    // team is created before carol joins it; alice's password changes; gone is dropped.
    fs::path f = r.write("roles.yaml",
                         "- {name: team}\n"
                         "- {name: carol, login: true, in_roles: [team, readers], "
                         "password: carol-secret, pgpass: true}\n"
                         "- {name: alice, password: second-secret, connection_limit: 3}\n"
                         "- {name: gone, state: absent}\n"
                         "- {name: readers, login: false}\n");
    fs::path pgpass = r.site.root() / "home" / ".pgpass";
    const std::string catalog = r.catalog();
    const size_t history = r.history_size();

    auto check = r.cli({"role", "apply", "-f", f.string(), "--check", "--json"});
    REQUIRE(check.status == 0);
    CHECK_FALSE(contains(check.out, "secret"));
    json planned = json::parse(check.out);
    REQUIRE(planned.size() == 5);
    CHECK(planned[0] == json{{"name", "team"},
                             {"result", "created"},
                             {"statements", json::array({"CREATE ROLE \"team\""})}});
    CHECK(planned[1]["result"] == "created");
    CHECK(planned[1]["statements"] ==
          json::array(
              {"CREATE ROLE \"carol\" WITH LOGIN PASSWORD '***' IN ROLE \"readers\", \"team\""}));
    CHECK(planned[2]["result"] == "changed");
    CHECK(planned[2]["statements"] ==
          json::array({"ALTER ROLE \"alice\" WITH CONNECTION LIMIT 3 PASSWORD '***'"}));
    CHECK(planned[3]["result"] == "dropped");
    CHECK(planned[3]["statements"] == json::array({"DROP ROLE \"gone\""}));
    CHECK(planned[4]["result"] == "unchanged");
    CHECK(r.catalog() == catalog);
    CHECK(r.history_size() == history);
    CHECK_FALSE(fs::exists(pgpass));

    auto text = r.cli({"role", "apply", "-f", f.string(), "--check", "--diff"});
    REQUIRE(text.status == 0);
    CHECK_FALSE(contains(text.out, "secret"));
    CHECK(contains(text.out,
                   "role alice: changed\n  ALTER ROLE \"alice\" WITH CONNECTION LIMIT 3 "
                   "PASSWORD '***';\n"));
    CHECK(contains(text.out, "  -- ~/.pgpass entry of role carol would be written\n"));
    CHECK(contains(text.out, "role readers: unchanged\ncheck: nothing was changed\n"));
    CHECK(r.catalog() == catalog);
    CHECK_FALSE(fs::exists(pgpass));

    auto applied = r.cli({"role", "apply", "-f", f.string(), "--json"});
    REQUIRE(applied.status == 0);
    CHECK(statements_of(json::parse(applied.out)) == statements_of(planned));
    CHECK(r.catalog() != catalog);
    CHECK(fs::exists(pgpass));
    CHECK(r.one("SELECT string_agg(b.rolname, ',' ORDER BY b.rolname) FROM pg_auth_members m "
                "JOIN pg_roles a ON a.oid = m.member JOIN pg_roles b ON b.oid = m.roleid "
                "WHERE a.rolname = 'carol'") == "readers,team");
    CHECK(r.history_size() == history + 1);

    // A password that is already the one stored is unchanged, in check mode too.
    for (const char* mode : {"--check", "--diff"}) {
        auto again = r.cli({"role", "apply", "-f", f.string(), mode, "--json"});
        REQUIRE(again.status == 0);
        for (const auto& x : json::parse(again.out)) {
            CHECK(x["result"] == "unchanged");
            CHECK(x["statements"].empty());
        }
    }
    CHECK(r.history_size() == history + 1);

    // Joining a role that neither exists nor comes earlier in the list: refused in check mode
    // as apply refuses it.
    fs::path missing = r.write("missing.yaml", "{name: dave, in_roles: [nobody]}\n");
    auto refused = r.cli({"role", "apply", "-f", missing.string(), "--check"});
    CHECK(refused.status == static_cast<int>(Exit::not_found));
    CHECK(contains(refused.err, "role nobody does not exist"));
}
