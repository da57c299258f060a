// SIGINT, SIGTERM and SIGHUP during an operation: the first one is recorded and turned into an
// error at the next check, so the operation fails like any other and undoes what it made; a
// second one ends the process at once (the journal then shows the operation unfinished, and the
// next command on the instance resumes it).
#pragma once

namespace pgforge {

// Installs the handlers (the CLI does, once). Safe to call more than once.
void install_interrupt_handlers();

// The signal received since the handlers were installed, 0 when none.
int interrupted();

// Throws Error(Exit::interrupted) naming the signal when one was received.
void throw_if_interrupted();

// Forgets a received signal (tests, and the CLI between commands run in-process).
void clear_interrupt();

// While one lives, interrupted() reports 0 and throw_if_interrupted() does nothing: the undo of
// an interrupted operation runs to its end (a signal received meanwhile is kept for after; a
// second signal still ends the process at once).
class DeferInterrupts {
  public:
    DeferInterrupts();
    ~DeferInterrupts();
    DeferInterrupts(const DeferInterrupts&) = delete;
    DeferInterrupts& operator=(const DeferInterrupts&) = delete;
};

}  // namespace pgforge
