// libpq is loaded when a connection is first needed (engine/pg/libpq.hpp), not at start-up: the
// CLI binary does not link it, and commands that open no connection never load it. Checked on
// the real binary with the dynamic loader's own report (LD_DEBUG=libs, written to a file per
// process with LD_DEBUG_OUTPUT), so that a link-time dependency and a dlopen both show.
#include <fcntl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <fstream>
#include <sstream>

#include "engine/core/error.hpp"
#include "engine/pg/libpq.hpp"
#include "tests/support/test_site.hpp"

namespace fs = std::filesystem;
using namespace pgforge;
using pgforge::test::TestSite;

namespace {

std::string read_file(const fs::path& file) {
    std::ifstream in(file);
    std::stringstream ss;
    ss << in.rdbuf();
    return ss.str();
}

struct Run {
    int status = -1;
    std::string loader;  // what the dynamic loader reported for the pgforge process itself
    std::string output;  // its stdout and stderr
};

// Runs the CLI binary with this site's settings and the loader's report on; returns its exit
// status and the report of its own process (children, such as the postmaster, write their own).
Run run_traced(const TestSite& site, const std::vector<std::string>& args) {
    static int counter = 0;
    const fs::path report = site.root() / ("ld-" + std::to_string(++counter));
    std::vector<std::string> argv = {PGFORGE_CLI_PATH, "--settings", site.settings_file().string()};
    argv.insert(argv.end(), args.begin(), args.end());
    const std::string debug = "LD_DEBUG=libs", output = "LD_DEBUG_OUTPUT=" + report.string();
    const fs::path output_file = site.root() / ("output-" + std::to_string(counter));
    pid_t pid = fork();
    REQUIRE(pid >= 0);
    if (pid == 0) {
        int out = ::open(output_file.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
        dup2(out, 1);
        dup2(out, 2);
        putenv(const_cast<char*>(debug.c_str()));
        putenv(const_cast<char*>(output.c_str()));
        std::vector<char*> v;
        for (auto& a : argv) v.push_back(const_cast<char*>(a.c_str()));
        v.push_back(nullptr);
        execv(v[0], v.data());
        _exit(127);
    }
    int status = 0;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }
    Run r;
    r.status = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
    r.loader = read_file(report.string() + "." + std::to_string(pid));
    r.output = read_file(output_file);
    return r;
}

bool loads_libpq(const Run& r) {
    return r.loader.find("libpq.so") != std::string::npos;
}

}  // namespace

TEST_CASE("instance list, start, stop, --help and get of a stopped instance do not load libpq",
          "[integration][libpq][list]") {
    TestSite site;
    REQUIRE(site.cli({"instance", "create", "main"}).status == 0);

    // The report is there and names the libraries the binary does load.
    auto help = run_traced(site, {"--help"});
    CHECK(help.status == 0);
    REQUIRE(help.loader.find("libsqlite3.so") != std::string::npos);
    CHECK_FALSE(loads_libpq(help));

    for (const std::vector<std::string>& args : {std::vector<std::string>{"instance", "list"},
                                                 {"instance", "list", "--json"},
                                                 {"instance", "stop", "main"},
                                                 {"instance", "list"},
                                                 // stopped: no server to ping
                                                 {"instance", "get", "main"},
                                                 {"instance", "start", "main"}}) {
        std::string command;
        for (const auto& a : args) command += " " + a;
        INFO("pgforge" << command);
        auto r = run_traced(site, args);
        INFO(r.output);
        CHECK(r.status == 0);
        CHECK_FALSE(loads_libpq(r));
    }

    // The other side, so that the check above cannot pass by a report that never names libpq:
    // status (and get) ping the running server, database list queries it.
    auto status = run_traced(site, {"instance", "status", "main"});
    CHECK(status.status == 0);
    CHECK(loads_libpq(status));
    auto get = run_traced(site, {"instance", "get", "main", "--json"});
    CHECK(get.status == 0);
    CHECK(loads_libpq(get));
    auto databases = run_traced(site, {"database", "list", "-i", "main"});
    CHECK(databases.status == 0);
    CHECK(loads_libpq(databases));
}

TEST_CASE("a libpq that cannot be loaded is an error naming the library and its package",
          "[integration][libpq]") {
    try {
        pg::libpq::load("libpq-not-here.so.5");
        FAIL("no error");
    } catch (const Error& e) {
        CHECK(e.code() == Exit::failure);
        CHECK_THAT(e.what(), Catch::Contains("cannot load libpq-not-here.so.5"));
        CHECK_THAT(e.hint(), Catch::Contains("libpq5"));
    }
    // A library that is not libpq: the first function missing is named.
    try {
        pg::libpq::load("libm.so.6");
        FAIL("no error");
    } catch (const Error& e) {
        CHECK_THAT(e.what(), Catch::Contains("has no function PQclear"));
        CHECK_THAT(e.hint(), Catch::Contains("libpq5"));
    }
    // The real one has every function the engine calls.
    auto f = pg::libpq::load(pg::libpq::kLibrary);
    CHECK(f.PQconnectdbParams != nullptr);
    CHECK(f.PQstatus != nullptr);
}
