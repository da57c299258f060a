// A standby made a primary (`instance promote`), and an old primary made a standby of the one
// promoted in its place (`instance rebuild`): the two halves of a switchover or a failover
// between instances of this machine (docs/replication.md).
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "engine/core/instance.hpp"
#include "engine/inventory/inventory.hpp"
#include "engine/pipeline/context.hpp"

namespace pgforge::promote {

struct Outcome {
    Instance promoted;  // its inventory entry as it is now: role "primary"
    // The server had already left recovery (a promote killed after pg_promote, or a promotion
    // made by hand): only post_promote and the inventory were left to do.
    bool already_promoted = false;
    std::string timeline;  // the promoted server's timeline, as pg_control_checkpoint says it
    // The old primary, when it is inventoried here: now role "diverged", upstream the promoted
    // instance, until `instance rebuild`. A running one keeps running (writes there are lost
    // at its rebuild).
    std::optional<Instance> diverged;
    bool diverged_running = false;
    std::string diverged_error;  // why the old primary could not be marked (a warning)
};

// Under the instance's lock: refuses an instance the inventory does not call a standby, or whose
// server does not run; the pipeline "promote": pre_promote, [pg_promote(true, timeout), then
// until the server accepts writes] post_promote, the entry becoming role "primary" (no
// upstream, no slot) with the journal's end. A server already out of recovery is only brought up
// to date (post_promote and the entry). Then the old primary, when inventoried here, is marked
// "diverged" (its own journal entry "diverged"). `timeout`: seconds (default: start_timeout).
Outcome promote(Context& ctx, const Instance& instance, std::optional<double> timeout = {});

// For instances::resume: a promote whose process died. When it had asked the server to promote
// (its journal's `made` row "promotion") and the server runs out of recovery, the promotion is
// finished (post_promote, the entry, the old primary marked diverged); otherwise nothing is done
// and running `instance promote` again finishes it. Returns what was done, for the interrupted
// entry's message.
std::string resume(Context& ctx, const Instance& instance, const std::vector<JournalStep>& steps);

// For instances::resume: a rebuild whose process died after it set the instance's data directory
// aside for a base backup: the new directory (whole or not) goes and the previous one is put back,
// so the instance is as it was before the rebuild (stopped). Returns what was done.
std::string resume_rebuild(Context& ctx, const Instance& instance,
                           const std::vector<JournalStep>& steps);

struct RebuildOutcome {
    Instance rebuilt;                // its entry now: role "standby", upstream the source
    std::string method;              // "pg_rewind" or "base backup"
    std::string rewind_refused;      // why pg_rewind could not be used ("" when it was)
    bool kept_aside_removed = true;  // the previous data directory is gone (base backup)
};

// `instance rebuild NAME --from SOURCE`: NAME (diverged, or a standby whose upstream is gone)
// becomes a standby of SOURCE, a running primary of this machine. The pipeline "rebuild":
// pre_stop [stop] post_stop, pre_init [pg_rewind; when it cannot, a base backup, the previous
// data directory kept aside until the new one runs] post_init, [standby configuration, the
// instance's own configuration files kept, a slot on SOURCE], pre_start [start] post_start,
// [until it streams]; the entry becomes role "standby", upstream SOURCE, its slot.
RebuildOutcome rebuild(Context& ctx, const Instance& instance, const std::string& source,
                       std::optional<double> timeout = {});

}  // namespace pgforge::promote
