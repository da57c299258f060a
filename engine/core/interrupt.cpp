#include "engine/core/interrupt.hpp"

#include <signal.h>
#include <string.h>
#include <unistd.h>

#include <atomic>
#include <string>

#include "engine/core/error.hpp"

namespace pgforge {
namespace {

std::atomic<int> received{0};
std::atomic<int> deferred{0};

extern "C" void on_signal(int sig) {
    int expected = 0;
    if (received.compare_exchange_strong(expected, sig)) return;
    // A second signal: the user insists. Undo is abandoned; the journal keeps the operation
    // unfinished and the next command resumes it.
    static const char msg[] = "pgforge: interrupted again, stopping now\n";
    ssize_t n = write(2, msg, sizeof msg - 1);
    (void)n;
    _exit(128 + sig);
}

}  // namespace

void install_interrupt_handlers() {
    struct sigaction sa {};
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = 0;  // no SA_RESTART: blocking calls return EINTR and loops see the flag
    for (int sig : {SIGINT, SIGTERM, SIGHUP}) sigaction(sig, &sa, nullptr);
}

int interrupted() {
    return deferred.load() > 0 ? 0 : received.load();
}

void throw_if_interrupted() {
    if (int sig = interrupted())
        throw Error(Exit::interrupted, std::string("interrupted by ") + strsignal(sig),
                    "what this operation made was undone; run the command again");
}

void clear_interrupt() {
    received.store(0);
}

DeferInterrupts::DeferInterrupts() {
    deferred.fetch_add(1);
}

DeferInterrupts::~DeferInterrupts() {
    deferred.fetch_sub(1);
}

}  // namespace pgforge
