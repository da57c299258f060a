// A test-only fault injection point. Built with -DPGFORGE_FAULT_INJECTION=ON, each call is a
// numbered point: when PGFORGE_FAULT_KILL_AT names it ("create:initdb:after") or its number
// (counted from 1 in this process), the process kills itself with SIGKILL there, as a crash or
// `kill -9` would. Built without the option (the default), it does nothing.
#pragma once

#include <string_view>

namespace pgforge {

// `operation`: "create", "drop", ...; `where`: a step or hook point ("initdb", "pre_start",
// "made directory", "undo server"); `when`: "before" or "after".
void fault_point(std::string_view operation, std::string_view where, std::string_view when);

// Whether this build has the injection point (tests skip their kills otherwise).
bool fault_injection_built();

}  // namespace pgforge
