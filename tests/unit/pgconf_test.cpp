// postgresql.conf-format files: byte-for-byte round trips, edits checked against golden files,
// the include tree and the effective settings.
#include "engine/conf/pgconf.hpp"

#include <algorithm>
#include <catch2/catch.hpp>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iostream>
#include <iterator>
#include <string>
#include <vector>

#include "engine/conf/template.hpp"
#include "engine/core/error.hpp"
#include "temp_dir.hpp"

namespace fs = std::filesystem;
using pgforge::Error;
using pgforge::Exit;
using pgforge::conf::ConfDocument;
using pgforge::conf::ConfTree;
using pgforge::conf::format_value;
using pgforge::conf::parse_bool;
using pgforge::test::TempDir;
using pgforge::test::write_text;

namespace {

const fs::path kData = fs::path(PGFORGE_TEST_DATA_DIR) / "conf";

std::string slurp(const fs::path& file) {
    std::ifstream in(file, std::ios::binary);
    REQUIRE(in);
    return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

// Runs `edit` on <name>.in and compares the result with <name>.out, byte for byte.
template <class Edit>
void check_golden(const std::string& name, Edit edit) {
    ConfDocument doc = ConfDocument::read(kData / (name + ".in"));
    edit(doc);
    std::string expected = slurp(kData / (name + ".out"));
    CHECK(doc.print() == expected);
    // What we wrote reads back as the same document.
    CHECK(ConfDocument::parse(doc.print()).print() == expected);
}

std::string error_of(const std::function<void()>& run, Exit* code = nullptr) {
    try {
        run();
    } catch (const Error& e) {
        if (code) *code = e.code();
        return e.what();
    }
    FAIL("no error thrown");
    return {};
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// Round trips
// ---------------------------------------------------------------------------------------------

TEST_CASE("PostgreSQL's own sample prints back byte for byte", "[unit][conf]") {
    std::string text = slurp(kData / "postgresql.conf.sample");
    ConfDocument doc = ConfDocument::parse(text, "postgresql.conf.sample");
    CHECK(doc.print() == text);
    CHECK(doc.entries().empty());  // every setting of the sample is commented out
    CHECK(doc.line_count() == static_cast<size_t>(std::count(text.begin(), text.end(), '\n')));
}

TEST_CASE("set on the sample un-comments its default line and changes nothing else",
          "[unit][conf]") {
    std::string text = slurp(kData / "postgresql.conf.sample");
    ConfDocument doc = ConfDocument::parse(text);
    CHECK_FALSE(doc.set("shared_buffers", "1GB"));
    CHECK_FALSE(doc.set("log_line_prefix", "%m [%p] %q%u@%d "));
    std::string expected = text;
    auto replace = [&](const std::string& from, const std::string& to) {
        size_t at = expected.find(from);
        REQUIRE(at != std::string::npos);
        expected.replace(at, from.size(), to);
    };
    replace("#shared_buffers = 128MB", "shared_buffers = 1GB");
    replace("#log_line_prefix = '%m [%p] '", "log_line_prefix = '%m [%p] %q%u@%d '");
    CHECK(doc.print() == expected);
    CHECK(doc.entries().size() == 2);
}

TEST_CASE("hand-made nasty files print back byte for byte", "[unit][conf]") {
    for (const char* name : {"nasty.conf", "crlf.conf", "no_final_newline.conf"}) {
        INFO(name);
        std::string text = slurp(kData / name);
        CHECK(ConfDocument::read(kData / name).print() == text);
    }
}

TEST_CASE("odd inputs print back byte for byte", "[unit][conf]") {
    for (std::string text :
         {std::string(), std::string("\n"), std::string("\n\n\n"), std::string("# only a comment"),
          std::string("a=1"), std::string("a=1\r"), std::string("\r\n\r\n"),
          std::string("x = 'with\0nul'\n", 15), std::string("  \t  ")}) {
        INFO(text);
        CHECK(ConfDocument::parse(text).print() == text);
    }
}

TEST_CASE("the nasty file reads as the server reads it", "[unit][conf]") {
    ConfDocument doc = ConfDocument::read(kData / "nasty.conf");
    auto value = [&](const char* name) { return doc.get(name).value().value; };
    CHECK(value("listen_addresses") == "localhost");
    CHECK(value("port") == "5434");  // `port 5433` then `PORT=5434`
    CHECK(value("max_connections") == "200");
    CHECK(value("search_path") == "\"$user\", public");
    CHECK(value("log_line_prefix") == "%m [%p] 'quoted' 'escaped' ");
    CHECK(value("archive_command") == "cp %p /mnt/server/archivedir/%f # not a comment");
    CHECK(value("application_name").empty());
    CHECK(doc.get("application_name")->raw_value == "''");
    CHECK(value("restore_command") == "C:\\bin\\copy \"%p\"");
    CHECK(value("escapes") == "tab\there\nnewlineAx");
    CHECK(value("lc_messages") == "en_US.UTF-8");
    CHECK(value("custom.setting") == "on");
    CHECK(value("my_ext.knob") == "-1");
    CHECK(value("seq_page_cost") == ".5");
    CHECK(value("big") == "1.5e3");
    CHECK(value("hex") == "0x1F");
    CHECK(value("timeout") == "5min");
    CHECK(value("positive") == "+4");
    CHECK(value("data_dir") == "var/lib/pg-15:x");
    CHECK(value("trailing_spaces") == "on");
    CHECK(value("last") == "no final newline");
    CHECK_FALSE(doc.get("commented_default"));
    CHECK(doc.get("Max_Connections")->name == "Max_Connections");
    CHECK(doc.get("max_connections")->line == 7);
}

TEST_CASE("a value ends at a NUL byte as in the server", "[unit][conf]") {
    ConfDocument doc = ConfDocument::parse(std::string("x = 'ab") + '\0' + "cd'\ny = 'ab\\0cd'\n");
    CHECK(doc.get("x")->value == "ab");
    CHECK(doc.get("y")->value == "ab");
}

// ---------------------------------------------------------------------------------------------
// Reading
// ---------------------------------------------------------------------------------------------

TEST_CASE("the last occurrence of a name wins, whatever its case", "[unit][conf]") {
    ConfDocument doc = ConfDocument::parse("work_mem = 1MB\nWORK_MEM = 2MB\nWork_Mem '3MB'\n");
    auto entry = doc.get("work_mem");
    REQUIRE(entry);
    CHECK(entry->value == "3MB");
    CHECK(entry->raw_value == "'3MB'");
    CHECK(entry->name == "Work_Mem");
    CHECK(entry->line == 3);
    CHECK(doc.entries().size() == 3);
    CHECK(doc.entries()[1].value == "2MB");
}

TEST_CASE("entries lists active settings in file order, not includes", "[unit][conf]") {
    ConfDocument doc =
        ConfDocument::parse("a = 1\n#b = 2\ninclude 'x.conf'\nc.d = 'e'\nA = 3\n", "f.conf");
    auto entries = doc.entries();
    REQUIRE(entries.size() == 3);
    CHECK(entries[0].name == "a");
    CHECK(entries[1].name == "c.d");
    CHECK(entries[1].line == 4);
    CHECK(entries[2].value == "3");
    CHECK(doc.origin() == "f.conf");
}

TEST_CASE("getset returns the values of the names that are set, with lowercase keys",
          "[unit][conf]") {
    ConfDocument doc = ConfDocument::parse(
        "Port = 5432\nwork_mem = 1MB\nwork_mem = '2MB'\nlisten_addresses = '*'\n");
    auto got = doc.getset({"PORT", "work_mem", "absent"});
    CHECK(got == std::map<std::string, std::string>{{"port", "5432"}, {"work_mem", "2MB"}});
}

TEST_CASE("includes lists the include directives with kind, path and line", "[unit][conf]") {
    ConfDocument doc = ConfDocument::parse(
        "include 'a.conf'\nx = 1\nINCLUDE_IF_EXISTS = 'it''s.conf'\ninclude_dir conf_d\n");
    auto inc = doc.includes();
    REQUIRE(inc.size() == 3);
    CHECK(inc[0].kind == ConfDocument::Include::file);
    CHECK(inc[0].path == "a.conf");
    CHECK(inc[0].line == 1);
    CHECK(inc[1].kind == ConfDocument::Include::file_if_exists);
    CHECK(inc[1].path == "it's.conf");
    CHECK(inc[2].kind == ConfDocument::Include::dir);
    CHECK(inc[2].path == "conf_d");
    CHECK(inc[2].line == 4);
}

TEST_CASE("a syntax error names the file and the line", "[unit][conf]") {
    Exit code = Exit::ok;
    fs::path file = kData / "syntax_error.conf";
    std::string message = error_of([&] { ConfDocument::read(file); }, &code);
    CHECK(code == Exit::usage);
    CHECK(message == file.string() + ":3: syntax error near token \"GB\"");
}

TEST_CASE("what the server's scanner rejects is a syntax error", "[unit][conf]") {
    for (const char* text : {
             "a = 1.5GB\n",     // a real number cannot take a unit unquoted
             "a = b.c\n",       // a qualified name is not a value
             "a.b.c = 1\n",     // one dot at most in a name
             "1a = 1\n",        // a name starts with a letter
             "a =\n",           // no value
             "a = 'open\n",     // unterminated string
             "a = 1 2\n",       // two values
             "a = = 1\n",       // two separators
             "a = /path\n",     // an unquoted value starts with a letter or digit
             "a$b = 1\n",       // '$' is not part of a name
             "a = 'x' 'y'\n",   // two strings
             "a = 'it''s\n",    // '' does not close a string
             "a = 1\fb\n",      // form feed is not white space
             "work-mem = 1\n",  // '-' is not part of a name
             "a = 1e5\n",       // an exponent needs a decimal point: "1e" then "5"
         }) {
        INFO(text);
        Exit code = Exit::ok;
        std::string message = error_of([&] { ConfDocument::parse(text, "t.conf"); }, &code);
        CHECK(code == Exit::usage);
        CHECK(message.rfind("t.conf:1: syntax error", 0) == 0);
    }
    CHECK(error_of([] { ConfDocument::parse("ok = 1\na =   # nothing\n", "t.conf"); }) ==
          "t.conf:2: syntax error near end of line");
}

TEST_CASE("what the server's scanner accepts parses", "[unit][conf]") {
    struct Case {
        const char* text;
        const char* name;
        const char* value;
    };
    for (const Case& c : std::vector<Case>{
             {"a 1", "a", "1"},
             {"a=1", "a", "1"},
             {"a\t=\t'x y'\t#c", "a", "x y"},
             {"a = -1", "a", "-1"},
             {"a = 0x1F", "a", "0x1F"},
             {"a = 0xZZ", "a", "0xZZ"},  // digits followed by unit letters
             {"a = 1.5e-3", "a", "1.5e-3"},
             {"a = .", "a", "."},
             {"a = en_US.UTF-8", "a", "en_US.UTF-8"},
             {"a = C:/x", "a", "C:/x"},
             {"x.y = on", "x.y", "on"},
             {"_a$ = 1", nullptr, nullptr},  // rejected: see below
             {"a = '\\b\\f\\n\\r\\t\\q\\''", "a", "\b\f\n\r\tq'"},
             {"a = '\\101\\1012\\7'", "a", "AA2\a"},
             {"a = 'x'''", "a", "x'"},
             {"caf\xc3\xa9 = 1", "caf\xc3\xa9", "1"},  // bytes >= 0x80 are letters
         }) {
        INFO(c.text);
        if (!c.name) {
            CHECK_THROWS_AS(ConfDocument::parse(c.text), Error);
            continue;
        }
        auto entry = ConfDocument::parse(c.text).get(c.name);
        REQUIRE(entry);
        CHECK(entry->value == c.value);
    }
}

TEST_CASE("reading a missing file is an error naming it", "[unit][conf]") {
    Exit code = Exit::ok;
    std::string message = error_of([] { ConfDocument::read(kData / "no-such-file.conf"); }, &code);
    CHECK(code == Exit::failure);
    CHECK(message.find((kData / "no-such-file.conf").string()) != std::string::npos);
}

// ---------------------------------------------------------------------------------------------
// Editing (golden files)
// ---------------------------------------------------------------------------------------------

TEST_CASE("set changes the winning line in place and keeps spacing and the trailing comment",
          "[unit][conf]") {
    check_golden("set_in_place", [](ConfDocument& doc) {
        CHECK(doc.set("max_connections", "250") == std::optional<std::string>("100"));
        CHECK(doc.set("shared_buffers", "1GB") == std::optional<std::string>("256MB"));
        CHECK(doc.set("log_line_prefix", "%m [%p] ") == std::optional<std::string>("%m "));
    });
}

TEST_CASE("set un-comments the last commented default in place", "[unit][conf]") {
    check_golden("set_uncomment", [](ConfDocument& doc) {
        CHECK_FALSE(doc.set("work_mem", "64MB"));
        CHECK_FALSE(doc.set("search_path", "app, public"));
        CHECK(doc.get("work_mem")->line == 5);
    });
}

TEST_CASE("set appends name = value when the name is absent", "[unit][conf]") {
    check_golden("set_append", [](ConfDocument& doc) {
        CHECK_FALSE(doc.set("shared_preload_libraries", "pg_stat_statements"));
        CHECK_FALSE(doc.set("app.name", "it's"));
    });
}

TEST_CASE("set on a file without a final newline adds one before appending", "[unit][conf]") {
    check_golden("set_no_final_newline",
                 [](ConfDocument& doc) { CHECK_FALSE(doc.set("work_mem", "16MB")); });
}

TEST_CASE("set in a CRLF file keeps CRLF line ends", "[unit][conf]") {
    check_golden("set_crlf", [](ConfDocument& doc) {
        doc.set("work_mem", "32MB");
        doc.set("wal_level", "logical");
        doc.set("max_wal_senders", "10");
    });
}

TEST_CASE("update writes several settings", "[unit][conf]") {
    check_golden("update_several", [](ConfDocument& doc) {
        doc.update({{"listen_addresses", "*"},
                    {"port", "5433"},
                    {"max_connections", "20"},
                    {"log_directory", "log dir"}});
    });
}

TEST_CASE("remove comments out every active occurrence", "[unit][conf]") {
    check_golden("remove_comment_out", [](ConfDocument& doc) {
        CHECK(doc.remove("WORK_MEM"));
        CHECK_FALSE(doc.get("work_mem"));
        CHECK_FALSE(doc.remove("work_mem"));
    });
}

TEST_CASE("remove with delete deletes the lines", "[unit][conf]") {
    check_golden("remove_delete", [](ConfDocument& doc) {
        CHECK(doc.remove("work_mem", true));
        CHECK(doc.get("port")->line == 1);
    });
}

TEST_CASE("set keeps quotes on a value written right after the name", "[unit][conf]") {
    ConfDocument doc = ConfDocument::parse("a'x'\nb+1 # c\n#c'y'\n");
    CHECK(doc.get("b")->value == "+1");
    doc.set("a", "5");
    doc.set("b", "on");
    doc.set("c", "2");
    CHECK(doc.print() == "a'5'\nb'on' # c\nc'2'\n");
}

TEST_CASE("set after remove un-comments the removed line", "[unit][conf]") {
    ConfDocument doc = ConfDocument::parse("work_mem = 4MB   # note\n");
    doc.remove("work_mem");
    doc.set("work_mem", "8MB");
    CHECK(doc.print() == "work_mem = 8MB   # note\n");
}

TEST_CASE("set refuses names the scanner would not read and include directives", "[unit][conf]") {
    ConfDocument doc = ConfDocument::parse("a = 1\n");
    for (const char* name : {"", "1a", "a b", "a.b.c", "a=", "include", "Include_Dir"}) {
        INFO(name);
        Exit code = Exit::ok;
        error_of([&] { doc.set(name, "1"); }, &code);
        CHECK(code == Exit::usage);
    }
    CHECK_THROWS_AS(doc.set("a", std::string("x\0y", 3)), Error);
    CHECK_THROWS_AS(doc.update({{"b", "1"}, {"bad name", "2"}}), Error);
    CHECK(doc.print() == "a = 1\n");  // nothing written by the failed update
}

TEST_CASE("values set are read back unchanged", "[unit][conf]") {
    for (std::string value : {"", "64MB", "a b", "it's", "C:\\", "'", "\\'", "x\ny", "\r\n",
                              "#hash", "-1", "1.5GB", "caf\xc3\xa9", "a.b", "tab\there"}) {
        INFO(value);
        ConfDocument doc = ConfDocument::parse("x = 1\n");
        doc.set("x", value);
        doc.set("y", value);
        ConfDocument again = ConfDocument::parse(doc.print());
        CHECK(again.get("x")->value == value);
        CHECK(again.get("y")->value == value);
    }
}

TEST_CASE("save writes the document atomically, keeping the file's mode", "[unit][conf]") {
    TempDir dir("pgconf");
    fs::path file = dir / "postgresql.conf";
    write_text(file, "port = 5432 # keep\n");
    fs::permissions(file, fs::perms::owner_read | fs::perms::owner_write);
    ConfDocument doc = ConfDocument::read(file);
    doc.set("port", "5433");
    doc.save();
    CHECK(slurp(file) == "port = 5433 # keep\n");
    CHECK((fs::status(file).permissions() & fs::perms::mask) ==
          (fs::perms::owner_read | fs::perms::owner_write));
    doc.save(dir / "copy.conf");
    CHECK(slurp(dir / "copy.conf") == "port = 5433 # keep\n");
}

// ---------------------------------------------------------------------------------------------
// Values
// ---------------------------------------------------------------------------------------------

TEST_CASE("format_value writes numbers and identifiers bare and quotes the rest", "[unit][conf]") {
    CHECK(format_value("64MB") == "64MB");
    CHECK(format_value("-1") == "-1");
    CHECK(format_value("0.5") == "0.5");
    CHECK(format_value("0x1F") == "0x1F");
    CHECK(format_value("on") == "on");
    CHECK(format_value("replica") == "replica");
    CHECK(format_value("a b") == "'a b'");
    CHECK(format_value("it's") == "'it''s'");
    CHECK(format_value("C:\\") == "'C:\\\\'");
    CHECK(format_value("") == "''");
    CHECK(format_value("1.5GB") == "'1.5GB'");  // not one token bare
    CHECK(format_value("a.b") == "'a.b'");      // a qualified name is not a value
    CHECK(format_value("en_US.UTF-8") == "'en_US.UTF-8'");
    CHECK(format_value("/var/run") == "'/var/run'");
    CHECK(format_value("x\ny") == "'x\\ny'");
    CHECK(format_value("caf\xc3\xa9") == "'caf\xc3\xa9'");
    CHECK_THROWS_AS(format_value(std::string("a\0b", 3)), Error);
}

TEST_CASE("parse_bool accepts what the server accepts", "[unit][conf]") {
    struct Case {
        const char* text;
        bool ok;
        bool value;
    };
    for (const Case& c : std::vector<Case>{
             {"on", true, true},      {"ON", true, true},       {"off", true, false},
             {"of", true, false},     {"o", false, false},      {"true", true, true},
             {"t", true, true},       {"TrU", true, true},      {"false", true, false},
             {"f", true, false},      {"yes", true, true},      {"y", true, true},
             {"no", true, false},     {"n", true, false},       {"1", true, true},
             {"0", true, false},      {"", false, false},       {"10", false, false},
             {"truex", false, false}, {"onn", false, false},    {"offf", false, false},
             {" on", false, false},   {"enable", false, false}, {"nope", false, false}}) {
        INFO(c.text);
        bool out = !c.value;
        CHECK(parse_bool(c.text, out) == c.ok);
        if (c.ok) CHECK(out == c.value);
    }
}

// ---------------------------------------------------------------------------------------------
// Include trees
// ---------------------------------------------------------------------------------------------

TEST_CASE("ConfTree follows includes and auto.conf overrides, naming file and line",
          "[unit][conf]") {
    fs::path dir = kData / "tree";
    ConfTree tree = ConfTree::load(dir / "postgresql.conf", dir / "postgresql.auto.conf");

    CHECK(tree.files() ==
          std::vector<fs::path>{dir / "postgresql.conf", dir / "extra/memory.conf",
                                dir / "conf.d/10-port.conf", dir / "conf.d/20-logging.conf",
                                dir / "conf.d/Z-upper.conf", dir / "postgresql.auto.conf"});
    auto check = [&](const char* name, const char* value, const fs::path& file, int line) {
        INFO(name);
        auto s = tree.get(name);
        REQUIRE(s);
        CHECK(s->value == value);
        CHECK(s->file == file);
        CHECK(s->line == line);
    };
    check("work_mem", "32MB", dir / "postgresql.auto.conf", 3);
    check("port", "5433", dir / "conf.d/10-port.conf", 1);
    check("shared_buffers", "512MB", dir / "conf.d/Z-upper.conf", 1);
    check("max_connections", "100", dir / "postgresql.conf", 4);  // after the include
    check("log_min_duration_statement", "250ms", dir / "postgresql.conf", 7);
    check("log_line_prefix", "%m ", dir / "conf.d/20-logging.conf", 2);
    CHECK_FALSE(tree.get("absent"));
    CHECK(tree.get("PORT")->name == "PORT");

    auto all = tree.all();
    CHECK(all.size() == 6);
    CHECK(all.count("port") == 1);

    CHECK(tree.file_to_edit("work_mem") == dir / "postgresql.conf");  // auto.conf wins
    CHECK(tree.file_to_edit("port") == dir / "conf.d/10-port.conf");
    CHECK(tree.file_to_edit("max_connections") == dir / "postgresql.conf");
    CHECK(tree.file_to_edit("absent") == dir / "postgresql.conf");
}

TEST_CASE("ConfTree without postgresql.auto.conf reads the main tree only", "[unit][conf]") {
    fs::path dir = kData / "tree";
    ConfTree tree = ConfTree::load(dir / "postgresql.conf", dir / "no-such.auto.conf");
    CHECK(tree.get("work_mem")->value == "8MB");
    CHECK(tree.files().size() == 5);
    CHECK(ConfTree::load(dir / "postgresql.conf").files().size() == 5);
}

TEST_CASE("include paths are relative to the including file", "[unit][conf]") {
    TempDir dir("pgconf");
    write_text(dir / "main.conf", "include 'sub/a.conf'\n");
    write_text(dir / "sub/a.conf", "include 'b.conf'\ninclude '../c.conf'\n");
    write_text(dir / "sub/b.conf", "b = 1\n");
    write_text(dir / "c.conf", "c = 2\n");
    write_text(dir / "abs.conf", "include '" + (dir / "c.conf").string() + "'\n");
    ConfTree tree = ConfTree::load(dir / "main.conf");
    CHECK(tree.get("b")->file == dir / "sub/b.conf");
    CHECK(tree.get("c")->file == dir / "c.conf");
    CHECK(ConfTree::load(dir / "abs.conf").get("c")->value == "2");
}

TEST_CASE("include_dir reads *.conf files in name order and skips the others", "[unit][conf]") {
    TempDir dir("pgconf");
    write_text(dir / "main.conf", "include_dir 'd'\n");
    write_text(dir / "d/b.conf", "x = b\n");
    write_text(dir / "d/a.conf", "x = a\n");
    write_text(dir / "d/B.conf", "x = B\n");  // 'B' sorts before 'a' (strcmp)
    write_text(dir / "d/.c.conf", "x = hidden\n");
    write_text(dir / "d/d.conf~", "x = backup\n");
    write_text(dir / "d/e.CONF", "x = upper\n");
    write_text(dir / "d/f.conf/g.conf", "x = in a directory\n");
    ConfTree tree = ConfTree::load(dir / "main.conf");
    CHECK(tree.files() == std::vector<fs::path>{dir / "main.conf", dir / "d/B.conf",
                                                dir / "d/a.conf", dir / "d/b.conf"});
    CHECK(tree.get("x")->value == "b");
}

TEST_CASE("include_if_exists skips a missing file", "[unit][conf]") {
    TempDir dir("pgconf");
    write_text(dir / "main.conf", "a = 1\ninclude_if_exists 'missing.conf'\nb = 2\n");
    ConfTree tree = ConfTree::load(dir / "main.conf");
    CHECK(tree.files().size() == 1);
    CHECK(tree.get("b")->value == "2");
}

TEST_CASE("a missing include is an error naming the including file and line", "[unit][conf]") {
    TempDir dir("pgconf");
    write_text(dir / "main.conf", "a = 1\ninclude 'missing.conf'\n");
    std::string message = error_of([&] { ConfTree::load(dir / "main.conf"); });
    CHECK(message.rfind((dir / "main.conf").string() + ":2: ", 0) == 0);
    CHECK(message.find((dir / "missing.conf").string()) != std::string::npos);

    write_text(dir / "dir.conf", "include_dir 'missing.d'\n");
    message = error_of([&] { ConfTree::load(dir / "dir.conf"); });
    CHECK(message.rfind((dir / "dir.conf").string() + ":1: ", 0) == 0);

    message = error_of([&] { ConfTree::load(dir / "no-main.conf"); });
    CHECK(message.find((dir / "no-main.conf").string()) != std::string::npos);
}

TEST_CASE("an include cycle is an error naming the chain", "[unit][conf]") {
    TempDir dir("pgconf");
    write_text(dir / "a.conf", "x = 1\ninclude 'b.conf'\n");
    write_text(dir / "b.conf", "include_dir 'c.d'\n");
    write_text(dir / "c.d/c.conf", "\n\ninclude '../a.conf'\n");
    Exit code = Exit::ok;
    std::string message = error_of([&] { ConfTree::load(dir / "a.conf"); }, &code);
    CHECK(code == Exit::usage);
    CHECK(message == (dir / "c.d/c.conf").string() + ":3: configuration file recursion: " +
                         (dir / "a.conf").string() + " -> " + (dir / "b.conf").string() + " -> " +
                         (dir / "c.d/c.conf").string() + " -> " + (dir / "a.conf").string());

    write_text(dir / "self.conf", "include 'self.conf'\n");
    CHECK(error_of([&] { ConfTree::load(dir / "self.conf"); }).find("recursion") !=
          std::string::npos);
}

TEST_CASE("includes nest 10 levels deep at most, as in the server", "[unit][conf]") {
    TempDir dir("pgconf");
    for (int i = 0; i < 11; ++i)
        write_text(dir / ("f" + std::to_string(i) + ".conf"),
                   "include 'f" + std::to_string(i + 1) + ".conf'\n");
    write_text(dir / "f11.conf", "deep = 1\n");
    CHECK(ConfTree::load(dir / "f1.conf").get("deep")->value == "1");  // 10 levels
    std::string message = error_of([&] { ConfTree::load(dir / "f0.conf"); });
    CHECK(message.find("maximum nesting depth exceeded") != std::string::npos);
    CHECK(message.rfind((dir / "f10.conf").string() + ":1: ", 0) == 0);
}

TEST_CASE("a syntax error in an included file names that file and line", "[unit][conf]") {
    TempDir dir("pgconf");
    write_text(dir / "main.conf", "include 'bad.conf'\n");
    write_text(dir / "bad.conf", "a = 1\nb = 'open\n");
    CHECK(error_of([&] { ConfTree::load(dir / "main.conf"); }) ==
          (dir / "bad.conf").string() + ":2: syntax error near token \"'\"");
}

// ---------------------------------------------------------------------------------------------
// Performance
// ---------------------------------------------------------------------------------------------

// Run by pgforge-bench (bench/README.md), which reads the "pgconf-10k-median-ms:" line.
// A measurement for bench/ (pgforge-bench runs it), not a test: it asserts no timing.
TEST_CASE("parse + set + write of a 10,000-line file", "[.bench]") {
    std::string text;
    int lines = 0;
    for (int i = 0; lines < 10000; ++i) {
        text += "setting_" + std::to_string(i) + " = " + std::to_string(i) +
                "MB\t\t# a comment about it\n";
        ++lines;
        if (i % 20 == 0) {
            text += "#commented_" + std::to_string(i) + " = 'x'  # min 64kB\n\n";
            lines += 2;
        }
    }
    TempDir dir("bench");
    const fs::path file = dir / "postgresql.conf";
    using clock = std::chrono::steady_clock;
    std::vector<double> ms;
    std::string out;
    for (int run = 0; run < 50; ++run) {
        auto start = clock::now();
        ConfDocument doc = ConfDocument::parse(text);
        doc.set("setting_5000", "1GB");
        doc.set("commented_20", "y");
        doc.set("brand_new", "on");
        out = doc.print();
        pgforge::write_file_atomically(file, out, nullptr, fs::perms(0600));
        ms.push_back(std::chrono::duration<double, std::milli>(clock::now() - start).count());
        REQUIRE(out.size() > text.size());
    }
    CHECK(slurp(file) == out);
    std::sort(ms.begin(), ms.end());
    const double median = ms[ms.size() / 2];
    char line[64];
    std::snprintf(line, sizeof line, "pgconf-10k-median-ms: %.3f\n", median);
    std::cout << line << std::flush;
    WARN("10,000-line parse + 3 sets + print + write_file_atomically: median "
         << median << " ms, best " << ms.front() << " ms (" << text.size() << " bytes)");
}

TEST_CASE("auth_file_paths follows hba_file and ident_file as the server does", "[unit][conf]") {
    using pgforge::conf::auth_file_paths;
    TempDir dir;
    const fs::path data = dir / "data";
    fs::create_directories(data / "conf.d");
    SECTION("unset: the files of the data directory") {
        write_text(data / "postgresql.conf", "port = 5433\n");
        auto files = auth_file_paths(data);
        CHECK(files.hba == data / "pg_hba.conf");
        CHECK(files.ident == data / "pg_ident.conf");
    }
    SECTION("absolute paths as written; relative ones from the data directory") {
        write_text(data / "postgresql.conf",
                   "hba_file = '/etc/pg/hba.conf'\ninclude = 'conf.d/auth.conf'\n");
        // A relative path in an included file is still the data directory's, not the file's.
        write_text(data / "conf.d" / "auth.conf", "ident_file = 'conf.d/../auth/ident.conf'\n");
        auto files = auth_file_paths(data);
        CHECK(files.hba == fs::path("/etc/pg/hba.conf"));
        CHECK(files.ident == data / "auth" / "ident.conf");
    }
    SECTION("the winning line counts, postgresql.auto.conf last; an empty value is unset") {
        write_text(data / "postgresql.conf",
                   "hba_file = 'a.conf'\nhba_file = 'b.conf'\n"
                   "ident_file = ''\n");
        write_text(data / "postgresql.auto.conf", "hba_file = 'c.conf'\n");
        auto files = auth_file_paths(data);
        CHECK(files.hba == data / "c.conf");
        CHECK(files.ident == data / "pg_ident.conf");
    }
}
