// Supervised helpers (SDK 1.1): daemons a plugin runs beside an instance, supervised by the
// engine (docs/plugins.md, "Supervised helpers"). Reached with find<Helpers>(ctx) on any context
// that has an instance.
#pragma once

#include <filesystem>
#include <string>
#include <string_view>
#include <vector>

#include "pgforge/plugin.hpp"

namespace pgforge::sdk {

// What a helper daemon runs with (Helpers::ensure).
struct HelperSpec {
    std::vector<std::string> argv;  // argv[0]: a path to the program (or a name on PATH)
    // Over the built environment, as RunOptions::env: "NAME=value" sets, a bare "NAME" unsets.
    std::vector<std::string> env;
    std::filesystem::path log_file;  // standard output and error appended here (required)
    std::filesystem::path cwd;       // empty: the log file's directory
    // A TCP port on 127.0.0.1 the helper must listen on (Helpers::reserve_port), or 0: checked
    // free before the start, and listened on within start_timeout after it.
    int port = 0;
    // What identifies its configuration; empty: the engine hashes argv, env, cwd, port and
    // log_file (Helpers::hash). A helper running with another hash is restarted by ensure.
    std::string config_hash;
    // A file the engine writes with the pid (owned by the instance owner) and removes when the
    // helper stops, for humans and service managers; empty: none. The pid of record is in the
    // inventory.
    std::filesystem::path pid_file;
    // Seconds for the helper to listen on `port`; without a port, it must still run a moment
    // after its start.
    double start_timeout = 10;
    double stop_timeout = 10;  // seconds after SIGTERM before SIGKILL
};

struct HelperStatus {
    bool running = false;     // the very process ensure started, alive and not a zombie
    long pid = 0;             // when running
    int port = 0;             // the reserved port, 0: none
    std::string config_hash;  // what it was started with (when running)
};

struct HelperResult {
    enum class Failure {
        none,
        cannot_start,   // the program could not be run (message says why)
        port_in_use,    // another program holds the port (holder names it when /proc shows it)
        exited,         // it ended before it listened (message holds its last output)
        not_listening,  // it did not listen on its port within start_timeout: stopped again
        cannot_stop,    // the running one could not be stopped for a restart
    };
    bool ok = false;
    Failure failure = Failure::none;
    bool started = false;    // started now (or restarted); false: it already ran as asked
    bool restarted = false;  // an older one (another hash, or restart asked) was stopped first
    long pid = 0;
    std::string message;  // why it failed, naming the helper, the instance and the port
    std::string holder;   // port_in_use: "pid 123 (nginx)", empty when /proc does not tell
};

// Helper daemons tied to the call's instance (offered by every context that has an instance,
// since SDK 1.1). A helper is named by the plugin ("exporter"): one process per plugin, name and
// instance, started as the instance owner (when pgforge runs as root) in its own session, with
// the built environment, standard input on /dev/null and no other inherited descriptor. Its pid,
// the identity of that process (boot and start time: a later process reusing the pid is not it),
// its port and configuration hash are kept in the inventory, with the plugin's state: another
// pgforge run finds, checks and stops it. Messages name the plugin, helper and instance.
class Helpers {
  public:
    static constexpr const char* interface_name = "pgforge.helpers";
    static constexpr unsigned interface_version = 1;

    // A free TCP port on loopback within [low, high] for helper `name`, taken by no instance and
    // reserved by no plugin or helper; the same one on later calls while it is within [low,
    // high] (one outside is given back first). 0 when none is free.
    virtual int reserve_port(std::string_view name, int low, int high) = 0;
    // Gives the reservation back (a helper that runs keeps running).
    virtual void release_port(std::string_view name) = 0;
    // Makes helper `name` run as `spec` says: started when it does not run; stopped and started
    // again when it runs with another configuration hash, or when `restart`; else left alone.
    // A helper that fails to listen is stopped again.
    virtual HelperResult ensure(std::string_view name, const HelperSpec& spec, bool restart) = 0;
    virtual HelperStatus status(std::string_view name) = 0;
    // Stops it (SIGTERM to its process group, SIGKILL after `timeout` seconds) and forgets its
    // pid; true when it does not run (any more). False with the reason in `error`.
    virtual bool stop(std::string_view name, double timeout, std::string& error) = 0;
    // The configuration hash ensure records for `spec` (spec.config_hash when set).
    virtual std::string hash(const HelperSpec& spec) const = 0;

  protected:
    ~Helpers() = default;
};

}  // namespace pgforge::sdk
