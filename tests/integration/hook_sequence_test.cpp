// One path: every operation that changes an instance runs the hook points of its row in the
// hook sequence table of docs/plugins.md, in that order, for plugins and site hooks alike, on a
// real server. An operation without a row (or a row without an operation) fails the test.
#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <catch2/catch.hpp>
#include <chrono>
#include <fstream>
#include <functional>
#include <map>
#include <sstream>
#include <thread>

#include "engine/core/fault.hpp"
#include "engine/inventory/inventory.hpp"
#include "engine/operations/instances.hpp"
#include "engine/pipeline/plugin_host.hpp"
#include "tests/support/test_site.hpp"

namespace fs = std::filesystem;
using namespace pgforge;
using pgforge::test::TestSite;

namespace {

const fs::path fixtures = PGFORGE_TEST_PLUGIN_DIR;
const char* const points[] = {"pre_init",  "post_init",  "pre_configure", "post_configure",
                              "pre_start", "post_start", "pre_stop",      "post_stop",
                              "pre_drop",  "post_drop",  "pre_promote",   "post_promote"};

// The `quoted` words of a Markdown table cell.
std::vector<std::string> quoted_words(const std::string& cell) {
    std::vector<std::string> words;
    for (size_t k = cell.find('`'); k != std::string::npos; k = cell.find('`', k)) {
        size_t end = cell.find('`', k + 1);
        if (end == std::string::npos) break;
        words.push_back(cell.substr(k + 1, end - k - 1));
        k = end + 1;
    }
    return words;
}

// The table between the hook-sequence markers of docs/plugins.md: the operation is the first
// quoted word of a row, its sequence the quoted hook points of the second cell.
std::map<std::string, std::vector<std::string>> documented_table() {
    fs::path doc = fs::path(PGFORGE_SOURCE_DIR) / "docs" / "plugins.md";
    std::ifstream in(doc);
    REQUIRE(in.good());
    std::map<std::string, std::vector<std::string>> table;
    bool inside = false;
    for (std::string line; std::getline(in, line);) {
        if (line.find("<!-- hook-sequence: begin -->") != std::string::npos) inside = true;
        if (line.find("<!-- hook-sequence: end -->") != std::string::npos) inside = false;
        if (!inside || line.rfind("| `", 0) != 0) continue;
        std::stringstream cells(line.substr(1));
        std::string op, seq;
        std::getline(cells, op, '|');
        std::getline(cells, seq, '|');
        std::vector<std::string> list;
        for (const auto& w : quoted_words(seq))
            if (std::find(std::begin(points), std::end(points), w) != std::end(points))
                list.push_back(w);
        INFO(line);
        REQUIRE_FALSE(quoted_words(op).empty());
        table[quoted_words(op).front()] = list;
    }
    REQUIRE_FALSE(table.empty());
    return table;
}

struct SequenceSite {
    TestSite site;
    SequenceSite() {
        fs::create_directories(out());
        fs::permissions(out(), fs::perms(0777));
        fs::create_directories(site.root() / "hooks");
        fs::permissions(site.root() / "hooks", fs::perms(0755));
        for (const char* point : points) {
            fs::path d = site.root() / "hooks" / (std::string(point) + ".d");
            fs::create_directories(d);
            fs::permissions(d, fs::perms(0755));
            // A recording site hook, run as the instance's owner.
            std::ofstream(d / "record")
                << "#!/bin/sh\necho \"$PGFORGE_HOOK $PGFORGE_OPERATION\" >> " << hook_log().string()
                << "\n";
            fs::permissions(d / "record", fs::perms(0755));
        }
        std::ifstream in(site.settings_file());
        base.assign(std::istreambuf_iterator<char>(in), {});
        recorder("");
        clear();
    }
    std::string base;
    // Rewrites the settings: the recorder enabled, with `settings` in its section.
    void recorder(const std::string& settings) const {
        std::ofstream(site.settings_file(), std::ios::trunc)
            << base << "\n[plugins]\npath = " << (fixtures / "recorder").string()
            << "\nenabled = recorder\n[hooks]\ndir = " << (site.root() / "hooks").string()
            << "\ntimeout = 20\n[recorder]\nlog = " << plugin_log().string() << "\n"
            << settings;
    }
    fs::path out() const { return site.root() / "out"; }
    fs::path plugin_log() const { return out() / "recorder.log"; }
    fs::path hook_log() const { return out() / "hooks.log"; }
    void clear() const {
        for (const fs::path& f : {plugin_log(), hook_log()}) {
            std::ofstream(f, std::ios::trunc).flush();
            fs::permissions(f, fs::perms(0666));
        }
    }
    // The points recorded for `operation` (by the plugin, or by the site hooks).
    std::vector<std::string> recorded(bool plugin, const std::string& operation) const {
        std::ifstream in(plugin ? plugin_log() : hook_log());
        std::vector<std::string> seen;
        for (std::string line; std::getline(in, line);) {
            std::string point, rest;
            if (plugin) {
                // "recorder POINT OPERATION WORDS... 15/NAME ok"
                auto a = line.find(' '), b = line.find(' ', a + 1);
                point = line.substr(a + 1, b - a - 1);
                rest = line.substr(b + 1);
                auto inst = rest.find(" 15/");
                rest = rest.substr(0, inst);
            } else {
                auto a = line.find(' ');
                point = line.substr(0, a);
                rest = line.substr(a + 1);
            }
            if (rest == operation) seen.push_back(point);
        }
        return seen;
    }
    TestSite::Output cli(const std::vector<std::string>& args) const { return site.cli(args); }
    bool running(const std::string& name) const {
        Context ctx(site.settings());
        return instances::status(ctx, instances::get(ctx, name)).running;
    }
};

// `pgforge instance start --foreground NAME` as a child process (it becomes the server).
pid_t spawn_foreground(const SequenceSite& s, const std::string& name) {
    pid_t pid = fork();
    if (pid == 0) {
        int null = open("/dev/null", O_RDWR);
        dup2(null, 1);
        dup2(null, 2);
        execl(PGFORGE_CLI_PATH, PGFORGE_CLI_PATH, "--settings", s.site.settings_file().c_str(),
              "instance", "start", "--foreground", name.c_str(), static_cast<char*>(nullptr));
        _exit(127);
    }
    return pid;
}

}  // namespace

TEST_CASE("every operation runs the hook points of its row in docs/plugins.md, in order",
          "[hook-sequence]") {
    SequenceSite s;
    const auto table = documented_table();
    const std::string n = "seq";
    // How each operation is run, and the name it is journaled and handed to handlers under.
    struct Run {
        std::string journaled;
        std::function<void()> run;
        std::function<void()> after = {};  // once its sequence is checked
    };
    std::map<std::string, Run> runs = {
        {"create",
         {"create",
          [&] {
              REQUIRE(s.cli({"instance", "create", n}).status == 0);
          }}},
        {"create --standby-for",
         {"create",
          [&] {
              auto r = s.cli({"instance", "create", "seqs", "--standby-for", n});
              INFO(r.err);
              REQUIRE(r.status == 0);
          },
          [&] {
              REQUIRE(s.cli({"instance", "drop", "seqs"}).status == 0);
          }}},
        {"stop",
         {"stop",
          [&] {
              REQUIRE(s.cli({"instance", "stop", n}).status == 0);
          }}},
        {"start",
         {"start",
          [&] {
              REQUIRE(s.cli({"instance", "start", n}).status == 0);
          }}},
        {"restart",
         {"restart",
          [&] {
              REQUIRE(s.cli({"instance", "restart", n}).status == 0);
          }}},
        {"reload",
         {"reload",
          [&] {
              REQUIRE(s.cli({"instance", "reload", n}).status == 0);
          }}},
        {"configure",
         {"configure",
          [&] {
              REQUIRE(s.cli({"conf", "set", "-i", n, "work_mem=5MB"}).status == 0);
          }}},
        {"configure --restart",
         {"configure",
          [&] {
              auto r = s.cli({"conf", "set", "-i", n, "max_connections=42", "--restart"});
              INFO(r.err);
              REQUIRE(r.status == 0);
          }}},
        {"checksums",
         {"checksums",
          [&] {
              auto r = s.cli({"instance", "checksums", n, "enable"});
              INFO(r.err);
              REQUIRE(r.status == 0);
          }}},
        {"start --foreground",
         {"start --foreground",
          [&] {
              REQUIRE(s.cli({"instance", "stop", n}).status == 0);
              pid_t pid = spawn_foreground(s, n);
              auto until = std::chrono::steady_clock::now() + std::chrono::seconds(30);
              while (!s.running(n) && std::chrono::steady_clock::now() < until)
                  std::this_thread::sleep_for(std::chrono::milliseconds(20));
              REQUIRE(s.running(n));
              // The foreground server is stopped as any other (its own operation, not recorded
              // under this row).
              REQUIRE(s.cli({"instance", "stop", n}).status == 0);
              int status = 0;
              waitpid(pid, &status, 0);
          }}},
        {"upgrade",
         {"upgrade",
          [&] {
              // The same version (the only one installed): the new instance needs its name.
              auto r = s.cli({"instance", "upgrade", n, "--name", n + "_up", "--no-analyze"});
              INFO(r.err);
              REQUIRE(r.status == 0);
          }}},
        // A standby of the instance, promoted: the instance is then diverged, and rebuilt.
        {"promote",
         {"promote",
          [&] {
              REQUIRE(s.cli({"instance", "start", n}).status == 0);
              auto r = s.cli({"instance", "create", "seqs", "--standby-for", n});
              INFO(r.err);
              REQUIRE(r.status == 0);
              r = s.cli({"instance", "promote", "seqs"});
              INFO(r.err);
              REQUIRE(r.status == 0);
          }}},
        {"rebuild",
         {"rebuild",
          [&] {
              auto r = s.cli({"instance", "rebuild", n, "--from", "seqs"});
              INFO(r.err);
              REQUIRE(r.status == 0);
          }}},
        {"drop",
         {"drop",
          [&] {
              REQUIRE(s.cli({"instance", "drop", n}).status == 0);
          }}},
    };
    // Every operation has a row and a way to run it here; every row is an operation.
    for (const auto& op : instances::operation_names()) {
        INFO("operation " << op);
        CHECK(table.count(op) == 1);
        CHECK(runs.count(op) == 1);
    }
    for (const auto& [row, _] : table) {
        INFO("row " << row);
        const auto& ops = instances::operation_names();
        CHECK(std::find(ops.begin(), ops.end(), row) != ops.end());
    }
    // In this order each starts from the state the one before left.
    for (const std::string op : {"create", "create --standby-for", "stop", "start", "restart",
                                 "reload", "configure", "configure --restart", "checksums",
                                 "start --foreground", "upgrade", "promote", "rebuild", "drop"}) {
        INFO("operation " << op);
        REQUIRE(runs.count(op));
        REQUIRE(table.count(op));
        s.clear();
        runs.at(op).run();
        CHECK(s.recorded(true, runs.at(op).journaled) == table.at(op));
        CHECK(s.recorded(false, runs.at(op).journaled) == table.at(op));
        if (runs.at(op).after) runs.at(op).after();
    }
}

TEST_CASE("configure --restart asks a pre_start site hook; its refusal puts the files back",
          "[hook-sequence]") {
    SequenceSite s;
    REQUIRE(s.cli({"instance", "create", "cr"}).status == 0);
    fs::path refuse = s.site.root() / "hooks" / "pre_start.d" / "refuse";
    std::ofstream(refuse) << "#!/bin/sh\necho 'no starts today' >&2\nexit 1\n";
    fs::permissions(refuse, fs::perms(0755));
    Context ctx(s.site.settings());
    Instance i = instances::get(ctx, "cr");
    auto before = [&] {
        std::ifstream in(i.data_dir / "postgresql.conf");
        return std::string(std::istreambuf_iterator<char>(in), {});
    }();
    auto r = s.cli({"conf", "set", "-i", "cr", "max_connections=41", "--restart"});
    CHECK(r.status == 1);
    CHECK_THAT(r.err,
               Catch::Contains("refused at pre_start by site hook hooks/pre_start.d/refuse"));
    CHECK_THAT(r.err, Catch::Contains("no starts today"));
    CHECK_THAT(r.err, Catch::Contains("the server is stopped"));
    // The stop ran with its hooks, the start was refused: files as before, server stopped.
    CHECK(s.recorded(true, "configure") == std::vector<std::string>{"pre_configure",
                                                                    "post_configure", "pre_stop",
                                                                    "post_stop", "pre_start"});
    std::ifstream in(i.data_dir / "postgresql.conf");
    CHECK(std::string(std::istreambuf_iterator<char>(in), {}) == before);
    CHECK_FALSE(s.running("cr"));
    auto entry = ctx.inventory().journal(i.qualified_name()).at(0);
    CHECK(entry.operation == "configure");
    CHECK(entry.outcome == "failed");
    fs::remove(refuse);
}

TEST_CASE("a post_drop failure on a real instance: dropped, entry gone, failure reported",
          "[hook-sequence]") {
    SequenceSite s;
    REQUIRE(s.cli({"instance", "create", "pd"}).status == 0);
    fs::path fail = s.site.root() / "hooks" / "post_drop.d" / "fail";
    std::ofstream(fail) << "#!/bin/sh\necho 'cannot archive' >&2\nexit 2\n";
    fs::permissions(fail, fs::perms(0755));
    Context ctx(s.site.settings());
    Instance i = instances::get(ctx, "pd");
    auto r = s.cli({"instance", "drop", "pd"});
    CHECK(r.status == 1);
    CHECK_THAT(r.err, Catch::Contains("instance " + i.qualified_name() + " was dropped, but"));
    CHECK_THAT(r.err, Catch::Contains("cannot archive"));
    CHECK_FALSE(fs::exists(i.base_dir));
    auto list = s.cli({"instance", "list"});
    CHECK(list.out.find("pd") == std::string::npos);
    // A second drop does not find it.
    CHECK(s.cli({"instance", "drop", "pd"}).status == 4);
    fs::remove(fail);
}

TEST_CASE(
    "configure --restart: a pre_stop refusal puts the files back on the running server, "
    "a post_start refusal keeps the files it runs on",
    "[hook-sequence]") {
    SequenceSite s;
    REQUIRE(s.cli({"instance", "create", "cs"}).status == 0);
    Context ctx(s.site.settings());
    Instance i = instances::get(ctx, "cs");
    auto conf_text = [&] {
        std::ifstream in(i.data_dir / "postgresql.conf");
        return std::string(std::istreambuf_iterator<char>(in), {});
    };
    const std::string before = conf_text();

    s.recorder("refuse = pre_stop\n");
    auto r = s.cli({"conf", "set", "-i", "cs", "max_connections=39", "--restart"});
    CHECK(r.status == 1);
    CHECK_THAT(r.err, Catch::Contains("refused at pre_stop by plugin recorder"));
    CHECK_THAT(r.err, Catch::Contains("the server runs on the previous configuration"));
    CHECK(conf_text() == before);
    CHECK(s.running("cs"));
    CHECK_FALSE(fs::exists(i.data_dir / ".pgforge-configure"));

    s.recorder("refuse = post_start\n");
    r = s.cli({"conf", "set", "-i", "cs", "max_connections=38", "--restart"});
    CHECK(r.status == 1);
    CHECK_THAT(r.err, Catch::Contains("refused at post_start by plugin recorder"));
    // The server restarted on the new files, which stay.
    CHECK(s.running("cs"));
    CHECK_THAT(conf_text(), Catch::Contains("max_connections = 38"));
    CHECK_FALSE(fs::exists(i.data_dir / ".pgforge-configure"));
}

TEST_CASE(
    "a configure --restart killed after its stop: the next command starts the server "
    "through a restart with its start hook points",
    "[hook-sequence][fault]") {
    if (!fault_injection_built())
        FAIL("built without PGFORGE_FAULT_INJECTION (scripts/test has it)");
    SequenceSite s;
    REQUIRE(s.cli({"instance", "create", "kr"}).status == 0);
    s.clear();
    // The CLI as its own process, killed by its kill point right after the stop step.
    pid_t pid = fork();
    REQUIRE(pid >= 0);
    if (pid == 0) {
        int null = open("/dev/null", O_RDWR);
        dup2(null, 1);
        dup2(null, 2);
        setenv("PGFORGE_FAULT_KILL_AT", "configure:stop:after", 1);
        execl(PGFORGE_CLI_PATH, PGFORGE_CLI_PATH, "--settings", s.site.settings_file().c_str(),
              "conf", "set", "-i", "kr", "max_connections=43", "--restart",
              static_cast<char*>(nullptr));
        _exit(127);
    }
    int status = 0;
    REQUIRE(waitpid(pid, &status, 0) == pid);
    REQUIRE(WIFSIGNALED(status));
    REQUIRE(WTERMSIG(status) == SIGKILL);
    REQUIRE_FALSE(s.running("kr"));
    s.clear();
    // Any command that takes the instance's lock resumes it.
    auto r = s.cli({"conf", "set", "-i", "kr", "work_mem=6MB"});
    INFO(r.err);
    CHECK(r.status == 0);
    CHECK(s.running("kr"));
    const std::vector<std::string> start = {"pre_start", "post_start"};
    CHECK(s.recorded(true, "restart") == start);
    CHECK(s.recorded(false, "restart") == start);
    Context ctx(s.site.settings());
    bool restart_journaled = false;
    for (const auto& e : ctx.inventory().journal("15/kr"))
        if (e.operation == "restart" && e.outcome == "ok") restart_journaled = true;
    CHECK(restart_journaled);
}
