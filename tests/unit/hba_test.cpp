// pg_hba.conf / pg_ident.conf: byte-exact round trips, PostgreSQL 15's parsing rules, edits
// checked against golden files in tests/data/hba (NAME.in edited must give NAME.out exactly).
#include "engine/conf/hba.hpp"

#include <catch2/catch.hpp>
#include <fstream>
#include <sstream>

#include "engine/core/error.hpp"
#include "temp_dir.hpp"

using pgforge::Error;
using pgforge::Exit;
using pgforge::conf::HbaFile;
using pgforge::conf::HbaRecord;
using pgforge::conf::IdentEntry;
using pgforge::conf::IdentFile;

namespace {

const std::filesystem::path kData = std::filesystem::path(PGFORGE_TEST_DATA_DIR) / "hba";

std::string slurp(const std::string& name) {
    std::ifstream in(kData / name, std::ios::binary);
    REQUIRE(in);
    std::stringstream buf;
    buf << in.rdbuf();
    return buf.str();
}

// The message of the pgforge::Error `f` throws, checking its exit code.
template <typename F>
std::string error_of(F&& f, Exit code = Exit::usage) {
    try {
        f();
    } catch (const Error& e) {
        CHECK(e.code() == code);
        return e.what();
    }
    FAIL("no pgforge::Error thrown");
    return {};
}

HbaRecord record(const std::vector<std::string>& words) {
    return HbaRecord::parse_fields(words);
}

const HbaRecord kTenEight = record({"host", "all", "all", "10.0.0.0/8", "scram-sha-256"});

template <typename Edit>
void check_golden(const std::string& name, Edit edit) {
    INFO("golden " << name);
    std::string in = slurp(name + ".in");
    HbaFile f = HbaFile::parse(in, kData / (name + ".in"));
    REQUIRE(f.print() == in);
    edit(f);
    CHECK(f.print() == slurp(name + ".out"));
    CHECK(HbaFile::parse(f.print()).print() == f.print());
}

}  // namespace

// --- round trips ---------------------------------------------------------------------------

TEST_CASE("print returns byte for byte every test file it parsed", "[unit][hba]") {
    for (const char* name :
         {"pg_hba.conf.initdb", "nasty.conf", "crlf.conf", "no_final_newline.conf",
          "continuation_at_eof.conf", "insert_before.in", "remove.in"}) {
        INFO(name);
        std::string text = slurp(name);
        CHECK(HbaFile::parse(text).print() == text);
        CHECK(HbaFile::read(kData / name).print() == text);
    }
    for (const char* name : {"pg_ident.conf.sample", "nasty_ident.conf", "ident_add.in"}) {
        INFO(name);
        std::string text = slurp(name);
        CHECK(IdentFile::parse(text).print() == text);
        CHECK(IdentFile::read(kData / name).print() == text);
    }
}

TEST_CASE("PostgreSQL's sample round trips once initdb filled its placeholders", "[unit][hba]") {
    std::string sample = slurp("pg_hba.conf.sample");
    // As shipped, the sample has initdb's @placeholders@, which read as @file inclusions.
    CHECK_THAT(error_of([&] { HbaFile::parse(sample, "pg_hba.conf.sample"); }),
               Catch::Contains("pg_hba.conf.sample:") && Catch::Contains("@authcomment@"));
    auto replace_all = [](std::string s, const std::string& from, const std::string& to) {
        for (size_t p = s.find(from); p != std::string::npos; p = s.find(from, p + to.size()))
            s.replace(p, from.size(), to);
        return s;
    };
    std::string filled = replace_all(sample, "@authcomment@", "");
    filled = replace_all(filled, "@remove-line-for-nolocal@", "");
    filled = replace_all(filled, "@authmethodlocal@", "peer");
    filled = replace_all(filled, "@authmethodhost@", "scram-sha-256");
    CHECK(filled == slurp("pg_hba.conf.initdb"));
    HbaFile f = HbaFile::parse(filled);
    CHECK(f.print() == filled);
    REQUIRE(f.records().size() == 6);
    CHECK(f.records()[0].to_line() ==
          "local   all             all                                     peer");
    CHECK(f.records()[1].to_line() ==
          "host    all             all             127.0.0.1/32            scram-sha-256");
}

TEST_CASE("the pg_ident sample has no entries and round trips", "[unit][hba]") {
    std::string sample = slurp("pg_ident.conf.sample");
    IdentFile f = IdentFile::parse(sample);
    CHECK(f.entries().empty());
    CHECK(f.print() == sample);
}

// --- parsing as PostgreSQL 15 ----------------------------------------------------------------

TEST_CASE("the nasty file reads as PostgreSQL 15 reads it", "[unit][hba]") {
    std::vector<HbaRecord> r = HbaFile::parse(slurp("nasty.conf")).records();
    REQUIRE(r.size() == 24);

    SECTION("tabs separate fields and trailing comments are not options") {
        CHECK(r[0].line == 4);
        CHECK(r[0].type == "local");
        CHECK(r[0].users == std::vector<std::string>{"postgres"});
        CHECK(r[0].address.empty());
        CHECK(r[0].method == "peer");
        CHECK(r[0].options == std::vector<std::pair<std::string, std::string>>{{"map", "pgforge"}});
    }
    SECTION("a quoted keyword is a name and keeps its quotes on to_line") {
        CHECK(r[1].databases == std::vector<std::string>{"all"});
        CHECK(r[1].database_quoted(0));
        CHECK_FALSE(r[1].user_quoted(0));
        CHECK(r[1].to_line().rfind("local   \"all\"           all ", 0) == 0);
    }
    SECTION("comma lists keep quoted members with commas and spaces") {
        CHECK(r[2].databases == std::vector<std::string>{"db1", "db 2", "x,y"});
        CHECK(r[2].databases_quoted == std::vector<bool>{false, true, true});
        CHECK(r[2].users == std::vector<std::string>{"all", "+admins", "/^app_.*$"});
        CHECK(r[2].users_quoted == std::vector<bool>{true, false, false});
    }
    SECTION("@file inclusions stay tokens") {
        CHECK(r[3].databases == std::vector<std::string>{"@dbs.list"});
        CHECK_FALSE(r[3].database_quoted(0));
        CHECK(r[3].users == std::vector<std::string>{"@users.list"});
    }
    SECTION("samehost, samenet, CIDR, separate masks and host names") {
        CHECK(r[4].databases == std::vector<std::string>{"sameuser", "samerole", "samegroup"});
        CHECK(r[4].address == "samehost");
        CHECK(r[5].address == "samenet");
        CHECK(r[6].address == "fd00:1234::/48");
        CHECK(r[6].mask.empty());
        CHECK(r[8].address == "192.168.12.0");
        CHECK(r[8].mask == "255.255.255.0");
        CHECK(r[9].address == "2001:db8::");
        CHECK(r[9].mask == "ffff:ffff::");
        CHECK(r[10].address == ".example.com");
        CHECK(r[11].address == "db.example.com");
    }
    SECTION("hostssl with clientcert and cert with map and clientname") {
        CHECK(r[12].type == "hostssl");
        CHECK(r[12].options ==
              std::vector<std::pair<std::string, std::string>>{{"clientcert", "verify-full"}});
        CHECK(r[13].method == "cert");
        CHECK(r[13].options.size() == 2);
    }
    SECTION("quoted option values keep their spaces, commas and parentheses") {
        CHECK(r[17].method == "ldap");
        CHECK(r[17].options[1] ==
              std::pair<std::string, std::string>{"ldapbasedn", "dc=example, dc=com"});
        CHECK(r[17].options[2].second == "(|(uid=$username)(mail=$username))");
        CHECK(r[18].options[2] ==
              std::pair<std::string, std::string>{"ldapsuffix", ", dc=example, dc=com"});
        CHECK(r[19].options.size() == 3);
        CHECK(r[19].options[0].second == "10.1.0.1,10.1.0.2");
    }
    SECTION("a record continued over four lines counts from its first line") {
        CHECK(r[22].line == 26);
        CHECK(r[22].address == "10.4.0.0/16");
        CHECK(r[22].method == "scram-sha-256");
        CHECK(r[23].line == 30);
        CHECK(r[23].databases == std::vector<std::string>{"quoted \"name\""});
    }
}

TEST_CASE("CRLF files keep their line ends and read like LF files", "[unit][hba]") {
    std::string text = slurp("crlf.conf");
    HbaFile f = HbaFile::parse(text);
    CHECK(f.print() == text);
    REQUIRE(f.records().size() == 3);
    CHECK(f.records()[1].method == "scram-sha-256");
    CHECK(f.records()[1].options.empty());
    CHECK(f.records()[2].address == "::1/128");
    CHECK(f.records()[2].line == 5);
}

TEST_CASE("a backslash only continues a line when it is the last character", "[unit][hba]") {
    // Two backslashes: one continues, the other stays in the token (PostgreSQL does the same).
    CHECK_THAT(error_of([] { HbaFile::parse("local all all trust\\\\\nlocal all all trust\n"); }),
               Catch::Contains("unknown authentication method \"trust\\local\""));
    // A continuation followed by an empty line ends there.
    CHECK_THAT(error_of([] { HbaFile::parse("local all all \\\n\n"); }),
               Catch::Contains("line 1: missing the authentication method"));
    CHECK(HbaFile::parse("local all all \\\n trust\n").records()[0].method == "trust");
}

TEST_CASE("quotes inside a token follow PostgreSQL: only a leading quote makes a name",
          "[unit][hba]") {
    auto dbs = [](const std::string& field) {
        return HbaFile::parse("local " + field + " all trust\n").records()[0];
    };
    CHECK_FALSE(dbs("a\"ll\"").database_quoted(0));  // reads as the keyword all
    CHECK(dbs("a\"ll\"").databases[0] == "all");
    CHECK(dbs("\"\"@x").database_quoted(0));  // a name, not an inclusion
    CHECK(dbs("\"a\"\"b\"").databases[0] == "a\"b");
    CHECK(dbs(",a,,b").databases == std::vector<std::string>{"a", "b"});
    CHECK(dbs("a, b").databases == std::vector<std::string>{"a", "b"});  // a comma joins fields
    CHECK(dbs("\"\"").databases == std::vector<std::string>{""});
}

TEST_CASE("errors name the file and line and say what is wrong", "[unit][hba]") {
    auto err = [](const std::string& text) {
        return error_of([&] { HbaFile::parse(text, "/etc/pg_hba.conf"); });
    };
    const std::string ok = "# comment\nlocal all all peer\n";
    CHECK_THAT(err(ok + "hots all all 127.0.0.1/32 md5\n"),
               Catch::StartsWith("/etc/pg_hba.conf:3: unknown connection type \"hots\""));
    CHECK_THAT(err(ok + "local all\n"), Catch::StartsWith("/etc/pg_hba.conf:3: missing the user"));
    CHECK_THAT(err(ok + "local\n"), Catch::Contains(":3: missing the database"));
    CHECK_THAT(err(ok + "host all all\n"), Catch::Contains(":3: missing the address"));
    CHECK_THAT(err(ok + "host all all 10.0.0.0/8\n"),
               Catch::Contains(":3: missing the authentication method"));
    CHECK_THAT(err(ok + "\nhost all all 10.0.0.0/33 md5\n"),
               Catch::Contains(":4: bad address \"10.0.0.0/33\": invalid CIDR mask"));
    CHECK_THAT(err(ok + "host all all example.com/8 md5\n"),
               Catch::Contains("host name and CIDR mask"));
    CHECK_THAT(err(ok + "host all all 10.0.0.0 md5\n"), Catch::Contains("invalid IP mask \"md5\""));
    CHECK_THAT(err(ok + "host all all 10.0.0.0\n"), Catch::Contains("missing the netmask"));
    CHECK_THAT(err(ok + "host all all ::1 255.0.0.0 md5\n"), Catch::Contains("do not match"));
    CHECK_THAT(err(ok + "host all all all md5x\n"),
               Catch::Contains(":3: unknown authentication method \"md5x\""));
    CHECK_THAT(err(ok + "host all all all md5 clientcert\n"),
               Catch::Contains(":3: option without =: \"clientcert\""));
    CHECK_THAT(err(ok + "host all all all md5 foo=bar\n"),
               Catch::Contains("unrecognized authentication option name: \"foo\""));
    CHECK_THAT(err(ok + "host all all all md5 clientcert=verify-full\n"),
               Catch::Contains("clientcert can only be configured for \"hostssl\" rows"));
    CHECK_THAT(err(ok + "host all all all peer\n"),
               Catch::Contains("peer authentication is only supported on local sockets"));
    CHECK_THAT(err(ok + "host all all all cert\n"), Catch::Contains("only supported on hostssl"));
    CHECK_THAT(err(ok + "local all all md5 map=x\n"),
               Catch::Contains("\"map\" is only valid for authentication methods"));
    CHECK_THAT(err(ok + "host all all all ldap ldapserver=x\n"),
               Catch::Contains("requires argument \"ldapbasedn\""));
    CHECK_THAT(err(ok + "local,host all all trust\n"),
               Catch::Contains("multiple values specified for connection type"));
    CHECK_THAT(err(ok + "local all all \\\n"),  // continued into nothing: still line 3
               Catch::Contains(":3:"));
    CHECK_THAT(err(ok + "local all all peer\n" + std::string("local all all trust\0\n", 21)),
               Catch::Contains(":4: NUL byte"));
    // Without an origin, the line alone.
    CHECK_THAT(error_of([] { HbaFile::parse("local all all nope\n"); }),
               Catch::StartsWith("line 1: unknown authentication method"));
}

TEST_CASE("what PostgreSQL accepts is accepted", "[unit][hba]") {
    // Forms PostgreSQL 15 takes that look wrong: getaddrinfo's numeric forms, strtol's CIDR
    // lengths, a quoted all as a host name, local ident as peer, extra ident fields.
    for (const char* line : {
             "host all all 127.1 255.0.0.0 trust",
             "host all all 10.0.0.0/+8 trust",
             "host all all \"all\" trust",
             "local all all ident map=x",
             "hostssl all all all cert clientcert=verify-full",
             "host all all all ldap \"ldapurl=ldap://ldap.example.com/dc=example,dc=com\"",
             "local @ all trust",
             "local all all peer map=a,map=b",
         }) {
        INFO(line);
        CHECK_NOTHROW(HbaFile::parse(line));
    }
    CHECK(IdentFile::parse("m a b extra\n").entries().size() == 1);
}

// --- records ------------------------------------------------------------------------------

TEST_CASE("parse_fields validates CLI words and reads pg_hba.conf quoting in each", "[unit][hba]") {
    HbaRecord r = record({"hostssl", "db1,\"db 2\"", "\"all\"", "10.0.0.0/8", "scram-sha-256",
                          "clientcert=verify-full"});
    CHECK(r.databases == std::vector<std::string>{"db1", "db 2"});
    CHECK(r.user_quoted(0));
    CHECK(r.to_line() ==
          "hostssl db1,\"db 2\"      \"all\"           10.0.0.0/8              scram-sha-256 "
          "clientcert=verify-full");
    CHECK(r.line == 0);

    CHECK_THAT(error_of([] {
                   record({"host", "all", "all", "10.0.0.0/8", "nope"});
               }),
               Catch::Contains("unknown authentication method \"nope\""));
    CHECK_THAT(error_of([] {
                   record({"host", "my db", "all", "all", "md5"});
               }),
               Catch::Contains("field 2 (my db) is several fields"));
    CHECK_THAT(error_of([] { record({"local", "all"}); }), Catch::Contains("missing the user"));
    CHECK_THAT(error_of([] { record({}); }), Catch::Contains("no fields"));
    CHECK_THAT(error_of([] {
                   record({"local", "", "all", "peer"});
               }),
               Catch::Contains("field 2 is empty"));
}

TEST_CASE("to_line aligns columns like PostgreSQL's sample and quotes what needs it",
          "[unit][hba]") {
    CHECK(record({"local", "all", "all", "peer"}).to_line() ==
          "local   all             all                                     peer");
    CHECK(record({"host", "all", "all", "192.168.0.0", "255.255.0.0", "md5"}).to_line() ==
          "host    all             all             192.168.0.0 255.255.0.0 md5");
    CHECK(record({"hostnogssenc", "a_very_long_database_name", "u", "all", "trust"}).to_line() ==
          "hostnogssenc a_very_long_database_name u               all                     trust");
    HbaRecord made;  // built by hand: names needing quotes get them
    made.type = "local";
    made.databases = {"my db", "all"};
    made.databases_quoted = {false, true};
    made.users = {"@my list"};
    made.method = "ldap";
    made.options = {{"ldapbasedn", "dc=a b"}, {"ldapserver", "x\\"}};
    std::string line = made.to_line();
    CHECK(line ==
          "local   \"my db\",\"all\"   @\"my list\"                              ldap "
          "ldapbasedn=\"dc=a b\" ldapserver=\"x\\\"");
    HbaRecord back = HbaFile::parse(line).records()[0];
    CHECK(back.same_as(made));
    CHECK_FALSE(back.database_quoted(0) == made.database_quoted(0));  // quoted, same meaning
    CHECK_FALSE(back.user_quoted(0));                                 // still an inclusion
}

TEST_CASE("a # or a comma in a field is written so that the server reads the same name",
          "[unit][hba]") {
    // A word of the command line is one field: a # there is part of the name, not a comment.
    HbaRecord r = record({"host", "all", "postgres#ro", "10.1.0.0/16", "trust"});
    CHECK(r.users == std::vector<std::string>{"postgres#ro"});
    std::string line = r.to_line();
    CHECK(line.find("\"postgres#ro\"") != std::string::npos);
    HbaRecord back = HbaFile::parse(line + "\n").records().at(0);
    CHECK(back.users == std::vector<std::string>{"postgres#ro"});
    CHECK(back.same_as(r));
    // In quotes a comma is part of the name and a keyword is a plain name.
    HbaRecord names = record({"host", "\"a,b\",all", "\"all\"", "all", "trust"});
    CHECK(names.databases == std::vector<std::string>{"a,b", "all"});
    CHECK(names.to_line().rfind("host    \"a,b\",all       \"all\"", 0) == 0);
    back = HbaFile::parse(names.to_line()).records().at(0);
    CHECK(back.databases == names.databases);
    CHECK(back.user_quoted(0));
    CHECK_FALSE(back.database_quoted(1));
    // An option value with a comma or a # is one quoted value.
    HbaRecord ldap =
        record({"host", "all", "all", "10.2.0.0/16", "ldap", "ldapserver=ldap.example.net",
                "ldapbasedn=\"dc=a,dc=b\"", "ldapbindpasswd=se#cret"});
    line = ldap.to_line();
    CHECK(line.find(" ldapbasedn=\"dc=a,dc=b\"") != std::string::npos);
    CHECK(line.find(" ldapbindpasswd=\"se#cret\"") != std::string::npos);
    back = HbaFile::parse(line).records().at(0);
    REQUIRE(back.options.size() == 3);
    CHECK(back.options[1] == std::pair<std::string, std::string>{"ldapbasedn", "dc=a,dc=b"});
    CHECK(back.options[2] == std::pair<std::string, std::string>{"ldapbindpasswd", "se#cret"});
    // Unquoted, the comma separates two options: refused, saying how to write it.
    CHECK_THAT(error_of([] {
                   record({"host", "all", "all", "10.2.0.0/16", "ldap",
                           "ldapserver=ldap.example.net", "ldapbasedn=dc=a,dc=b"});
               }),
               Catch::Contains("unrecognized authentication option name: \"dc\""));
    // Built by hand with a comma in a value: quoted too.
    HbaRecord made = ldap;
    made.options = {{"ldapserver", "a"}, {"ldapbasedn", "dc=x,dc=y"}};
    CHECK(made.to_line().find("ldapbasedn=\"dc=x,dc=y\"") != std::string::npos);
    HbaFile file = HbaFile::parse("");
    file.append(made);
    CHECK(file.records().at(0).options == made.options);
}

TEST_CASE("line ends and NUL bytes in a field are refused, even in quotes", "[unit][hba]") {
    for (const std::string& bad : {std::string("a\nhost all all all trust"), std::string("a\rb"),
                                   std::string("a\0b", 3), std::string("\"a\nb\"")}) {
        CHECK_THAT(error_of([&] {
                       record({"local", "all", bad, "peer"});
                   }),
                   Catch::Contains("line end or a NUL byte"));
    }
    HbaRecord made = record({"local", "all", "all", "peer"});
    made.users = {"x\nlocal all all trust"};
    HbaFile file = HbaFile::parse("");
    CHECK_THAT(error_of([&] { file.append(made); }), Catch::Contains("line end or a NUL byte"));
    IdentFile ident = IdentFile::parse("");
    CHECK_THAT(error_of([&] {
                   ident.add(IdentEntry{"m", "a\rb", "c"});
               }),
               Catch::Contains("line end or a NUL byte"));
    IdentFile hashed = IdentFile::parse("");
    REQUIRE(hashed.add(IdentEntry{"m", "alice#x", "bob"}));
    CHECK(hashed.print().find("\"alice#x\"") != std::string::npos);
    CHECK(IdentFile::parse(hashed.print()).entries().at(0).system_user == "alice#x");
}

// --- find and edits ------------------------------------------------------------------------

TEST_CASE("find returns the indexes of records matching every field given", "[unit][hba]") {
    HbaFile f = HbaFile::parse(slurp("remove.in"));
    using M = HbaFile::Match;
    CHECK(f.find(M{}) == std::vector<size_t>{0, 1, 2, 3, 4});
    CHECK(f.find(M{.type = "host"}) == std::vector<size_t>{1, 2, 3, 4});
    CHECK(f.find(M{.database = "replication"}) == std::vector<size_t>{3});
    CHECK(f.find(M{.type = "host", .database = "all", .method = "md5"}) == std::vector<size_t>{4});
    // A separate netmask matches its CIDR form too.
    CHECK(f.find(M{.address = "127.0.0.1/32"}) == std::vector<size_t>{1, 3, 4});
    CHECK(f.find(M{.address = "127.0.0.1"}) == std::vector<size_t>{4});
    CHECK(f.find(M{.user = "nobody"}).empty());
}

TEST_CASE("insert_before puts the record above the first match and keeps comments", "[unit][hba]") {
    check_golden("insert_before", [](HbaFile& f) { f.insert_before({.type = "host"}, kTenEight); });
}

TEST_CASE("insert_after puts the record below the last match, above later comments",
          "[unit][hba]") {
    check_golden("insert_after",
                 [](HbaFile& f) { f.insert_after({.database = "replication"}, kTenEight); });
}

TEST_CASE("insert at 0 goes above the first record, below the header comments", "[unit][hba]") {
    check_golden("insert_first", [](HbaFile& f) {
        f.insert(0, record({"local", "sameuser", "all", "peer", "map=pgforge"}));
        CHECK(f.records()[0].line == 4);
        CHECK(f.records()[1].line == 5);
    });
}

TEST_CASE("append adds the record at the very end of the file", "[unit][hba]") {
    check_golden("append", [](HbaFile& f) {
        f.append(record(
            {"hostssl", "all", "all", "0.0.0.0/0", "scram-sha-256", "clientcert=verify-full"}));
    });
}

TEST_CASE("append after a last line without line end gives that line its end", "[unit][hba]") {
    check_golden("append_no_final_newline", [](HbaFile& f) { f.append(kTenEight); });
}

TEST_CASE("append to a CRLF file ends the new line with CRLF", "[unit][hba]") {
    check_golden("append_crlf", [](HbaFile& f) { f.append(kTenEight); });
}

TEST_CASE("append after a trailing continuation ends it first so the records stay apart",
          "[unit][hba]") {
    check_golden("append_after_continuation", [](HbaFile& f) {
        f.append(kTenEight);
        CHECK(f.records().size() == 3);
        CHECK(f.records()[1].method == "scram-sha-256");
    });
}

TEST_CASE("remove takes matching records with their continuation lines and keeps comments",
          "[unit][hba]") {
    check_golden("remove", [](HbaFile& f) {
        CHECK(f.remove({.address = "127.0.0.1/32"}) == 3);
        CHECK(f.remove({.address = "127.0.0.1/32"}) == 0);
        CHECK(f.records()[1].line == 4);
    });
}

TEST_CASE("remove_at removes one record spanning several lines", "[unit][hba]") {
    check_golden("remove_at", [](HbaFile& f) { f.remove_at(3); });
    HbaFile f = HbaFile::parse(slurp("remove_at.in"));
    CHECK_THAT(error_of([&] { f.remove_at(5); }), Catch::Contains("no record 6"));
}

TEST_CASE("edits refuse invalid records and missing matches without changing the file",
          "[unit][hba]") {
    std::string text = slurp("insert_before.in");
    HbaFile f = HbaFile::parse(text);
    error_of([&] { f.insert_before({.type = "hostssl"}, kTenEight); }, Exit::not_found);
    error_of([&] { f.insert_after({.user = "nobody"}, kTenEight); }, Exit::not_found);
    HbaRecord bad = kTenEight;
    bad.method = "peer";
    CHECK_THAT(error_of([&] { f.append(bad); }),
               Catch::Contains("peer authentication is only supported on local sockets"));
    bad = kTenEight;
    bad.users = {"line\nbreak"};
    CHECK_THAT(error_of([&] { f.append(bad); }), Catch::Contains("line end"));
    CHECK_THAT(error_of([&] { f.insert(7, kTenEight); }), Catch::Contains("there are 6 records"));
    CHECK(f.print() == text);
}

TEST_CASE("write goes through the atomic writer and read reads it back", "[unit][hba]") {
    pgforge::test::TempDir dir("hba");
    HbaFile f = HbaFile::parse(slurp("nasty.conf"));
    f.append(kTenEight);
    f.write(dir / "pg_hba.conf");
    CHECK(HbaFile::read(dir / "pg_hba.conf").print() == f.print());
    CHECK((std::filesystem::status(dir / "pg_hba.conf").permissions() &
           std::filesystem::perms::all) ==
          (std::filesystem::perms::owner_read | std::filesystem::perms::owner_write));
    error_of([&] { HbaFile::read(dir / "missing.conf"); }, Exit::failure);
}

// --- pg_ident.conf ------------------------------------------------------------------------

TEST_CASE("pg_ident entries read quoted names, regular expressions and continuations",
          "[unit][hba]") {
    std::vector<IdentEntry> e = IdentFile::parse(slurp("nasty_ident.conf")).entries();
    REQUIRE(e.size() == 6);
    CHECK(e[1].system_user == "root");
    CHECK(e[1].line == 3);
    CHECK(e[2].system_user == "/^(.*)@example\\.com$");
    CHECK(e[2].pg_user == "\\1");
    CHECK(e[3].map == "my map");
    CHECK(e[3].system_user == "John Smith");
    CHECK(e[4].pg_user == "guest1");
    CHECK(e[5].map == "continued");
    CHECK(e[5].system_user == "someone");
    CHECK(e[5].line == 8);
}

TEST_CASE("pg_ident errors name the line", "[unit][hba]") {
    CHECK_THAT(error_of([] { IdentFile::parse("# x\nmap sys\n", "pg_ident.conf"); }),
               Catch::StartsWith("pg_ident.conf:2: missing the PostgreSQL user name"));
    CHECK_THAT(error_of([] { IdentFile::parse("map a,b c\n"); }),
               Catch::StartsWith("line 1: multiple values in the system user name field"));
}

TEST_CASE("ident add appends once and refuses nothing twice", "[unit][hba]") {
    std::string in = slurp("ident_add.in");
    IdentFile f = IdentFile::parse(in);
    CHECK(f.print() == in);
    CHECK(f.add({.map = "pgforge", .system_user = "John Smith", .pg_user = "john"}));
    CHECK_FALSE(f.add({.map = "pgforge", .system_user = "John Smith", .pg_user = "john"}));
    CHECK_FALSE(f.add_if_absent({.map = "pgforge", .system_user = "root", .pg_user = "postgres"}));
    CHECK(
        f.add_if_absent({.map = "mail", .system_user = "/^(.*)@example\\.com$", .pg_user = "\\1"}));
    CHECK(f.print() == slurp("ident_add.out"));
    CHECK(f.entries().back().line == 6);
    CHECK_THAT(error_of([&] { f.add({.map = "m", .system_user = "a\nb", .pg_user = "c"}); }),
               Catch::Contains("line end"));
}

TEST_CASE("ident remove drops the entries matching every name given", "[unit][hba]") {
    IdentFile f = IdentFile::parse(slurp("ident_remove.in"));
    CHECK(f.remove("pgforge", "nobody", std::nullopt) == 0);
    CHECK(f.remove("pgforge", "root", std::nullopt) == 1);
    CHECK(f.print() == slurp("ident_remove.out"));
    CHECK(f.remove(std::nullopt, std::nullopt, std::nullopt) == 2);
    CHECK(f.entries().empty());
}

TEST_CASE("list_hba_lines lists every record line, the bad ones with what is wrong",
          "[unit][hba]") {
    const std::string text =
        "# comment\n"
        "local all all peer\n"
        "\n"
        "host all all 10.0.0.0/33 md5\n"
        "host all app 127.0.0.1/32 \\\n"
        "     scram-sha-256\n"
        "hots all all all md5\n"
        "local all all trust\n";
    auto lines = pgforge::conf::list_hba_lines(text);
    REQUIRE(lines.size() == 5);
    CHECK(lines[0].line == 2);
    REQUIRE(lines[0].record);
    CHECK(lines[0].record->method == "peer");
    CHECK(lines[0].error.empty());
    CHECK(lines[1].line == 4);
    CHECK_FALSE(lines[1].record);
    CHECK(lines[1].text == "host all all 10.0.0.0/33 md5");
    CHECK_THAT(lines[1].error, Catch::Contains("invalid CIDR mask"));
    REQUIRE(lines[2].record);
    CHECK(lines[2].line == 5);
    CHECK(lines[2].record->method == "scram-sha-256");
    CHECK_FALSE(lines[3].record);
    CHECK_THAT(lines[3].error, Catch::Contains("unknown connection type \"hots\""));
    REQUIRE(lines[4].record);
    CHECK(lines[4].line == 8);
    // The strict parse used before writing still refuses the file.
    CHECK_THAT(error_of([&] { HbaFile::parse(text, "/x/pg_hba.conf"); }),
               Catch::Contains("/x/pg_hba.conf:4:"));
}
