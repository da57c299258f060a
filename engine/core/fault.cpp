#include "engine/core/fault.hpp"

#include <signal.h>
#include <unistd.h>

#include <cstdlib>
#include <string>

namespace pgforge {

#ifdef PGFORGE_FAULT_INJECTION

namespace {
int reached = 0;
}

void fault_point(std::string_view operation, std::string_view where, std::string_view when) {
    const char* target = std::getenv("PGFORGE_FAULT_KILL_AT");
    if (!target || !*target) return;
    ++reached;
    std::string name = std::string(operation) + ":" + std::string(where) + ":" + std::string(when);
    std::string t = target;
    bool numeric = t.find_first_not_of("0123456789") == std::string::npos;
    // strtoull saturates a number too large to count to: it names no point (stoi would throw).
    if (numeric ? std::strtoull(t.c_str(), nullptr, 10) != static_cast<unsigned long long>(reached)
                : t != name)
        return;
    std::string msg = "pgforge: fault injection: killed at point " + std::to_string(reached) +
                      " (" + name + ")\n";
    ssize_t n = write(2, msg.data(), msg.size());
    (void)n;
    raise(SIGKILL);
}

bool fault_injection_built() {
    return true;
}

#else

void fault_point(std::string_view, std::string_view, std::string_view) {}

bool fault_injection_built() {
    return false;
}

#endif

}  // namespace pgforge
