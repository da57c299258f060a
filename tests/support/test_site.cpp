#include "tests/support/test_site.hpp"

#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <fstream>
#include <sstream>
#include <thread>

#include "engine/cli/cli.hpp"
#include "engine/core/process.hpp"
#include "engine/pg/postmaster_pid.hpp"

namespace fs = std::filesystem;

namespace pgforge::test {

TestSite::TestSite() {
    char tmpl[] = "/tmp/pgforge-it-XXXXXX";
    if (!mkdtemp(tmpl)) throw std::runtime_error("mkdtemp failed");
    root_ = tmpl;
    // The server's OS user must be able to reach its directories under the site.
    chmod(root_.c_str(), 0755);
    // Each test process gets its own range of ports, so that tests can run side by side.
    port_min_ = 20000 + static_cast<int>(getpid() % 400) * 100;
    settings_file_ = root_ / "settings.ini";
    std::ofstream s(settings_file_);
    s << "prefix = " << (root_ / "prefix").string() << "\n"
      << "run_dir = " << (root_ / "run").string() << "\n"
      << "[postgresql]\n"
      << "port_min = " << port_min_ << "\n"
      << "port_max = " << port_min_ + 99 << "\n"
      << "start_timeout = 30\n"
      << "stop_timeout = 30\n"
      << "lock_timeout = 1\n";
}

TestSite::~TestSite() {
    stop_all_servers();
    std::error_code ec;
    fs::remove_all(root_, ec);
}

Settings TestSite::settings() const {
    SettingsOverrides o;
    o.settings_file = settings_file_;
    return load_settings(o);
}

void TestSite::add_settings(const std::string& text) const {
    std::ofstream s(settings_file_, std::ios::app);
    s << "\n" << text << "\n";
}

TestSite::Output TestSite::cli(std::vector<std::string> args) const {
    args.insert(args.begin(), {"--settings", settings_file_.string()});
    std::ostringstream out, err;
    Output r;
    r.status = cli::run(args, out, err);
    r.out = out.str();
    r.err = err.str();
    return r;
}

void TestSite::stop_all_servers() const {
    std::error_code ec;
    std::vector<fs::path> data_dirs, pid_files;
    for (auto it = fs::recursive_directory_iterator(root_, ec);
         !ec && it != fs::recursive_directory_iterator(); it.increment(ec)) {
        if (it->path().filename() == "postmaster.pid")
            data_dirs.push_back(it->path().parent_path());
        else if (it->path().extension() == ".pid")
            pid_files.push_back(it->path());
    }
    for (const auto& file : pid_files) {
        std::ifstream in(file);
        long pid = 0;
        if (!(in >> pid) || pid <= 1 || !process_exists(static_cast<pid_t>(pid))) continue;
        kill(static_cast<pid_t>(pid), SIGTERM);
        auto until = std::chrono::steady_clock::now() + std::chrono::seconds(5);
        while (process_exists(static_cast<pid_t>(pid)) && std::chrono::steady_clock::now() < until)
            std::this_thread::sleep_for(std::chrono::milliseconds(5));
        if (process_exists(static_cast<pid_t>(pid))) kill(static_cast<pid_t>(pid), SIGKILL);
    }
    for (const auto& dir : data_dirs) {
        auto pm = read_postmaster_pid(dir);
        if (!pm || !process_exists(pm->pid)) continue;
        kill(pm->pid, SIGQUIT);
        auto until = std::chrono::steady_clock::now() + std::chrono::seconds(10);
        while (!reap_if_exited(pm->pid) && fs::exists(dir / "postmaster.pid", ec) &&
               std::chrono::steady_clock::now() < until)
            std::this_thread::sleep_for(std::chrono::milliseconds(5));
        if (fs::exists(dir / "postmaster.pid", ec) && process_exists(pm->pid))
            kill(pm->pid, SIGKILL);
    }
}

Listener::Listener(int port) {
    fd_ = socket(AF_INET, SOCK_STREAM, 0);
    int one = 1;
    setsockopt(fd_, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(static_cast<uint16_t>(port));
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (fd_ < 0 || bind(fd_, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 || listen(fd_, 1) != 0)
        throw std::runtime_error("cannot listen on 127.0.0.1:" + std::to_string(port));
}

Listener::~Listener() {
    if (fd_ >= 0) close(fd_);
}

std::string expected_owner() {
    return running_as_root() ? "postgres" : current_user_name();
}

}  // namespace pgforge::test
