#include "engine/operations/server.hpp"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <fstream>
#include <thread>

#include "engine/conf/template.hpp"
#include "engine/core/error.hpp"
#include "engine/core/settings.hpp"
#include "engine/pg/connection.hpp"
#include "engine/pg/postmaster_pid.hpp"

namespace fs = std::filesystem;

namespace pgforge {

Server::Server(ServerOptions o) {
    if (!o.data_dir.is_absolute())
        throw Error(Exit::usage,
                    "server data directory " + o.data_dir.string() + " is not absolute");
    Settings settings = load_settings();
    Instance& i = cluster_.instance;
    i.name = o.data_dir.filename().string();
    i.base_dir = o.data_dir.parent_path();
    i.data_dir = o.data_dir;
    i.socket_dir = o.data_dir;  // private by construction
    i.log_file = o.data_dir / "server.log";
    i.owner = o.owner.empty() ? settings.owner : o.owner;
    i.superuser = settings.superuser;
    cluster_.installation = select_installation(settings, o.version);
    cluster_.owner = lookup_os_user(i.owner);
    i.version = cluster_.installation.major();

    std::error_code ec;
    bool exists = fs::exists(o.data_dir / "PG_VERSION", ec);
    if (!exists && !o.initialize)
        throw Error(Exit::not_found, "no PostgreSQL data directory at " + o.data_dir.string(),
                    "pass initialize = true to create one");
    if (!exists) driver_.initdb(cluster_, InitOptions{}, nullptr);
    if (auto pm = read_postmaster_pid(o.data_dir); pm && process_exists(pm->pid)) {
        i.port = pm->port;
    } else {
        i.port = o.port ? o.port : find_free_port(15432);
    }
    // The last occurrence of a setting wins: appending is enough to set ours. The data directory
    // is its owner's: the file is read and rewritten with the owner's rights (safe_fs), never
    // appended to by path as root.
    const fs::path conf = o.data_dir / "postgresql.conf";
    std::string text = read_text_file(conf);
    text += "\n# set by pgforge::Server\nport = " + std::to_string(i.port) +
            "\nlisten_addresses = '" + o.host + "'\nunix_socket_directories = '" +
            i.socket_dir.string() + "'\n";
    write_file_atomically(conf, text, &cluster_.owner, fs::perms(0600));
}

Server::~Server() {
    if (!started_) return;
    try {
        driver_.stop(cluster_, StopMode::fast, 30);
    } catch (...) {
        try {
            driver_.stop(cluster_, StopMode::immediate, 30);
        } catch (...) {
        }
    }
}

void Server::start(bool wait, double timeout) {
    // Without waiting, the start returns as soon as the process runs.
    started_ = driver_.start(cluster_, wait ? timeout : 0.0, nullptr) || started_;
}

void Server::ready_wait(double timeout) {
    auto until = std::chrono::steady_clock::now() + std::chrono::duration<double>(timeout);
    while (!health()) {
        if (!driver_.status(cluster_).running)
            throw Error(Exit::server,
                        "server " + cluster_.instance.data_dir.string() + " is not running");
        if (std::chrono::steady_clock::now() > until)
            throw Error(Exit::server, "server " + cluster_.instance.data_dir.string() +
                                          " did not accept connections within " +
                                          std::to_string(timeout) + " s");
        std::this_thread::sleep_for(std::chrono::milliseconds(2));
    }
}

bool Server::health() {
    return pg::accepting_connections(cluster_.instance.socket_dir.string(), cluster_.instance.port,
                                     cluster_.instance.superuser);
}

void Server::stop(StopMode mode, double timeout) {
    driver_.stop(cluster_, mode, timeout);
    started_ = false;
}

pid_t Server::pid() {
    return driver_.status(cluster_).pid;
}

}  // namespace pgforge
