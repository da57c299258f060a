// Crashes and signals in the middle of create, drop and configure (conf set, hba add), with the
// CLI binary in a child process: killed (SIGKILL) at each point of the fault injection build
// (PGFORGE_FAULT_INJECTION=ON, see engine/core/fault.hpp), or sent TERM/INT mid-initdb. Each
// time, running the same command again must succeed and converge: the instance runs, is in the
// inventory once, no stray directory, no password file anywhere under the site, and `instance
// list` shows no drift; a configure's files are as before it or as after it, never a mix.
#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <chrono>
#include <fstream>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>
#include <thread>

#include <functional>

#include "engine/conf/file_set.hpp"
#include "engine/core/fault.hpp"
#include "engine/inventory/inventory.hpp"
#include "engine/operations/instances.hpp"
#include "engine/pg/connection.hpp"
#include "tests/support/test_site.hpp"

namespace fs = std::filesystem;
using namespace pgforge;
using pgforge::test::TestSite;

namespace {

const std::string kPassword = "crash-test-Secret-4711";

struct Child {
    pid_t pid = -1;
    fs::path err_file;
};

struct Ended {
    bool killed = false;  // by a signal (SIGKILL from the fault point, or a second signal)
    int signal = 0;
    int status = 0;  // exit status when not killed
    std::string err;
};

// The CLI binary with this site's settings, `env` added to its environment.
Child spawn_cli(const TestSite& site, const std::vector<std::string>& args,
                const std::vector<std::string>& env = {}) {
    static int counter = 0;
    Child c;
    c.err_file = site.root() / ("stderr-" + std::to_string(++counter));
    std::vector<std::string> argv = {PGFORGE_CLI_PATH, "--settings", site.settings_file().string()};
    argv.insert(argv.end(), args.begin(), args.end());
    c.pid = fork();
    REQUIRE(c.pid >= 0);
    if (c.pid == 0) {
        int null = ::open("/dev/null", O_WRONLY);
        int err = ::open(c.err_file.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
        dup2(null, 1);
        dup2(err, 2);
        for (const auto& e : env) putenv(const_cast<char*>(e.c_str()));
        std::vector<char*> v;
        for (auto& a : argv) v.push_back(const_cast<char*>(a.c_str()));
        v.push_back(nullptr);
        execv(v[0], v.data());
        _exit(127);
    }
    return c;
}

Ended wait_cli(const Child& c) {
    int status = 0;
    while (waitpid(c.pid, &status, 0) < 0 && errno == EINTR) {
    }
    Ended e;
    e.killed = WIFSIGNALED(status);
    e.signal = e.killed ? WTERMSIG(status) : 0;
    e.status = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
    std::ifstream in(c.err_file);
    std::stringstream ss;
    ss << in.rdbuf();
    e.err = ss.str();
    fs::remove(c.err_file);
    return e;
}

Ended run_cli(const TestSite& site, const std::vector<std::string>& args,
              const std::vector<std::string>& env = {}) {
    return wait_cli(spawn_cli(site, args, env));
}

// The password file pgforge reads, outside the site.
struct PasswordFile {
    fs::path path;
    PasswordFile() {
        char tmpl[] = "/tmp/pgforge-crash-pw-XXXXXX";
        int fd = mkstemp(tmpl);
        REQUIRE(fd >= 0);
        std::string line = kPassword + "\n";
        REQUIRE(write(fd, line.data(), line.size()) == static_cast<ssize_t>(line.size()));
        close(fd);
        path = tmpl;
    }
    ~PasswordFile() {
        std::error_code ec;
        fs::remove(path, ec);
    }
};

// Files under the site holding the clear password (none may outlive a command).
std::vector<fs::path> files_with_password(const TestSite& site) {
    std::vector<fs::path> found;
    std::error_code ec;
    for (auto it = fs::recursive_directory_iterator(site.root(), ec);
         it != fs::recursive_directory_iterator(); it.increment(ec)) {
        std::error_code e2;
        if (!it->is_regular_file(e2) || it->file_size(e2) > (64u << 20)) continue;
        std::ifstream in(it->path(), std::ios::binary);
        std::string content((std::istreambuf_iterator<char>(in)), {});
        if (content.find(kPassword) != std::string::npos) found.push_back(it->path());
    }
    return found;
}

// Directories under the prefix, the run directory and the WAL directories' parent, two levels
// down (what an instance adds).
std::set<std::string> directories(const TestSite& site) {
    std::set<std::string> out;
    for (const char* top : {"prefix", "run", "wal"}) {
        fs::path base = site.root() / top;
        std::error_code ec;
        for (auto it = fs::recursive_directory_iterator(base, ec);
             it != fs::recursive_directory_iterator(); it.increment(ec)) {
            if (it.depth() >= 1) it.disable_recursion_pending();
            std::error_code e2;
            if (it->is_directory(e2) && !it->is_symlink(e2))
                out.insert(fs::relative(it->path(), site.root()).string());
        }
    }
    return out;
}

nlohmann::json list_json(const TestSite& site) {
    auto l = site.cli({"instance", "list", "--json"});
    REQUIRE(l.status == 0);
    return nlohmann::json::parse(l.out);
}

std::string show(const std::set<std::string>& dirs) {
    std::string out;
    for (const auto& d : dirs) out += " " + d;
    return out;
}

// "" when the instance runs, is listed once, nothing drifts and no password file is left; else
// what is wrong.
std::string converged(const TestSite& site, const std::string& name,
                      const std::set<std::string>& expected_dirs) {
    if (site.cli({"instance", "status", name}).status != 0) return "not running";
    int count = 0;
    for (const auto& item : list_json(site)) {
        if (!item["drift"].is_null()) return "drift: " + item.dump();
        if (item["name"] == name) ++count;
    }
    if (count != 1) return "listed " + std::to_string(count) + " times";
    if (auto d = directories(site); d != expected_dirs)
        return "directories:" + show(d) + " instead of" + show(expected_dirs);
    if (auto f = files_with_password(site); !f.empty()) return "password in " + f[0].string();
    return "";
}

// "" when no instance is left: no drift, no directory of it, no password file.
std::string gone(const TestSite& site, const std::set<std::string>& expected_dirs) {
    for (const auto& item : list_json(site))
        if (!item["drift"].is_null()) return "drift: " + item.dump();
    if (auto d = directories(site); d != expected_dirs)
        return "directories:" + show(d) + " instead of" + show(expected_dirs);
    if (auto f = files_with_password(site); !f.empty()) return "password in " + f[0].string();
    return "";
}

// The directories with the instance and without it, from a create and a drop never killed.
std::pair<std::set<std::string>, std::set<std::string>> baseline(
    const TestSite& site, const std::vector<std::string>& create) {
    REQUIRE(run_cli(site, create).status == 0);
    auto with_instance = directories(site);
    REQUIRE(run_cli(site, {"instance", "drop", "crash"}).status == 0);
    return {with_instance, directories(site)};
}

// How the last operation on `name` in the journal ended.
JournalEntry last_operation(const TestSite& site, const std::string& operation) {
    Inventory inv(site.settings().inventory_file());
    for (const auto& e : inv.journal("15/crash", 50))
        if (e.operation == operation) return e;
    return {};
}

// Without the kill points these tests cannot run: they fail, never pass by skipping. A build
// without -DPGFORGE_FAULT_INJECTION=ON leaves them out of CTest at configure time, saying so.
bool fault_injection_available() {
    if (fault_injection_built()) return true;
    FAIL(
        "built without PGFORGE_FAULT_INJECTION: configure with -DPGFORGE_FAULT_INJECTION=ON "
        "(scripts/test does) to run the crash tests");
    return false;
}

void wait_for(const std::function<bool()>& condition, double seconds = 60) {
    auto until = std::chrono::steady_clock::now() + std::chrono::milliseconds(long(seconds * 1000));
    while (!condition() && std::chrono::steady_clock::now() < until)
        std::this_thread::sleep_for(std::chrono::milliseconds(2));
}

// Kills create at the points [first, last] in turn; after each, the same create again must
// converge. Returns how many kills there were (the create ran to its end after the last).
int kill_create_at(int first, int last) {
    TestSite site;
    PasswordFile pw;
    // With a WAL directory of its own, which create makes and undoes too.
    const std::vector<std::string> create = {"instance",
                                             "create",
                                             "crash",
                                             "--superuser-password-file",
                                             pw.path.string(),
                                             "--waldir",
                                             (site.root() / "wal" / "crash").string()};
    const auto [with_instance, without] = baseline(site, create);
    int kills = 0, ok = 0;
    for (int point = first; point <= last; ++point) {
        auto killed = run_cli(site, create, {"PGFORGE_FAULT_KILL_AT=" + std::to_string(point)});
        if (!killed.killed) {
            // Past the last point: the create ran to its end.
            REQUIRE(killed.status == 0);
            REQUIRE(run_cli(site, {"instance", "drop", "crash"}).status == 0);
            break;
        }
        INFO("killed at: " << killed.err);
        REQUIRE(killed.signal == SIGKILL);
        ++kills;
        auto again = run_cli(site, create);
        INFO("create again: " << again.err);
        REQUIRE(again.status == 0);
        std::string problem = converged(site, "crash", with_instance);
        CHECK(problem == "");
        CHECK(last_operation(site, "create").outcome == "ok");
        if (problem.empty()) ++ok;
        REQUIRE(run_cli(site, {"instance", "drop", "crash"}).status == 0);
        CHECK(gone(site, without) == "");
    }
    WARN("create: kills at " << kills << " points (" << first << " to " << first + kills - 1
                             << "): " << ok << " converged");
    CHECK(ok == kills);
    return kills;
}

}  // namespace

// Two halves, each within the test time limit.
TEST_CASE("create killed at each of its first 10 points: the same create again converges",
          "[integration][crash][fault]") {
    if (!fault_injection_available()) return;
    CHECK(kill_create_at(1, 10) == 10);
}

TEST_CASE("create killed at each of its later points: the same create again converges",
          "[integration][crash][fault]") {
    if (!fault_injection_available()) return;
    CHECK(kill_create_at(11, 200) >= 8);
}

TEST_CASE("create killed at each point: a drop then leaves nothing behind",
          "[integration][crash][fault]") {
    if (!fault_injection_available()) return;
    TestSite site;
    const std::vector<std::string> create = {"instance", "create", "crash"};
    const auto without = baseline(site, create).second;
    int kills = 0, clean = 0;
    for (int point = 1; point < 200; ++point) {
        auto killed = run_cli(site, create, {"PGFORGE_FAULT_KILL_AT=" + std::to_string(point)});
        if (!killed.killed) {
            REQUIRE(killed.status == 0);
            REQUIRE(run_cli(site, {"instance", "drop", "crash"}).status == 0);
            break;
        }
        INFO("killed at: " << killed.err);
        ++kills;
        // The entry may not have been written yet: then there is nothing to drop (exit 4), and
        // instance list (in gone()) undoes what is left.
        auto drop = run_cli(site, {"instance", "drop", "crash"});
        INFO("drop: " << drop.err);
        CHECK((drop.status == 0 || drop.status == 4));
        std::string problem = gone(site, without);
        CHECK(problem == "");
        if (problem.empty()) ++clean;
    }
    WARN("create then drop: kills at " << kills << " points: " << clean << " left nothing");
    CHECK(kills >= 18);
    CHECK(clean == kills);
    // And the name is free again.
    REQUIRE(run_cli(site, create).status == 0);
}

TEST_CASE("drop killed at each point: the same drop again succeeds and leaves nothing",
          "[integration][crash][fault]") {
    if (!fault_injection_available()) return;
    TestSite site;
    const std::vector<std::string> create = {"instance", "create", "crash"};
    const std::vector<std::string> drop = {"instance", "drop", "crash"};
    const auto [with_instance, without] = baseline(site, create);
    REQUIRE(run_cli(site, create).status == 0);
    int kills = 0, ok = 0;
    for (int point = 1; point < 200; ++point) {
        auto killed = run_cli(site, drop, {"PGFORGE_FAULT_KILL_AT=" + std::to_string(point)});
        if (!killed.killed) {
            REQUIRE(killed.status == 0);
            break;
        }
        INFO("killed at: " << killed.err);
        ++kills;
        auto again = run_cli(site, drop);
        INFO("drop again: " << again.err);
        REQUIRE(again.status == 0);
        std::string problem = gone(site, without);
        CHECK(problem == "");
        CHECK(site.cli({"instance", "status", "crash"}).status == 4);
        if (problem.empty()) ++ok;
        auto re = run_cli(site, create);
        INFO("create again: " << re.err);
        REQUIRE(re.status == 0);
        CHECK(converged(site, "crash", with_instance) == "");
    }
    WARN("drop: kills at " << kills << " points: " << ok << " converged");
    CHECK(kills >= 8);
    CHECK(ok == kills);
}

TEST_CASE("drop killed at each point: the next start finishes it, or finds the instance whole",
          "[integration][crash][fault]") {
    if (!fault_injection_available()) return;
    TestSite site;
    const std::vector<std::string> create = {"instance", "create", "crash"};
    const std::vector<std::string> drop = {"instance", "drop", "crash"};
    const auto [with_instance, without] = baseline(site, create);
    REQUIRE(run_cli(site, create).status == 0);
    int kills = 0, finished = 0, whole = 0;
    for (int point = 1; point < 200; ++point) {
        auto killed = run_cli(site, drop, {"PGFORGE_FAULT_KILL_AT=" + std::to_string(point)});
        if (!killed.killed) {
            REQUIRE(killed.status == 0);
            break;
        }
        INFO("killed at: " << killed.err);
        ++kills;
        bool decided = false;
        {
            Inventory inv(site.settings().inventory_file());
            auto e = last_operation(site, "drop");
            REQUIRE(e.outcome.empty());
            for (const auto& st : inv.steps(e.id))
                decided = decided || (st.kind == "made" && st.name == "drop decided");
        }
        auto start = run_cli(site, {"instance", "start", "crash"});
        INFO("start: " << start.err);
        if (decided) {
            // Past pre_drop: the drop is finished, and start says the instance is gone.
            CHECK(start.status == 4);
            CHECK_THAT(start.err, Catch::Contains("drop was interrupted and has been finished"));
            std::string problem = gone(site, without);
            CHECK(problem == "");
            if (problem.empty() && start.status == 4) ++finished;
        } else {
            // Killed before anything was removed: the instance is whole and starts.
            CHECK(start.status == 0);
            std::string problem = converged(site, "crash", with_instance);
            CHECK(problem == "");
            if (problem.empty() && start.status == 0) ++whole;
            REQUIRE(run_cli(site, drop).status == 0);
        }
        CHECK(last_operation(site, "drop").outcome == "ok");
        REQUIRE(run_cli(site, create).status == 0);
    }
    WARN("drop then start: kills at " << kills << " points: " << finished << " finished, " << whole
                                      << " whole");
    CHECK(finished + whole == kills);
    CHECK(finished >= 5);
}

TEST_CASE("TERM or INT mid-initdb undoes the create (exit 8) and leaves no password file",
          "[integration][crash]") {
    TestSite site;
    PasswordFile pw;
    const std::vector<std::string> create = {"instance", "create", "crash",
                                             "--superuser-password-file", pw.path.string()};
    const auto without = baseline(site, create).second;
    const fs::path data = site.root() / "prefix" / "15" / "crash" / "data";
    for (int sig : {SIGTERM, SIGINT, SIGHUP}) {
        DYNAMIC_SECTION("signal " << strsignal(sig)) {
            auto child = spawn_cli(site, create);
            wait_for([&] { return fs::exists(data / "base"); });
            REQUIRE(fs::exists(data));
            kill(child.pid, sig);
            auto ended = wait_cli(child);
            INFO(ended.err);
            CHECK_FALSE(ended.killed);
            CHECK(ended.status == 8);
            CHECK_THAT(ended.err, Catch::Contains("interrupted"));
            // Undone at once, like a failure: nothing is left, not even for the next command.
            CHECK(directories(site) == without);
            CHECK(files_with_password(site).empty());
            auto e = last_operation(site, "create");
            CHECK(e.outcome == "failed");
            CHECK_THAT(e.message, Catch::Contains("interrupted"));
            auto again = run_cli(site, create);
            INFO(again.err);
            REQUIRE(again.status == 0);
            CHECK(files_with_password(site).empty());
            REQUIRE(run_cli(site, {"instance", "drop", "crash"}).status == 0);
        }
    }
}

TEST_CASE(
    "kill -9 mid-initdb: the initdb left running is ended, a start never runs it, and "
    "create or drop afterwards converge",
    "[integration][crash]") {
    TestSite site;
    PasswordFile pw;
    const std::vector<std::string> create = {"instance", "create", "crash",
                                             "--superuser-password-file", pw.path.string()};
    const auto [with_instance, without] = baseline(site, create);
    const fs::path data = site.root() / "prefix" / "15" / "crash" / "data";
    for (const std::string next : {"create", "start", "drop"}) {
        DYNAMIC_SECTION("then " << next) {
            auto child = spawn_cli(site, create);
            wait_for([&] { return fs::exists(data / "base"); });
            REQUIRE(fs::exists(data));
            kill(child.pid, SIGKILL);
            REQUIRE(wait_cli(child).killed);
            if (next == "create") {
                auto again = run_cli(site, create);
                INFO(again.err);
                REQUIRE(again.status == 0);
                CHECK(converged(site, "crash", with_instance) == "");
                REQUIRE(run_cli(site, {"instance", "drop", "crash"}).status == 0);
            } else if (next == "start") {
                // A half-created instance is undone, never started on initdb's configuration.
                auto start = run_cli(site, {"instance", "start", "crash"});
                INFO(start.err);
                CHECK(start.status == 4);
                CHECK_THAT(start.err, Catch::Contains("interrupted and has been undone"));
                CHECK(gone(site, without) == "");
            } else {
                auto drop = run_cli(site, {"instance", "drop", "crash"});
                INFO(drop.err);
                CHECK(drop.status == 0);
                CHECK(gone(site, without) == "");
            }
            // initdb went on alone after its parent's death: it must not write there any more.
            std::this_thread::sleep_for(std::chrono::milliseconds(500));
            CHECK_FALSE(fs::exists(data));
            REQUIRE(run_cli(site, create).status == 0);
            CHECK(converged(site, "crash", with_instance) == "");
            REQUIRE(run_cli(site, {"instance", "drop", "crash"}).status == 0);
        }
    }
}

TEST_CASE("TERM once the server runs: the undo stops it to the end, not cut short by the signal",
          "[integration][crash]") {
    TestSite site;
    const std::vector<std::string> create = {"instance", "create", "crash"};
    const auto without = baseline(site, create).second;
    // A post_start site hook that takes its time, so that the signal comes after the start.
    fs::path hooks = site.root() / "hooks";
    fs::create_directories(hooks / "post_start.d");
    fs::permissions(hooks, fs::perms(0755));
    fs::permissions(hooks / "post_start.d", fs::perms(0755));
    fs::path hook = hooks / "post_start.d" / "10-slow";
    std::ofstream(hook) << "#!/bin/sh\nsleep 3\n";
    fs::permissions(hook, fs::perms(0755));
    site.add_settings("[hooks]\ndir = " + hooks.string());
    const fs::path data = site.root() / "prefix" / "15" / "crash" / "data";

    auto child = spawn_cli(site, create);
    long postmaster = 0;
    wait_for([&] {
        std::ifstream pid(data / "postmaster.pid");
        std::string line, status;
        if (!std::getline(pid, line)) return false;
        for (int k = 2; k <= 8 && std::getline(pid, status); ++k) {
        }
        postmaster = std::atol(line.c_str());
        return status.find("ready") != std::string::npos;
    });
    REQUIRE(postmaster > 0);
    // Past the start's own wait: in the hook.
    std::this_thread::sleep_for(std::chrono::milliseconds(700));
    kill(child.pid, SIGTERM);
    auto ended = wait_cli(child);
    INFO(ended.err);
    CHECK(ended.status == 8);
    CHECK(kill(static_cast<pid_t>(postmaster), 0) != 0);
    CHECK(gone(site, without) == "");
    // Each undo ran to its end: the server was stopped by its own undo, not by a later one.
    Inventory inv(site.settings().inventory_file());
    auto e = last_operation(site, "create");
    CHECK(e.outcome == "failed");
    std::vector<std::string> undos;
    for (const auto& st : inv.steps(e.id))
        if (st.kind == "undo") {
            undos.push_back(st.name);
            CHECK(st.outcome == "ok");
            CHECK(st.message == "");
        }
    CHECK(undos == std::vector<std::string>{"server start",
                                            "instance directory " + data.parent_path().string(),
                                            "inventory entry"});
    CHECK(run_cli(site, create).status == 0);
}

TEST_CASE("INT while waiting for the instance lock gives up at once (exit 8)",
          "[integration][crash]") {
    TestSite site;
    REQUIRE(site.cli({"instance", "create", "crash", "--state", "stopped"}).status == 0);
    // A long lock wait.
    std::string settings;
    {
        std::ifstream in(site.settings_file());
        std::stringstream ss;
        ss << in.rdbuf();
        settings = ss.str();
    }
    auto at = settings.find("lock_timeout = 1\n");
    REQUIRE(at != std::string::npos);
    settings.replace(at, 16, "lock_timeout = 120");
    std::ofstream(site.settings_file()) << settings;
    FileLock held(site.settings().lock_file("15", "crash"), std::chrono::milliseconds(100), "test");
    auto child = spawn_cli(site, {"instance", "start", "crash"});
    std::this_thread::sleep_for(std::chrono::milliseconds(500));
    auto began = std::chrono::steady_clock::now();
    kill(child.pid, SIGINT);
    auto ended = wait_cli(child);
    INFO(ended.err);
    CHECK(ended.status == 8);
    CHECK(std::chrono::steady_clock::now() - began < std::chrono::seconds(10));
    CHECK(site.cli({"instance", "status", "crash"}).status == 3);
}

TEST_CASE("a second signal ends at once; the next create finishes the undo",
          "[integration][crash]") {
    TestSite site;
    PasswordFile pw;
    const std::vector<std::string> create = {"instance", "create", "crash",
                                             "--superuser-password-file", pw.path.string()};
    const auto without = baseline(site, create).second;
    const fs::path data = site.root() / "prefix" / "15" / "crash" / "data";
    auto child = spawn_cli(site, create);
    wait_for([&] { return fs::exists(data / "base"); });
    kill(child.pid, SIGTERM);
    kill(child.pid, SIGTERM);
    auto ended = wait_cli(child);
    INFO(ended.err);
    CHECK((ended.status == 8 || ended.status == 128 + SIGTERM));
    auto again = run_cli(site, create);
    INFO(again.err);
    REQUIRE(again.status == 0);
    CHECK(files_with_password(site).empty());
    REQUIRE(run_cli(site, {"instance", "drop", "crash"}).status == 0);
    CHECK(directories(site) == without);
}

TEST_CASE("killed during the undo of an interrupted create: the next create converges",
          "[integration][crash][fault]") {
    if (!fault_injection_available()) return;
    TestSite site;
    PasswordFile pw;
    const std::vector<std::string> create = {"instance", "create", "crash",
                                             "--superuser-password-file", pw.path.string()};
    const auto without = baseline(site, create).second;
    const fs::path data = site.root() / "prefix" / "15" / "crash" / "data";
    // TERM mid-initdb starts the undo; the kill comes when only the entry is left to remove.
    auto child =
        spawn_cli(site, create, {"PGFORGE_FAULT_KILL_AT=create:undo inventory entry:before"});
    wait_for([&] { return fs::exists(data / "base"); });
    kill(child.pid, SIGTERM);
    auto ended = wait_cli(child);
    INFO(ended.err);
    REQUIRE(ended.killed);
    CHECK(last_operation(site, "create").outcome.empty());
    auto again = run_cli(site, create);
    INFO(again.err);
    REQUIRE(again.status == 0);
    CHECK(files_with_password(site).empty());
    REQUIRE(run_cli(site, {"instance", "drop", "crash"}).status == 0);
    CHECK(directories(site) == without);
}

namespace {

const fs::path fixtures = PGFORGE_TEST_PLUGIN_DIR;

// A running instance "crash" with the recorder plugin, whose contributions at pre_configure (a
// parameter, an HBA record and the ident mapping it names) change with each round: so that every
// configure of a round changes postgresql.conf, pg_hba.conf and pg_ident.conf together.
struct ConfigureSite {
    TestSite site;
    std::string base;
    fs::path data;
    mutable int rounds = 0;  // each round's contributions are new

    ConfigureSite() {
        std::ifstream in(site.settings_file());
        base.assign(std::istreambuf_iterator<char>(in), {});
        round(0);
        REQUIRE(run_cli(site, {"instance", "create", "crash"}).status == 0);
        data = site.root() / "prefix" / "15" / "crash" / "data";
        REQUIRE(fs::exists(data / "postgresql.conf"));
    }
    void round(int r) const {
        const std::string n = std::to_string(r);
        std::ofstream out(site.settings_file(), std::ios::trunc);
        out << base << "\n[plugins]\npath = " << (fixtures / "recorder").string()
            << "\nenabled = recorder\n[recorder]\nparameter = idle_in_transaction_session_timeout="
            << 1000 + r << "s\nhba = local all crash_r" << n << " peer map=crashmap" << n
            << "\nident = crashmap" << n << " " << test::expected_owner() << " crash_r" << n
            << "\n";
    }
};

using Files = std::map<std::string, std::string>;

Files conf_files(const fs::path& data) {
    Files files;
    for (const char* name : {"postgresql.conf", "pg_hba.conf", "pg_ident.conf"}) {
        std::ifstream in(data / name);
        files[name].assign(std::istreambuf_iterator<char>(in), {});
    }
    return files;
}

// Which files differ between two snapshots.
std::string differ(const Files& a, const Files& b) {
    std::string out;
    for (const auto& [name, text] : a)
        if (b.at(name) != text) out += " " + name;
    return out.empty() ? " none" : out;
}

// "" when no manifest nor staged file of a configure is left in the data directory.
std::string leftovers(const fs::path& data) {
    std::string out;
    if (fs::exists(conf::FileSet::manifest_path(data))) out += " manifest";
    for (const auto& entry : fs::directory_iterator(data))
        if (entry.path().filename().string().rfind(".pgforge-stage-", 0) == 0)
            out += " " + entry.path().filename().string();
    return out;
}

// "" when the server accepts connections and runs on its files (nothing pending a restart, no
// line it refused); else what is wrong.
std::string server_agrees(const TestSite& site) {
    try {
        Context ctx(site.settings());
        pg::Connection c(instances::get(ctx, "crash"));
        auto one = [&](const std::string& sql) {
            return c.exec(sql).rows.at(0).at(0).value_or("NULL");
        };
        if (auto n = one("SELECT count(*) FROM pg_settings WHERE pending_restart"); n != "0")
            return n + " settings pending a restart";
        if (auto n = one("SELECT count(*) FROM pg_file_settings WHERE error IS NOT NULL"); n != "0")
            return n + " settings in error";
        if (auto n = one("SELECT count(*) FROM pg_hba_file_rules WHERE error IS NOT NULL");
            n != "0")
            return n + " HBA records in error";
        return "";
    } catch (const std::exception& e) {
        return std::string("no connection: ") + e.what();
    }
}

// "" when `instance history` shows every operation ended (none running or unfinished).
std::string history_ended(const TestSite& site) {
    auto h = site.cli({"instance", "history", "crash", "--limit", "6", "--json"});
    if (h.status != 0) return "history: " + h.err;
    for (const auto& e : nlohmann::json::parse(h.out))
        if (e["outcome"] != "ok" && e["outcome"] != "failed") return "not ended: " + e.dump();
    return "";
}

enum class Then { same, start_stop };

struct Counts {
    int kills = 0, converged = 0, put_back = 0;
};

// Runs `command(round)` killed at each point in turn (a round per point); after each kill the
// next command is the same one again (Then::same), or `instance stop` or `start` first
// (Then::start_stop, alternately), then the same one. `refused`: the server refuses the change,
// so the command fails cleanly (exit 2) with the files as before.
Counts kill_configure_at_each_point(const ConfigureSite& s,
                                    const std::function<std::vector<std::string>(int)>& command,
                                    bool refused, Then then) {
    Counts c;
    for (int point = 1; point < 60; ++point) {
        const int round = ++s.rounds;
        s.round(round);
        const auto cmd = command(round);
        const Files before = conf_files(s.data);
        auto killed = run_cli(s.site, cmd, {"PGFORGE_FAULT_KILL_AT=" + std::to_string(point)});
        if (!killed.killed) {
            // Past the last point: the command ran to its end.
            INFO(killed.err);
            REQUIRE(killed.status == (refused ? 2 : 0));
            if (refused) CHECK(conf_files(s.data) == before);
            break;
        }
        ++c.kills;
        INFO("killed at: " << killed.err);
        REQUIRE(killed.signal == SIGKILL);
        const bool manifest = fs::exists(conf::FileSet::manifest_path(s.data));
        const Files raw = conf_files(s.data);
        Files mid = raw;  // the files as the next command left them
        std::string next_agrees;
        if (then == Then::start_stop) {
            const char* next = round % 2 ? "start" : "stop";
            auto n = run_cli(s.site, {"instance", next, "crash"});
            INFO("instance " << next << ": " << n.err);
            CHECK(n.status == 0);
            mid = conf_files(s.data);
            CHECK(leftovers(s.data) == "");
            CHECK(history_ended(s.site) == "");
            // A manifest means the set was half way: it is put back as it was.
            if (manifest) CHECK(differ(mid, before) == " none");
            if (manifest && mid == before) ++c.put_back;
            if (std::string(next) == "stop")
                REQUIRE(run_cli(s.site, {"instance", "start", "crash"}).status == 0);
            // The server runs on the files as they are now.
            next_agrees = server_agrees(s.site);
            CHECK(next_agrees == "");
        } else if (manifest) {
            ++c.put_back;
        }
        auto again = run_cli(s.site, cmd);
        INFO("the same command again: " << again.err);
        CHECK(again.status == (refused ? 2 : 0));
        const Files after = conf_files(s.data);
        if (refused) CHECK(differ(after, before) == " none");
        // Never a mix: as before, or as after (when killed past the set's writes).
        INFO("as left: differs from before in" << differ(mid, before) << ", from after in"
                                               << differ(mid, after));
        // (Straight after the kill, a set half way is mixed on disk, with its manifest: the next
        // command puts it back before anything else.)
        const bool whole = (then == Then::same && manifest) || mid == before || mid == after;
        CHECK(whole);
        if (!manifest) CHECK((raw == before || raw == after));
        std::string problem = next_agrees;
        if (problem.empty()) problem = leftovers(s.data);
        if (problem.empty()) problem = server_agrees(s.site);
        if (problem.empty()) problem = history_ended(s.site);
        CHECK(problem == "");
        if (problem.empty() && again.status == (refused ? 2 : 0) && whole) ++c.converged;
    }
    return c;
}

std::vector<std::string> conf_set(int round) {
    return {"conf", "set", "-i", "crash", "work_mem=" + std::to_string(4096 + round) + "kB"};
}

std::vector<std::string> conf_set_restart(int round) {
    return {"conf",  "set",       "-i",
            "crash", "--restart", "shared_buffers=" + std::to_string(128 + round) + "MB"};
}

std::vector<std::string> hba_add(int round) {
    return {"hba",          "add", "-i",  "crash",
            "host",         "all", "all", "10." + std::to_string(round) + ".0.0/16",
            "scram-sha-256"};
}

std::vector<std::string> hba_add_refused(int round) {
    return {"hba",  "add", "-i",  "crash",
            "host", "all", "all", "10." + std::to_string(round) + ".0.0/16",
            "sspi"};
}

}  // namespace

TEST_CASE("conf set killed at each point: the same conf set again converges",
          "[integration][crash][fault][configure]") {
    if (!fault_injection_available()) return;
    ConfigureSite s;
    auto c = kill_configure_at_each_point(s, conf_set, false, Then::same);
    WARN("conf set: kills at " << c.kills << " points: " << c.converged << " converged ("
                               << c.put_back << " with the set half way)");
    CHECK(c.kills >= 14);
    CHECK(c.converged == c.kills);
}

TEST_CASE("conf set --restart killed at each point: the same conf set again converges",
          "[integration][crash][fault][configure]") {
    if (!fault_injection_available()) return;
    ConfigureSite s;
    auto c = kill_configure_at_each_point(s, conf_set_restart, false, Then::same);
    WARN("conf set --restart: kills at " << c.kills << " points: " << c.converged << " converged ("
                                         << c.put_back << " with the set half way)");
    CHECK(c.kills >= 16);
    CHECK(c.converged == c.kills);
}

TEST_CASE("hba add killed at each point: the same hba add again converges",
          "[integration][crash][fault][configure]") {
    if (!fault_injection_available()) return;
    ConfigureSite s;
    auto c = kill_configure_at_each_point(s, hba_add, false, Then::same);
    WARN("hba add: kills at " << c.kills << " points: " << c.converged << " converged ("
                              << c.put_back << " with the set half way)");
    CHECK(c.kills >= 14);
    CHECK(c.converged == c.kills);
}

TEST_CASE("instance apply killed at each point: the same apply again converges",
          "[integration][crash][fault][configure][apply]") {
    if (!fault_injection_available()) return;
    ConfigureSite s;
    // Each round a new setting value and a new record: one configure of both files.
    auto apply = [&](int round) {
        const fs::path file = s.site.root() / "apply.yaml";
        std::ofstream(file, std::ios::trunc)
            << "name: crash\nsettings:\n  work_mem: " << 4096 + round << "kB\nhba:\n  - \"host all "
            << "all 10." << round << ".0.0/16 scram-sha-256\"\n";
        return std::vector<std::string>{"instance", "apply", "-f", file.string()};
    };
    auto c = kill_configure_at_each_point(s, apply, false, Then::same);
    WARN("instance apply: kills at " << c.kills << " points: " << c.converged << " converged ("
                                     << c.put_back << " with the set half way)");
    CHECK(c.kills >= 14);
    CHECK(c.converged == c.kills);
}

TEST_CASE("hba add of a record the server refuses, killed at each point: it fails cleanly again",
          "[integration][crash][fault][configure]") {
    if (!fault_injection_available()) return;
    ConfigureSite s;
    auto c = kill_configure_at_each_point(s, hba_add_refused, true, Then::same);
    WARN("hba add (refused): kills at " << c.kills << " points: " << c.converged << " converged ("
                                        << c.put_back << " with the set half way)");
    CHECK(c.kills >= 14);
    CHECK(c.converged == c.kills);
}

TEST_CASE(
    "conf set, conf set --restart and hba add killed at each point: the next start or stop puts "
    "the files back",
    "[integration][crash][fault][configure]") {
    if (!fault_injection_available()) return;
    ConfigureSite s;
    for (const std::string which : {"conf set", "conf set --restart", "hba add"}) {
        auto c = kill_configure_at_each_point(s,
                                              which == "conf set"             ? conf_set
                                              : which == "conf set --restart" ? conf_set_restart
                                                                              : hba_add,
                                              false, Then::start_stop);
        WARN(which << " then start or stop: kills at " << c.kills << " points: " << c.converged
                   << " converged (" << c.put_back << " put back by start or stop)");
        CHECK(c.kills >= 14);
        CHECK(c.put_back >= 6);
        CHECK(c.converged == c.kills);
    }
}

namespace {

// The data checksums of instance "crash" as pg_controldata reads them.
bool checksums_on(const TestSite& site) {
    auto r = site.cli({"--json", "instance", "checksums", "crash", "status"});
    REQUIRE(r.status == 0);
    return nlohmann::json::parse(r.out)["data_checksums"].get<bool>();
}

// `instance checksums crash enable|disable` (turning them the other way each round) killed at
// each point in turn; after each kill the next command is the same one again, which must
// succeed: the server runs again if it ran before (stopped if it was stopped), the checksums are
// as asked, every journal entry ended. Returns the kills and how many converged.
std::pair<int, int> kill_checksums_at_each_point(const TestSite& site, bool was_running) {
    int kills = 0, ok = 0;
    for (int point = 1; point < 60; ++point) {
        const bool want = !checksums_on(site);
        const std::vector<std::string> cmd = {"instance", "checksums", "crash",
                                              want ? "enable" : "disable"};
        auto killed = run_cli(site, cmd, {"PGFORGE_FAULT_KILL_AT=" + std::to_string(point)});
        if (!killed.killed) {
            INFO(killed.err);
            REQUIRE(killed.status == 0);
            CHECK(checksums_on(site) == want);
            break;
        }
        ++kills;
        INFO("killed at: " << killed.err);
        REQUIRE(killed.signal == SIGKILL);
        // Whole either way: as before or as asked (pg_checksums writes the control file last).
        auto again = run_cli(site, cmd);
        INFO("the same command again: " << again.err);
        CHECK(again.status == 0);
        std::string problem;
        if ((site.cli({"instance", "status", "crash"}).status == 0) != was_running)
            problem = was_running ? "not running" : "running";
        if (problem.empty() && checksums_on(site) != want) problem = "checksums not as asked";
        if (problem.empty()) {
            auto get = site.cli({"--json", "instance", "get", "crash"});
            if (nlohmann::json::parse(get.out)["options"].value("data_checksums", !want) != want)
                problem = "instance get does not say the checksums as they are";
        }
        if (problem.empty()) problem = history_ended(site);
        CHECK(problem == "");
        if (problem.empty() && again.status == 0) ++ok;
    }
    return {kills, ok};
}

}  // namespace

TEST_CASE("checksums killed at each point: the same command again converges, the server as it was",
          "[integration][crash][fault][checksums]") {
    if (!fault_injection_available()) return;
    TestSite site;
    REQUIRE(run_cli(site, {"instance", "create", "crash"}).status == 0);
    auto [kills, ok] = kill_checksums_at_each_point(site, true);
    WARN("checksums on a running instance: kills at " << kills << " points: " << ok
                                                      << " converged");
    CHECK(kills >= 12);
    CHECK(ok == kills);

    REQUIRE(run_cli(site, {"instance", "stop", "crash"}).status == 0);
    auto [stopped_kills, stopped_ok] = kill_checksums_at_each_point(site, false);
    WARN("checksums on a stopped instance: kills at " << stopped_kills << " points: " << stopped_ok
                                                      << " converged");
    CHECK(stopped_kills >= 4);
    CHECK(stopped_ok == stopped_kills);
}

TEST_CASE("checksums killed with the server stopped: any next command on it starts it again",
          "[integration][crash][fault][checksums]") {
    if (!fault_injection_available()) return;
    TestSite site;
    REQUIRE(run_cli(site, {"instance", "create", "crash"}).status == 0);
    for (const char* where : {"checksums:pg_checksums:before", "checksums:pg_checksums:after"}) {
        INFO(where);
        auto killed = run_cli(site, {"instance", "checksums", "crash", "enable"},
                              {std::string("PGFORGE_FAULT_KILL_AT=") + where});
        REQUIRE(killed.killed);
        REQUIRE(site.cli({"instance", "status", "crash"}).status == 3);
        // A command that takes the lock (here a conf set) resumes the operation first.
        auto next = run_cli(site, {"conf", "set", "-i", "crash", "work_mem=5MB"});
        INFO(next.err);
        CHECK(next.status == 0);
        CHECK(site.cli({"instance", "status", "crash"}).status == 0);
        auto e = last_operation(site, "checksums");
        CHECK(e.outcome == "failed");
        CHECK_THAT(e.message, Catch::Contains("was started again"));
        CHECK(last_operation(site, "start").outcome == "ok");
        CHECK(history_ended(site) == "");
        // Killed before pg_checksums ran: off; after: on. Never half.
        CHECK(checksums_on(site) == (std::string(where).find("after") != std::string::npos));
        if (checksums_on(site))
            REQUIRE(run_cli(site, {"instance", "checksums", "crash", "disable"}).status == 0);
    }
}

namespace {

// The pids of pg_checksums processes working on `data_dir` (their command line names it).
std::vector<pid_t> pg_checksums_on(const fs::path& data_dir) {
    std::vector<pid_t> pids;
    std::error_code ec;
    for (const auto& entry : fs::directory_iterator("/proc", ec)) {
        const std::string name = entry.path().filename().string();
        if (name.empty() || name.find_first_not_of("0123456789") != std::string::npos) continue;
        // A process may end while it is read (ESRCH): it is not running pg_checksums then.
        std::string cmdline;
        try {
            std::ifstream in(entry.path() / "cmdline");
            cmdline.assign(std::istreambuf_iterator<char>(in), {});
        } catch (const std::exception&) {
            continue;
        }
        if (cmdline.find("pg_checksums") != std::string::npos &&
            cmdline.find(data_dir.string()) != std::string::npos)
            pids.push_back(static_cast<pid_t>(std::stol(name)));
    }
    return pids;
}

}  // namespace

TEST_CASE("checksums killed while pg_checksums runs: it dies too, the next command converges",
          "[integration][crash][checksums]") {
    TestSite site;
    REQUIRE(run_cli(site, {"instance", "create", "crash"}).status == 0);
    // Enough data for pg_checksums to take a while.
    REQUIRE(run_cli(site, {"database", "run", "-i", "crash",
                           "CREATE TABLE filler AS SELECT g, repeat('x', 500) AS t "
                           "FROM generate_series(1, 300000) g"})
                .status == 0);
    const fs::path data = site.root() / "prefix" / "15" / "crash" / "data";
    int killed_mid_run = 0;
    for (int round = 0; round < 2; ++round) {
        const bool want = !checksums_on(site);
        const std::vector<std::string> cmd = {"instance", "checksums", "crash",
                                              want ? "enable" : "disable"};
        Child child = spawn_cli(site, cmd);
        wait_for([&] { return !pg_checksums_on(data).empty(); }, 30);
        const bool mid_run = !pg_checksums_on(data).empty();
        kill(child.pid, SIGKILL);
        auto ended = wait_cli(child);
        INFO("round " << round << ": " << ended.err);
        if (mid_run && ended.killed) ++killed_mid_run;
        // pg_checksums dies with pgforge: nothing writes in the data directory behind the next
        // command's back.
        wait_for([&] { return pg_checksums_on(data).empty(); }, 10);
        CHECK(pg_checksums_on(data).empty());
        // Whatever was left: as before or as asked, never half; the next command starts the
        // server and the same command again converges.
        auto again = run_cli(site, cmd);
        INFO("again: " << again.err);
        CHECK(again.status == 0);
        CHECK(site.cli({"instance", "status", "crash"}).status == 0);
        CHECK(checksums_on(site) == want);
        CHECK(history_ended(site) == "");
    }
    WARN("checksums: killed " << killed_mid_run << " of 2 times while pg_checksums ran");
    CHECK(killed_mid_run >= 1);
}

TEST_CASE("standby create killed at each point: the same create again streams, one slot",
          "[integration][crash][fault][replication]") {
    if (!fault_injection_available()) return;
    TestSite site;
    REQUIRE(run_cli(site, {"instance", "create", "main"}).status == 0);
    const std::vector<std::string> create = {"instance", "create", "crash", "--standby-for",
                                             "15/main"};
    Instance primary;
    {
        Context ctx(site.settings());
        primary = instances::get(ctx, "main");
    }
    auto slots = [&] {
        pg::Connection c(primary);
        auto r = c.exec(
            "SELECT string_agg(slot_name, ',' ORDER BY slot_name) FROM "
            "pg_replication_slots");
        return r.rows.empty() || !r.rows[0][0] ? std::string() : *r.rows[0][0];
    };
    int kills = 0, ok = 0;
    for (int point = 1; point < 200; ++point) {
        auto killed = run_cli(site, create, {"PGFORGE_FAULT_KILL_AT=" + std::to_string(point)});
        if (!killed.killed) {
            REQUIRE(killed.status == 0);
            break;
        }
        INFO("killed at: " << killed.err);
        ++kills;
        auto again = run_cli(site, create);
        INFO("create again: " << again.err);
        REQUIRE(again.status == 0);
        bool good = slots() == "crash";
        CHECK(slots() == "crash");
        {
            Context ctx(site.settings());
            Instance standby = instances::get(ctx, "crash");
            pg::Connection c(standby);
            auto r = c.exec("SELECT status FROM pg_stat_wal_receiver");
            bool streaming = !r.rows.empty() && r.rows[0][0] && *r.rows[0][0] == "streaming";
            CHECK(streaming);
            good = good && streaming;
        }
        if (good) ++ok;
        REQUIRE(run_cli(site, {"instance", "drop", "crash"}).status == 0);
        CHECK(slots() == "");
    }
    WARN("standby create: kills at " << kills << " points: " << ok << " converged");
    CHECK(kills >= 15);
    CHECK(ok == kills);
}
