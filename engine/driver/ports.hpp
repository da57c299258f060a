// Whether a TCP port is free on the loopback addresses, as the server would bind it; whether
// something listens there, and what.
#pragma once

#include <string>

namespace pgforge {

// Nothing listens on `port` (loopback, IPv4 and IPv6; SO_REUSEADDR as the server sets it).
bool port_is_free(int port);
// The first port from `from` that is free; Error(Exit::conflict) when none is.
int find_free_port(int from = 5432, int to = 65535);
// A connection to 127.0.0.1:port is accepted.
bool port_listening(int port);
// The process listening on TCP `port` (any address), from /proc/net/tcp{,6} and the descriptors
// of the processes this user may see: "pid 123 (nginx)"; empty when /proc does not tell.
std::string port_holder(int port);

}  // namespace pgforge
