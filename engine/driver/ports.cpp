#include "engine/driver/ports.hpp"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <dirent.h>

#include <cctype>
#include <cerrno>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>
#include <string>

#include "engine/core/error.hpp"

namespace pgforge {

bool port_is_free(int port) {
    auto try_bind = [port](int family) {
        int fd = socket(family, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fd < 0) return true;  // no such address family here: nothing can hold the port
        int one = 1;
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);  // as the server does
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
            if (rc != 0 && errno == EADDRNOTAVAIL) rc = 0;  // no IPv6 loopback
        }
        close(fd);
        return rc == 0;
    };
    return try_bind(AF_INET) && try_bind(AF_INET6);
}

int find_free_port(int from, int to) {
    for (int p = from; p <= to; ++p)
        if (port_is_free(p)) return p;
    throw Error(Exit::conflict,
                "no free port between " + std::to_string(from) + " and " + std::to_string(to));
}

bool port_listening(int port) {
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return false;
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(static_cast<uint16_t>(port));
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    bool ok = connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0;
    close(fd);
    return ok;
}

std::string port_holder(int port) {
    namespace fs = std::filesystem;
    // The inodes of the sockets listening on the port.
    std::set<std::string> inodes;
    for (const char* table : {"/proc/net/tcp", "/proc/net/tcp6"}) {
        std::ifstream in(table);
        std::string line;
        std::getline(in, line);  // header
        while (std::getline(in, line)) {
            std::istringstream f(line);
            std::string slot, local, remote, state, queues, timer, retrans, uid, timeout, inode;
            f >> slot >> local >> remote >> state >> queues >> timer >> retrans >> uid >> timeout >>
                inode;
            auto colon = local.rfind(':');
            if (state != "0A" || colon == std::string::npos) continue;  // 0A: LISTEN
            try {
                if (std::stoi(local.substr(colon + 1), nullptr, 16) == port) inodes.insert(inode);
            } catch (const std::exception&) {
            }
        }
    }
    if (inodes.empty()) return {};
    DIR* proc = opendir("/proc");
    if (!proc) return {};
    std::string found;
    while (dirent* e = readdir(proc)) {
        std::string pid = e->d_name;
        if (pid.empty() || !std::isdigit(static_cast<unsigned char>(pid[0]))) continue;
        std::error_code ec;
        for (auto it = fs::directory_iterator("/proc/" + pid + "/fd", ec);
             !ec && it != fs::directory_iterator(); it.increment(ec)) {
            std::error_code link_ec;
            std::string t = fs::read_symlink(it->path(), link_ec).string();
            if (link_ec || t.rfind("socket:[", 0) != 0 || t.size() < 10) continue;
            if (!inodes.count(t.substr(8, t.size() - 9))) continue;
            std::ifstream comm("/proc/" + pid + "/comm");
            std::string name;
            std::getline(comm, name);
            found = "pid " + pid + (name.empty() ? "" : " (" + name + ")");
            break;
        }
        if (!found.empty()) break;
    }
    closedir(proc);
    return found;
}

}  // namespace pgforge
