// Errors inside the engine travel as exceptions of one type, carrying the exit status the CLI
// reports and a hint that says what to do. The CLI catches them in one place.
#pragma once

#include <stdexcept>
#include <string>

namespace pgforge {

// Exit statuses of the CLI (docs/cli.md lists them). Values are stable.
enum class Exit : int {
    ok = 0,
    failure = 1,      // an operation failed (a program failed, a file could not be written)
    usage = 2,        // bad command line or bad input value
    stopped = 3,      // `status`: the instance is not running (as pg_ctl status)
    not_found = 4,    // no such instance / installation / OS user
    conflict = 5,     // already exists, port taken, data directory in the way
    busy = 6,         // another pgforge process holds the instance lock
    server = 7,       // the server did not start or stop in time, or exited
    interrupted = 8,  // SIGINT/SIGTERM/SIGHUP: the operation was undone
};

class Error : public std::runtime_error {
  public:
    Error(Exit code, std::string message, std::string hint = {})
        : std::runtime_error(std::move(message)), code_(code), hint_(std::move(hint)) {}

    Exit code() const { return code_; }
    const std::string& hint() const { return hint_; }

  private:
    Exit code_;
    std::string hint_;
};

}  // namespace pgforge
