// pgforge-bench: how long pgforge's instance operations take next to the raw PostgreSQL tools
// (initdb, pg_ctl), and `conf set` next to Debian's pg_conftool, both measured in the same run;
// plus the library's own postgresql.conf parse + set + write, as timed by the unit tests'
// hidden [.bench] case. See bench/README.md.
//
// Only the standard library and POSIX: the benchmark runs the pgforge binary (and the unit test
// binary) like a user does and does not link the engine.

#include <arpa/inet.h>
#include <fcntl.h>
#include <grp.h>
#include <netinet/in.h>
#include <pwd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <initializer_list>
#include <iostream>
#include <optional>
#include <sstream>
#include <stdexcept>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

extern char** environ;

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;
using Argv = std::vector<std::string>;

namespace {

constexpr const char* kOsUser = "postgres";            // who runs everything when started as root
constexpr const char* kTempPrefix = "pgforge-bench.";  // mkdtemp name under /tmp
constexpr int kPgforgePortMin = 25432;  // pgforge picks its ports here (settings file)
constexpr int kPgforgePortMax = 25999;
constexpr int kRawPortMin = 26000;  // raw clusters get ports here: the ranges never meet
constexpr int kRawPortMax = 26999;
constexpr const char* kPgLsclusters = "/usr/bin/pg_lsclusters";
constexpr const char* kPgConftool = "/usr/bin/pg_conftool";  // default of --pg-conftool
// The line the unit tests' [.bench] case prints, and the file conf set edits (a copy per side
// and round).
constexpr std::string_view kUnitTestsMedianKey = "pgconf-10k-median-ms:";
constexpr const char* kUnitTestsFilter = "[.bench]";
constexpr const char* kConfSample = "postgresql.conf.sample";
constexpr double kPgconfTargetMs = 5;

// ---- errors and signals ------------------------------------------------------------------

// A step, a check or the setup failed; the message says what and shows the step's stderr.
struct Failure : std::runtime_error {
    using std::runtime_error::runtime_error;
};

struct UsageError : std::runtime_error {
    using std::runtime_error::runtime_error;
};

volatile std::sig_atomic_t g_signal = 0;  // last SIGINT/SIGTERM/SIGHUP received
volatile std::sig_atomic_t g_child = 0;   // as root: the re-executed benchmark, to forward to

void remember_signal(int sig) {
    g_signal = sig;
}

void forward_signal(int sig) {
    g_signal = sig;
    if (g_child > 0) kill(static_cast<pid_t>(g_child), sig);
}

void install_signal_handlers(void (*handler)(int)) {
    struct sigaction sa {};
    sa.sa_handler = handler;
    sigemptyset(&sa.sa_mask);
    for (int sig : {SIGINT, SIGTERM, SIGHUP}) sigaction(sig, &sa, nullptr);
}

void check_interrupted() {
    if (g_signal != 0)
        throw Failure("interrupted by signal " + std::to_string(static_cast<int>(g_signal)));
}

std::string errno_text() {
    return std::strerror(errno);
}

// ---- options ---------------------------------------------------------------------------------

struct Options {
    std::string pgforge;
    std::string bindir = "/usr/lib/postgresql/15/bin";
    int rounds = 7;
    int instances = 30;
    std::string unit_tests;    // pgforge_unit_tests; empty: skip the pgconf 10k row
    std::string noop_plugins;  // directory of noop0..noop9; empty: skip the plugins row
    std::string pg_conftool = kPgConftool;  // conf set's raw side; missing: said in its row
    bool json = false;
    std::string workdir;  // internal: the directory a root parent made for the re-executed bench
};

void print_usage(std::ostream& out) {
    out << "usage: pgforge-bench --pgforge PATH [--bindir DIR] [--rounds N] [--instances N]\n"
           "                     [--unit-tests PATH] [--noop-plugins DIR] [--pg-conftool PATH]\n"
           "                     [--json]\n\n"
           "Times pgforge's instance create/start/stop/list next to initdb and pg_ctl, and\n"
           "conf set next to pg_conftool, in the same run, and prints medians, ratios\n"
           "(pgforge / raw) and whether targets are met.\n\n"
           "  --pgforge PATH      the pgforge CLI binary (required)\n"
           "  --bindir DIR        PostgreSQL programs (default /usr/lib/postgresql/15/bin)\n"
           "  --rounds N          rounds of create/stop/start and conf set, samples of list\n"
           "                      and of the unit tests' median (default 7)\n"
           "  --instances N       instances in the inventory for the list benchmark (default\n"
           "                      30, 0 skips it)\n"
           "  --unit-tests PATH   pgforge_unit_tests: its hidden [.bench] case times the\n"
           "                      library's parse + set + write of a 10,000-line file (not\n"
           "                      given: that row is skipped)\n"
           "  --noop-plugins DIR  ten plugins noop0..noop9 that do nothing at pre_start and\n"
           "                      post_start: instance start with them enabled is timed next\n"
           "                      to instance start without (not given: that row is skipped)\n"
           "  --pg-conftool PATH  Debian's pg_conftool (default /usr/bin/pg_conftool)\n"
           "  --json              machine-readable results on stdout\n\n"
           "As root, everything (pgforge and the raw tools) runs as the postgres OS user.\n";
}

int parse_count(const std::string& option, const std::string& text, int min) {
    try {
        size_t used = 0;
        int n = std::stoi(text, &used);
        if (used == text.size() && n >= min && n <= 10000) return n;
    } catch (const std::exception&) {
    }
    throw UsageError(option + " wants a whole number >= " + std::to_string(min) + ", not '" + text +
                     "'");
}

// Returns nullopt when --help was asked for.
std::optional<Options> parse_options(int argc, char** argv) {
    Options o;
    for (int k = 1; k < argc; ++k) {
        std::string a = argv[k];
        auto value = [&]() -> std::string {
            if (k + 1 >= argc) throw UsageError(a + " wants a value");
            return argv[++k];
        };
        if (a == "--help" || a == "-h") return std::nullopt;
        if (a == "--pgforge")
            o.pgforge = value();
        else if (a == "--bindir")
            o.bindir = value();
        else if (a == "--rounds")
            o.rounds = parse_count(a, value(), 1);
        else if (a == "--instances")
            o.instances = parse_count(a, value(), 0);
        else if (a == "--unit-tests")
            o.unit_tests = value();
        else if (a == "--noop-plugins")
            o.noop_plugins = value();
        else if (a == "--pg-conftool")
            o.pg_conftool = value();
        else if (a == "--json")
            o.json = true;
        else if (a == "--workdir")
            o.workdir = value();
        else
            throw UsageError("unknown argument '" + a + "'");
    }
    if (o.pgforge.empty()) throw UsageError("--pgforge PATH is required");
    return o;
}

// ---- running commands ------------------------------------------------------------------------

std::string join(const Argv& argv) {
    std::string s;
    for (const auto& a : argv) s += (s.empty() ? "" : " ") + a;
    return s;
}

std::string read_whole(int fd) {
    std::string text;
    char buf[8192];
    off_t at = 0;
    for (;;) {
        ssize_t n = pread(fd, buf, sizeof buf, at);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) break;
        text.append(buf, static_cast<size_t>(n));
        at += n;
    }
    return text;
}

std::string last_lines(const fs::path& file, size_t count) {
    std::ifstream in(file);
    std::vector<std::string> lines;
    for (std::string line; std::getline(in, line);) lines.push_back(line);
    std::string out;
    for (size_t k = lines.size() > count ? lines.size() - count : 0; k < lines.size(); ++k)
        out += "    " + lines[k] + "\n";
    return out;
}

// The environment of every command: ours, without what would steer pgforge or libpq elsewhere
// than this benchmark's settings (PGFORGE_PREFIX, PGFORGE_SETTINGS, PGDATA, PGPORT, ...).
std::vector<std::string> command_environment() {
    std::vector<std::string> env;
    for (char** e = environ; *e != nullptr; ++e) {
        std::string_view v(*e);
        if (v.starts_with("PG") && !v.starts_with("PGFORGE_SHARE_DIR=")) continue;
        env.emplace_back(v);
    }
    return env;
}

// Runs programs with stdin and stdout on /dev/null and stderr into a scratch file, which is
// shown when a step fails.
class Runner {
  public:
    explicit Runner(const fs::path& scratch_dir) : env_(command_environment()) {
        for (auto& e : env_) envp_.push_back(e.data());
        envp_.push_back(nullptr);
        null_ = open("/dev/null", O_RDWR | O_CLOEXEC);
        err_ = open((scratch_dir / "stderr.txt").c_str(),
                    O_RDWR | O_CREAT | O_TRUNC | O_APPEND | O_CLOEXEC, 0600);
        out_ = open((scratch_dir / "stdout.txt").c_str(),
                    O_RDWR | O_CREAT | O_TRUNC | O_APPEND | O_CLOEXEC, 0600);
        if (null_ < 0 || err_ < 0 || out_ < 0)
            throw Failure("cannot open scratch files in " + scratch_dir.string() + ": " +
                          errno_text());
    }
    ~Runner() {
        for (int fd : {null_, err_, out_})
            if (fd >= 0) close(fd);
    }
    Runner(const Runner&) = delete;
    Runner& operator=(const Runner&) = delete;

    // Runs argv (argv[0] an absolute path); throws Failure with its stderr, and the tail of
    // server_log if given, unless it exits 0.
    void run(const Argv& argv, const fs::path& server_log = {}) {
        execute(argv, false, server_log);
    }

    // As run(), and returns what it printed on stdout.
    std::string capture(const Argv& argv) {
        execute(argv, true, {});
        return read_whole(out_);
    }

    // Exit status, without throwing: for cleanup.
    int try_run(const Argv& argv) { return spawn_and_wait(argv, null_); }

    // Exit status, without throwing; `out` gets what it printed on stdout, `err` on stderr.
    int capture_status(const Argv& argv, std::string& out, std::string& err) {
        if (ftruncate(err_, 0) != 0 || ftruncate(out_, 0) != 0)
            throw Failure("cannot reset scratch files: " + errno_text());
        int status = spawn_and_wait(argv, out_);
        out = read_whole(out_);
        err = read_whole(err_);
        return status;
    }

    // Milliseconds from before the first fork to after the last wait; the steps run in order.
    double timed(const std::vector<Argv>& steps, const fs::path& server_log = {}) {
        const auto began = Clock::now();
        for (const auto& s : steps) execute(s, false, server_log);
        const auto ended = Clock::now();
        check_interrupted();
        return std::chrono::duration<double, std::milli>(ended - began).count();
    }

  private:
    void execute(const Argv& argv, bool keep_stdout, const fs::path& server_log) {
        if (ftruncate(err_, 0) != 0 || (keep_stdout && ftruncate(out_, 0) != 0))
            throw Failure("cannot reset scratch files: " + errno_text());
        int status = spawn_and_wait(argv, keep_stdout ? out_ : null_);
        if (status == 0) return;
        std::string message = "step failed (" +
                              (status > 128 ? "signal " + std::to_string(status - 128)
                                            : "exit status " + std::to_string(status)) +
                              "): " + join(argv);
        std::string err = read_whole(err_);
        while (!err.empty() && err.back() == '\n') err.pop_back();
        message += err.empty() ? "\n  (nothing on stderr)" : "\n  stderr:\n" + err;
        if (!server_log.empty()) {
            std::error_code ec;
            if (fs::exists(server_log, ec))
                message +=
                    "\n  last lines of " + server_log.string() + ":\n" + last_lines(server_log, 15);
        }
        throw Failure(message);
    }

    // Returns the exit status, or 128 + the signal that ended the program.
    int spawn_and_wait(const Argv& argv, int stdout_fd) {
        std::vector<char*> args;
        for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
        args.push_back(nullptr);
        pid_t pid = fork();
        if (pid < 0) throw Failure("fork: " + errno_text());
        if (pid == 0) {
            dup2(null_, STDIN_FILENO);
            dup2(stdout_fd, STDOUT_FILENO);
            dup2(err_, STDERR_FILENO);
            execve(args[0], args.data(), envp_.data());
            dprintf(STDERR_FILENO, "cannot run %s: %s\n", args[0], std::strerror(errno));
            _exit(127);
        }
        int status = 0;
        while (waitpid(pid, &status, 0) < 0)
            if (errno != EINTR) throw Failure("waitpid: " + errno_text());
        if (WIFEXITED(status)) return WEXITSTATUS(status);
        if (WIFSIGNALED(status)) return 128 + WTERMSIG(status);
        return 1;
    }

    std::vector<std::string> env_;
    std::vector<char*> envp_;
    int null_ = -1, err_ = -1, out_ = -1;
};

// ---- the temporary directory and the servers in it --------------------------------------

// Data directories under root whose postmaster.pid exists, i.e. servers that may be running.
// Does not descend into data directories (they hold thousands of files).
void find_server_dirs(const fs::path& dir, int depth, std::vector<fs::path>& found) {
    std::error_code ec;
    if (fs::exists(dir / "PG_VERSION", ec)) {
        if (fs::exists(dir / "postmaster.pid", ec)) found.push_back(dir);
        return;
    }
    if (depth == 0) return;
    for (const auto& entry : fs::directory_iterator(dir, ec))
        if (entry.is_directory(ec) && !entry.is_symlink(ec))
            find_server_dirs(entry.path(), depth - 1, found);
}

std::vector<fs::path> server_dirs(const fs::path& root) {
    std::vector<fs::path> found;
    find_server_dirs(root, 4, found);
    return found;
}

pid_t postmaster_pid(const fs::path& data_dir) {
    std::ifstream in(data_dir / "postmaster.pid");
    long pid = 0;
    if (!(in >> pid) || pid <= 0) return 0;
    return static_cast<pid_t>(pid);
}

// Last resort for servers pg_ctl could not stop (or, as root, that the benchmark left behind):
// SIGQUIT (immediate shutdown), then SIGKILL if postmaster.pid is still there after 10 s.
void kill_server(const fs::path& data_dir) {
    pid_t pid = postmaster_pid(data_dir);
    if (pid <= 0 || kill(pid, SIGQUIT) != 0) return;
    const auto began = Clock::now();
    std::error_code ec;
    while (fs::exists(data_dir / "postmaster.pid", ec)) {
        if (Clock::now() - began > std::chrono::seconds(10)) {
            kill(pid, SIGKILL);
            return;
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
}

void remove_tree(const fs::path& dir) {
    std::error_code ec;
    fs::remove_all(dir, ec);
    if (ec) std::cerr << "pgforge-bench: cannot remove " << dir << ": " << ec.message() << "\n";
}

fs::path make_temp_dir() {
    std::string pattern = "/tmp/" + std::string(kTempPrefix) + "XXXXXX";
    if (mkdtemp(pattern.data()) == nullptr)
        throw Failure("cannot create a temporary directory under /tmp: " + errno_text());
    if (chmod(pattern.c_str(), 0755) != 0) {
        std::string why = errno_text();
        remove_tree(pattern);
        throw Failure("cannot chmod " + pattern + ": " + why);
    }
    return pattern;
}

// The directory a root parent made for us: accept only an empty /tmp/pgforge-bench.* that is
// ours, since it is removed at the end.
fs::path adopt_temp_dir(const std::string& given) {
    fs::path dir = given;
    struct stat st {};
    bool ok = dir.parent_path() == "/tmp" && dir.filename().string().starts_with(kTempPrefix) &&
              lstat(dir.c_str(), &st) == 0 && S_ISDIR(st.st_mode) && st.st_uid == geteuid();
    std::error_code ec;
    if (!ok || !fs::is_empty(dir, ec))
        throw UsageError("--workdir is internal: an empty /tmp/" + std::string(kTempPrefix) +
                         "* directory of this user");
    return dir;
}

// Owns the temporary directory: on destruction every server under it is stopped and the
// directory removed, whatever happened before.
class Workspace {
  public:
    Workspace(fs::path dir, fs::path pg_ctl) : dir_(std::move(dir)), pg_ctl_(std::move(pg_ctl)) {}
    ~Workspace() {
        try {
            Runner runner(dir_);
            auto servers = server_dirs(dir_);
            std::cerr << "pgforge-bench: cleaning up: stopping " << servers.size()
                      << " server(s), removing " << dir_.string() << std::endl;
            for (const auto& data : servers) {
                runner.try_run(
                    {pg_ctl_.string(), "-D", data.string(), "-m", "immediate", "-w", "stop"});
                std::error_code ec;
                if (fs::exists(data / "postmaster.pid", ec)) kill_server(data);
            }
        } catch (const std::exception& e) {
            std::cerr << "pgforge-bench: while stopping servers: " << e.what() << "\n";
            for (const auto& data : server_dirs(dir_)) kill_server(data);
        }
        remove_tree(dir_);
    }
    Workspace(const Workspace&) = delete;
    Workspace& operator=(const Workspace&) = delete;

  private:
    fs::path dir_;
    fs::path pg_ctl_;
};

// ---- ports --------------------------------------------------------------------------------

// Whether a server could listen on localhost:port (IPv4, and IPv6 where there is a loopback).
bool port_is_free(int port) {
    for (int family : {AF_INET, AF_INET6}) {
        int fd = socket(family, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fd < 0) continue;
        int one = 1;
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);  // as PostgreSQL does
        int rc;
        if (family == AF_INET) {
            sockaddr_in a{};
            a.sin_family = AF_INET;
            a.sin_port = htons(static_cast<uint16_t>(port));
            a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
            rc = bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a);
        } else {
            sockaddr_in6 a{};
            a.sin6_family = AF_INET6;
            a.sin6_port = htons(static_cast<uint16_t>(port));
            a.sin6_addr = in6addr_loopback;
            rc = bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a);
            if (rc != 0 && errno == EADDRNOTAVAIL) rc = 0;  // no IPv6 loopback here
        }
        close(fd);
        if (rc != 0) return false;
    }
    return true;
}

// ---- statistics and output ------------------------------------------------------------------

double median(std::vector<double> v) {
    if (v.empty()) return 0;
    std::sort(v.begin(), v.end());
    size_t n = v.size();
    return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

std::string fixed(double value, int decimals) {
    char buf[64];
    std::snprintf(buf, sizeof buf, "%.*f", decimals, value);
    return buf;
}

std::string json_string(const std::string& s) {
    std::string out = "\"";
    for (char c : s) {
        switch (c) {
            case '"':
                out += "\\\"";
                break;
            case '\\':
                out += "\\\\";
                break;
            case '\n':
                out += "\\n";
                break;
            case '\t':
                out += "\\t";
                break;
            default:
                if (static_cast<unsigned char>(c) < 0x20) {
                    char buf[8];
                    std::snprintf(buf, sizeof buf, "\\u%04x", c);
                    out += buf;
                } else {
                    out += c;
                }
        }
    }
    return out + "\"";
}

std::string json_numbers(const std::vector<double>& v) {
    std::string out = "[";
    for (size_t k = 0; k < v.size(); ++k) out += (k ? ", " : "") + fixed(v[k], 3);
    return out + "]";
}

struct Result {
    std::string operation;
    std::string pgforge_command;
    std::string raw_command{};  // empty: no raw counterpart
    std::vector<double> pgforge_ms{};
    std::vector<double> raw_ms{};
    bool absolute = false;          // target on pgforge's median in ms, else on the ratio
    bool difference = false;        // target on pgforge's median minus raw's, in ms
    bool raw_is_reference = false;  // raw does something else: shown, not compared
    double target = 0;
    bool has_target = true;  // false: reported, not judged ("-" as target and met)
    std::string remark{};    // a line under the table, after the commands
    std::string skipped{};   // not measured, and why: shown in place of the numbers

    double pgforge_median() const { return median(pgforge_ms); }
    double raw_median() const { return median(raw_ms); }
    bool has_ratio() const { return !raw_ms.empty() && !raw_is_reference; }
    double ratio() const { return pgforge_median() / raw_median(); }
    bool judged() const { return has_target && skipped.empty(); }
    // Rows without a target (or not measured) count as met: they cannot miss anything.
    bool met() const {
        if (!judged()) return true;
        if (difference) return pgforge_median() - raw_median() <= target;
        return absolute ? pgforge_median() <= target : ratio() <= target;
    }
    std::string target_text() const {
        if (!has_target) return "-";
        if (difference) return "+<= " + fixed(target, 0) + " ms";
        return absolute ? "<= " + fixed(target, 0) + " ms" : "ratio <= " + fixed(target, 2);
    }
};

struct Report {
    std::string postgres_version;
    std::string bindir;
    std::string pgforge;
    std::string user;
    int rounds = 0;
    int instances = 0;
    std::vector<Result> results;
};

void print_table(std::ostream& out, const Report& r) {
    std::vector<std::vector<std::string>> rows = {
        {"OPERATION", "PGFORGE MS", "RAW MS", "RATIO", "TARGET", "MET"}};
    for (const auto& x : r.results) {
        if (!x.skipped.empty()) {  // the reason spans the columns after the operation
            rows.push_back({x.operation, x.skipped});
            continue;
        }
        rows.push_back(
            {x.operation, fixed(x.pgforge_median(), 1),
             x.raw_ms.empty() ? "-" : fixed(x.raw_median(), 1) + (x.raw_is_reference ? "*" : ""),
             x.has_ratio() ? fixed(x.ratio(), 2) : "-", x.target_text(),
             !x.judged() ? "-"
             : x.met()   ? "yes"
                         : "NO"});
    }
    std::vector<size_t> width(rows[0].size(), 0);
    for (const auto& row : rows)
        for (size_t c = 0; c < row.size() && (c == 0 || row.size() == width.size()); ++c)
            width[c] = std::max(width[c], row[c].size());
    for (const auto& row : rows) {
        if (row.size() != width.size()) {
            out << row[0] << std::string(width[0] - row[0].size(), ' ') << "  " << row[1] << "\n";
            continue;
        }
        std::string line;
        for (size_t c = 0; c < row.size(); ++c) {
            std::string pad(width[c] - row[c].size(), ' ');
            bool number = c >= 1 && c <= 3;  // right-aligned
            line += number ? pad + row[c] : row[c] + (c + 1 < row.size() ? pad : "");
            if (c + 1 < row.size()) line += "  ";
        }
        out << line << "\n";
    }
    out << "\nmedians of " << r.rounds << (r.rounds == 1 ? " round" : " rounds")
        << "; ratio = pgforge median / raw median "
        << "(below 1: pgforge is faster)\n";
    for (const auto& x : r.results) {
        out << "  " << x.operation << ": pgforge = " << x.pgforge_command;
        if (!x.raw_command.empty()) out << "; raw = " << x.raw_command;
        out << "\n";
        if (!x.remark.empty()) out << "    " << x.remark << "\n";
    }
    bool reference = std::any_of(r.results.begin(), r.results.end(),
                                 [](const Result& x) { return x.raw_is_reference; });
    if (reference)
        out << "  * reference only: pg_lsclusters lists the system's clusters, not the "
               "benchmark's instances; the list target is absolute\n";
    int missed = static_cast<int>(std::count_if(r.results.begin(), r.results.end(),
                                                [](const Result& x) { return !x.met(); }));
    out << (missed ? std::to_string(missed) + " target(s) missed" : "all targets met") << "\n";
}

void print_json(std::ostream& out, const Report& r) {
    bool all_met =
        std::all_of(r.results.begin(), r.results.end(), [](const Result& x) { return x.met(); });
    out << "{\n  \"postgres_version\": " << json_string(r.postgres_version)
        << ",\n  \"bindir\": " << json_string(r.bindir)
        << ",\n  \"pgforge\": " << json_string(r.pgforge)
        << ",\n  \"user\": " << json_string(r.user) << ",\n  \"rounds\": " << r.rounds
        << ",\n  \"instances\": " << r.instances << ",\n  \"results\": [";
    for (size_t k = 0; k < r.results.size(); ++k) {
        const Result& x = r.results[k];
        out << (k ? "," : "") << "\n    {\"operation\": " << json_string(x.operation)
            << ", \"pgforge_command\": " << json_string(x.pgforge_command) << ", \"raw_command\": "
            << (x.raw_command.empty() ? "null" : json_string(x.raw_command))
            << ",\n     \"skipped\": " << (x.skipped.empty() ? "null" : json_string(x.skipped))
            << ", \"pgforge_median_ms\": "
            << (x.pgforge_ms.empty() ? "null" : fixed(x.pgforge_median(), 3))
            << ", \"raw_median_ms\": " << (x.raw_ms.empty() ? "null" : fixed(x.raw_median(), 3))
            << ", \"ratio\": " << (x.has_ratio() ? fixed(x.ratio(), 4) : "null")
            << ", \"raw_is_reference\": " << (x.raw_is_reference ? "true" : "false")
            << ",\n     \"target\": ";
        if (x.has_target)
            out << "{\"kind\": "
                << (x.difference ? "\"max_extra_ms\""
                    : x.absolute ? "\"max_ms\""
                                 : "\"max_ratio\"")
                << ", \"value\": " << fixed(x.target, 2) << "}";
        else
            out << "null";
        out << ", \"met\": "
            << (!x.judged() ? "null"
                : x.met()   ? "true"
                            : "false")
            << ",\n     \"pgforge_ms\": " << json_numbers(x.pgforge_ms)
            << ",\n     \"raw_ms\": " << json_numbers(x.raw_ms) << "}";
    }
    out << "\n  ],\n  \"all_targets_met\": " << (all_met ? "true" : "false") << "\n}\n";
}

// ---- the benchmark ------------------------------------------------------------------------

void progress(const std::string& text) {
    std::cerr << "pgforge-bench: " << text << std::endl;
}

std::string current_user() {
    if (const passwd* pw = getpwuid(geteuid())) return pw->pw_name;
    return std::to_string(geteuid());
}

void require_executable(const fs::path& program, const std::string& what) {
    if (access(program.c_str(), X_OK) != 0)
        throw Failure("cannot execute " + what + " " + program.string() + " as " + current_user() +
                      ": " + errno_text() +
                      (geteuid() == 0 ? ""
                                      : " (every directory above it must be searchable "
                                        "by this user: chmod o+x)"));
}

// "postgres (PostgreSQL) 15.14 (Debian ...)" -> "15.14"
std::string parse_version(const std::string& text) {
    auto at = text.find("PostgreSQL)");
    at = text.find_first_of("0123456789", at == std::string::npos ? 0 : at);
    if (at == std::string::npos) throw Failure("cannot read a version from '" + text + "'");
    auto end = text.find_first_not_of("0123456789.", at);
    return text.substr(at, end == std::string::npos ? std::string::npos : end - at);
}

// A cluster made and driven by initdb and pg_ctl, with its socket in a private directory.
struct RawCluster {
    fs::path dir, data, log, sockets;
    int port = 0;
};

class Benchmark {
  public:
    Benchmark(const Options& o, const fs::path& dir)
        : o_(o),
          dir_(dir),
          pgforge_(o.pgforge),
          initdb_(fs::path(o.bindir) / "initdb"),
          pg_ctl_(fs::path(o.bindir) / "pg_ctl"),
          settings_(dir / "settings.ini"),
          plugin_settings_(dir / "settings-plugins.ini"),
          runner_(dir) {}

    Report run() {
        Report report;
        report.bindir = o_.bindir;
        report.pgforge = pgforge_.string();
        report.user = current_user();
        report.rounds = o_.rounds;
        report.instances = o_.instances;
        report.postgres_version = parse_version(
            runner_.capture({(fs::path(o_.bindir) / "postgres").string(), "--version"}));
        major_ = report.postgres_version.substr(0, report.postgres_version.find('.'));
        write_settings();
        warm_up();

        Result create{.operation = "create",
                      .pgforge_command = "instance create NAME (initdb, configuration, start)",
                      .raw_command = "initdb + pg_ctl -w start, timed together",
                      .target = 0.97};
        Result stop{.operation = "stop",
                    .pgforge_command = "instance stop NAME (fast mode)",
                    .raw_command = "pg_ctl -w stop -m fast",
                    .target = 0.3};
        Result start{.operation = "start",
                     .pgforge_command = "instance start NAME (of a stopped instance)",
                     .raw_command = "pg_ctl -w start (of a stopped cluster)",
                     .target = 0.5};
        Result plugins{.operation = "start+10 plugins",
                       .pgforge_command =
                           "instance start NAME with 10 no-op plugins enabled "
                           "(each handles pre_start and post_start)",
                       .raw_command = "instance start NAME, no plugin (the same pgforge)",
                       .difference = true,
                       .target = 2};
        if (o_.noop_plugins.empty())
            plugins.skipped = "not measured (bench/run passes --noop-plugins)";
        for (int r = 0; r < o_.rounds; ++r) {
            progress("round " + std::to_string(r + 1) + "/" + std::to_string(o_.rounds) +
                     ": create, stop, start");
            one_round(r, create, stop, start, plugins);
        }
        if (plugins.skipped.empty())
            plugins.remark =
                "overhead: " + fixed(plugins.pgforge_median() - plugins.raw_median(), 2) +
                " ms (plugin discovery, 10 loads, 20 hook calls, their journal)";
        report.results = {create, start, stop, plugins};
        if (o_.instances > 0) report.results.push_back(list_benchmark());
        report.results.push_back(conf_set_benchmark());
        report.results.push_back(apply_noop_benchmark());
        report.results.push_back(apply_new_benchmark());
        report.results.push_back(standby_benchmark());
        if (!o_.unit_tests.empty()) report.results.push_back(pgconf_benchmark());
        return report;
    }

  private:
    Argv pgforge(std::initializer_list<std::string> args) const {
        return pgforge_with(settings_, args);
    }
    Argv pgforge_with(const fs::path& settings, std::initializer_list<std::string> args) const {
        Argv argv = {pgforge_.string(), "--settings", settings.string(), "instance"};
        argv.insert(argv.end(), args);
        return argv;
    }

    void write_settings() {
        std::ofstream out(settings_);
        out << "# written by pgforge-bench\nprefix = " << (dir_ / "pgforge").string()
            << "\nrun_dir = " << (dir_ / "run").string() << "\n\n[postgresql]\nversion = " << major_
            << "\n";
        // The packaged layout is found without running anything; another one must be named.
        std::error_code ec;
        fs::path packaged = fs::path("/usr/lib/postgresql") / major_ / "bin";
        if (!fs::equivalent(packaged, o_.bindir, ec)) out << "bindir = " << o_.bindir << "\n";
        out << "listen_addresses = localhost\nport_min = " << kPgforgePortMin
            << "\nport_max = " << kPgforgePortMax << "\n";
        if (!out.flush()) throw Failure("cannot write " + settings_.string());
        if (o_.noop_plugins.empty()) return;
        // The same site with ten no-op plugins enabled.
        fs::copy_file(settings_, plugin_settings_, fs::copy_options::overwrite_existing);
        std::ofstream more(plugin_settings_, std::ios::app);
        more << "\n[plugins]\npath = " << o_.noop_plugins << "\nenabled = ";
        for (int k = 0; k < 10; ++k) more << (k ? ", " : "") << "noop" << k;
        more << "\n";
        if (!more.flush()) throw Failure("cannot write " + plugin_settings_.string());
    }

    // Brings the programs into the page cache so that the first round is not the odd one out.
    void warm_up() {
        runner_.run(pgforge({"list"}));
        runner_.run({initdb_.string(), "--version"});
        runner_.run({pg_ctl_.string(), "--version"});
    }

    // ---- conf set ----

    // The sample postgresql.conf of the installation: Debian's layout, then a source install's.
    fs::path conf_sample() const {
        std::error_code ec;
        for (const fs::path& candidate :
             {fs::path("/usr/share/postgresql") / major_ / kConfSample,
              fs::path(o_.bindir).parent_path() / "share" / "postgresql" / kConfSample,
              fs::path(o_.bindir).parent_path() / "share" / kConfSample})
            if (fs::is_regular_file(candidate, ec)) return candidate;
        return {};
    }

    Argv pgforge_conf_set(const fs::path& file) const {
        return {pgforge_.string(), "--settings",  settings_.string(), "conf", "set",
                "--file",          file.string(), "work_mem=64MB"};
    }
    Argv raw_conf_set(const fs::path& file) const {
        return {o_.pg_conftool, file.string(), "set", "work_mem", "64MB"};
    }

    // A fresh copy of the sample for one side of one round.
    fs::path conf_copy(const fs::path& sample, const std::string& name) const {
        fs::path file = dir_ / "conf" / name;
        std::error_code ec;
        fs::create_directories(file.parent_path(), ec);
        fs::copy_file(sample, file, fs::copy_options::overwrite_existing, ec);
        if (ec)
            throw Failure("cannot copy " + sample.string() + " to " + file.string() + ": " +
                          ec.message());
        return file;
    }

    // The edit happened: the sample's "#work_mem = 4MB" line now reads "work_mem = 64MB".
    static void expect_work_mem(const fs::path& file, const std::string& after) {
        std::ifstream in(file);
        for (std::string line; std::getline(in, line);)
            if (line.starts_with("work_mem = 64MB")) return;
        throw Failure("after " + after + ", " + file.string() +
                      " has no line 'work_mem = 64MB': the setting was not written");
    }

    Result conf_set_benchmark() {
        Result set{.operation = "conf set",
                   .pgforge_command = "conf set --file F work_mem=64MB",
                   .raw_command = "pg_conftool F set work_mem 64MB; F a fresh copy of " +
                                  std::string(kConfSample) + " per side and round",
                   .has_target = false,
                   .remark =
                       "no target: pgforge also checks the name and the value with the "
                       "server's own parser (postgres --describe-config, postgres -C); "
                       "pg_conftool checks nothing"};
        if (access(o_.pg_conftool.c_str(), X_OK) != 0) {
            set.skipped = "pg_conftool not installed (apt-get install postgresql-common)";
            return set;
        }
        const fs::path sample = conf_sample();
        if (sample.empty()) {
            set.skipped = std::string("no ") + kConfSample + " found for PostgreSQL " + major_;
            return set;
        }
        set.raw_command = o_.pg_conftool + " F set work_mem 64MB; F a fresh copy of " +
                          sample.string() + " per side and round";
        // Not timed: both once, to load them (and, for pg_conftool, its Perl modules).
        runner_.run(pgforge_conf_set(conf_copy(sample, "warm-pgforge.conf")));
        runner_.run(raw_conf_set(conf_copy(sample, "warm-raw.conf")));
        progress("conf set: " + std::to_string(o_.rounds) + " rounds");
        for (int r = 0; r < o_.rounds; ++r) {
            const fs::path pf_file = conf_copy(sample, "pgforge-" + std::to_string(r) + ".conf");
            const fs::path raw_file = conf_copy(sample, "raw-" + std::to_string(r) + ".conf");
            measure(
                r % 2 == 0, set, [&] { return runner_.timed({pgforge_conf_set(pf_file)}); },
                [&] { return runner_.timed({raw_conf_set(raw_file)}); });
            expect_work_mem(pf_file, "pgforge conf set");
            expect_work_mem(raw_file, "pg_conftool set");
        }
        return set;
    }

    // ---- instance apply ----

    // Fifty reload-context settings at values the server accepts.
    static const std::vector<std::pair<std::string, std::string>>& fifty_settings() {
        static const std::vector<std::pair<std::string, std::string>> s = {
            {"autovacuum_naptime", "1min"},
            {"autovacuum_vacuum_threshold", "50"},
            {"autovacuum_analyze_threshold", "50"},
            {"autovacuum_vacuum_scale_factor", "0.2"},
            {"autovacuum_analyze_scale_factor", "0.1"},
            {"autovacuum_vacuum_cost_delay", "2ms"},
            {"autovacuum_vacuum_cost_limit", "-1"},
            {"bgwriter_delay", "200ms"},
            {"bgwriter_lru_maxpages", "100"},
            {"bgwriter_lru_multiplier", "2.0"},
            {"checkpoint_completion_target", "0.9"},
            {"checkpoint_timeout", "5min"},
            {"checkpoint_warning", "30s"},
            {"commit_delay", "0"},
            {"commit_siblings", "5"},
            {"cpu_index_tuple_cost", "0.005"},
            {"cpu_operator_cost", "0.0025"},
            {"cpu_tuple_cost", "0.01"},
            {"deadlock_timeout", "1s"},
            {"default_statistics_target", "100"},
            {"effective_cache_size", "4GB"},
            {"effective_io_concurrency", "1"},
            {"from_collapse_limit", "8"},
            {"join_collapse_limit", "8"},
            {"geqo_threshold", "12"},
            {"idle_in_transaction_session_timeout", "0"},
            {"lock_timeout", "0"},
            {"log_autovacuum_min_duration", "-1"},
            {"log_checkpoints", "on"},
            {"log_connections", "off"},
            {"log_disconnections", "off"},
            {"log_lock_waits", "off"},
            {"log_min_duration_statement", "-1"},
            {"log_temp_files", "-1"},
            {"maintenance_work_mem", "64MB"},
            {"max_wal_size", "1GB"},
            {"min_wal_size", "80MB"},
            {"random_page_cost", "4"},
            {"seq_page_cost", "1"},
            {"statement_timeout", "0"},
            {"temp_file_limit", "-1"},
            {"track_activities", "on"},
            {"track_counts", "on"},
            {"track_io_timing", "off"},
            {"vacuum_cost_delay", "0"},
            {"vacuum_cost_limit", "200"},
            {"wal_writer_delay", "200ms"},
            {"work_mem", "4MB"},
            {"jit", "on"},
            {"log_statement", "none"}};
        return s;
    }

    // A manifest of `settings` settings, `records` HBA records, and as many roles and databases.
    static std::string manifest(const std::string& name, size_t settings, int records,
                                int objects) {
        std::string m = "name: " + name + "\nsettings:\n";
        for (size_t k = 0; k < settings && k < fifty_settings().size(); ++k)
            m += "  " + fifty_settings()[k].first + ": \"" + fifty_settings()[k].second + "\"\n";
        m += "hba:\n";
        for (int k = 0; k < records; ++k)
            m += "  - \"host d" + std::to_string(k) + " r" + std::to_string(k) + " 10.0." +
                 std::to_string(k) + ".0/24 scram-sha-256\"\n";
        m += "roles:\n";
        for (int k = 0; k < objects; ++k)
            m += "  - {name: r" + std::to_string(k) + ", login: true}\n";
        m += "databases:\n";
        for (int k = 0; k < objects; ++k)
            m += "  - {name: d" + std::to_string(k) + ", owner: r" + std::to_string(k) + "}\n";
        return m;
    }

    fs::path write_file(const std::string& name, const std::string& text) const {
        fs::path file = dir_ / "manifests" / name;
        std::error_code ec;
        fs::create_directories(file.parent_path(), ec);
        std::ofstream out(file);
        out << text;
        if (!out.flush()) throw Failure("cannot write " + file.string());
        return file;
    }

    // A no-op apply: the instance already is what the manifest says.
    Result apply_noop_benchmark() {
        Result noop{.operation = "apply no-op",
                    .pgforge_command =
                        "instance apply -f F, F already applied: 50 settings, 20 "
                        "HBA records, 50 roles, 50 databases",
                    .absolute = true,
                    .target = 20};
        progress("apply no-op: making the instance (50 roles, 50 databases)");
        const fs::path file = write_file("noop.yaml", manifest("noop", 50, 20, 50));
        runner_.run(pgforge({"apply", "-f", file.string()}));
        // Not timed: the second apply changes nothing (checked), and warms the caches.
        std::string out = runner_.capture(pgforge({"apply", "-f", file.string()}));
        if (out.find("instance 15/noop: unchanged") == std::string::npos &&
            out.find(": unchanged") == std::string::npos)
            throw Failure("a second instance apply of the same manifest changed something:\n" +
                          out);
        progress("apply no-op: " + std::to_string(o_.rounds) + " rounds");
        for (int r = 0; r < o_.rounds; ++r)
            noop.pgforge_ms.push_back(runner_.timed({pgforge({"apply", "-f", file.string()})}));
        runner_.run(pgforge({"drop", "noop"}));
        return noop;
    }

    // A new instance by one apply, against create followed by the commands that do the same.
    Result apply_new_benchmark() {
        Result fresh{.operation = "apply new",
                     .pgforge_command =
                         "instance apply -f F (new instance: 5 settings, 2 HBA "
                         "records, 2 roles, 2 databases)",
                     .raw_command =
                         "instance create + conf set (5) + 2 hba add + role apply + "
                         "database apply (the same pgforge)",
                     .target = 1.0};
        progress("apply new: " + std::to_string(o_.rounds) + " rounds");
        for (int r = 0; r < o_.rounds; ++r) {
            const std::string a = "a" + std::to_string(r), c = "c" + std::to_string(r);
            const fs::path file = write_file(a + ".yaml", manifest(a, 5, 2, 2));
            std::string roles, dbs;
            for (int k = 0; k < 2; ++k) {
                roles += "- {name: r" + std::to_string(k) + ", login: true}\n";
                dbs += "- {name: d" + std::to_string(k) + ", owner: r" + std::to_string(k) + "}\n";
            }
            const fs::path roles_file = write_file(c + "-roles.yaml", roles);
            const fs::path dbs_file = write_file(c + "-dbs.yaml", dbs);
            Argv conf_set = {
                pgforge_.string(), "--settings", settings_.string(), "conf", "set", "-i", c};
            for (size_t k = 0; k < 5; ++k)
                conf_set.push_back(fifty_settings()[k].first + "=" + fifty_settings()[k].second);
            auto hba_add = [&](int k) {
                return Argv{pgforge_.string(),
                            "--settings",
                            settings_.string(),
                            "hba",
                            "add",
                            "-i",
                            c,
                            "host",
                            "d" + std::to_string(k),
                            "r" + std::to_string(k),
                            "10.0." + std::to_string(k) + ".0/24",
                            "scram-sha-256"};
            };
            auto sql = [&](const char* object, const fs::path& f) {
                return Argv{pgforge_.string(),
                            "--settings",
                            settings_.string(),
                            object,
                            "apply",
                            "-i",
                            c,
                            "-f",
                            f.string()};
            };
            measure(
                r % 2 == 0, fresh,
                [&] {
                    return runner_.timed({pgforge({"apply", "-f", file.string()})});
                },
                [&] {
                    return runner_.timed({pgforge({"create", c}), conf_set, hba_add(0), hba_add(1),
                                          sql("role", roles_file), sql("database", dbs_file)});
                });
            expect_server(pgforge_data_dir(a), true, "pgforge instance apply");
            runner_.run(pgforge({"drop", a}));
            runner_.run(pgforge({"drop", c}));
            check_interrupted();
        }
        return fresh;
    }

    // ---- a standby ----

    // A standby of a pgforge primary, against pg_basebackup -R and pg_ctl -w start by hand from
    // the same primary, as the same replication role with the same passfile, over TCP.
    Result standby_benchmark() {
        Result standby{.operation = "standby",
                       .pgforge_command =
                           "instance create NAME --standby-for PRIMARY (role, pg_hba.conf record "
                           "and slot checked on the primary, base backup, configuration, start, "
                           "until it streams)",
                       .raw_command =
                           "pg_basebackup -R -X stream -c fast + pg_ctl -w start, "
                           "timed together",
                       .target = 1.0};
        progress("standby: making the primary and a first standby (not timed)");
        runner_.run(pgforge({"create", "sp"}));
        // The first standby prepares the primary (role, record); its passfile serves the raw side.
        runner_.run(pgforge({"create", "sfirst", "--standby-for", "sp"}));
        const fs::path passfile = pgforge_data_dir("sfirst").parent_path() / "replication.pgpass";
        std::string port_line = runner_.capture(pgforge({"get", "sp", "--json"}));
        const std::string key = "\"port\": ";
        auto at = port_line.find(key);
        if (at == std::string::npos) throw Failure("no port in pgforge instance get sp --json");
        const int primary_port = std::atoi(port_line.c_str() + at + key.size());
        progress("standby: " + std::to_string(o_.rounds) + " rounds");
        for (int r = 0; r < o_.rounds; ++r) {
            const std::string name = "s" + std::to_string(r);
            RawCluster raw = make_raw_cluster("standby" + std::to_string(r));
            const Argv basebackup = {(fs::path(o_.bindir) / "pg_basebackup").string(),
                                     "-D",
                                     raw.data.string(),
                                     "-R",
                                     "-X",
                                     "stream",
                                     "-c",
                                     "fast",
                                     "-w",
                                     "-d",
                                     "host=127.0.0.1 port=" + std::to_string(primary_port) +
                                         " user=replicator passfile=" + passfile.string()};
            measure(
                r % 2 == 0, standby,
                [&] {
                    return runner_.timed({pgforge({"create", name, "--standby-for", "sp"})});
                },
                [&] {
                    return runner_.timed({basebackup, raw_start(raw)}, raw.log);
                });
            expect_server(pgforge_data_dir(name), true, "pgforge instance create --standby-for");
            expect_server(raw.data, true, "pg_basebackup + pg_ctl start");
            runner_.run(pgforge({"drop", name}));
            runner_.run(raw_stop(raw, "immediate"), raw.log);
            remove_tree(raw.dir);
            check_interrupted();
        }
        runner_.run(pgforge({"drop", "sfirst"}));
        runner_.run(pgforge({"drop", "sp"}));
        return standby;
    }

    // ---- the library's parse + set + write, timed by the unit tests ----

    // Runs the unit tests' hidden [.bench] case once; returns the median it prints.
    double unit_tests_median() {
        const Argv argv = {o_.unit_tests, kUnitTestsFilter};
        std::string out, err;
        const int status = runner_.capture_status(argv, out, err);
        check_interrupted();
        std::optional<double> median;
        for (size_t at = out.find(kUnitTestsMedianKey); at != std::string::npos;
             at = out.find(kUnitTestsMedianKey, at + 1)) {
            if (at != 0 && out[at - 1] != '\n') continue;
            const char* begin = out.c_str() + at + kUnitTestsMedianKey.size();
            char* end = nullptr;
            double value = std::strtod(begin, &end);
            if (end != begin && value >= 0) median = value;
            break;
        }
        // The case only measures; the target is judged here like every other row.
        if (median && status == 0) return *median;
        std::string message =
            join(argv) + " (exit status " + std::to_string(status) + ") " +
            (median ? "failed" : "printed no '" + std::string(kUnitTestsMedianKey) + "' line");
        if (out.size() > 4000) out = "..." + out.substr(out.size() - 4000);
        message += out.empty() ? "\n  (nothing on stdout)" : "\n  stdout:\n" + out;
        if (!err.empty()) message += "\n  stderr:\n" + err;
        throw Failure(message);
    }

    Result pgconf_benchmark() {
        Result pgconf{.operation = "pgconf 10k",
                      .pgforge_command =
                          "the library's ConfDocument parse + 3 sets + print + "
                          "write_file_atomically of a 10,000-line "
                          "postgresql.conf (median of 50 runs inside " +
                          fs::path(o_.unit_tests).filename().string() + " \"" + kUnitTestsFilter +
                          "\", once per round)",
                      .absolute = true,
                      .target = kPgconfTargetMs};
        progress("pgconf 10k: " + std::to_string(o_.rounds) + " runs of " + o_.unit_tests + " " +
                 kUnitTestsFilter);
        unit_tests_median();  // not counted: brings the binary into the page cache
        for (int r = 0; r < o_.rounds; ++r) pgconf.pgforge_ms.push_back(unit_tests_median());
        return pgconf;
    }

    RawCluster make_raw_cluster(const std::string& name) {
        RawCluster c;
        c.dir = dir_ / "raw" / name;
        c.data = c.dir / "data";
        c.log = c.dir / "postgresql.log";
        c.sockets = c.dir / "sockets";
        std::error_code ec;
        fs::create_directories(c.sockets, ec);
        if (ec) throw Failure("cannot create " + c.sockets.string() + ": " + ec.message());
        while (next_raw_port_ <= kRawPortMax && !port_is_free(next_raw_port_)) ++next_raw_port_;
        if (next_raw_port_ > kRawPortMax)
            throw Failure("no free port between " + std::to_string(kRawPortMin) + " and " +
                          std::to_string(kRawPortMax) + " for the raw clusters");
        c.port = next_raw_port_++;
        return c;
    }

    Argv raw_initdb(const RawCluster& c) const {
        return {initdb_.string(),    "-D", c.data.string(), "--auth=peer",     "-U", "postgres",
                "--no-instructions", "-E", "UTF8",          "--locale=C.UTF-8"};
    }
    Argv raw_start(const RawCluster& c) const {
        // The same listen_addresses as pgforge's instances; the socket in a private directory.
        return {pg_ctl_.string(),
                "-D",
                c.data.string(),
                "-w",
                "-l",
                c.log.string(),
                "-o",
                "-c listen_addresses=localhost -k " + c.sockets.string() + " -p " +
                    std::to_string(c.port),
                "start"};
    }
    Argv raw_stop(const RawCluster& c, const char* mode) const {
        return {pg_ctl_.string(), "-D", c.data.string(), "-w", "-m", mode, "stop"};
    }

    fs::path pgforge_data_dir(const std::string& name) {
        std::string out = runner_.capture(pgforge({"get", name, "--json"}));
        const std::string key = "\"data_dir\": \"";
        auto at = out.find(key);
        auto end = at == std::string::npos ? at : out.find('"', at + key.size());
        if (end == std::string::npos)
            throw Failure("no data_dir in the output of pgforge instance get " + name +
                          " --json:\n" + out);
        return out.substr(at + key.size(), end - at - key.size());
    }

    static void expect_server(const fs::path& data, bool running, const std::string& after) {
        std::error_code ec;
        bool has_pid = fs::exists(data / "postmaster.pid", ec);
        if (has_pid != running)
            throw Failure("after " + after + ", " + (data / "postmaster.pid").string() +
                          (running ? " is missing: the server is not running"
                                   : " is still there: the server did not stop"));
    }

    // Times both sides once, in the given order.
    static void measure(bool pgforge_first, Result& result, const std::function<double()>& pf,
                        const std::function<double()>& raw) {
        if (pgforge_first) {
            result.pgforge_ms.push_back(pf());
            result.raw_ms.push_back(raw());
        } else {
            result.raw_ms.push_back(raw());
            result.pgforge_ms.push_back(pf());
        }
    }

    void one_round(int round, Result& create, Result& stop, Result& start, Result& plugins) {
        const std::string name = "b" + std::to_string(round);
        const bool pgforge_first = round % 2 == 0;
        RawCluster raw = make_raw_cluster(name);

        auto pgforge_create = [&] { return runner_.timed({pgforge({"create", name})}); };
        auto raw_create = [&] { return runner_.timed({raw_initdb(raw), raw_start(raw)}, raw.log); };
        measure(pgforge_first, create, pgforge_create, raw_create);
        const fs::path data = pgforge_data_dir(name);
        expect_server(data, true, "pgforge instance create");
        expect_server(raw.data, true, "initdb + pg_ctl start");

        auto pgforge_stop = [&] { return runner_.timed({pgforge({"stop", name})}); };
        auto raw_stop_fast = [&] { return runner_.timed({raw_stop(raw, "fast")}, raw.log); };
        measure(pgforge_first, stop, pgforge_stop, raw_stop_fast);
        expect_server(data, false, "pgforge instance stop");
        expect_server(raw.data, false, "pg_ctl stop");

        auto pgforge_start = [&] { return runner_.timed({pgforge({"start", name})}); };
        auto raw_start_again = [&] { return runner_.timed({raw_start(raw)}, raw.log); };
        measure(pgforge_first, start, pgforge_start, raw_start_again);
        expect_server(data, true, "pgforge instance start");
        expect_server(raw.data, true, "pg_ctl start");

        if (!o_.noop_plugins.empty()) {
            // Both sides are pgforge; the stops between them are not timed.
            auto with = [&] {
                runner_.run(pgforge({"stop", name}));
                return runner_.timed({pgforge_with(plugin_settings_, {"start", name})});
            };
            auto without = [&] {
                runner_.run(pgforge({"stop", name}));
                return runner_.timed({pgforge({"start", name})});
            };
            measure(pgforge_first, plugins, with, without);
            expect_server(data, true, "pgforge instance start with plugins");
        }

        // Not timed: make room for the next round.
        runner_.run(pgforge({"drop", name}));
        runner_.run(raw_stop(raw, "immediate"), raw.log);
        remove_tree(raw.dir);
        check_interrupted();
    }

    Result list_benchmark() {
        Result list{.operation = "list",
                    .pgforge_command = "instance list, " + std::to_string(o_.instances) +
                                       " stopped instances in the inventory",
                    .absolute = true,
                    .raw_is_reference = true,
                    .target = 10};
        progress("creating " + std::to_string(o_.instances) +
                 " stopped instances for the list benchmark");
        for (int k = 0; k < o_.instances; ++k) {
            runner_.run(pgforge({"create", "l" + std::to_string(k), "--state", "stopped"}));
            check_interrupted();
        }
        // Not timed: the listing shows them all (a header, then one line each).
        std::string out = runner_.capture(pgforge({"list"}));
        auto lines = std::count(out.begin(), out.end(), '\n');
        if (lines != o_.instances + 1)
            throw Failure("pgforge instance list printed " + std::to_string(lines) +
                          " lines, expected a header and " + std::to_string(o_.instances) +
                          " instances:\n" + out);
        const bool lsclusters = access(kPgLsclusters, X_OK) == 0;
        if (lsclusters) list.raw_command = std::string(kPgLsclusters) + " (reference)";
        progress("list: " + std::to_string(o_.rounds) + " rounds");
        for (int r = 0; r < o_.rounds; ++r) {
            auto pf = [&] { return runner_.timed({pgforge({"list"})}); };
            if (!lsclusters) {
                list.pgforge_ms.push_back(pf());
                continue;
            }
            measure(r % 2 == 0, list, pf, [&] { return runner_.timed({Argv{kPgLsclusters}}); });
        }
        return list;
    }

    const Options& o_;
    fs::path dir_;
    fs::path pgforge_, initdb_, pg_ctl_, settings_, plugin_settings_;
    Runner runner_;
    std::string major_;
    int next_raw_port_ = kRawPortMin;
};

// Validates the programs, makes (or adopts) the temporary directory and runs the benchmark in
// it; the directory and its servers are gone when this returns or throws.
int run_benchmark(Options o) {
    install_signal_handlers(remember_signal);
    o.pgforge = fs::absolute(o.pgforge).lexically_normal().string();
    o.bindir = fs::absolute(o.bindir).lexically_normal().string();
    o.pg_conftool = fs::absolute(o.pg_conftool).lexically_normal().string();
    require_executable(o.pgforge, "pgforge");
    if (!o.unit_tests.empty()) {
        o.unit_tests = fs::absolute(o.unit_tests).lexically_normal().string();
        require_executable(o.unit_tests, "the unit tests");
    }
    for (const char* program : {"initdb", "pg_ctl", "postgres"})
        require_executable(fs::path(o.bindir) / program, program);

    fs::path dir = o.workdir.empty() ? make_temp_dir() : adopt_temp_dir(o.workdir);
    Report report;
    {
        Workspace workspace(dir, fs::path(o.bindir) / "pg_ctl");
        if (chdir(dir.c_str()) != 0) throw Failure("cannot enter " + dir.string());
        progress("working in " + dir.string() + " as " + current_user());
        Benchmark bench(o, dir);
        report = bench.run();
    }
    if (o.json)
        print_json(std::cout, report);
    else
        print_table(std::cout, report);
    return 0;
}

// As root: PostgreSQL refuses to run as root, so the benchmark re-executes itself as postgres
// in a temporary directory made here, and everything (pgforge and the raw tools) runs as that
// user. This process waits, and cleans up whatever a crashed child left behind.
int rerun_as_postgres(const Options& o, char** argv) {
    const passwd* pw = getpwnam(kOsUser);
    if (pw == nullptr)
        throw Failure(std::string("running as root, but there is no '") + kOsUser +
                      "' OS user: PostgreSQL refuses to run as root; create it or run the "
                      "benchmark as an unprivileged user");
    const uid_t uid = pw->pw_uid;
    const gid_t gid = pw->pw_gid;
    const std::string home = pw->pw_dir;
    std::error_code ec;
    fs::path self = fs::read_symlink("/proc/self/exe", ec);
    if (ec) self = fs::absolute(argv[0]);
    const std::string pgforge = fs::absolute(o.pgforge).lexically_normal().string();
    const std::string bindir = fs::absolute(o.bindir).lexically_normal().string();
    const std::string unit_tests =
        o.unit_tests.empty() ? "" : fs::absolute(o.unit_tests).lexically_normal().string();
    const std::string pg_conftool = fs::absolute(o.pg_conftool).lexically_normal().string();

    fs::path dir = make_temp_dir();
    if (chown(dir.c_str(), uid, gid) != 0) {
        std::string why = errno_text();
        remove_tree(dir);
        throw Failure("cannot give " + dir.string() + " to " + kOsUser + ": " + why);
    }
    std::cerr << "pgforge-bench: running as " << kOsUser
              << " (PostgreSQL refuses to run as root; pgforge and the raw tools both run as "
              << kOsUser << ")" << std::endl;

    Argv args = {self.string(),
                 "--pgforge",
                 pgforge,
                 "--bindir",
                 bindir,
                 "--rounds",
                 std::to_string(o.rounds),
                 "--instances",
                 std::to_string(o.instances),
                 "--pg-conftool",
                 pg_conftool,
                 "--workdir",
                 dir.string()};
    if (!unit_tests.empty()) args.insert(args.end(), {"--unit-tests", unit_tests});
    if (!o.noop_plugins.empty())
        args.insert(args.end(),
                    {"--noop-plugins", fs::absolute(o.noop_plugins).lexically_normal().string()});
    if (o.json) args.push_back("--json");
    std::vector<char*> cargs;
    for (auto& a : args) cargs.push_back(a.data());
    cargs.push_back(nullptr);

    install_signal_handlers(forward_signal);
    pid_t child = fork();
    if (child < 0) {
        std::string why = errno_text();
        remove_tree(dir);
        throw Failure("fork: " + why);
    }
    if (child == 0) {
        // Its own process group: a terminal's ^C reaches this process, which forwards it, and
        // whatever the child leaves running if it dies can be stopped as one group.
        setpgid(0, 0);
        if (setgid(gid) != 0 || initgroups(kOsUser, gid) != 0 || setuid(uid) != 0) {
            dprintf(STDERR_FILENO, "pgforge-bench: cannot become %s: %s\n", kOsUser,
                    std::strerror(errno));
            _exit(1);
        }
        for (const auto& [what, path] :
             {std::pair{"pgforge-bench", self.string()}, std::pair{"pgforge", pgforge},
              std::pair{"the unit tests", unit_tests}})
            if (!path.empty() && access(path.c_str(), X_OK) != 0) {
                dprintf(STDERR_FILENO,
                        "pgforge-bench: %s cannot execute %s %s: %s\n  hint: every directory "
                        "above it must be searchable by %s (chmod o+x), the file executable\n",
                        kOsUser, what, path.c_str(), std::strerror(errno), kOsUser);
                _exit(1);
            }
        setenv("HOME", home.c_str(), 1);
        setenv("USER", kOsUser, 1);
        setenv("LOGNAME", kOsUser, 1);
        if (chdir(dir.c_str()) != 0) _exit(1);
        signal(SIGINT, SIG_DFL);
        signal(SIGTERM, SIG_DFL);
        signal(SIGHUP, SIG_DFL);
        execv(cargs[0], cargs.data());
        dprintf(STDERR_FILENO, "pgforge-bench: cannot run %s as %s: %s\n", cargs[0], kOsUser,
                std::strerror(errno));
        _exit(1);
    }
    setpgid(child, child);  // as the child does: whichever runs first
    g_child = child;
    int status = 0;
    while (waitpid(child, &status, 0) < 0)
        if (errno != EINTR) break;
    g_child = 0;
    // The child removes the directory; if it could not (killed, crashed), do it here, once
    // the commands it was running are gone.
    if (fs::exists(dir, ec)) {
        if (!fs::is_empty(dir, ec))
            std::cerr << "pgforge-bench: the benchmark ended abnormally; cleaning up "
                      << dir.string() << std::endl;
        kill(-child, SIGKILL);
        for (int k = 0; k < 100 && kill(-child, 0) == 0; ++k)
            std::this_thread::sleep_for(std::chrono::milliseconds(50));
        for (const auto& data : server_dirs(dir)) kill_server(data);
        remove_tree(dir);
    }
    if (WIFEXITED(status)) return WEXITSTATUS(status);
    if (WIFSIGNALED(status)) return 128 + WTERMSIG(status);
    return 1;
}

}  // namespace

int main(int argc, char** argv) {
    try {
        auto options = parse_options(argc, argv);
        if (!options) {
            print_usage(std::cout);
            return 0;
        }
        if (geteuid() == 0) {
            if (!options->workdir.empty())
                throw UsageError("--workdir is internal, and not for root");
            return rerun_as_postgres(*options, argv);
        }
        return run_benchmark(*options);
    } catch (const UsageError& e) {
        std::cerr << "pgforge-bench: " << e.what() << "\n\n";
        print_usage(std::cerr);
        return 2;
    } catch (const std::exception& e) {
        std::cerr << "pgforge-bench: " << e.what() << "\n";
        return g_signal ? 128 + g_signal : 1;
    }
}
