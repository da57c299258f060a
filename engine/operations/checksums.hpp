// Data checksums of an instance: read from its control file (pg_controldata), turned on or off
// with pg_checksums inside a temporarily stopped scope (stopped_scope.hpp). Both programs run
// as the instance's owner, with an environment built for them.
#pragma once

#include <string>

#include "engine/core/instance.hpp"
#include "engine/pipeline/context.hpp"

namespace pgforge::checksums {

struct Status {
    bool enabled = false;
    int version = 0;  // pg_controldata's "Data page checksum version": 0 when off
};

// pg_controldata's view, running or stopped (no stop, no lock, nothing journaled).
Status status(Context& ctx, const Instance& instance);

struct Outcome {
    bool changed = false;      // false: already as asked (nothing stopped nor journaled)
    bool enabled = false;      // the state now
    bool was_running = false;  // the server was stopped for the work (and runs again)
    // pg_checksums's counts ("Files scanned", "Blocks written", ...; -1 when it said none).
    long files_scanned = -1, blocks_scanned = -1, files_written = -1, blocks_written = -1;
};

// Turns data checksums on (`enable`) or off, as the operation "checksums": under the instance
// lock, the server stopped if it runs, pg_checksums --enable|--disable (--progress on a terminal:
// when ctx.quiet is false), the server started again if it ran, whatever pg_checksums did. A
// pg_checksums that fails or is killed leaves the setting as it was (PostgreSQL's guarantee); a
// kill while the server is stopped is resumed by the next command (it starts the server again).
Outcome set(Context& ctx, const Instance& instance, bool enable);

}  // namespace pgforge::checksums
