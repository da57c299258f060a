// A private pgforge site for integration tests: a temporary prefix, run directory and port
// range, and a settings file naming them. Whatever happens, every server started under it is
// stopped (by its data directory's postmaster.pid) and the directory removed.
#pragma once

#include <filesystem>
#include <string>
#include <vector>

#include "engine/core/settings.hpp"

namespace pgforge::test {

class TestSite {
  public:
    TestSite();
    ~TestSite();
    TestSite(const TestSite&) = delete;
    TestSite& operator=(const TestSite&) = delete;

    const std::filesystem::path& root() const { return root_; }
    const std::filesystem::path& settings_file() const { return settings_file_; }
    Settings settings() const;
    int port_min() const { return port_min_; }

    struct Output {
        int status = 0;
        std::string out;
        std::string err;
    };
    // Appends INI text to the site's settings file (a plugin's section, [plugins] enabled = ...).
    void add_settings(const std::string& text) const;

    // Runs the CLI in-process with --settings of this site.
    Output cli(std::vector<std::string> args) const;

    // Stops (immediately) every server whose data directory lies under the site, and every
    // process named by another *.pid file under it (a plugin's exporter, say).
    void stop_all_servers() const;

  private:
    std::filesystem::path root_;
    std::filesystem::path settings_file_;
    int port_min_ = 0;
};

// Holds a TCP port on 127.0.0.1 as another program would, while it lives.
class Listener {
  public:
    explicit Listener(int port);
    ~Listener();
    Listener(const Listener&) = delete;
    Listener& operator=(const Listener&) = delete;

  private:
    int fd_ = -1;
};

// The OS user servers run as in this test run: postgres as root, else the current user.
std::string expected_owner();

}  // namespace pgforge::test
