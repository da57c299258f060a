#include "engine/core/process.hpp"

#include <fcntl.h>
#include <grp.h>
#include <poll.h>
#include <pwd.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <string_view>

#include "engine/core/error.hpp"
#include "engine/core/interrupt.hpp"
#include "engine/core/log.hpp"
#include "engine/core/text.hpp"

extern char** environ;

namespace pgforge {
namespace {

// Everything the child needs, built before fork: after fork only async-signal-safe calls.
struct Prepared {
    std::vector<std::string> env_storage;
    std::vector<char*> argv;
    std::vector<char*> envp;
    std::string cwd;
    bool switch_user = false;
    uid_t uid = 0;
    gid_t gid = 0;
    std::vector<gid_t> groups;
    int max_fd = 1024;         // the descriptor limit, for marking them all close-on-exec
    int exec_fd = -1;          // run this descriptor instead of argv[0]
    bool exec_script = false;  // it starts with "#!": keep it open across exec
};

// "NAME=value" sets, a bare "NAME" unsets.
void set_env(std::vector<std::string>& env, const std::string& entry) {
    auto eq = entry.find('=');
    if (eq == std::string::npos) {
        std::string key = entry + "=";
        std::erase_if(env,
                      [&](const std::string& e) { return e.compare(0, key.size(), key) == 0; });
        return;
    }
    std::string key = entry.substr(0, eq + 1);
    for (auto& e : env) {
        if (e.compare(0, key.size(), key) == 0) {
            e = entry;
            return;
        }
    }
    env.push_back(entry);
}

// The locale and the time zone: what a program needs to speak and count time as the caller.
bool locale_variable(std::string_view name) {
    static const char* const names[] = {
        "LANG",           "LANGUAGE",   "TZ",          "LC_ALL",
        "LC_CTYPE",       "LC_COLLATE", "LC_MESSAGES", "LC_MONETARY",
        "LC_NUMERIC",     "LC_TIME",    "LC_ADDRESS",  "LC_IDENTIFICATION",
        "LC_MEASUREMENT", "LC_NAME",    "LC_PAPER",    "LC_TELEPHONE"};
    return std::any_of(std::begin(names), std::end(names),
                       [&](const char* n) { return name == n; });
}

bool switches_user(const Command& c) {
    return c.as && geteuid() == 0 && c.as->uid != 0;
}

// HOME, USER and LOGNAME of the user the program runs as.
void set_identity(std::vector<std::string>& env, const Command& c) {
    const uid_t uid = switches_user(c) ? c.as->uid : geteuid();
    if (c.as && c.as->uid == uid) {
        set_env(env, "HOME=" + c.as->home.string());
        set_env(env, "USER=" + c.as->name);
        set_env(env, "LOGNAME=" + c.as->name);
        return;
    }
    std::vector<char> buf(16384);
    passwd pw{};
    passwd* found = nullptr;
    getpwuid_r(uid, &pw, buf.data(), buf.size(), &found);
    if (found) {
        set_env(env, std::string("HOME=") + found->pw_dir);
        set_env(env, std::string("USER=") + found->pw_name);
        set_env(env, std::string("LOGNAME=") + found->pw_name);
        return;
    }
    // A user without a passwd entry (some containers): its own variables are all there is.
    for (const char* name : {"HOME", "USER", "LOGNAME"})
        if (const char* v = std::getenv(name)) set_env(env, std::string(name) + "=" + v);
}

Prepared prepare(const Command& c) {
    if (c.argv.empty()) throw Error(Exit::failure, "internal error: empty command");
    Prepared p;
    p.env_storage = child_environment(c);
    if (switches_user(c)) {
        p.switch_user = true;
        p.uid = c.as->uid;
        p.gid = c.as->gid;
        p.groups = c.as->groups;
    }
    if (c.exec_fd >= 0) {
        p.exec_fd = c.exec_fd;
        char head[2] = {};
        p.exec_script =
            pread(c.exec_fd, head, sizeof head, 0) == 2 && head[0] == '#' && head[1] == '!';
    }
    for (const auto& a : c.argv) p.argv.push_back(const_cast<char*>(a.c_str()));
    p.argv.push_back(nullptr);
    for (auto& e : p.env_storage) p.envp.push_back(e.data());
    p.envp.push_back(nullptr);
    p.cwd = c.cwd.empty() ? "/" : c.cwd.string();
    if (long open_max = sysconf(_SC_OPEN_MAX); open_max > 0 && open_max < (1L << 30))
        p.max_fd = static_cast<int>(open_max);
    return p;
}

// In the child: become the user, change directory. Returns errno on failure.
int become(const Prepared& p) {
    if (p.switch_user)
        if (int e = become_user(p.uid, p.gid, p.groups)) return e;
    if (chdir(p.cwd.c_str()) != 0) return errno;
    return 0;
}

// In the child: default signal dispositions and no blocked signal, whatever pgforge set.
void default_signals() {
    for (int sig : {SIGPIPE, SIGINT, SIGTERM, SIGHUP, SIGQUIT}) signal(sig, SIG_DFL);
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, nullptr);
}

// In the child (or just before exec_replacing's exec): every descriptor above the standard
// streams is closed by the exec, so that a program gets none of pgforge's nor any pgforge
// inherited from its caller (root's, for a program run as the owner). Marked, not closed: the
// report pipe works until the exec, and a script's descriptor is opened up again after this.
void close_on_exec_above_streams(const Prepared& p) {
    if (close_range(3, ~0U, CLOSE_RANGE_CLOEXEC) == 0) return;
    // Kernels before 5.11: one descriptor at a time.
    for (int fd = 3; fd < p.max_fd; ++fd) {
        int flags = fcntl(fd, F_GETFD);
        if (flags >= 0 && !(flags & FD_CLOEXEC)) fcntl(fd, F_SETFD, flags | FD_CLOEXEC);
    }
}

// In the child: runs the program (the descriptor when there is one). Returns only on failure.
void exec_program(const Prepared& p, int exec_fd) {
    if (exec_fd < 0) {
        execve(p.argv[0], p.argv.data(), p.envp.data());
        return;
    }
    if (p.exec_script) {
        int flags = fcntl(exec_fd, F_GETFD);
        if (flags >= 0) fcntl(exec_fd, F_SETFD, flags & ~FD_CLOEXEC);
    }
    fexecve(exec_fd, p.argv.data(), p.envp.data());
}

// In the child, before the standard streams are replaced: a descriptor to run that sits on 0, 1
// or 2 (pgforge started with one of them closed) is moved above them.
int movable_exec_fd(const Prepared& p) {
    if (p.exec_fd < 0 || p.exec_fd > 2) return p.exec_fd;
    return fcntl(p.exec_fd, F_DUPFD_CLOEXEC, 3);
}

// The child reports a failure before exec through a close-on-exec pipe: a write means exec
// never happened.
[[noreturn]] void child_fail(int fd, int err) {
    ssize_t n = write(fd, &err, sizeof err);
    (void)n;
    _exit(127);
}

void throw_exec_error(const Command& c, int err) {
    throw Error(Exit::failure, "cannot run " + c.argv[0] + ": " + std::strerror(err),
                err == ENOENT ? "check that the program is installed" : "");
}

int wait_status(pid_t pid) {
    int status = 0;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }
    if (WIFEXITED(status)) return WEXITSTATUS(status);
    if (WIFSIGNALED(status)) return 128 + WTERMSIG(status);
    return 1;
}

int read_exec_error(int fd) {
    int err = 0;
    ssize_t n;
    while ((n = read(fd, &err, sizeof err)) < 0 && errno == EINTR) {
    }
    close(fd);
    return n == sizeof err ? err : 0;
}

}  // namespace

int become_user(uid_t uid, gid_t gid, const std::vector<gid_t>& groups) noexcept {
    if (setgroups(groups.size(), groups.data()) != 0) return errno;
    if (setgid(gid) != 0) return errno;
    if (setuid(uid) != 0) return errno;
    if (getuid() == 0 || geteuid() == 0 || getegid() != gid) return EPERM;
    return 0;
}

OsUser lookup_os_user(const std::string& name) {
    std::vector<char> buf(16384);
    passwd pw{};
    passwd* found = nullptr;
    getpwnam_r(name.c_str(), &pw, buf.data(), buf.size(), &found);
    if (!found)
        throw Error(Exit::not_found, "OS user '" + name + "' does not exist",
                    "create it (adduser --system --group " + name +
                        ") or choose another owner with --owner");
    OsUser u{found->pw_name, found->pw_uid, found->pw_gid, found->pw_dir, {}};
    int n = 64;
    u.groups.resize(n);
    if (getgrouplist(u.name.c_str(), u.gid, u.groups.data(), &n) < 0) {
        u.groups.resize(n);
        getgrouplist(u.name.c_str(), u.gid, u.groups.data(), &n);
    }
    u.groups.resize(n);
    return u;
}

std::string describe(const Command& c) {
    std::string s;
    for (const auto& a : c.argv) {
        if (!s.empty()) s += ' ';
        s += a;
    }
    if (c.as && geteuid() == 0) s += " (as " + c.as->name + ")";
    return s;
}

const std::vector<std::string> terminal_variables = {
    "TERM",       "COLORTERM", "COLUMNS", "LINES",       "NO_COLOR", "PAGER",
    "PSQL_PAGER", "EDITOR",    "VISUAL",  "PSQL_EDITOR", "DISPLAY"};

std::vector<std::string> child_environment(const Command& c) {
    std::vector<std::string> env;
    env.push_back(std::string("PATH=") + default_path);
    for (char** e = environ; e && *e; ++e) {
        std::string_view entry(*e);
        auto eq = entry.find('=');
        if (eq == std::string_view::npos) continue;
        auto name = entry.substr(0, eq);
        if (locale_variable(name) ||
            std::find(c.inherit.begin(), c.inherit.end(), name) != c.inherit.end())
            set_env(env, std::string(entry));
    }
    set_identity(env, c);
    for (const auto& e : c.env) set_env(env, e);
    return env;
}

std::filesystem::path find_on_path(const std::string& name) {
    if (name.find('/') != std::string::npos) return name;
    const char* path = std::getenv("PATH");
    for (const auto& dir : split_list(path ? path : "/usr/bin:/bin", ":")) {
        std::filesystem::path candidate = std::filesystem::path(dir) / name;
        if (::access(candidate.c_str(), X_OK) == 0) return candidate;
    }
    return {};
}

ProcessResult run_process(const Command& c) {
    Prepared p = prepare(c);
    // A signal already received: this runs during the undo that follows it, and runs to its end.
    const bool interrupted_before = interrupted() != 0;
    int in[2] = {-1, -1}, out[2] = {-1, -1}, err[2] = {-1, -1}, fail[2] = {-1, -1};
    // On a failure before the child runs, the pipes made so far are closed.
    auto close_pipes = [&] {
        for (int* p : {in, out, err, fail})
            for (int k = 0; k < 2; ++k)
                if (p[k] >= 0) close(p[k]);
    };
    if (pipe2(in, O_CLOEXEC) || pipe2(out, O_CLOEXEC) || pipe2(err, O_CLOEXEC) ||
        pipe2(fail, O_CLOEXEC)) {
        int e = errno;
        close_pipes();
        throw Error(Exit::failure, std::string("cannot create pipes: ") + std::strerror(e));
    }
    log::debug("running " + describe(c));
    const pid_t parent = getpid();
    pid_t pid = fork();
    if (pid < 0) {
        int e = errno;
        close_pipes();
        throw Error(Exit::failure, std::string("fork: ") + std::strerror(e));
    }
    if (pid == 0) {
        // Its own process group, so that a timeout or an interruption stops the program and
        // what it started (and a Ctrl-C at the terminal reaches pgforge alone, which decides).
        setpgid(0, 0);
        default_signals();
        int exec_fd = movable_exec_fd(p);
        dup2(in[0], 0);
        dup2(out[1], 1);
        dup2(err[1], 2);
        if (int e = become(p)) child_fail(fail[1], e);
        // After the user switch, which clears it: the program dies with pgforge.
        if (prctl(PR_SET_PDEATHSIG, SIGKILL) != 0) child_fail(fail[1], errno);
        if (getppid() != parent) _exit(127);  // pgforge is already gone
        close_on_exec_above_streams(p);
        exec_program(p, exec_fd);
        child_fail(fail[1], errno);
    }
    setpgid(pid, pid);  // from here too, whichever runs first
    close(in[0]);
    close(out[1]);
    close(err[1]);
    close(fail[1]);

    ProcessResult r;
    size_t written = 0;
    int in_fd = in[1];
    if (c.input.empty()) {
        close(in_fd);
        in_fd = -1;
    } else {
        // poll() says some room is free, not how much: a blocking write of the rest would wait
        // for a child that itself waits for us to read its output.
        fcntl(in_fd, F_SETFL, fcntl(in_fd, F_GETFL) | O_NONBLOCK);
    }
    int open_outputs = 2;
    pollfd fds[3] = {{out[0], POLLIN, 0}, {err[0], POLLIN, 0}, {in_fd, POLLOUT, 0}};
    char buf[8192];
    const auto deadline =
        std::chrono::steady_clock::now() + std::chrono::duration<double>(c.timeout);
    auto kill_all = [&] {
        kill(-pid, SIGKILL);
        kill(pid, SIGKILL);
        for (auto& f : fds)
            if (f.fd >= 0) close(f.fd);
        for (auto& f : fds) f.fd = -1;
        in_fd = -1;
    };
    while (open_outputs > 0 || in_fd >= 0) {
        fds[2].fd = in_fd;
        if (!interrupted_before && interrupted()) {
            kill_all();
            wait_status(pid);
            close(fail[0]);
            log::debug("interrupted: killed " + describe(c));
            throw_if_interrupted();
        }
        // Wake at least every 100 ms to see a signal another thread received.
        int wait_ms = interrupted_before ? -1 : 100;
        if (c.timeout > 0) {
            auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
                deadline - std::chrono::steady_clock::now());
            if (left.count() <= 0) {
                r.timed_out = true;
                kill_all();
                break;
            }
            int until = static_cast<int>(left.count()) + 1;
            wait_ms = wait_ms < 0 ? until : std::min(wait_ms, until);
        }
        if (poll(fds, 3, wait_ms) < 0) {
            if (errno == EINTR) continue;
            break;
        }
        for (int i = 0; i < 2; ++i) {
            if (fds[i].fd < 0 || !(fds[i].revents & (POLLIN | POLLHUP | POLLERR))) continue;
            ssize_t n = read(fds[i].fd, buf, sizeof buf);
            if (n > 0) {
                (i == 0 ? r.out : r.err).append(buf, static_cast<size_t>(n));
                if (i == 1 && c.on_stderr) c.on_stderr(std::string_view(buf, size_t(n)));
                if (i == 0 && c.on_stdout) c.on_stdout(std::string_view(buf, size_t(n)));
            } else if (n == 0 || errno != EINTR) {
                close(fds[i].fd);
                fds[i].fd = -1;
                --open_outputs;
            }
        }
        if (in_fd >= 0 && (fds[2].revents & (POLLOUT | POLLERR | POLLHUP))) {
            ssize_t n = write(in_fd, c.input.data() + written, c.input.size() - written);
            if (n > 0) written += static_cast<size_t>(n);
            if (n < 0 && errno != EINTR && errno != EAGAIN) written = c.input.size();
            if (written >= c.input.size()) {
                close(in_fd);
                in_fd = -1;
                fds[2].fd = -1;
            }
        }
    }
    // A poll error ends the loop with streams still open.
    for (auto& f : fds)
        if (f.fd >= 0) close(f.fd);
    r.status = wait_status(pid);
    if (int e = read_exec_error(fail[0])) throw_exec_error(c, e);
    return r;
}

pid_t spawn_detached(const Command& c, const std::filesystem::path& log_file) {
    Prepared p = prepare(c);
    std::string log = log_file.string();
    int fail[2];
    if (pipe2(fail, O_CLOEXEC))
        throw Error(Exit::failure, std::string("cannot create pipe: ") + std::strerror(errno));
    log::debug("starting " + describe(c) + " >> " + log);
    pid_t pid = fork();
    if (pid < 0) {
        int e = errno;
        close(fail[0]);
        close(fail[1]);
        throw Error(Exit::failure, std::string("fork: ") + std::strerror(e));
    }
    if (pid == 0) {
        setsid();
        default_signals();
        int exec_fd = movable_exec_fd(p);
        if (int e = become(p)) child_fail(fail[1], e);
        int null = open("/dev/null", O_RDONLY);
        int fd = open(log.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0600);
        if (null < 0 || fd < 0) child_fail(fail[1], errno);
        dup2(null, 0);
        dup2(fd, 1);
        dup2(fd, 2);
        close_on_exec_above_streams(p);
        exec_program(p, exec_fd);
        child_fail(fail[1], errno);
    }
    close(fail[1]);
    if (int e = read_exec_error(fail[0])) {
        wait_status(pid);
        throw_exec_error(c, e);
    }
    return pid;
}

void exec_replacing(const Command& c) {
    Prepared p = prepare(c);
    if (int e = become(p)) throw_exec_error(c, e);
    close_on_exec_above_streams(p);
    exec_program(p, p.exec_fd);
    throw_exec_error(c, errno);
    std::abort();
}

bool reap_if_exited(pid_t pid) {
    int status = 0;
    pid_t r = waitpid(pid, &status, WNOHANG);
    if (r == pid) return true;
    if (r < 0 && errno == ECHILD) return !process_exists(pid);
    return false;
}

bool process_exists(pid_t pid) {
    if (pid <= 0 || (kill(pid, 0) != 0 && errno != EPERM)) return false;
    // A zombie has exited; only its parent has not collected it yet (an init that reaps late
    // would otherwise keep a stopped server "running").
    std::ifstream stat("/proc/" + std::to_string(pid) + "/stat");
    std::string text;
    if (!std::getline(stat, text)) return true;
    auto paren = text.rfind(')');
    return paren == std::string::npos || paren + 2 >= text.size() || text[paren + 2] != 'Z';
}

}  // namespace pgforge
