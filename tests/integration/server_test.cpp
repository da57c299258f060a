// pgforge::Server, the throwaway server for test suites and embedding programs.
#include <unistd.h>

#include <catch2/catch.hpp>
#include <cstdio>
#include <memory>

#include "engine/core/error.hpp"
#include "engine/core/settings.hpp"
#include "engine/operations/server.hpp"
#include "engine/pg/postmaster_pid.hpp"
#include "tests/support/test_site.hpp"

namespace fs = std::filesystem;
using namespace pgforge;

TEST_CASE("a throwaway server initialises, starts, answers and stops in a few lines",
          "[integration][server]") {
    test::TestSite site;
    fs::path data = site.root() / "srv" / "data";
    fs::create_directories(data.parent_path());
    if (running_as_root()) {
        // The server's user must own the directory it will initialise into.
        auto owner = lookup_os_user("postgres");
        REQUIRE(chown(data.parent_path().c_str(), owner.uid, owner.gid) == 0);
    }
    pid_t pid = 0;
    {
        ServerOptions o;
        o.data_dir = data;
        o.initialize = true;
        o.port = find_free_port(site.port_min() + 60, site.port_min() + 99);
        Server server(o);
        CHECK_FALSE(server.health());
        server.start();
        CHECK(server.health());
        server.ready_wait(1);
        pid = server.pid();
        CHECK(process_exists(pid));
        CHECK(server.port() == o.port);
    }
    // The destructor stopped what the object started; the data directory stays.
    CHECK_FALSE(process_exists(pid));
    CHECK(fs::exists(data / "PG_VERSION"));
}

TEST_CASE("a throwaway server refuses a missing data directory unless asked to initialise",
          "[integration][server]") {
    ServerOptions o;
    o.data_dir = "/nonexistent/pgforge/data";
    try {
        Server s(o);
        FAIL("expected an error");
    } catch (const Error& e) {
        CHECK(e.code() == Exit::not_found);
        CHECK(std::string(e.what()).find("/nonexistent/pgforge/data") != std::string::npos);
    }
}

TEST_CASE("the pgforge binary runs a command in the instance's environment", "[integration][cli]") {
    test::TestSite site;
    REQUIRE(site.cli({"instance", "create", "execd"}).status == 0);
    std::string cmd = std::string(PGFORGE_CLI_PATH) + " --settings " +
                      site.settings_file().string() +
                      " instance exec execd -- psql -Atc 'SELECT 40 + 2' postgres 2>&1";
    std::unique_ptr<FILE, int (*)(FILE*)> p(popen(cmd.c_str(), "r"), pclose);
    REQUIRE(p);
    std::string out;
    char buf[256];
    while (fgets(buf, sizeof buf, p.get())) out += buf;
    int status = pclose(p.release());
    CHECK(out == "42\n");
    CHECK(status == 0);
}
