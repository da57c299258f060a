// Roles of a real instance: roles::apply and its outcomes (checked against pg_authid and
// pg_auth_members, and against the server's log for "no DDL"), get/ls/exists/drop, ~/.pgpass,
// the `role` commands, and that a password never shows in statements, logs or output.
#include <postgresql/libpq-fe.h>
#include <sys/stat.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <chrono>
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <nlohmann/json.hpp>

#include "engine/conf/template.hpp"
#include "engine/core/error.hpp"
#include "engine/core/process.hpp"
#include "engine/operations/instances.hpp"
#include "engine/operations/roles.hpp"
#include "engine/pg/connection.hpp"
#include "tests/support/test_site.hpp"

namespace fs = std::filesystem;
using json = nlohmann::json;
using namespace pgforge;
using pgforge::test::TestSite;
using roles::Result;
using roles::Role;

namespace {

const std::string kPassword = "s3cret:pa\\ss'word";
const std::string kOtherPassword = "an0ther-Pa55word";

struct Running {
    TestSite site;
    std::unique_ptr<Context> ctx;
    Instance instance;
    Running() {
        REQUIRE(site.cli({"instance", "create", "roles"}).status == 0);
        ctx = std::make_unique<Context>(site.settings());
        instance = instances::get(*ctx, "roles");
    }
    std::string one(const std::string& sql, const std::vector<std::string>& params = {},
                    const std::string& db = "postgres") {
        pg::Connection c(instance, db);
        auto r = c.exec(sql, params);
        return r.rows.empty() ? "" : r.rows.at(0).at(0).value_or("NULL");
    }
    void exec(const std::vector<std::string>& statements, const std::string& db = "postgres") {
        pg::Connection c(instance, db);
        for (const auto& sql : statements) c.exec(sql);
    }
    // A fingerprint of the role catalogs: any DDL on roles changes it.
    std::string catalog_state() {
        return one("SELECT string_agg(xmin::text || ':' || rolname, ',' ORDER BY oid) FROM "
                   "pg_authid") +
               "|" +
               one("SELECT count(*)::text || ':' || coalesce(max(xmin::text), '') "
                   "FROM pg_auth_members");
    }
    std::vector<std::string> member_of(const std::string& role) {
        pg::Connection c(instance);
        auto r = c.exec(
            "SELECT g.rolname FROM pg_auth_members m JOIN pg_roles g ON g.oid = m.roleid "
            "JOIN pg_roles u ON u.oid = m.member WHERE u.rolname = $1 ORDER BY 1",
            {role});
        std::vector<std::string> out;
        for (const auto& row : r.rows) out.push_back(row.at(0).value_or(""));
        return out;
    }
    std::string server_log() { return read_text_file(instance.log_file); }
};

bool contains(const std::string& haystack, const std::string& needle) {
    return haystack.find(needle) != std::string::npos;
}

std::string joined(const std::vector<std::string>& v) {
    std::string s;
    for (const auto& x : v) s += x + "\n";
    return s;
}

// Logs in over TCP on 127.0.0.1 with a password, as a client of the instance would.
bool tcp_login(const Instance& i, const std::string& user, const std::string& password,
               std::string* error = nullptr) {
    std::string port = std::to_string(i.port);
    const char* keys[] = {"host",     "port",    "dbname",          "user",
                          "password", "sslmode", "connect_timeout", nullptr};
    const char* values[] = {"127.0.0.1",      port.c_str(), "postgres", user.c_str(),
                            password.c_str(), "disable",    "5",        nullptr};
    PGconn* c = PQconnectdbParams(keys, values, 0);
    bool ok = PQstatus(c) == CONNECTION_OK;
    if (!ok && error) *error = PQerrorMessage(c);
    PQfinish(c);
    return ok;
}

// Private (0600), as pgforge requires of password files.
fs::path write_file(const fs::path& file, const std::string& content) {
    std::ofstream(file) << content;
    fs::permissions(file, fs::perms::owner_read | fs::perms::owner_write);
    return file;
}

// HOME pointed at a private directory for the test, restored after.
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

  private:
    std::optional<std::string> old_;
};

}  // namespace

TEST_CASE("apply creates a role, then changes only what differs, and a re-apply is a no-op",
          "[integration][role]") {
    Running r;
    // Every DDL statement goes to the server's log from now on.
    REQUIRE(r.site.cli({"conf", "set", "-i", "roles", "log_statement=ddl"}).status == 0);

    Role alice;
    alice.name = "alice";
    alice.login = true;
    alice.createdb = true;
    alice.connection_limit = 5;
    alice.valid_until = "2030-01-01 00:00:00+00";
    alice.password = kPassword;
    auto created = roles::apply(*r.ctx, r.instance, alice);
    CHECK(created.result == Result::created);
    REQUIRE(created.statements.size() == 1);
    CHECK(created.statements[0] ==
          "CREATE ROLE \"alice\" WITH LOGIN CREATEDB CONNECTION LIMIT 5 VALID UNTIL "
          "'2030-01-01 00:00:00+00' PASSWORD '***'");
    CHECK(r.one("SELECT rolcanlogin::text || rolcreatedb::text || rolsuper::text || "
                "rolconnlimit::text FROM pg_authid WHERE rolname = 'alice'") == "truetruefalse5");
    std::string verifier = r.one("SELECT rolpassword FROM pg_authid WHERE rolname = 'alice'");
    CHECK(verifier.rfind("SCRAM-SHA-256$4096:", 0) == 0);
    CHECK(roles::detail::scram_matches(verifier, kPassword));
    CHECK_FALSE(contains(joined(created.statements), "SCRAM"));
    CHECK(roles::exists(*r.ctx, r.instance, "alice"));
    CHECK_FALSE(roles::exists(*r.ctx, r.instance, "bob"));

    // The same description again: unchanged, and not one statement reaches the server.
    std::string before = r.catalog_state();
    auto log_size = fs::file_size(r.instance.log_file);
    auto again = roles::apply(*r.ctx, r.instance, alice);
    CHECK(again.result == Result::unchanged);
    CHECK(again.statements.empty());
    CHECK(r.catalog_state() == before);
    // The same instant written another way is the same valid_until.
    Role other_spelling = alice;
    other_spelling.valid_until = "2030-01-01T00:00:00Z";
    CHECK(roles::apply(*r.ctx, r.instance, other_spelling).result == Result::unchanged);
    CHECK(r.catalog_state() == before);
    CHECK(r.server_log().substr(log_size).find("statement:") == std::string::npos);

    // A get fed back to apply changes nothing either.
    Role got = roles::get(*r.ctx, r.instance, "alice");
    CHECK(got.login == true);
    CHECK(got.superuser == false);
    CHECK(got.createdb == true);
    CHECK(got.inherit == true);
    CHECK(got.connection_limit == 5);
    CHECK(got.valid_until == "2030-01-01T00:00:00Z");
    CHECK(got.in_roles == std::vector<std::string>{});
    CHECK_FALSE(got.password);
    CHECK(roles::apply(*r.ctx, r.instance, got).result == Result::unchanged);
    CHECK(r.catalog_state() == before);

    SECTION("another password is a change, and only the password changes") {
        Role changed = alice;
        changed.password = kOtherPassword;
        auto out = roles::apply(*r.ctx, r.instance, changed);
        CHECK(out.result == Result::changed);
        CHECK(out.statements ==
              std::vector<std::string>{"ALTER ROLE \"alice\" WITH PASSWORD '***'"});
        CHECK(roles::detail::scram_matches(
            r.one("SELECT rolpassword FROM pg_authid WHERE rolname = 'alice'"), kOtherPassword));
        CHECK(roles::apply(*r.ctx, r.instance, changed).result == Result::unchanged);
    }
    SECTION("attributes are changed one ALTER ROLE at a time, and undone") {
        Role changed;
        changed.name = "alice";
        changed.login = false;
        changed.createrole = true;
        changed.connection_limit = -1;
        changed.valid_until = "infinity";
        auto out = roles::apply(*r.ctx, r.instance, changed);
        CHECK(out.result == Result::changed);
        CHECK(out.statements ==
              std::vector<std::string>{"ALTER ROLE \"alice\" WITH NOLOGIN CREATEROLE CONNECTION "
                                       "LIMIT -1 VALID UNTIL 'infinity'"});
        Role now = roles::get(*r.ctx, r.instance, "alice");
        CHECK(now.login == false);
        CHECK(now.createrole == true);
        CHECK(now.createdb == true);  // not given: left as it was
        CHECK(now.valid_until == "infinity");
        CHECK(roles::apply(*r.ctx, r.instance, changed).result == Result::unchanged);
    }
    SECTION("state absent drops it, then there is nothing to do") {
        Role gone;
        gone.name = "alice";
        gone.state = roles::State::absent;
        auto out = roles::apply(*r.ctx, r.instance, gone);
        CHECK(out.result == Result::dropped);
        CHECK(out.statements == std::vector<std::string>{"DROP ROLE \"alice\""});
        CHECK_FALSE(roles::exists(*r.ctx, r.instance, "alice"));
        CHECK(roles::apply(*r.ctx, r.instance, gone).result == Result::unchanged);
    }
    SECTION("a bad valid_until is a usage error and changes nothing") {
        Role bad = alice;
        bad.valid_until = "next tuesday";
        try {
            roles::apply(*r.ctx, r.instance, bad);
            FAIL("no error");
        } catch (const Error& e) {
            CHECK(e.code() == Exit::usage);
            CHECK(contains(e.what(), "valid_until 'next tuesday'"));
        }
        CHECK(r.catalog_state() == before);
    }
    // The clear text never reached the server, not even its log of DDL statements.
    CHECK_FALSE(contains(r.server_log(), kPassword));
    CHECK_FALSE(contains(r.server_log(), kOtherPassword));
}

TEST_CASE("in_roles grants and revokes so that the role is a member of exactly those",
          "[integration][role]") {
    Running r;
    for (const char* g : {"g1", "g2", "g3"}) {
        Role group;
        group.name = g;
        REQUIRE(roles::apply(*r.ctx, r.instance, group).result == Result::created);
    }
    Role u;
    u.name = "u";
    u.in_roles = std::vector<std::string>{"g2", "g1"};
    auto created = roles::apply(*r.ctx, r.instance, u);
    CHECK(created.statements ==
          std::vector<std::string>{"CREATE ROLE \"u\" IN ROLE \"g1\", \"g2\""});
    CHECK(r.member_of("u") == std::vector<std::string>{"g1", "g2"});

    u.in_roles = std::vector<std::string>{"g2", "g3"};
    auto changed = roles::apply(*r.ctx, r.instance, u);
    CHECK(changed.result == Result::changed);
    CHECK(changed.statements ==
          std::vector<std::string>{"GRANT \"g3\" TO \"u\"", "REVOKE \"g1\" FROM \"u\""});
    CHECK(r.member_of("u") == std::vector<std::string>{"g2", "g3"});

    std::string before = r.catalog_state();
    CHECK(roles::apply(*r.ctx, r.instance, u).result == Result::unchanged);
    Role not_given;
    not_given.name = "u";  // in_roles not given: memberships left alone
    CHECK(roles::apply(*r.ctx, r.instance, not_given).result == Result::unchanged);
    CHECK(r.catalog_state() == before);

    SECTION("a role that does not exist is not found, and nothing changes") {
        u.in_roles = std::vector<std::string>{"g1", "nobody"};
        try {
            roles::apply(*r.ctx, r.instance, u);
            FAIL("no error");
        } catch (const Error& e) {
            CHECK(e.code() == Exit::not_found);
            CHECK(std::string(e.what()) == "role nobody does not exist in instance 15/roles");
        }
        CHECK(r.member_of("u") == std::vector<std::string>{"g2", "g3"});
    }
    SECTION("an empty list revokes every membership") {
        u.in_roles = std::vector<std::string>{};
        auto out = roles::apply(*r.ctx, r.instance, u);
        CHECK(out.statements == std::vector<std::string>{"REVOKE \"g2\", \"g3\" FROM \"u\""});
        CHECK(r.member_of("u").empty());
    }
    SECTION("ls lists them, without the pg_ roles") {
        auto all = roles::ls(*r.ctx, r.instance);
        std::vector<std::string> names;
        for (const auto& x : all) names.push_back(x.name);
        CHECK(names == std::vector<std::string>{"g1", "g2", "g3", "postgres", "u"});
        CHECK(all.back().in_roles == std::vector<std::string>{"g2", "g3"});
    }
}

TEST_CASE("role names shaped like SQL injection are names", "[integration][role]") {
    Running r;
    Role victim;
    victim.name = "x";
    REQUIRE(roles::apply(*r.ctx, r.instance, victim).result == Result::created);

    const std::string evil = "a\"; DROP ROLE x; --";
    const std::string quote = "o'brien\\";
    Role group;
    group.name = quote;
    REQUIRE(roles::apply(*r.ctx, r.instance, group).result == Result::created);
    Role e;
    e.name = evil;
    e.login = true;
    e.password = "pw'); DROP ROLE x; --";
    e.valid_until = "2031-01-01'; DROP ROLE x; --";
    e.in_roles = std::vector<std::string>{quote};
    // The valid_until is refused as a timestamp; nothing is run.
    CHECK_THROWS_AS(roles::apply(*r.ctx, r.instance, e), Error);
    e.valid_until.reset();
    auto out = roles::apply(*r.ctx, r.instance, e);
    CHECK(out.result == Result::created);
    CHECK(out.statements ==
          std::vector<std::string>{
              "CREATE ROLE \"a\"\"; DROP ROLE x; --\" WITH LOGIN PASSWORD '***' IN ROLE "
              "\"o'brien\\\""});
    CHECK(roles::exists(*r.ctx, r.instance, evil));
    CHECK(roles::exists(*r.ctx, r.instance, "x"));
    CHECK(r.member_of(evil) == std::vector<std::string>{quote});
    CHECK(roles::apply(*r.ctx, r.instance, e).result == Result::unchanged);
    CHECK(tcp_login(r.instance, evil, "pw'); DROP ROLE x; --"));
    Role got = roles::get(*r.ctx, r.instance, evil);
    CHECK(got.name == evil);

    auto dropped = roles::drop(*r.ctx, r.instance, evil, {quote, false});
    CHECK(dropped.result == Result::dropped);
    CHECK_FALSE(roles::exists(*r.ctx, r.instance, evil));
    CHECK(roles::exists(*r.ctx, r.instance, "x"));
    CHECK(roles::exists(*r.ctx, r.instance, quote));
}

TEST_CASE("a role applied with a password logs in over TCP with it", "[integration][role]") {
    Running r;
    Role app;
    app.name = "app";
    app.login = true;
    app.password = kPassword;
    REQUIRE(roles::apply(*r.ctx, r.instance, app).result == Result::created);
    std::string error;
    CHECK(tcp_login(r.instance, "app", kPassword, &error));
    INFO(error);
    CHECK_FALSE(tcp_login(r.instance, "app", kOtherPassword));

    app.password = kOtherPassword;
    REQUIRE(roles::apply(*r.ctx, r.instance, app).result == Result::changed);
    CHECK(tcp_login(r.instance, "app", kOtherPassword));
    CHECK_FALSE(tcp_login(r.instance, "app", kPassword));

    // A verifier stored as md5 is replaced by a SCRAM one.
    r.exec({"SET password_encryption = 'md5'", "ALTER ROLE app PASSWORD '" + kOtherPassword + "'"});
    CHECK(r.one("SELECT left(rolpassword, 3) FROM pg_authid WHERE rolname = 'app'") == "md5");
    CHECK(roles::apply(*r.ctx, r.instance, app).result == Result::changed);
    CHECK(tcp_login(r.instance, "app", kOtherPassword));
}

TEST_CASE("drop reassigns or drops what the role owns, in every database", "[integration][role]") {
    Running r;
    for (const char* name : {"heir", "bob", "carol"}) {
        Role x;
        x.name = name;
        REQUIRE(roles::apply(*r.ctx, r.instance, x).result == Result::created);
    }
    r.exec({"CREATE DATABASE app"});
    for (const char* db : {"postgres", "app"}) {
        r.exec({"CREATE TABLE t_bob (id int)", "ALTER TABLE t_bob OWNER TO bob",
                "CREATE TABLE t_carol (id int)", "ALTER TABLE t_carol OWNER TO carol"},
               db);
    }

    // Owning something, bob cannot simply go.
    try {
        roles::drop(*r.ctx, r.instance, "bob");
        FAIL("no error");
    } catch (const Error& e) {
        CHECK(e.code() == Exit::conflict);
        CHECK(contains(e.hint(), "--reassign-owned"));
    }
    CHECK(roles::exists(*r.ctx, r.instance, "bob"));

    auto out = roles::drop(*r.ctx, r.instance, "bob", {std::string("heir"), false});
    CHECK(out.result == Result::dropped);
    CHECK(contains(joined(out.statements),
                   "/* database \"app\" */ REASSIGN OWNED BY \"bob\" TO \"heir\"\n"));
    CHECK(out.statements.back() == "DROP ROLE \"bob\"");
    CHECK_FALSE(roles::exists(*r.ctx, r.instance, "bob"));
    for (const char* db : {"postgres", "app"})
        CHECK(r.one("SELECT tableowner FROM pg_tables WHERE tablename = 't_bob'", {}, db) ==
              "heir");

    // drop_owned: carol's tables go with her.
    auto carol = roles::drop(*r.ctx, r.instance, "carol", {std::nullopt, true});
    CHECK(carol.result == Result::dropped);
    for (const char* db : {"postgres", "app"})
        CHECK(r.one("SELECT count(*)::text FROM pg_tables WHERE tablename = 't_carol'", {}, db) ==
              "0");

    try {
        roles::drop(*r.ctx, r.instance, "carol");
        FAIL("no error");
    } catch (const Error& e) {
        CHECK(e.code() == Exit::not_found);
        CHECK(std::string(e.what()) == "role carol does not exist in instance 15/roles");
    }
    try {
        roles::drop(*r.ctx, r.instance, "heir", {std::string("nobody"), false});
        FAIL("no error");
    } catch (const Error& e) {
        CHECK(e.code() == Exit::not_found);
        CHECK(std::string(e.what()) == "role nobody does not exist in instance 15/roles");
    }
}

TEST_CASE(".pgpass: written 0600, kept in step, removed on drop", "[integration][role]") {
    Running r;
    ScopedHome home(r.site.root() / "home");
    fs::path pgpass = r.site.root() / "home" / ".pgpass";
    REQUIRE(roles::pgpass_file() == pgpass);

    Role app;
    app.name = "app:1";
    app.login = true;
    app.password = kPassword;
    app.pgpass = true;
    auto out = roles::apply(*r.ctx, r.instance, app);
    CHECK(out.result == Result::created);
    REQUIRE(fs::exists(pgpass));
    struct stat st {};
    REQUIRE(stat(pgpass.c_str(), &st) == 0);
    CHECK((st.st_mode & 0777) == 0600);
    std::string line = roles::detail::pgpass_line(
        {r.instance.socket_dir.string(), std::to_string(r.instance.port), "*", "app:1", kPassword});
    CHECK(read_text_file(pgpass) == line + "\n");
    CHECK(contains(line, "app\\:1:s3cret\\:pa\\\\ss'word"));
    CHECK(roles::get(*r.ctx, r.instance, "app:1").pgpass == true);

    // Unchanged with the same password, or with no password once the entry is there.
    CHECK(roles::apply(*r.ctx, r.instance, app).result == Result::unchanged);
    Role no_password = app;
    no_password.password.reset();
    CHECK(roles::apply(*r.ctx, r.instance, no_password).result == Result::unchanged);
    // Another password: the role and the entry change.
    app.password = kOtherPassword;
    auto changed = roles::apply(*r.ctx, r.instance, app);
    CHECK(changed.result == Result::changed);
    CHECK(contains(read_text_file(pgpass), kOtherPassword));
    CHECK_FALSE(contains(read_text_file(pgpass), roles::detail::pgpass_escape(kPassword)));

    // A port change moves the entry; other lines stay.
    { std::ofstream(pgpass, std::ios::app) << "otherhost:5432:*:someone:x\n"; }
    CHECK(roles::update_pgpass_port(r.instance.port, r.instance.port + 1, r.instance.socket_dir));
    CHECK(contains(read_text_file(pgpass),
                   ":" + std::to_string(r.instance.port + 1) + ":*:app\\:1:"));
    CHECK(roles::update_pgpass_port(r.instance.port + 1, r.instance.port));

    // Without a password and without an entry, pgpass cannot be honoured: nothing changes.
    Role other;
    other.name = "other";
    other.pgpass = true;
    try {
        roles::apply(*r.ctx, r.instance, other);
        FAIL("no error");
    } catch (const Error& e) {
        CHECK(e.code() == Exit::usage);
    }
    CHECK_FALSE(roles::exists(*r.ctx, r.instance, "other"));

    roles::drop(*r.ctx, r.instance, "app:1");
    CHECK(read_text_file(pgpass) == "otherhost:5432:*:someone:x\n");
    fs::remove(pgpass);

    // Through the CLI: create --pgpass, drop removes the file it was alone in.
    fs::path pwfile = write_file(r.site.root() / "pw", kPassword + "\n");
    auto created = r.site.cli({"role", "create", "-i", "roles", "web", "--login", "--password-file",
                               pwfile.string(), "--pgpass"});
    REQUIRE(created.status == 0);
    REQUIRE(stat(pgpass.c_str(), &st) == 0);
    CHECK((st.st_mode & 0777) == 0600);
    CHECK(contains(read_text_file(pgpass), ":*:web:"));
    REQUIRE(r.site.cli({"role", "drop", "-i", "roles", "web"}).status == 0);
    CHECK_FALSE(fs::exists(pgpass));
}

TEST_CASE("role commands: every verb, outcomes and exit statuses", "[integration][role]") {
    Running r;
    fs::path pwfile = write_file(r.site.root() / "pw", kPassword + "\n");
    fs::path pwfile2 = write_file(r.site.root() / "pw2", kOtherPassword + "\n");
    fs::path logfile = r.site.root() / "pgforge.log";
    std::string all_output;
    auto cli = [&](std::vector<std::string> args) {
        auto out = r.site.cli(args);
        all_output += out.out + out.err;
        return out;
    };

    auto created = cli({"role", "create", "-i", "roles", "alice", "--login", "--createdb",
                        "--password-file", pwfile.string()});
    REQUIRE(created.status == 0);
    CHECK(created.out == "role alice: created\n");
    CHECK(tcp_login(r.instance, "alice", kPassword));

    auto exists = cli({"role", "create", "-i", "roles", "alice"});
    CHECK(exists.status == static_cast<int>(Exit::conflict));
    CHECK(contains(exists.err, "role alice already exists in instance 15/roles"));

    cli({"role", "create", "-i", "roles", "readers"});
    auto altered = cli({"role", "alter", "-i", "roles", "alice", "--no-createdb", "--in-role",
                        "readers", "--password-file", pwfile2.string(), "--json"});
    REQUIRE(altered.status == 0);
    json a = json::parse(altered.out);
    CHECK(a["name"] == "alice");
    CHECK(a["result"] == "changed");
    CHECK(a["statements"] == json::array({"ALTER ROLE \"alice\" WITH NOCREATEDB PASSWORD '***'",
                                          "GRANT \"readers\" TO \"alice\""}));
    CHECK(tcp_login(r.instance, "alice", kOtherPassword));
    auto same = cli({"role", "alter", "-i", "roles", "alice", "--no-createdb", "--password-file",
                     pwfile2.string()});
    CHECK(same.out == "role alice: unchanged\n");

    auto missing = cli({"role", "alter", "-i", "roles", "nobody", "--login"});
    CHECK(missing.status == static_cast<int>(Exit::not_found));
    auto get_missing = cli({"role", "get", "-i", "roles", "nobody"});
    CHECK(get_missing.status == static_cast<int>(Exit::not_found));
    CHECK(contains(get_missing.err, "role nobody does not exist in instance 15/roles"));
    auto get_missing_json = cli({"role", "get", "-i", "roles", "nobody", "--json"});
    CHECK(json::parse(get_missing_json.out)["error"]["exit"] == 4);

    // get: YAML by default, JSON with --json; each is what apply reads.
    auto yaml = cli({"role", "get", "-i", "roles", "alice"});
    REQUIRE(yaml.status == 0);
    CHECK(contains(yaml.out, "name: \"alice\"\nlogin: true\n"));
    CHECK(contains(yaml.out, "in_roles: [\"readers\"]"));
    auto got = cli({"role", "get", "-i", "roles", "alice", "--json"});
    REQUIRE(got.status == 0);
    json g = json::parse(got.out);
    CHECK(g["login"] == true);
    CHECK(g["createdb"] == false);
    CHECK(g["connection_limit"] == -1);
    CHECK(g["valid_until"].is_null());
    CHECK(g["in_roles"] == json::array({"readers"}));
    CHECK(g["state"] == "present");
    CHECK_FALSE(g.contains("password"));

    for (const auto& [name, text] : std::vector<std::pair<std::string, std::string>>{
             {"alice.json", got.out}, {"alice.yaml", yaml.out}}) {
        fs::path f = write_file(r.site.root() / name, text);
        auto applied = cli({"role", "apply", "-i", "roles", "-f", f.string()});
        CHECK(applied.status == 0);
        CHECK(applied.out == "role alice: unchanged\n");
    }

    // get --json | apply -f - through the program itself.
    Command pipe;
    pipe.argv = {PGFORGE_CLI_PATH, "--settings", r.site.settings_file().string(),
                 "role",           "apply",      "-i",
                 "roles",          "-f",         "-",
                 "--json"};
    pipe.input = got.out;
    auto piped = run_process(pipe);
    CHECK(piped.status == 0);
    INFO(piped.err);
    json p = json::parse(piped.out);
    CHECK(p == json{{"name", "alice"}, {"result", "unchanged"}, {"statements", json::array()}});

    // apply: a new role described in YAML, with its password in the file, then changed.
    fs::path desc = write_file(r.site.root() / "bob.yaml",
                               "name: bob\nlogin: yes\nconnection_limit: 3\n"
                               "valid_until: 2031-06-01\nin_roles: [readers]\n"
                               "password: 's3cret:pa\\ss''word'\n");  // kPassword
    auto bob = cli({"role", "apply", "-i", "roles", "-f", desc.string(), "--json"});
    REQUIRE(bob.status == 0);
    json b = json::parse(bob.out);
    CHECK(b["result"] == "created");
    CHECK(b["statements"].size() == 1);
    CHECK(cli({"role", "apply", "-i", "roles", "-f", desc.string()}).out ==
          "role bob: unchanged\n");
    auto bob2 = cli(
        {"role", "apply", "-i", "roles", "-f", desc.string(), "--password-file", pwfile2.string()});
    CHECK(bob2.out == "role bob: changed\n");
    // Several roles in one file: a list, answered with a list.
    fs::path many = write_file(r.site.root() / "many.json",
                               "[{\"name\": \"r1\"}, {\"name\": \"bob\", \"state\": \"absent\"}]");
    auto m = cli({"role", "apply", "-i", "roles", "-f", many.string(), "--json"});
    REQUIRE(m.status == 0);
    json mj = json::parse(m.out);
    CHECK(mj[0]["result"] == "created");
    CHECK(mj[1]["result"] == "dropped");

    auto bad_key = cli({"role", "apply", "-i", "roles", "-f",
                        write_file(r.site.root() / "bad.yaml", "name: z\nlogn: true\n").string()});
    CHECK(bad_key.status == static_cast<int>(Exit::usage));
    CHECK(contains(bad_key.err, "did you mean 'login'?"));

    auto list = cli({"role", "list", "-i", "roles"});
    REQUIRE(list.status == 0);
    CHECK(contains(list.out, "NAME"));
    CHECK(contains(list.out, "alice"));
    CHECK(contains(list.out, "readers"));
    auto list_json = cli({"role", "list", "-i", "roles", "--json"});
    std::vector<std::string> names;
    for (const auto& x : json::parse(list_json.out)) names.push_back(x["name"]);
    CHECK(names == std::vector<std::string>{"alice", "postgres", "r1", "readers"});

    // A prompt needs a terminal; the tests' stdin is not one.
    if (!isatty(STDIN_FILENO)) {
        auto prompt = cli({"role", "alter", "-i", "roles", "alice", "--password-prompt"});
        CHECK(prompt.status == static_cast<int>(Exit::usage));
        CHECK(contains(prompt.err, "not a terminal"));
    }

    auto dropped = cli({"role", "drop", "-i", "roles", "alice", "--json"});
    REQUIRE(dropped.status == 0);
    CHECK(json::parse(dropped.out) == json{{"name", "alice"},
                                           {"result", "dropped"},
                                           {"statements", json::array({"DROP ROLE \"alice\""})}});
    auto again = cli({"role", "drop", "-i", "roles", "alice"});
    CHECK(again.status == static_cast<int>(Exit::not_found));
    CHECK(cli({"role", "drop", "-i", "roles", "r1", "--drop-owned", "--reassign-owned", "x"})
              .status == static_cast<int>(Exit::usage));

    // The program itself, logging everything it does to a file.
    auto program = [&](std::vector<std::string> args) {
        Command c;
        c.argv = {PGFORGE_CLI_PATH, "--settings", r.site.settings_file().string(),
                  "--log-level",    "debug",      "--log-file",
                  logfile.string()};
        c.argv.insert(c.argv.end(), args.begin(), args.end());
        auto out = run_process(c);
        all_output += out.out + out.err;
        return out;
    };
    CHECK(program({"role", "create", "-i", "roles", "carol", "--login", "--password-file",
                   pwfile.string()})
              .out == "role carol: created\n");
    CHECK(program({"role", "alter", "-i", "roles", "carol", "--password-file", pwfile2.string(),
                   "--json"})
              .status == 0);
    CHECK(program({"role", "get", "-i", "roles", "carol", "--json"}).status == 0);
    CHECK(tcp_login(r.instance, "carol", kOtherPassword));

    // Not once did a password, or a verifier, show in output or logs.
    std::string log = read_text_file(logfile);
    CHECK(contains(log, "CREATE ROLE \"carol\" WITH LOGIN PASSWORD '***'"));
    CHECK(contains(log, "PASSWORD '***'"));
    for (const std::string& secret : {kPassword, kOtherPassword, std::string("SCRAM-SHA-256$")}) {
        CHECK_FALSE(contains(all_output, secret));
        CHECK_FALSE(contains(piped.out + piped.err, secret));
        CHECK_FALSE(contains(log, secret));
    }
    CHECK_FALSE(contains(r.server_log(), kPassword));
    CHECK_FALSE(contains(r.server_log(), kOtherPassword));
}

// Numbers for the report, not a check: `pgforge_integration_tests "[role-bench]"`.
TEST_CASE("no-op apply of 50 roles", "[.][role-bench]") {
    Running r;
    std::vector<Role> all;
    for (int k = 0; k < 50; ++k) {
        Role x;
        x.name = "role_" + std::to_string(k);
        x.login = true;
        x.createdb = k % 2 == 0;
        x.connection_limit = 10;
        x.in_roles = std::vector<std::string>{};
        all.push_back(x);
    }
    for (const auto& o : roles::apply(*r.ctx, r.instance, all))
        REQUIRE(o.result == Result::created);
    auto time = [&](const char* what, auto&& body) {
        double best = 1e9;
        for (int run = 0; run < 10; ++run) {
            auto t0 = std::chrono::steady_clock::now();
            body();
            best = std::min(best, std::chrono::duration<double, std::milli>(
                                      std::chrono::steady_clock::now() - t0)
                                      .count());
        }
        std::cout << what << ": best of 10 = " << best << " ms\n";
    };
    time("50 roles, one apply(vector)", [&] {
        for (const auto& o : roles::apply(*r.ctx, r.instance, all))
            REQUIRE(o.result == Result::unchanged);
    });
    time("50 roles, 50 apply(role)", [&] {
        for (const auto& x : all)
            REQUIRE(roles::apply(*r.ctx, r.instance, x).result == Result::unchanged);
    });
    time("reference: 50 connections opened and closed", [&] {
        for (int k = 0; k < 50; ++k) pg::Connection c(r.instance);
    });
    std::string yaml;
    for (const auto& x : all)
        yaml += "- {name: " + x.name +
                ", login: true, createdb: " + (*x.createdb ? "true" : "false") +
                ", connection_limit: 10, in_roles: []}\n";
    fs::path file = write_file(r.site.root() / "roles.yaml", yaml);
    time("pgforge role apply -f FILE (50 roles), the whole program", [&] {
        Command c;
        c.argv = {PGFORGE_CLI_PATH, "--settings", r.site.settings_file().string(),
                  "role",           "apply",      "-i",
                  "roles",          "-f",         file.string()};
        auto out = run_process(c);
        REQUIRE(out.status == 0);
        REQUIRE(out.out.find(": changed") == std::string::npos);
    });
    for (auto& x : all) x.password = kPassword;
    roles::apply(*r.ctx, r.instance, all);
    time("50 roles with passwords, one apply(vector)", [&] {
        for (const auto& o : roles::apply(*r.ctx, r.instance, all))
            REQUIRE(o.result == Result::unchanged);
    });
}
