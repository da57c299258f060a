// Running programs: the user switch (groups included), the built environment, a program run
// through its descriptor, the process group and the death signal, and an interruption.
#include <fcntl.h>
#include <grp.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <chrono>
#include <fstream>
#include <set>
#include <sstream>
#include <thread>

#include "engine/core/error.hpp"
#include "engine/core/interrupt.hpp"
#include "engine/core/process.hpp"
#include "temp_dir.hpp"

namespace fs = std::filesystem;
using namespace pgforge;
using pgforge::test::ScopedEnv;
using pgforge::test::TempDir;
using pgforge::test::write_text;

namespace {

std::set<gid_t> numbers(const std::string& text) {
    std::set<gid_t> out;
    std::istringstream in(text);
    for (long n; in >> n;) out.insert(static_cast<gid_t>(n));
    return out;
}

std::set<std::string> lines(const std::string& text) {
    std::set<std::string> out;
    std::istringstream in(text);
    for (std::string line; std::getline(in, line);) out.insert(line);
    return out;
}

// The process is gone, or a zombie nobody has reaped yet (what init does in its own time).
bool gone(pid_t pid) {
    std::ifstream stat("/proc/" + std::to_string(pid) + "/stat");
    std::string text;
    if (!std::getline(stat, text)) return true;
    auto close = text.rfind(')');
    return close != std::string::npos && close + 2 < text.size() && text[close + 2] == 'Z';
}

bool gone_within(pid_t pid, std::chrono::milliseconds limit) {
    auto until = std::chrono::steady_clock::now() + limit;
    while (!gone(pid)) {
        if (std::chrono::steady_clock::now() > until) return false;
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    return true;
}

pid_t read_pid(const fs::path& file, std::chrono::milliseconds limit) {
    auto until = std::chrono::steady_clock::now() + limit;
    for (;;) {
        std::ifstream in(file);
        long pid = 0;
        if (in >> pid && pid > 1) return static_cast<pid_t>(pid);
        if (std::chrono::steady_clock::now() > until) return 0;
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
}

// A directory every user may write in (a program run as postgres leaves its pid there).
struct SharedDir {
    TempDir dir{"process"};
    SharedDir() { fs::permissions(dir.path(), fs::perms(01777)); }
    fs::path operator/(const std::string& name) const { return dir / name; }
};

// The handlers of engine/core/interrupt.hpp for one test, then the default ones again.
struct InterruptHandlers {
    struct sigaction saved[3]{};
    static constexpr int signals[3] = {SIGINT, SIGTERM, SIGHUP};
    InterruptHandlers() {
        for (int k = 0; k < 3; ++k) sigaction(signals[k], nullptr, &saved[k]);
        clear_interrupt();
        install_interrupt_handlers();
    }
    ~InterruptHandlers() {
        for (int k = 0; k < 3; ++k) sigaction(signals[k], &saved[k], nullptr);
        clear_interrupt();
    }
};

}  // namespace

TEST_CASE("a program run as another user has that user's groups and none of pgforge's") {
    Command c;
    c.argv = {"/usr/bin/id", "-G"};
    if (geteuid() != 0) {
        // Not root: no switch, the program has our own groups.
        auto r = run_process(c);
        REQUIRE(r.ok());
        std::vector<gid_t> ours(static_cast<size_t>(getgroups(0, nullptr)));
        getgroups(static_cast<int>(ours.size()), ours.data());
        std::set<gid_t> expected(ours.begin(), ours.end());
        expected.insert(getegid());
        CHECK(numbers(r.out) == expected);
        return;
    }
    OsUser postgres = lookup_os_user("postgres");
    c.as = &postgres;
    // Give this (root) process a supplementary group postgres is not in, for the time of the
    // test: a child that kept root's groups would show it.
    std::vector<gid_t> saved(static_cast<size_t>(getgroups(0, nullptr)));
    getgroups(static_cast<int>(saved.size()), saved.data());
    const gid_t planted = 4242;
    std::vector<gid_t> with_planted = saved;
    with_planted.push_back(planted);
    REQUIRE(setgroups(with_planted.size(), with_planted.data()) == 0);
    ProcessResult r;
    try {
        r = run_process(c);
    } catch (...) {
        setgroups(saved.size(), saved.data());
        throw;
    }
    setgroups(saved.size(), saved.data());
    REQUIRE(r.ok());
    std::set<gid_t> expected(postgres.groups.begin(), postgres.groups.end());
    expected.insert(postgres.gid);
    CHECK(numbers(r.out) == expected);
    CHECK(numbers(r.out).count(planted) == 0);
    CHECK(numbers(r.out).count(0) == expected.count(0));
}

TEST_CASE("a program gets a built environment, never pgforge's own") {
    ScopedEnv password("PGPASSWORD", std::string("secret-password"));
    ScopedEnv token("SOME_TOKEN", std::string("secret-token"));
    ScopedEnv pgforge_var("PGFORGE_SETTINGS", std::string("/secret/settings.ini"));
    ScopedEnv path("PATH", std::string("/root/bin:/usr/bin:/bin"));
    ScopedEnv lang("LANG", std::string("C.UTF-8"));
    ScopedEnv messages("LC_MESSAGES", std::string("C"));
    ScopedEnv fake_locale("LC_SECRET", std::string("secret-lc"));
    ScopedEnv tz("TZ", std::string("UTC"));
    ScopedEnv term("TERM", std::string("xterm-test"));

    Command c;
    c.argv = {"/usr/bin/env"};
    c.env = {"PGDATA=/data", "PGPORT=5999", "DATA_SOURCE_NAME=host=/run", "LC_MESSAGES"};
    OsUser postgres;
    if (geteuid() == 0) {
        postgres = lookup_os_user("postgres");
        c.as = &postgres;
    }
    auto r = run_process(c);
    REQUIRE(r.ok());
    auto env = lines(r.out);
    CHECK(r.out.find("secret") == std::string::npos);
    CHECK(env.count(std::string("PATH=") + default_path) == 1);
    CHECK(env.count("PGDATA=/data") == 1);
    CHECK(env.count("PGPORT=5999") == 1);
    CHECK(env.count("DATA_SOURCE_NAME=host=/run") == 1);
    CHECK(env.count("LANG=C.UTF-8") == 1);
    CHECK(env.count("TZ=UTC") == 1);
    CHECK(r.out.find("LC_MESSAGES=") == std::string::npos);  // unset by the caller
    CHECK(r.out.find("TERM=") == std::string::npos);         // not a terminal program
    if (geteuid() == 0) {
        CHECK(env.count("HOME=" + postgres.home.string()) == 1);
        CHECK(env.count("USER=postgres") == 1);
        CHECK(env.count("LOGNAME=postgres") == 1);
    }
    CHECK(child_environment(c).size() == env.size());

    // A program the user runs at their terminal keeps the terminal's variables, nothing more.
    c.inherit = terminal_variables;
    auto interactive = lines(run_process(c).out);
    CHECK(interactive.count("TERM=xterm-test") == 1);
    CHECK(interactive.size() == env.size() + 1);
}

TEST_CASE("a program run through its descriptor is the file opened, binary or script") {
    TempDir dir("exec-fd");
    fs::path script = dir / "hook";
    write_text(script, "#!/bin/sh\necho \"checked $1\"\n");
    fs::permissions(script, fs::perms(0755));
    int fd = ::open(script.c_str(), O_RDONLY | O_CLOEXEC);
    REQUIRE(fd >= 0);
    // The name now points to another file: what runs is still the one opened.
    fs::path other = dir / "other";
    write_text(other, "#!/bin/sh\necho \"swapped $1\"\n");
    fs::permissions(other, fs::perms(0755));
    fs::rename(other, script);

    Command c;
    c.argv = {script.string(), "arg"};
    c.exec_fd = fd;
    OsUser postgres;
    if (geteuid() == 0) {
        postgres = lookup_os_user("postgres");
        c.as = &postgres;
        fs::permissions(dir.path(), fs::perms(0755));
    }
    auto r = run_process(c);
    CHECK(r.err == "");
    CHECK(r.out == "checked arg\n");
    // Detached too (site hooks run to completion, servers and exporters detach).
    fs::path log = dir / "detached.log";
    if (geteuid() == 0) fs::permissions(dir.path(), fs::perms(01777));
    pid_t pid = spawn_detached(c, log);
    int status = 0;
    REQUIRE(waitpid(pid, &status, 0) == pid);
    std::ifstream in(log);
    std::string said((std::istreambuf_iterator<char>(in)), {});
    CHECK(said == "checked arg\n");
    ::close(fd);

    // A binary: its descriptor is closed by the exec; ls sees the same descriptors of its own
    // as when it is run by path.
    Command ls;
    ls.argv = {"/bin/ls", "/proc/self/fd"};
    auto by_path = run_process(ls);
    int bin = ::open("/bin/ls", O_RDONLY | O_CLOEXEC);
    REQUIRE(bin >= 0);
    ls.exec_fd = bin;
    auto by_fd = run_process(ls);
    ::close(bin);
    REQUIRE(by_fd.ok());
    CHECK(by_fd.out == by_path.out);
}

TEST_CASE("a program holds no descriptor of pgforge's but its three streams") {
    TempDir dir("program-fds");
    // As a caller of pgforge may leave one open (root's, for a program run as the owner).
    int inherited = ::open("/dev/null", O_RDONLY);
    REQUIRE(inherited >= 0);
    Command ls;
    ls.argv = {"/bin/ls", "/proc/self/fd"};
    // 0, 1 and 2, and the directory ls opened to list them: neither pgforge's descriptors (the
    // /dev/null and the log given on those streams) nor the inherited one.
    const std::set<std::string> streams{"0", "1", "2", "3"};
    auto r = run_process(ls);
    REQUIRE(r.ok());
    CHECK(lines(r.out) == streams);
    fs::path log = dir / "fds.log";
    pid_t pid = spawn_detached(ls, log);
    int status = 0;
    REQUIRE(waitpid(pid, &status, 0) == pid);
    std::ifstream in(log);
    std::string said((std::istreambuf_iterator<char>(in)), {});
    CHECK(lines(said) == streams);
    ::close(inherited);
}

TEST_CASE("a program's standard error reaches on_stderr as it comes, and the result too") {
    Command c;
    // The second piece is written after the first was seen: it streams, not at the end.
    const fs::path seen =
        fs::temp_directory_path() / ("pgforge-stderr-" + std::to_string(getpid()));
    c.argv = {"/bin/sh", "-c",
              "echo one >&2; i=0; while [ ! -e " + seen.string() +
                  " ] && [ $i -lt 100 ]; do sleep 0.05; i=$((i+1)); done; echo two >&2; echo out"};
    std::string pieces;
    c.on_stderr = [&](std::string_view piece) {
        pieces += piece;
        if (pieces.find("one\n") != std::string::npos) std::ofstream(seen).flush();
    };
    auto r = run_process(c);
    std::error_code ec;
    const bool streamed = fs::exists(seen, ec);
    fs::remove(seen, ec);
    CHECK(r.ok());
    CHECK(streamed);
    CHECK(pieces == "one\ntwo\n");
    CHECK(r.err == pieces);
    CHECK(r.out == "out\n");
}

TEST_CASE("a large input to a program that writes before it reads does not deadlock") {
    // The program fills its output pipe before it reads a byte of its input: pgforge must read
    // while it writes. Run in a child with an alarm, so that a deadlock fails instead of hanging.
    pid_t pid = fork();
    REQUIRE(pid >= 0);
    if (pid == 0) {
        alarm(20);
        Command c;
        c.argv = {"/bin/sh", "-c", "head -c 262144 /dev/zero; wc -c >&2"};
        c.input.assign(1 << 20, 'x');
        c.timeout = 15;
        auto r = run_process(c);
        bool good = r.ok() && r.out.size() == 262144 && r.err.find("1048576") != std::string::npos;
        _exit(good ? 0 : 3);
    }
    int status = 0;
    REQUIRE(waitpid(pid, &status, 0) == pid);
    INFO("status " << status);
    CHECK(WIFEXITED(status));
    CHECK(WEXITSTATUS(status) == 0);
}

TEST_CASE("a signal while a program runs kills its process group and throws interrupted") {
    SharedDir dir;
    InterruptHandlers handlers;
    Command c;
    // The program starts another one in its process group and waits.
    c.argv = {"/bin/sh", "-c", "sleep 30 & echo $! > " + (dir / "sleep.pid").string() + "; wait"};
    OsUser postgres;
    if (geteuid() == 0) {
        postgres = lookup_os_user("postgres");
        c.as = &postgres;
    }
    std::thread signaller([&] {
        read_pid(dir / "sleep.pid", std::chrono::seconds(10));
        raise(SIGTERM);  // delivered to this thread: the handler records it
    });
    auto began = std::chrono::steady_clock::now();
    int code = 0;
    try {
        run_process(c);
    } catch (const Error& e) {
        code = static_cast<int>(e.code());
    }
    signaller.join();
    CHECK(code == static_cast<int>(Exit::interrupted));
    CHECK(std::chrono::steady_clock::now() - began < std::chrono::seconds(5));
    pid_t sleeper = read_pid(dir / "sleep.pid", std::chrono::seconds(1));
    REQUIRE(sleeper > 0);
    CHECK(gone_within(sleeper, std::chrono::seconds(2)));

    // After the signal, what the undo runs runs to its end.
    Command undo;
    undo.argv = {"/bin/sh", "-c", "sleep 0.2; echo undone"};
    auto r = run_process(undo);
    CHECK(r.ok());
    CHECK(r.out == "undone\n");
}

TEST_CASE("a program dies with pgforge") {
    SharedDir dir;
    pid_t helper = fork();
    REQUIRE(helper >= 0);
    if (helper == 0) {
        // A pgforge that runs a long program, then is killed.
        Command c;
        c.argv = {"/bin/sh", "-c",
                  "echo $$ > " + (dir / "program.pid").string() + "; exec sleep 30"};
        OsUser postgres;
        if (geteuid() == 0) {
            postgres = lookup_os_user("postgres");
            c.as = &postgres;
        }
        try {
            run_process(c);
        } catch (...) {
        }
        _exit(0);
    }
    pid_t program = read_pid(dir / "program.pid", std::chrono::seconds(10));
    REQUIRE(program > 0);
    kill(helper, SIGKILL);
    int status = 0;
    waitpid(helper, &status, 0);
    bool died = gone_within(program, std::chrono::seconds(3));
    if (!died) kill(program, SIGKILL);
    CHECK(died);
}
