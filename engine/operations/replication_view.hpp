// What an instance's replication looks like now (`instance get`, `instance status`): its role,
// its upstream and slot, how far a standby has received and replayed, the lag, and on a primary
// its standbys and the physical slots that keep WAL for them. docs/replication.md, "Seeing it".
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "engine/operations/instances.hpp"

namespace pgforge::replication_view {

// One walsender of a primary (pg_stat_replication), with the inventoried standby it serves.
struct Downstream {
    std::string instance;          // "15/replica" when inventoried here, else ""
    std::string application_name;  // what the standby calls itself
    std::string client;            // client_addr, "local" for a unix socket
    std::string state;             // startup, catchup, streaming, backup, stopping
    std::string sync_state;        // async, potential, sync, quorum
    std::string slot;              // the slot it streams from, "" when none
    std::optional<std::string> sent_lsn, flush_lsn, replay_lsn;
    std::optional<long long> lag_bytes;        // the primary's WAL end minus the standby's replay
    std::optional<double> replay_lag_seconds;  // pg_stat_replication.replay_lag; nullopt when idle
};

// A physical replication slot of the instance.
struct Slot {
    std::string name;
    bool active = false;
    std::optional<long long> retained_bytes;  // WAL kept for it (current LSN minus restart_lsn)
};

// An inventoried standby of this instance that is not connected now.
struct Missing {
    std::string instance;  // "15/replica"
    std::string slot;
};

struct View {
    std::string instance;  // "15/main"
    // The inventory's word: "primary", "standby" or "diverged", the upstream and the slot.
    std::string role;
    std::string upstream;
    std::string slot;
    bool running = false;
    // The server's word, when it runs: pg_is_in_recovery(). A disagreement with `role` (a
    // standby promoted behind pgforge's back) is reported in `note`.
    std::optional<bool> in_recovery;
    std::string note;

    // A standby: its WAL receiver.
    bool streaming = false;
    std::string receiver_status;  // pg_stat_wal_receiver.status; "" when no receiver runs
    std::string sender;           // "host:port" the receiver streams from
    std::optional<std::string> receive_lsn, replay_lsn;
    std::optional<long long> lag_bytes;       // upstream's WAL end minus replay
    std::optional<double> lag_seconds;        // 0 when all received WAL is replayed
    std::optional<std::string> last_message;  // when the upstream last spoke (receiver running)
    std::optional<std::string> last_replayed_transaction;  // pg_last_xact_replay_timestamp()
    // Not streaming: since when, from the server's log (the first failure after the last
    // "started streaming"), else "" when the log does not say.
    std::string not_streaming_since;

    // A primary: its walsenders, the inventoried standbys missing from them, its slots.
    std::vector<Downstream> standbys;
    std::vector<Missing> missing;
    std::vector<Slot> slots;
};

// One session to the instance (and, for a standby whose upstream is managed here and runs, one
// to the upstream for its current WAL position). A stopped instance: the inventory's fields
// alone. A server that cannot be asked: `note` says why; never throws for that.
View observe(Context& ctx, const Instance& instance);

// "streaming from 15/main, replay 0/3000148, lag 0 bytes (0 s)" and such: one line for text
// output. "" for a primary without standbys.
std::string summary(const View& view);

}  // namespace pgforge::replication_view
