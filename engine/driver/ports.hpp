// Whether a TCP port is free on the loopback addresses, as the server would bind it.
#pragma once

namespace pgforge {

// Nothing listens on `port` (loopback, IPv4 and IPv6; SO_REUSEADDR as the server sets it).
bool port_is_free(int port);
// The first port from `from` that is free; Error(Exit::conflict) when none is.
int find_free_port(int from = 5432, int to = 65535);

}  // namespace pgforge
