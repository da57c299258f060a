// The one way pgforge runs programs: fork + exec, switching to the instance owner first when
// running as root (setgroups/setgid/setuid in the child, everything prepared before fork).
#pragma once

#include <sys/types.h>

#include <filesystem>
#include <string>
#include <vector>

namespace pgforge {

struct OsUser {
    std::string name;
    uid_t uid = 0;
    gid_t gid = 0;
    std::filesystem::path home;
    std::vector<gid_t> groups;
};

// Throws Error(Exit::not_found) naming the user and how to create it.
OsUser lookup_os_user(const std::string& name);

struct Command {
    std::vector<std::string> argv;  // argv[0]: a path to the program
    // When pgforge runs as root and this names another user, the program runs as that user.
    const OsUser* as = nullptr;
    std::filesystem::path cwd = "/";
    std::vector<std::string> env;  // "NAME=value" sets (or replaces), a bare "NAME" unsets
    std::string input;             // written to the program's standard input
    double timeout = 0;            // seconds; 0: none. run_process kills its process group then
};

struct ProcessResult {
    int status = 0;  // exit code, or 128 + signal number
    std::string out;
    std::string err;
    bool timed_out = false;  // killed after Command::timeout
    bool ok() const { return status == 0 && !timed_out; }
};

// The first executable `name` in the directories of $PATH; empty when there is none. A name
// with a '/' is returned as it is.
std::filesystem::path find_on_path(const std::string& name);

// Runs to completion, capturing both output streams. Throws Error when it cannot be started.
ProcessResult run_process(const Command& command);

// Starts the program in a new session with stdin on /dev/null and stdout and stderr appended
// to `log_file` (opened as the target user). Returns its pid without waiting.
pid_t spawn_detached(const Command& command, const std::filesystem::path& log_file);

// Replaces the current process with the program (after switching user). Returns only on
// failure, by throwing.
[[noreturn]] void exec_replacing(const Command& command);

// Reaps `pid` if it is an exited child of this process; returns true when it has exited
// (or is not our child).
bool reap_if_exited(pid_t pid);

// A short description of a command for logs: "initdb -D /x ..." (never holds secrets: callers
// put secrets in files, not argv).
std::string describe(const Command& command);

}  // namespace pgforge
