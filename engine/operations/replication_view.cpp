#include "engine/operations/replication_view.hpp"

#include <cstdio>
#include <exception>
#include <sstream>

#include "engine/core/error.hpp"
#include "engine/core/safe_fs.hpp"
#include "engine/inventory/inventory.hpp"
#include "engine/operations/replication.hpp"
#include "engine/pg/connection.hpp"

namespace pgforge::replication_view {

namespace {

// The WAL position replication is measured against: the end of WAL on a primary, the replayed
// position on a standby (whose own standbys cascade from it).
constexpr const char* kCurrentLsn =
    "CASE WHEN pg_is_in_recovery() THEN pg_last_wal_replay_lsn() ELSE pg_current_wal_lsn() END";

std::optional<long long> to_integer(const std::optional<std::string>& text) {
    if (!text) return std::nullopt;
    try {
        return std::stoll(*text);
    } catch (const std::exception&) {
        return std::nullopt;
    }
}

std::optional<double> to_seconds(const std::optional<std::string>& text) {
    if (!text) return std::nullopt;
    try {
        return std::stod(*text);
    } catch (const std::exception&) {
        return std::nullopt;
    }
}

bool is_local_reference(const std::string& upstream) {
    return !upstream.empty() && upstream.find('=') == std::string::npos &&
           upstream.find("://") == std::string::npos;
}

// The upstream's current WAL position, when it is managed here and runs; nullopt otherwise.
std::optional<std::string> upstream_lsn(Context& ctx, const Instance& standby) {
    if (!is_local_reference(standby.upstream)) return std::nullopt;
    try {
        Instance upstream = instances::get(ctx, standby.upstream);
        if (!instances::running(ctx, upstream)) return std::nullopt;
        pg::Connection c(upstream);
        auto r = c.exec(std::string("SELECT (") + kCurrentLsn + ")::text");
        if (!r.rows.empty() && r.rows[0][0]) return r.rows[0][0];
    } catch (const std::exception&) {
        // The lag is then measured against what the upstream last told the standby.
    }
    return std::nullopt;
}

// The time a line of the server's log was written: its prefix up to " [pid]" (log_line_prefix
// '%m [%p] ' of pgforge's template); "" when the line does not start so.
std::string line_time(const std::string& line) {
    auto bracket = line.find(" [");
    if (bracket == std::string::npos || bracket < 10 || bracket > 40) return {};
    if (line[0] < '0' || line[0] > '9') return {};
    return line.substr(0, bracket);
}

// Since when the standby has not streamed, as its log tells: the first failure of its WAL
// receiver after the last "started streaming WAL".
std::string not_streaming_since(const Instance& standby) {
    std::optional<std::string> tail;
    try {
        tail = safe_fs::read_tail(standby.log_file, 1 << 20);
    } catch (const std::exception&) {
        return {};
    }
    if (!tail) return {};
    std::vector<std::string> lines;
    std::istringstream in(*tail);
    for (std::string line; std::getline(in, line);) lines.push_back(line);
    std::size_t from = 0;
    for (std::size_t k = lines.size(); k-- > 0;)
        if (lines[k].find("started streaming WAL") != std::string::npos) {
            from = k + 1;
            break;
        }
    static const char* const failures[] = {
        "could not connect to the primary server", "replication terminated by primary server",
        "could not receive data from WAL stream", "terminating walreceiver",
        "could not send data to WAL stream"};
    for (std::size_t k = from; k < lines.size(); ++k)
        for (const char* failure : failures)
            if (lines[k].find(failure) != std::string::npos) {
                std::string when = line_time(lines[k]);
                if (!when.empty()) return when;
            }
    return {};
}

void observe_standby(Context& ctx, const Instance& instance, pg::Connection& c, View& v) {
    // Asked of the upstream first: the lag is then never under-stated.
    const std::optional<std::string> upstream_end = upstream_lsn(ctx, instance);
    auto r = c.exec(
        "SELECT pg_last_wal_receive_lsn()::text, pg_last_wal_replay_lsn()::text, r.status, "
        "CASE WHEN r.sender_host IS NULL THEN NULL ELSE r.sender_host || ':' || r.sender_port "
        "END, "
        // greatest() skips NULLs: an unknown end of WAL must stay an unknown lag, not 0.
        "(SELECT CASE WHEN d IS NULL THEN NULL ELSE greatest(d, 0) END FROM "
        "pg_wal_lsn_diff(coalesce(nullif($1, '')::pg_lsn, r.latest_end_lsn), "
        "pg_last_wal_replay_lsn()) AS d)::bigint::text, "
        "r.last_msg_receipt_time::text, pg_last_xact_replay_timestamp()::text, "
        "extract(epoch FROM now() - pg_last_xact_replay_timestamp())::text "
        "FROM (SELECT 1) AS one LEFT JOIN pg_stat_wal_receiver AS r ON true",
        {upstream_end ? *upstream_end : std::string()});
    if (r.rows.empty()) return;
    const pg::Row& row = r.rows[0];
    v.receive_lsn = row[0];
    v.replay_lsn = row[1];
    v.receiver_status = row[2].value_or("");
    v.sender = row[3].value_or("");
    v.streaming = v.receiver_status == "streaming";
    v.lag_bytes = to_integer(row[4]);
    v.last_message = row[5];
    v.last_replayed_transaction = row[6];
    if (v.lag_bytes && *v.lag_bytes == 0)
        v.lag_seconds = 0.0;
    else if (v.lag_bytes)
        v.lag_seconds = to_seconds(row[7]);
    if (!v.streaming) v.not_streaming_since = not_streaming_since(instance);
}

void observe_primary(Context& ctx, const Instance& instance, pg::Connection& c, View& v) {
    const std::vector<Instance> known = replication::standbys_of(ctx, instance);
    auto r = c.exec(
        std::string("SELECT r.application_name, coalesce(host(r.client_addr), 'local'), r.state, "
                    "r.sync_state, coalesce(s.slot_name::text, ''), r.sent_lsn::text, "
                    "r.flush_lsn::text, r.replay_lsn::text, "
                    "greatest(pg_wal_lsn_diff(") +
        kCurrentLsn +
        ", r.replay_lsn), 0)::bigint::text, "
        "extract(epoch FROM r.replay_lag)::text "
        "FROM pg_stat_replication AS r LEFT JOIN pg_replication_slots AS s "
        "ON s.active_pid = r.pid ORDER BY r.application_name, r.pid");
    std::vector<bool> seen(known.size(), false);
    for (const pg::Row& row : r.rows) {
        Downstream d;
        d.application_name = row[0].value_or("");
        d.client = row[1].value_or("");
        d.state = row[2].value_or("");
        d.sync_state = row[3].value_or("");
        d.slot = row[4].value_or("");
        d.sent_lsn = row[5];
        d.flush_lsn = row[6];
        d.replay_lsn = row[7];
        d.lag_bytes = to_integer(row[8]);
        d.replay_lag_seconds = to_seconds(row[9]);
        for (std::size_t k = 0; k < known.size(); ++k) {
            const Instance& s = known[k];
            if (seen[k] || s.role != "standby") continue;
            if ((!s.slot.empty() && s.slot == d.slot) || d.application_name == s.name ||
                d.application_name == s.qualified_name()) {
                d.instance = s.qualified_name();
                seen[k] = true;
                break;
            }
        }
        v.standbys.push_back(std::move(d));
    }
    for (std::size_t k = 0; k < known.size(); ++k)
        if (!seen[k] && known[k].role == "standby")
            v.missing.push_back({known[k].qualified_name(), known[k].slot});
    auto slots = c.exec(std::string("SELECT slot_name::text, active, greatest(pg_wal_lsn_diff(") +
                        kCurrentLsn +
                        ", restart_lsn), 0)::bigint::text FROM pg_replication_slots "
                        "WHERE slot_type = 'physical' ORDER BY slot_name");
    for (const pg::Row& row : slots.rows)
        v.slots.push_back({row[0].value_or(""), row[1].value_or("") == "t", to_integer(row[2])});
}

std::string lsn_or_dash(const std::optional<std::string>& lsn) {
    return lsn ? *lsn : "-";
}

std::string lag_text(const std::optional<long long>& bytes, const std::optional<double>& seconds) {
    if (!bytes) return "lag unknown";
    std::string text = "lag " + std::to_string(*bytes) + " bytes";
    if (seconds) {
        char buf[32];
        std::snprintf(buf, sizeof buf, "%.1f", *seconds);
        text += " (" + std::string(buf) + " s)";
    }
    return text;
}

}  // namespace

View observe(Context& ctx, const Instance& instance) {
    View v;
    v.instance = instance.qualified_name();
    v.role = instance.role.empty() ? "primary" : instance.role;
    v.upstream = instance.upstream;
    v.slot = instance.slot;
    v.running = instances::running(ctx, instance);
    if (!v.running) {
        if (v.role == "primary")
            for (const Instance& s : replication::standbys_of(ctx, instance))
                if (s.role == "standby") v.missing.push_back({s.qualified_name(), s.slot});
        return v;
    }
    try {
        pg::Connection c(instance);
        auto r = c.exec("SELECT pg_is_in_recovery()");
        v.in_recovery = !r.rows.empty() && r.rows[0][0].value_or("") == "t";
        if (*v.in_recovery) {
            observe_standby(ctx, instance, c, v);
            if (v.role != "standby")
                v.note = "the server is in recovery, but the inventory says " + v.role;
        } else if (v.role == "standby") {
            v.note =
                "the inventory says standby, but the server is not in recovery (promoted "
                "outside pgforge?)";
        }
        // A primary's walsenders; a standby may feed cascading standbys too.
        observe_primary(ctx, instance, c, v);
    } catch (const std::exception& e) {
        v.note = std::string("cannot ask the server: ") + e.what();
    }
    return v;
}

std::string summary(const View& v) {
    std::string text;
    if (v.role == "standby" || (v.in_recovery && *v.in_recovery)) {
        if (!v.running) return "standby of " + v.upstream + " (stopped)";
        if (v.streaming)
            text = "streaming from " + v.upstream;
        else
            text = "NOT streaming from " + v.upstream +
                   (v.not_streaming_since.empty() ? std::string()
                                                  : " since " + v.not_streaming_since) +
                   (v.receiver_status.empty() ? "" : " (receiver " + v.receiver_status + ")");
        text += ", receive " + lsn_or_dash(v.receive_lsn) + ", replay " +
                lsn_or_dash(v.replay_lsn) + ", " + lag_text(v.lag_bytes, v.lag_seconds);
    } else if (v.role == "diverged") {
        text = "diverged: " + v.upstream +
               " was promoted in its place; rebuild it: pgforge instance rebuild " + v.instance +
               " --from " + v.upstream;
    }
    if (!v.note.empty()) text += (text.empty() ? "" : "; ") + v.note;
    return text;
}

}  // namespace pgforge::replication_view
