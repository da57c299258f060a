#include "engine/pipeline/made.hpp"

#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <fstream>
#include <thread>
#include <vector>

#include "engine/core/log.hpp"
#include "engine/core/process.hpp"
#include "engine/core/text.hpp"
#include "engine/inventory/inventory.hpp"
#include "engine/pg/connection.hpp"
#include "engine/pg/postmaster_pid.hpp"
#include "engine/pipeline/context.hpp"

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

namespace pgforge {
namespace {

// Programs pgforge starts in an instance's directories and that may outlive it: initdb (its
// working directory is the base directory) and the backends it or the server runs.
bool instance_program(const std::string& comm) {
    return comm == "initdb" || comm == "postgres" || comm == "postmaster";
}

// The pids of those programs whose working directory is `dir` or below it, run by the owner of
// `dir` (never another user's process, whatever its name).
std::vector<pid_t> programs_working_in(const fs::path& dir) {
    std::vector<pid_t> pids;
    struct stat owner {};
    if (::lstat(dir.c_str(), &owner) != 0) return pids;
    std::error_code ec;
    const std::string prefix = dir.string() + "/";
    for (const auto& entry : fs::directory_iterator("/proc", ec)) {
        const std::string name = entry.path().filename().string();
        if (name.empty() || !std::all_of(name.begin(), name.end(), ::isdigit)) continue;
        pid_t pid = static_cast<pid_t>(std::stol(name));
        struct stat st {};
        if (pid == getpid() || ::stat(entry.path().c_str(), &st) != 0 || st.st_uid != owner.st_uid)
            continue;
        std::error_code e2;
        fs::path cwd = fs::read_symlink(entry.path() / "cwd", e2);
        if (e2) continue;
        const std::string c = cwd.string();
        if (c != dir.string() && c.rfind(prefix, 0) != 0) continue;
        std::string comm;
        std::getline(std::ifstream(entry.path() / "comm"), comm);
        while (!comm.empty() && comm.back() == '\n') comm.pop_back();
        if (instance_program(comm)) pids.push_back(pid);
    }
    return pids;
}

// Whether `pid` is the postmaster of `data_dir`: a postgres process of the data directory's
// owner working in it. A stale or forged postmaster.pid never makes pgforge signal another
// process.
bool postmaster_of(pid_t pid, const fs::path& data_dir) {
    std::error_code ec;
    fs::path real = fs::canonical(data_dir, ec);
    if (ec) return false;
    for (pid_t p : programs_working_in(real))
        if (p == pid) return true;
    return false;
}

}  // namespace

bool stop_server_at(const fs::path& data_dir, double timeout) {
    auto pm = read_postmaster_pid(data_dir);
    if (!pm || pm->pid <= 0 || !process_exists(pm->pid) || !postmaster_of(pm->pid, data_dir))
        return false;
    kill(pm->pid, SIGQUIT);
    auto began = Clock::now();
    for (;;) {
        reap_if_exited(pm->pid);  // our child when this process started it
        if (!process_exists(pm->pid)) return true;
        if (ms_since(began) > timeout * 1000) {
            kill(pm->pid, SIGKILL);
            timeout += 5;
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
}

void remove_made_tree(const fs::path& dir) {
    std::error_code ec;
    if (!fs::exists(fs::symlink_status(dir, ec))) return;
    // An initdb cut short may still be writing (its parent died without taking it along);
    // end it and its backends, then remove. A few tries: files may appear while it goes.
    for (int attempt = 0;; ++attempt) {
        for (int round = 0; round < 100; ++round) {
            fs::path real = fs::canonical(dir, ec);
            auto pids = ec ? std::vector<pid_t>{} : programs_working_in(real);
            if (pids.empty()) break;
            for (pid_t pid : pids) kill(pid, SIGKILL);
            for (pid_t pid : pids) reap_if_exited(pid);
            std::this_thread::sleep_for(std::chrono::milliseconds(20));
        }
        ec.clear();
        fs::remove_all(dir, ec);
        if (!ec) return;
        if (attempt == 10) {
            log::warn("cannot remove " + dir.string() + ": " + ec.message());
            return;
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
}

void undo_made(Context& ctx, const std::string& kind, const std::string& target) {
    std::error_code ec;
    if (kind == "inventory entry") {
        InstanceRef ref = parse_instance_ref(target);
        ctx.inventory().remove(ref.version, ref.name);
    } else if (kind == "directory") {
        remove_made_tree(target);
    } else if (kind == "empty directory") {
        if (fs::is_directory(target, ec) && fs::is_empty(target, ec)) fs::remove(target, ec);
    } else if (kind == "server") {
        stop_server_at(target, ctx.settings().stop_timeout);
    } else if (kind == "replication slot") {
        // "15/main slot": a slot made on a local upstream for a standby whose create was killed.
        auto space = target.find(' ');
        InstanceRef ref = parse_instance_ref(target.substr(0, space));
        auto upstream = ctx.inventory().find(ref.version, ref.name);
        auto pm = upstream ? read_postmaster_pid(upstream->data_dir) : std::nullopt;
        if (upstream && space != std::string::npos && pm && process_exists(pm->pid))
            pg::drop_physical_slot(*upstream, target.substr(space + 1));
        else if (upstream)
            log::warn("instance " + upstream->qualified_name() +
                      " is not running: drop its replication slot " + target.substr(space + 1) +
                      " once it runs");
    }
}

}  // namespace pgforge
