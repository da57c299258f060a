#include "engine/driver/cluster_driver.hpp"

#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <thread>

#include "engine/core/error.hpp"
#include "engine/core/input.hpp"
#include "engine/core/interrupt.hpp"
#include "engine/core/log.hpp"
#include "engine/core/progress_line.hpp"
#include "engine/core/safe_fs.hpp"
#include "engine/pg/connection.hpp"
#include "engine/pg/postmaster_pid.hpp"

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

namespace pgforge {
namespace {

constexpr int kLogTailLines = 20;

std::string log_tail_message(const Instance& i) {
    std::string tail;
    try {
        tail = tail_file(i.log_file, kLogTailLines);
    } catch (const std::exception& e) {
        return "\n(" + std::string(e.what()) + ")";
    }
    if (tail.empty()) return "";
    return "\nlast lines of " + i.log_file.string() + ":\n" + tail;
}

// Writes the superuser password for initdb into a file only the owner can read, in a private
// 0700 directory of the owner under the instance's base directory
// (<base_dir>/.pgforge-private-*), removed with the directory when this goes out of scope.
class PasswordFileCopy {
  public:
    PasswordFileCopy(const fs::path& source, const fs::path& base_dir, const OsUser& owner) {
        std::string password = read_secret_line(source, "superuser password file");
        dir_ = std::make_unique<safe_fs::PrivateDirectory>(base_dir, owner);
        path_ = dir_->write("pwfile", password + "\n");
    }
    const fs::path& path() const { return path_; }

  private:
    std::unique_ptr<safe_fs::PrivateDirectory> dir_;
    fs::path path_;
};

// The run directory of a managed instance (its socket directory's parent, when the socket
// directory is not inside the instance) must be one no other user can change.
void check_run_directory(const Instance& i) {
    fs::path run_dir = i.socket_dir.parent_path();
    auto rel = i.socket_dir.lexically_relative(i.base_dir);
    if (!rel.empty() && *rel.begin() != "..") return;
    safe_fs::check_trusted_directory(run_dir, "run directory");
}

void sleep_ms(double ms) {
    std::this_thread::sleep_for(std::chrono::microseconds(long(ms * 1000)));
}

double seconds_since(Clock::time_point t) {
    return std::chrono::duration<double>(Clock::now() - t).count();
}

}  // namespace

StopMode parse_stop_mode(std::string_view text) {
    if (text == "smart") return StopMode::smart;
    if (text == "fast") return StopMode::fast;
    if (text == "immediate") return StopMode::immediate;
    throw Error(Exit::usage, "unknown stop mode '" + std::string(text) + "'",
                "use smart, fast or immediate");
}

const char* to_string(StopMode mode) {
    switch (mode) {
        case StopMode::smart:
            return "smart";
        case StopMode::fast:
            return "fast";
        case StopMode::immediate:
            return "immediate";
    }
    return "fast";
}

void make_owned_directory(const fs::path& dir, const OsUser& owner, fs::perms mode) {
    safe_fs::make_directory(dir, owner, static_cast<mode_t>(mode) & 07777);
}

void PostgresDriver::initdb(const Cluster& c, const InitOptions& o, const Progress& progress) {
    const Instance& i = c.instance;
    Command cmd;
    cmd.as = &c.owner;
    cmd.cwd = i.base_dir;
    cmd.argv = {c.installation.program("initdb").string(),
                "--pgdata=" + i.data_dir.string(),
                "--username=" + i.superuser,
                "--auth-local=" + o.auth_local,
                "--auth-host=" + o.auth_host,
                "--encoding=" + o.encoding,
                "--locale=" + (o.locale.empty() ? std::string("C.UTF-8") : o.locale),
                "--no-instructions"};
    if (o.data_checksums) cmd.argv.push_back("--data-checksums");
    if (!i.wal_dir.empty()) cmd.argv.push_back("--waldir=" + i.wal_dir.string());
    std::unique_ptr<PasswordFileCopy> pw;
    if (!o.password_file.empty()) {
        pw = std::make_unique<PasswordFileCopy>(o.password_file, i.base_dir, c.owner);
        cmd.argv.push_back("--pwfile=" + pw->path().string());
    }
    // initdb reads the locale environment for what it does not get as options.
    cmd.env = {"LC_ALL", "LANG=C.UTF-8", "PGDATA", "PGPORT", "PGHOST"};
    if (progress) progress("initdb");
    auto r = run_process(cmd);
    if (!r.ok()) {
        std::string err = r.err.empty() ? r.out : r.err;
        while (!err.empty() && err.back() == '\n') err.pop_back();
        throw Error(Exit::failure, "initdb failed for instance " + i.qualified_name() + ":\n" + err,
                    "check the options given to create (locale, encoding, WAL directory)");
    }
}

void ClusterDriver::base_backup(const Cluster& c, const BaseBackupOptions&, const Progress&) {
    throw Error(Exit::failure,
                "instance " + c.instance.qualified_name() + ": this driver makes no base backups");
}

void PostgresDriver::base_backup(const Cluster& c, const BaseBackupOptions& o,
                                 const Progress& progress) {
    const Instance& i = c.instance;
    std::string conninfo;
    for (const auto& [key, value] : o.conninfo)
        conninfo += (conninfo.empty() ? "" : " ") + key + "=" + pg::conninfo_value(value);
    Command cmd;
    cmd.as = &c.owner;
    cmd.cwd = i.base_dir;
    // --no-password: a password comes from the passfile the conninfo names, never a prompt.
    cmd.argv = {c.installation.program("pg_basebackup").string(),
                "--pgdata=" + i.data_dir.string(),
                "--dbname=" + conninfo,
                "--wal-method=stream",
                "--checkpoint=fast",
                "--no-password"};
    if (!o.slot.empty()) cmd.argv.push_back("--slot=" + o.slot);
    if (o.create_slot) cmd.argv.push_back("--create-slot");
    if (!i.wal_dir.empty()) cmd.argv.push_back("--waldir=" + i.wal_dir.string());
    if (o.show_progress) {
        cmd.argv.push_back("--progress");
        cmd.on_stderr = ProgressLine("base backup");
    }
    cmd.env = {"PGDATA", "PGPORT", "PGHOST", "PGPASSWORD", "PGPASSFILE"};
    if (progress) progress("base backup");
    auto r = run_process(cmd);
    if (!r.ok()) {
        std::string err = r.err;
        // Only the program's messages, not its progress lines.
        std::string kept;
        for (size_t pos = 0; pos < err.size();) {
            size_t end = err.find_first_of("\r\n", pos);
            if (end == std::string::npos) end = err.size();
            std::string line = err.substr(pos, end - pos);
            if (line.rfind("pg_basebackup:", 0) == 0) kept += (kept.empty() ? "" : "\n") + line;
            pos = end + 1;
        }
        if (kept.empty()) kept = err.empty() ? r.out : err;
        while (!kept.empty() && kept.back() == '\n') kept.pop_back();
        throw Error(Exit::failure,
                    "base backup for instance " + i.qualified_name() + " failed:\n" + kept,
                    "check that the upstream runs, that its pg_hba.conf lets the replication "
                    "role in, and the password");
    }
}

ServerStatus PostgresDriver::status(const Cluster& c) {
    ServerStatus s;
    auto pid = read_postmaster_pid(c.instance.data_dir);
    if (!pid || !process_exists(pid->pid)) return s;
    s.running = true;
    s.pid = pid->pid;
    s.state = pid->status;
    s.start_time = pid->start_time;
    s.accepting = pg::accepting_connections(c.instance.socket_dir.string(), c.instance.port,
                                            c.instance.superuser);
    return s;
}

bool PostgresDriver::running(const Cluster& c) {
    auto pid = read_postmaster_pid(c.instance.data_dir);
    return pid && process_exists(pid->pid);
}

void prepare_server_directories(const Cluster& c) {
    check_run_directory(c.instance);
    make_owned_directory(c.instance.socket_dir, c.owner, fs::perms(0755));
    make_owned_directory(c.instance.log_file.parent_path(), c.owner, fs::perms(0700));
}

bool PostgresDriver::start(const Cluster& c, double timeout, const Progress& progress) {
    const Instance& i = c.instance;
    // Already running: a server still starting (crash recovery, a standby catching up) is waited
    // for as one launched here would be, so that "already running" means accepting connections.
    // One that exits meanwhile (it was stopping) is started below.
    for (const auto waiting = Clock::now();;) {
        auto pm = read_postmaster_pid(i.data_dir);
        if (!pm || !process_exists(pm->pid)) break;
        if (timeout <= 0 || pm->status == "ready" || pm->status == "standby") return false;
        if (seconds_since(waiting) > timeout)
            throw Error(Exit::server,
                        "instance " + i.qualified_name() + " is running (pid " +
                            std::to_string(pm->pid) + ", " +
                            (pm->status.empty() ? std::string("starting") : pm->status) +
                            ") but did not accept connections within " +
                            std::to_string(int(timeout)) + " s" + log_tail_message(i),
                        "it may still be recovering: wait and check `pgforge instance status " +
                            i.qualified_name() + "`, or raise --timeout");
        sleep_ms(20);
    }
    prepare_server_directories(c);

    Command cmd;
    cmd.as = &c.owner;
    cmd.cwd = i.data_dir;
    cmd.argv = {c.installation.program("postgres").string(), "-D", i.data_dir.string()};
    if (progress) progress("starting the server");
    const auto began = Clock::now();
    pid_t child = spawn_detached(cmd, i.log_file);
    if (timeout <= 0) return true;

    // The postmaster writes "ready" (or "standby") into postmaster.pid once it accepts
    // connections. pg_ctl looks every 100 ms; we look every half millisecond at first, then
    // back off to 5 ms.
    double pause_ms = 0.5;
    for (;;) {
        if (interrupted()) {
            // The start is abandoned: the server it began goes with it, then the signal fails
            // the operation like any error.
            kill(child, SIGQUIT);
            const auto asked = Clock::now();
            while (!reap_if_exited(child)) {
                if (seconds_since(asked) > 10) kill(child, SIGKILL);
                sleep_ms(5);
            }
            throw_if_interrupted();
        }
        auto pm = read_postmaster_pid(i.data_dir);
        if (pm && pm->pid == child && (pm->status == "ready" || pm->status == "standby")) break;
        if (reap_if_exited(child)) {
            throw Error(
                Exit::server,
                "instance " + i.qualified_name() + " exited during start-up" + log_tail_message(i),
                "fix what the log says, then run: pgforge instance start " + i.qualified_name());
        }
        if (seconds_since(began) > timeout) {
            throw Error(Exit::server,
                        "instance " + i.qualified_name() + " did not accept connections within " +
                            std::to_string(int(timeout)) + " s (pid " + std::to_string(child) +
                            " is still starting)" + log_tail_message(i),
                        "wait and check `pgforge instance status " + i.qualified_name() +
                            "`, or raise --timeout");
        }
        sleep_ms(pause_ms);
        pause_ms = std::min(pause_ms * 1.5, 5.0);
    }
    log::info("instance " + i.qualified_name() + " accepts connections after " +
              std::to_string(int(seconds_since(began) * 1000)) + " ms");
    return true;
}

bool PostgresDriver::stop(const Cluster& c, StopMode mode, double timeout) {
    const Instance& i = c.instance;
    auto pm = read_postmaster_pid(i.data_dir);
    if (!pm || !process_exists(pm->pid)) return false;
    int sig = mode == StopMode::smart ? SIGTERM : mode == StopMode::fast ? SIGINT : SIGQUIT;
    if (kill(pm->pid, sig) != 0)
        throw Error(Exit::failure,
                    "cannot signal instance " + i.qualified_name() + " (pid " +
                        std::to_string(pm->pid) + "): " + std::strerror(errno),
                    "run pgforge as root or as " + c.owner.name);
    const auto began = Clock::now();
    double pause_ms = 0.2;
    // The postmaster removes postmaster.pid just before it exits; wait for the process itself,
    // so that a start right after this one finds the port and shared memory free.
    while (!reap_if_exited(pm->pid)) {
        // The shutdown goes on without us; the signal fails the operation.
        throw_if_interrupted();
        if (seconds_since(began) > timeout)
            throw Error(Exit::server,
                        "instance " + i.qualified_name() + " did not stop within " +
                            std::to_string(int(timeout)) + " s (" + to_string(mode) + " mode)",
                        mode == StopMode::smart ? "sessions are still open: use --mode fast"
                                                : "retry, or use --mode immediate");
        sleep_ms(pause_ms);
        pause_ms = std::min(pause_ms * 1.5, 5.0);
    }
    return true;
}

void PostgresDriver::reload(const Cluster& c) {
    auto pm = read_postmaster_pid(c.instance.data_dir);
    if (!pm || !process_exists(pm->pid))
        throw Error(Exit::stopped, "instance " + c.instance.qualified_name() + " is not running",
                    "start it: pgforge instance start " + c.instance.qualified_name());
    if (kill(pm->pid, SIGHUP) != 0)
        throw Error(Exit::failure, "cannot signal instance " + c.instance.qualified_name() + ": " +
                                       std::strerror(errno));
}

void PostgresDriver::run_foreground(const Cluster& c) {
    const Instance& i = c.instance;
    check_run_directory(i);
    make_owned_directory(i.socket_dir, c.owner, fs::perms(0755));
    Command cmd;
    cmd.as = &c.owner;
    cmd.cwd = i.data_dir;
    cmd.argv = {c.installation.program("postgres").string(), "-D", i.data_dir.string()};
    exec_replacing(cmd);
}

}  // namespace pgforge
