// postmaster.pid, the server's account of itself; and the small process and file helpers used
// beside it (whether a pid is alive, the tail of a log).
#include "engine/pg/postmaster_pid.hpp"

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <string>

#include "temp_dir.hpp"

using pgforge::parse_postmaster_pid;
using pgforge::process_exists;
using pgforge::read_postmaster_pid;
using pgforge::tail_file;
using pgforge::test::TempDir;
using pgforge::test::write_text;

namespace {

// What PostgreSQL 15 writes once it accepts connections (the status is padded with spaces so
// that it can be rewritten in place).
const std::string kReadyPg15 =
    "4888\n/data\n1732249781\n5432\n/run/pgforge/15-main\nlocalhost\n  5432001  32768\nready   \n";

std::string with_status(const std::string& status) {
    return "4888\n/data\n1732249781\n5432\n/run/pgforge/15-main\nlocalhost\n  5432001  32768\n" +
           status + "\n";
}

}  // namespace

TEST_CASE("parse_postmaster_pid reads every line of a ready PostgreSQL 15 server", "[unit]") {
    auto pm = parse_postmaster_pid(kReadyPg15);
    REQUIRE(pm);
    CHECK(pm->pid == 4888);
    CHECK(pm->data_dir == "/data");
    CHECK(pm->start_time == 1732249781L);
    CHECK(pm->port == 5432);
    CHECK(pm->socket_dir == "/run/pgforge/15-main");
    CHECK(pm->listen_addresses == "localhost");
}

TEST_CASE("parse_postmaster_pid reads the status line of a ready server, without its padding",
          "[unit]") {
    auto pm = parse_postmaster_pid(kReadyPg15);
    REQUIRE(pm);
    CHECK(pm->status == "ready");
}

TEST_CASE("parse_postmaster_pid reads the other states a server reports", "[unit]") {
    const char* state = GENERATE("starting", "stopping", "standby");
    INFO("state: " << state);
    auto pm = parse_postmaster_pid(with_status(std::string(state) + "    "));
    REQUIRE(pm);
    CHECK(pm->status == state);
}

TEST_CASE("parse_postmaster_pid gives nothing for a file still being written", "[unit]") {
    CHECK_FALSE(parse_postmaster_pid(""));
    CHECK_FALSE(parse_postmaster_pid("4888\n/data\n"));
    CHECK_FALSE(parse_postmaster_pid("4888\n/data\n1732249781\n"));
}

TEST_CASE("parse_postmaster_pid gives nothing when the pid is not a number", "[unit]") {
    CHECK_FALSE(parse_postmaster_pid("abc\n/data\n1732249781\n5432\n"));
    CHECK_FALSE(parse_postmaster_pid("48x8\n/data\n1732249781\n5432\n"));
    CHECK_FALSE(parse_postmaster_pid("\n/data\n1732249781\n5432\n"));
    CHECK_FALSE(parse_postmaster_pid("0\n/data\n1732249781\n5432\n"));
    CHECK_FALSE(parse_postmaster_pid("-4888\n/data\n1732249781\n5432\n"));
}

TEST_CASE("parse_postmaster_pid reads a pre-10 file, which has no status line", "[unit]") {
    // PostgreSQL 9.6: seven lines, the last being the shared memory key.
    auto pm = parse_postmaster_pid("4888\n/data\n1732249781\n5432\n/tmp\n*\n  5432001  32768\n");
    REQUIRE(pm);
    CHECK(pm->pid == 4888);
    CHECK(pm->port == 5432);
    CHECK(pm->socket_dir == "/tmp");
    CHECK(pm->listen_addresses == "*");
    CHECK(pm->status.empty());
}

TEST_CASE("parse_postmaster_pid reads the first four lines when they are all there is", "[unit]") {
    auto pm = parse_postmaster_pid("4888\n/data\n1732249781\n5432\n");
    REQUIRE(pm);
    CHECK(pm->pid == 4888);
    CHECK(pm->port == 5432);
    CHECK(pm->socket_dir.empty());
    CHECK(pm->status.empty());
}

TEST_CASE("read_postmaster_pid reads <data_dir>/postmaster.pid, and nothing when it is absent",
          "[unit]") {
    TempDir dir("pmpid");
    CHECK_FALSE(read_postmaster_pid(dir.path()));
    write_text(dir / "postmaster.pid", kReadyPg15);
    auto pm = read_postmaster_pid(dir.path());
    REQUIRE(pm);
    CHECK(pm->pid == 4888);
    CHECK(pm->status == "ready");
}

TEST_CASE("tail_file gives the last N lines of a file that ends with a newline", "[unit]") {
    TempDir dir("tail");
    write_text(dir / "log", "one\ntwo\nthree\nfour\n");
    CHECK(tail_file(dir / "log", 2) == "three\nfour");
    CHECK(tail_file(dir / "log", 1) == "four");
}

TEST_CASE("tail_file gives the last N lines of a file without a final newline", "[unit]") {
    TempDir dir("tail");
    write_text(dir / "log", "one\ntwo\nthree\nfour");
    CHECK(tail_file(dir / "log", 2) == "three\nfour");
    CHECK(tail_file(dir / "log", 1) == "four");
}

TEST_CASE("tail_file gives the whole file when it has fewer lines than asked", "[unit]") {
    TempDir dir("tail");
    write_text(dir / "log", "one\ntwo\n");
    CHECK(tail_file(dir / "log", 2) == "one\ntwo");
    CHECK(tail_file(dir / "log", 10) == "one\ntwo");
}

TEST_CASE("tail_file counts an empty first line as a line", "[unit]") {
    TempDir dir("tail");
    write_text(dir / "log", "\nsecond\nthird\n");
    CHECK(tail_file(dir / "log", 2) == "second\nthird");
    CHECK(tail_file(dir / "log", 3) == "\nsecond\nthird");
}

TEST_CASE("tail_file gives nothing when asked for no lines", "[unit]") {
    TempDir dir("tail");
    write_text(dir / "log", "one\ntwo\n");
    std::string tail;
    CHECK_NOTHROW(tail = tail_file(dir / "log", 0));
    CHECK(tail.empty());
}

TEST_CASE("tail_file gives an empty string for an empty or missing file", "[unit]") {
    TempDir dir("tail");
    write_text(dir / "empty", "");
    CHECK(tail_file(dir / "empty", 5).empty());
    CHECK(tail_file(dir / "missing", 5).empty());
}

TEST_CASE("tail_file reads the end of a file larger than its read window", "[unit]") {
    TempDir dir("tail");
    std::string big;
    for (int k = 0; k < 20000; ++k) big += "line " + std::to_string(k) + "\n";
    write_text(dir / "log", big);
    CHECK(tail_file(dir / "log", 3) == "line 19997\nline 19998\nline 19999");
}

TEST_CASE("process_exists is true for this very process", "[unit]") {
    CHECK(process_exists(getpid()));
}

TEST_CASE("process_exists is false for a child that has exited and been reaped", "[unit]") {
    pid_t child = fork();
    REQUIRE(child >= 0);
    if (child == 0) _exit(0);
    int status = 0;
    REQUIRE(waitpid(child, &status, 0) == child);
    CHECK_FALSE(process_exists(child));
}

TEST_CASE("process_exists is false for pids that name no process", "[unit]") {
    CHECK_FALSE(process_exists(0));
    CHECK_FALSE(process_exists(-1));
}

TEST_CASE("process_exists says a zombie has exited, before its parent reaps it",
          "[unit][postmaster_pid]") {
    pid_t child = fork();
    if (child == 0) _exit(0);
    // Not reaped yet: the child stays a zombie until waitpid below.
    for (int k = 0; k < 200 && pgforge::process_exists(child); ++k) usleep(1000);
    CHECK_FALSE(pgforge::process_exists(child));
    CHECK(kill(child, 0) == 0);  // the kernel still has it
    int status = 0;
    waitpid(child, &status, 0);
}
