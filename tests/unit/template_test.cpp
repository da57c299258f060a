// Configuration templates and the atomic writes of generated files.
#include "engine/conf/template.hpp"

#include <pwd.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <filesystem>
#include <map>
#include <string>

#include "engine/core/error.hpp"
#include "temp_dir.hpp"

namespace fs = std::filesystem;
using pgforge::conf_quote;
using pgforge::Error;
using pgforge::Exit;
using pgforge::read_text_file;
using pgforge::render_template;
using pgforge::write_file_atomically;
using pgforge::test::TempDir;
using pgforge::test::write_text;

namespace {

const fs::perms k0600 = fs::perms::owner_read | fs::perms::owner_write;
const fs::perms k0644 = k0600 | fs::perms::group_read | fs::perms::others_read;

fs::perms mode_of(const fs::path& file) {
    return fs::status(file).permissions() & fs::perms::mask;
}

bool has_leftover_temp_file(const fs::path& dir) {
    for (const auto& entry : fs::directory_iterator(dir))
        if (entry.path().filename().string().find(".pgforge-") != std::string::npos) return true;
    return false;
}

}  // namespace

TEST_CASE("render_template replaces every placeholder with its value", "[unit]") {
    std::string out = render_template(
        "port = {{port}}\nunix_socket_directories = {{dir}}\n"
        "# again: {{port}}\n",
        {{"port", "5433"}, {"dir", "'/run/x'"}}, "postgresql.conf");
    CHECK(out == "port = 5433\nunix_socket_directories = '/run/x'\n# again: 5433\n");
}

TEST_CASE("render_template leaves text without placeholders as it is", "[unit]") {
    CHECK(render_template("", {}, "t") == "");
    CHECK(render_template("listen_addresses = 'localhost'\n", {}, "t") ==
          "listen_addresses = 'localhost'\n");
}

TEST_CASE("render_template leaves braces that are not placeholders alone", "[unit]") {
    const std::map<std::string, std::string> values = {{"x", "1"}};
    CHECK(render_template("{a} {{x}} }} {", values, "t") == "{a} 1 }} {");
    CHECK(render_template("log_line_prefix = '%m {%p}'", values, "t") ==
          "log_line_prefix = '%m {%p}'");
    CHECK(render_template("unclosed {{x", values, "t") == "unclosed {{x");
}

TEST_CASE("render_template does not expand placeholders found inside values", "[unit]") {
    CHECK(render_template("a={{a}}", {{"a", "{{b}}"}, {"b", "no"}}, "t") == "a={{b}}");
}

TEST_CASE("render_template rejects an unknown placeholder, naming it and the template", "[unit]") {
    try {
        render_template("port = {{port}}\nfoo = {{nosuch}}\n", {{"port", "5432"}},
                        "/etc/pgforge/templates/postgresql.conf");
        FAIL("an unknown placeholder was accepted");
    } catch (const Error& e) {
        CHECK_THAT(e.what(), Catch::Contains("/etc/pgforge/templates/postgresql.conf"));
        CHECK_THAT(e.what(), Catch::Contains("nosuch"));
    }
}

TEST_CASE("conf_quote quotes a value and doubles the single quotes inside it", "[unit]") {
    CHECK(conf_quote("localhost") == "'localhost'");
    CHECK(conf_quote("it's") == "'it''s'");
    CHECK(conf_quote("''") == "''''''");
    CHECK(conf_quote("") == "''");
}

TEST_CASE("conf_quote escapes backslashes, which postgresql.conf treats as escapes", "[unit]") {
    // PostgreSQL's configuration scanner reads '\t' as a tab and '\' followed by the closing
    // quote as an escaped quote: a backslash in a value must be written doubled.
    CHECK(conf_quote("/run/a\\tb") == "'/run/a\\\\tb'");
    CHECK(conf_quote("C:\\") == "'C:\\\\'");
}

TEST_CASE("write_file_atomically writes the content with the mode asked for", "[unit]") {
    TempDir dir("template");
    fs::path file = dir / "pg_hba.conf";
    write_file_atomically(file, "local all all peer\n", nullptr, k0600);
    CHECK(read_text_file(file) == "local all all peer\n");
    CHECK(mode_of(file) == k0600);

    fs::path other = dir / "postgresql.conf";
    write_file_atomically(other, "port = 5432\n", nullptr, k0644);
    CHECK(mode_of(other) == k0644);
}

TEST_CASE("write_file_atomically replaces an existing file, content and mode", "[unit]") {
    TempDir dir("template");
    fs::path file = dir / "postgresql.conf";
    write_text(file, "old content that is longer than the new one\n");
    fs::permissions(file, k0644);
    write_file_atomically(file, "new\n", nullptr, k0600);
    CHECK(read_text_file(file) == "new\n");
    CHECK(mode_of(file) == k0600);
}

TEST_CASE("write_file_atomically writes an empty file", "[unit]") {
    TempDir dir("template");
    fs::path file = dir / "empty.conf";
    write_file_atomically(file, "", nullptr, k0600);
    CHECK(fs::exists(file));
    CHECK(fs::file_size(file) == 0);
}

TEST_CASE("write_file_atomically leaves no temporary file behind", "[unit]") {
    TempDir dir("template");
    write_file_atomically(dir / "a.conf", "a\n", nullptr, k0600);
    write_file_atomically(dir / "a.conf", "b\n", nullptr, k0600);
    CHECK_FALSE(has_leftover_temp_file(dir.path()));
}

TEST_CASE("write_file_atomically into a missing directory fails, naming the file", "[unit]") {
    TempDir dir("template");
    fs::path file = dir / "nosuch" / "postgresql.conf";
    try {
        write_file_atomically(file, "port = 5432\n", nullptr, k0600);
        FAIL("writing into a missing directory succeeded");
    } catch (const Error& e) {
        CHECK(e.code() == Exit::failure);
        CHECK_THAT(e.what(), Catch::Contains(file.string()));
    }
    CHECK_FALSE(fs::exists(dir / "nosuch"));
}

TEST_CASE("write_file_atomically that fails leaves the original file as it was", "[unit]") {
    TempDir dir("template");
    fs::path file = dir / "postgresql.conf";
    write_text(file, "original\n");

    SECTION("the file's name is taken by a directory (the rename fails)") {
        // Works whoever runs the tests, root included.
        fs::path taken = dir / "taken";
        fs::create_directory(taken);
        fs::create_directory(taken / "inside");
        CHECK_THROWS_AS(write_file_atomically(taken, "new\n", nullptr, k0600), Error);
        CHECK(fs::is_directory(taken / "inside"));
        CHECK(read_text_file(file) == "original\n");
        CHECK_FALSE(has_leftover_temp_file(dir.path()));
    }

    SECTION("the directory is not writable") {
        // As root, the directory is given to an ordinary user (nobody): a write there is done
        // with that user's rights, so the mode stops it as it stops anyone else.
        if (geteuid() == 0) {
            struct passwd* nobody = getpwnam("nobody");
            REQUIRE(nobody != nullptr);
            fs::permissions(dir.path(), fs::perms(0755));
            REQUIRE(chown(dir.path().c_str(), nobody->pw_uid, nobody->pw_gid) == 0);
            REQUIRE(chown(file.c_str(), nobody->pw_uid, nobody->pw_gid) == 0);
        }
        fs::permissions(dir.path(), fs::perms::owner_read | fs::perms::owner_exec);
        CHECK_THROWS_AS(write_file_atomically(file, "new\n", nullptr, k0600), Error);
        fs::permissions(dir.path(), fs::perms::owner_all);
        CHECK(read_text_file(file) == "original\n");
        CHECK_FALSE(has_leftover_temp_file(dir.path()));
    }
}

TEST_CASE("read_text_file reads a whole file and fails on a missing one", "[unit]") {
    TempDir dir("template");
    write_text(dir / "t", "line 1\nline 2");
    CHECK(read_text_file(dir / "t") == "line 1\nline 2");
    CHECK_THROWS_AS(read_text_file(dir / "missing"), Error);
}
