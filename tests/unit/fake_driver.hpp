// A cluster driver that records what would have run, so the pipeline is tested without a server
// (ninja's FakeCommandRunner). initdb writes just enough of a data directory for the engine to
// render its configuration; a step can be told to fail.
#pragma once

#include <unistd.h>

#include <fstream>
#include <stdexcept>
#include <string>
#include <vector>

#include "engine/core/error.hpp"
#include "engine/driver/cluster_driver.hpp"

namespace pgforge::test {

class FakeDriver : public ClusterDriver {
  public:
    // Shared with the test after the driver moves into a Context.
    struct Log {
        std::vector<std::string> calls;  // "initdb 15/main", "start 15/main", ...
        std::string fail_at;             // "initdb", "start", "stop": that call throws
        bool running = false;
    };

    explicit FakeDriver(Log& log) : log_(log) {}

    void initdb(const Cluster& c, const InitOptions&, const Progress&) override {
        call("initdb", c);
        std::filesystem::create_directories(c.instance.data_dir);
        std::ofstream(c.instance.data_dir / "PG_VERSION") << c.instance.version << "\n";
        std::ofstream(c.instance.data_dir / "postgresql.conf") << "max_connections = 100\n";
        // As initdb does, running as the owner: the data directory and its files are the owner's.
        if (geteuid() == 0)
            for (const char* name : {"", "PG_VERSION", "postgresql.conf"}) {
                std::filesystem::path p = c.instance.data_dir / name;
                if (::chown(p.c_str(), c.owner.uid, c.owner.gid) != 0)
                    throw std::runtime_error("cannot chown " + p.string());
            }
    }
    bool start(const Cluster& c, double, const Progress&) override {
        call("start", c);
        bool was = log_.running;
        log_.running = true;
        return !was;
    }
    bool stop(const Cluster& c, StopMode, double) override {
        call("stop", c);
        bool was = log_.running;
        log_.running = false;
        return was;
    }
    void reload(const Cluster& c) override { call("reload", c); }
    ServerStatus status(const Cluster&) override {
        ServerStatus s;
        s.running = log_.running;
        return s;
    }
    [[noreturn]] void run_foreground(const Cluster& c) override {
        call("foreground", c);
        throw std::logic_error("not in tests");
    }

  private:
    void call(const std::string& what, const Cluster& c) {
        log_.calls.push_back(what + " " + c.instance.qualified_name());
        if (log_.fail_at == what) throw Error(Exit::failure, "fake " + what + " failed");
    }
    Log& log_;
};

}  // namespace pgforge::test
