// Configuration files changed as a set: all or none, also after a kill; and PostgreSQL 15's
// start-time checks of settings that parse one by one.
#include "engine/conf/file_set.hpp"

#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <catch2/catch.hpp>

#include "engine/conf/parameters.hpp"
#include "engine/core/error.hpp"
#include "temp_dir.hpp"

namespace fs = std::filesystem;
using pgforge::Error;
using pgforge::read_text_file;
using pgforge::conf::FileSet;

namespace {

void put(const fs::path& file, const std::string& text) {
    std::ofstream(file, std::ios::binary) << text;
}

std::vector<std::string> names_in(const fs::path& dir) {
    std::vector<std::string> names;
    for (const auto& e : fs::directory_iterator(dir)) names.push_back(e.path().filename());
    std::sort(names.begin(), names.end());
    return names;
}

}  // namespace

TEST_CASE("a file set replaces every file, and rollback puts every one back", "[unit][file_set]") {
    pgforge::test::TempDir dir("fileset");
    put(dir / "a.conf", "old a\n");
    put(dir / "b.conf", "old b\n");
    fs::permissions(dir / "b.conf", fs::perms(0640));
    FileSet set(dir.path());
    set.add(dir / "a.conf", "new a\n", nullptr, fs::perms(0600));
    set.add(dir / "b.conf", "new b\n", nullptr, fs::perms(0600));
    set.add(dir / "c.conf", "new c\n", nullptr, fs::perms(0600));
    set.apply();
    CHECK(read_text_file(dir / "a.conf") == "new a\n");
    CHECK(read_text_file(dir / "c.conf") == "new c\n");
    CHECK((fs::status(dir / "b.conf").permissions() & fs::perms::all) == fs::perms(0640));
    CHECK(fs::exists(FileSet::manifest_path(dir.path())));
    SECTION("commit keeps them") {
        set.commit();
        CHECK(read_text_file(dir / "b.conf") == "new b\n");
        CHECK(names_in(dir.path()) == std::vector<std::string>{"a.conf", "b.conf", "c.conf"});
    }
    SECTION("rollback restores them") {
        set.rollback();
        CHECK(read_text_file(dir / "a.conf") == "old a\n");
        CHECK(read_text_file(dir / "b.conf") == "old b\n");
        CHECK((fs::status(dir / "b.conf").permissions() & fs::perms::all) == fs::perms(0640));
        CHECK(names_in(dir.path()) == std::vector<std::string>{"a.conf", "b.conf"});
        set.rollback();  // idempotent
        CHECK(!FileSet::recover(dir.path()));
    }
}

TEST_CASE("a set neither committed nor rolled back goes back when it is destroyed",
          "[unit][file_set]") {
    pgforge::test::TempDir dir("fileset");
    put(dir / "a.conf", "old a\n");
    {
        FileSet set(dir.path());
        set.add(dir / "a.conf", "new a\n", nullptr, fs::perms(0600));
        set.apply();
    }
    CHECK(read_text_file(dir / "a.conf") == "old a\n");
    CHECK(names_in(dir.path()) == std::vector<std::string>{"a.conf"});
}

TEST_CASE("recover undoes a set whose process was killed", "[unit][file_set]") {
    pgforge::test::TempDir dir("fileset");
    put(dir / "pg_hba.conf", "old hba\n");
    // Any bytes come back: NUL, line ends, no final newline.
    const std::string ident_before("old\0ident\r\n\n9\n12", 16);
    put(dir / "pg_ident.conf", ident_before);
    CHECK_FALSE(FileSet::recover(dir.path()));
    pid_t child = fork();
    REQUIRE(child >= 0);
    if (child == 0) {
        FileSet set(dir.path());
        set.add(dir / "pg_hba.conf", "new hba\n", nullptr, fs::perms(0600));
        set.add(dir / "pg_ident.conf", "new ident\n", nullptr, fs::perms(0600));
        set.add(dir / "extra.conf", "new\n", nullptr, fs::perms(0600));
        set.apply();
        kill(getpid(), SIGKILL);
        _exit(0);
    }
    int status = 0;
    REQUIRE(waitpid(child, &status, 0) == child);
    REQUIRE(WIFSIGNALED(status));
    REQUIRE(read_text_file(dir / "pg_hba.conf") == "new hba\n");
    put(dir / ".pgforge-stage-0123456789abcdef", "a file being put back when it was killed");
    CHECK(FileSet::recover(dir.path()));
    CHECK(read_text_file(dir / "pg_hba.conf") == "old hba\n");
    CHECK(read_text_file(dir / "pg_ident.conf") == ident_before);
    CHECK(names_in(dir.path()) == std::vector<std::string>{"pg_hba.conf", "pg_ident.conf"});
    CHECK_FALSE(FileSet::recover(dir.path()));
}

TEST_CASE("the next set removes the staged files a killed one left", "[unit][file_set]") {
    pgforge::test::TempDir dir("fileset");
    put(dir / "a.conf", "a\n");
    put(dir / ".pgforge-stage-00000000000000aa", "a manifest staged when it was killed");
    fs::create_symlink("/etc/passwd", dir / ".pgforge-stage-00000000000000bb");
    FileSet set(dir.path());
    set.add(dir / "a.conf", "b\n", nullptr, fs::perms(0600));
    set.apply();
    set.commit();
    CHECK(names_in(dir.path()) == std::vector<std::string>{"a.conf"});
    CHECK(fs::exists("/etc/passwd"));
}

TEST_CASE("a file set does not write through a link", "[unit][file_set]") {
    pgforge::test::TempDir dir("fileset");
    put(dir / "secret", "not for the owner\n");
    fs::create_symlink(dir / "secret", dir / "pg_ident.conf");
    FileSet set(dir.path());
    CHECK_THROWS_WITH(set.add(dir / "pg_ident.conf", "x\n", nullptr, fs::perms(0600)),
                      Catch::Contains("is a symbolic link"));
    CHECK(read_text_file(dir / "secret") == "not for the owner\n");
    CHECK(fs::is_symlink(dir / "pg_ident.conf"));
}

TEST_CASE("recover refuses a manifest it cannot trust", "[unit][file_set]") {
    pgforge::test::TempDir dir("fileset");
    put(dir / "a.conf", "a\n");
    SECTION("damaged") {
        put(FileSet::manifest_path(dir.path()), "pgforge-configure 1\n1\n999\n/etc/x\n");
        fs::permissions(FileSet::manifest_path(dir.path()), fs::perms(0600));
        CHECK_THROWS_WITH(FileSet::recover(dir.path()), Catch::Contains("is damaged"));
    }
    SECTION("writable by others") {
        put(FileSet::manifest_path(dir.path()), "pgforge-configure 1\n0\n");
        fs::permissions(FileSet::manifest_path(dir.path()), fs::perms(0666));
        CHECK_THROWS_WITH(FileSet::recover(dir.path()),
                          Catch::Contains("was not written by pgforge"));
    }
    SECTION("a symbolic link") {
        put(dir / "elsewhere", "pgforge-configure 1\n0\n");
        fs::create_symlink(dir / "elsewhere", FileSet::manifest_path(dir.path()));
        CHECK_THROWS_AS(FileSet::recover(dir.path()), Error);
    }
    CHECK(read_text_file(dir / "a.conf") == "a\n");
}

TEST_CASE("start-time conflicts of PostgreSQL 15 name both settings", "[unit][file_set]") {
    using pgforge::conf::start_time_conflicts;
    std::map<std::string, std::string> fine = {
        {"max_connections", "100"},   {"superuser_reserved_connections", "3"},
        {"wal_level", "replica"},     {"archive_mode", "off"},
        {"max_wal_senders", "10"},    {"autovacuum_max_workers", "3"},
        {"max_worker_processes", "8"}};
    CHECK(start_time_conflicts(fine).empty());
    auto minimal = fine;
    minimal["wal_level"] = "minimal";
    CHECK_THAT(start_time_conflicts(minimal),
               Catch::Contains("wal_level = minimal requires max_wal_senders = 0 (it is 10)"));
    minimal["max_wal_senders"] = "0";
    CHECK(start_time_conflicts(minimal).empty());
    minimal["archive_mode"] = "on";
    CHECK_THAT(start_time_conflicts(minimal), Catch::Contains("archive_mode = on"));
    auto reserved = fine;
    reserved["superuser_reserved_connections"] = "100";
    CHECK_THAT(start_time_conflicts(reserved),
               Catch::Contains("superuser_reserved_connections (100) must be less than "
                               "max_connections (100)"));
    auto wal = fine;
    wal["min_wal_size"] = "20MB";
    wal["max_wal_size"] = "1GB";
    CHECK(start_time_conflicts(wal).empty());  // the segment size unknown: no rule
    wal["wal_segment_size"] = "16MB";
    CHECK_THAT(start_time_conflicts(wal),
               Catch::Contains("min_wal_size (20MB) must be at least twice wal_segment_size "
                               "(16MB): set min_wal_size to 32MB or more"));
    wal["min_wal_size"] = "32MB";
    CHECK(start_time_conflicts(wal).empty());
    wal["max_wal_size"] = "31744kB";
    CHECK_THAT(start_time_conflicts(wal), Catch::Contains("max_wal_size (31744kB)"));
    auto many = fine;
    many["max_connections"] = "262143";
    CHECK_THAT(start_time_conflicts(many), Catch::Contains("lower max_connections"));
}
