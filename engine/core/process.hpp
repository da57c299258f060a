// The one way pgforge runs programs: fork + exec, switching to the instance owner first when
// running as root (setgroups/setgid/setuid in the child, everything prepared before fork). Every
// program gets an environment built for it (child_environment), never pgforge's own.
#pragma once

#include <sys/types.h>

#include <filesystem>
#include <functional>
#include <string>
#include <string_view>
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

// In a forked child: becomes the user (setgroups to `groups`, setgid, setuid), then checks that
// neither the real nor the effective uid is 0 any more and the group is `gid`. Async-signal-safe
// (it allocates nothing); returns 0, or the errno of the step that failed (EPERM for the check).
int become_user(uid_t uid, gid_t gid, const std::vector<gid_t>& groups) noexcept;

struct Command {
    std::vector<std::string> argv;  // argv[0]: a path to the program
    // When pgforge runs as root and this names another user, the program runs as that user.
    const OsUser* as = nullptr;
    std::filesystem::path cwd = "/";
    // What the program gets on top of the built environment (see child_environment): "NAME=value"
    // sets (or replaces), a bare "NAME" unsets.
    std::vector<std::string> env;
    // Names carried from pgforge's own environment as they are, for a program the user runs at
    // their terminal (instance exec: TERM, PAGER...). Nothing else of it reaches a program.
    std::vector<std::string> inherit;
    std::string input;   // written to the program's standard input
    double timeout = 0;  // seconds; 0: none. run_process kills its process group then
    // When >= 0, the program is this open file (one a caller opened and checked), run through
    // its descriptor (fexecve); argv[0] only names it. The caller keeps it open and closes it.
    // A "#!" script's descriptor stays open across exec (its interpreter reads /dev/fd/N); a
    // binary's is closed by the exec.
    int exec_fd = -1;
    // When set, called with each piece of the program's standard error as it arrives (a
    // program's progress); the pieces are kept in ProcessResult::err too.
    std::function<void(std::string_view)> on_stderr;
    // The same for its standard output (pg_upgrade reports its steps there).
    std::function<void(std::string_view)> on_stdout;
};

// The safe PATH of every program unless its caller sets one.
inline constexpr const char* default_path = "/usr/local/bin:/usr/bin:/bin";

// The variables an interactive program gets from the terminal it runs in (instance exec).
extern const std::vector<std::string> terminal_variables;

// The environment a program gets: PATH=default_path; the locale (LANG, LANGUAGE, LC_ALL and
// the other LC_ categories) and TZ as pgforge has them; HOME, USER and LOGNAME of the user the
// program runs as; the variables named in `inherit` as pgforge has them; then `env` applied.
// Nothing else of pgforge's environment: no PG* or PGFORGE_* of its own, no secrets.
std::vector<std::string> child_environment(const Command& command);

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
// The program runs in its own process group and is killed (SIGKILL) when pgforge dies. A
// SIGINT, SIGTERM or SIGHUP received while it runs (engine/core/interrupt.hpp) kills its process
// group, reaps it and throws Error(Exit::interrupted); when one was received before the call
// (an undo running after the interruption), the program runs to its end or its timeout.
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

// Whether a process with this pid exists (owned by anyone) and has not exited (a zombie has).
bool process_exists(pid_t pid);

}  // namespace pgforge
