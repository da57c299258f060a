#include "engine/driver/ports.hpp"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
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

}  // namespace pgforge
