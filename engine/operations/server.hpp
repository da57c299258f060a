// A throwaway or embedded server in a few lines (seed 003's Manager): a data directory, a port,
// start/stop, health. For test suites and programs that embed PostgreSQL; no inventory.
#pragma once

#include <sys/types.h>

#include <filesystem>
#include <string>

#include "engine/driver/cluster_driver.hpp"
#include "engine/driver/ports.hpp"

namespace pgforge {

struct ServerOptions {
    std::filesystem::path data_dir;  // must be absolute
    std::string host = "localhost";  // listen_addresses; "" for the unix socket only
    int port = 0;                    // 0: a free port
    bool initialize = false;         // initdb when the data directory does not exist yet
    std::string version;             // PostgreSQL major version; empty: as for instances
    std::string owner;               // as root: the OS user (default postgres)
};

class Server {
  public:
    // Raises Error if initialization was asked for and failed.
    explicit Server(ServerOptions options);
    ~Server();  // stops the server if this object started it
    Server(const Server&) = delete;
    Server& operator=(const Server&) = delete;

    void start(bool wait = true, double timeout = 10);
    // Waits until the server accepts connections; Error(Exit::server) after `timeout` seconds
    // or when it is not running.
    void ready_wait(double timeout = 10);
    // Whether it accepts connections now.
    bool health();
    void stop(StopMode mode = StopMode::fast, double timeout = 10);
    pid_t pid();

    int port() const { return cluster_.instance.port; }
    const std::filesystem::path& socket_dir() const { return cluster_.instance.socket_dir; }
    const Instance& instance() const { return cluster_.instance; }

  private:
    Cluster cluster_;
    PostgresDriver driver_;
    bool started_ = false;
};

}  // namespace pgforge
