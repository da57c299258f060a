// The core cluster driver: initdb, start, stop, reload, status of one data directory.
// An interface so that the pipeline above it can be tested with a fake that records calls.
#pragma once

#include <sys/types.h>

#include <filesystem>
#include <functional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "engine/core/instance.hpp"
#include "engine/core/process.hpp"
#include "engine/driver/installations.hpp"

namespace pgforge {

// Everything the driver needs to act on one instance.
struct Cluster {
    Instance instance;
    Installation installation;
    OsUser owner;
};

struct InitOptions {
    std::string encoding = "UTF8";
    std::string locale;  // empty: C.UTF-8
    bool data_checksums = false;
    std::string auth_local = "peer";
    std::string auth_host = "scram-sha-256";
    std::filesystem::path password_file;  // the superuser's password, first line; may be empty
};

// A base backup of an upstream server into a new data directory (a standby's, a rebuild's).
struct BaseBackupOptions {
    // The connection to the upstream, as libpq keywords (host, port, user, passfile,
    // application_name...): never a password.
    std::vector<std::pair<std::string, std::string>> conninfo;
    std::string slot;            // stream the backup's WAL through this physical slot ("": none)
    bool create_slot = false;    // the slot is made by the backup (pg_basebackup --create-slot)
    bool show_progress = false;  // the program's own progress on the terminal
};

enum class StopMode { smart, fast, immediate };
StopMode parse_stop_mode(std::string_view text);  // throws Error(Exit::usage)
const char* to_string(StopMode mode);

struct ServerStatus {
    bool running = false;
    pid_t pid = 0;
    std::string state;       // postmaster.pid: starting, ready, standby, stopping
    bool accepting = false;  // answers a ping
    long start_time = 0;
};

// Reports steps of long work ("running initdb", "waiting for the server").
using Progress = std::function<void(std::string_view step)>;

// What a server needs before it starts, whoever starts it: the run directory checked, the socket
// directory and the log directory made for the owner.
void prepare_server_directories(const Cluster& c);

class ClusterDriver {
  public:
    virtual ~ClusterDriver() = default;
    virtual void initdb(const Cluster& cluster, const InitOptions& options,
                        const Progress& progress) = 0;
    // Starts the server and waits, up to `timeout` seconds, until it accepts connections
    // (a timeout of 0 does not wait). Returns false when it was already running.
    virtual bool start(const Cluster& cluster, double timeout, const Progress& progress) = 0;
    // Returns false when it was not running.
    virtual bool stop(const Cluster& cluster, StopMode mode, double timeout) = 0;
    virtual void reload(const Cluster& cluster) = 0;
    virtual ServerStatus status(const Cluster& cluster) = 0;
    // Copies a running upstream into the cluster's (new, empty) data directory and WAL
    // directory, as the owner, with the WAL needed to start from it.
    virtual void base_backup(const Cluster& cluster, const BaseBackupOptions& options,
                             const Progress& progress);
    // Whether the server runs, without asking it anything (status() also pings it).
    virtual bool running(const Cluster& cluster) { return status(cluster).running; }
    // Runs the server in the foreground, replacing this process.
    [[noreturn]] virtual void run_foreground(const Cluster& cluster) = 0;
};

// The real one: PostgreSQL's programs, run as the instance owner.
class PostgresDriver : public ClusterDriver {
  public:
    void initdb(const Cluster& cluster, const InitOptions& options,
                const Progress& progress) override;
    bool start(const Cluster& cluster, double timeout, const Progress& progress) override;
    bool stop(const Cluster& cluster, StopMode mode, double timeout) override;
    void reload(const Cluster& cluster) override;
    ServerStatus status(const Cluster& cluster) override;
    void base_backup(const Cluster& cluster, const BaseBackupOptions& options,
                     const Progress& progress) override;
    bool running(const Cluster& cluster) override;  // postmaster.pid names a live process
    [[noreturn]] void run_foreground(const Cluster& cluster) override;
};

// Creates `dir` (and missing parents, 0755) and gives `dir` itself to `owner` with `mode`.
void make_owned_directory(const std::filesystem::path& dir, const OsUser& owner,
                          std::filesystem::perms mode);

}  // namespace pgforge
