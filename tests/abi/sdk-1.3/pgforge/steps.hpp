// Step providers (SDK 1.1): a plugin may run the start and stop steps of the instances it
// manages in place of the engine's driver (a high-availability manager that starts and stops
// PostgreSQL itself). Every other plugin's and site hook's handlers still run around the step.
//
// The manifest says which steps the plugin provides:
//   [steps]
//   start = Patroni starts the server
//   stop = Patroni stops the server
// At the step, the engine calls the plugin's run_command with the command
//   family = step_family, verb = "start" or "stop"
// and a CommandContext on the instance, whose args() are
//   start: --timeout SECONDS
//   stop:  --mode smart|fast|immediate --timeout SECONDS
// The plugin returns 0 when the step is done (the engine then checks that the server runs, or
// no longer runs), step_declined when it does not manage this instance (the engine's driver runs
// the step), any other status when the step failed: what it wrote with err() is the message.
// One plugin per step: a second enabled plugin that provides it is broken, naming both.
#pragma once

namespace pgforge::sdk {

inline constexpr const char* step_family = "pgforge-step";
inline constexpr int step_declined = 100;

}  // namespace pgforge::sdk
