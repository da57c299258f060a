#include "engine/operations/promote.hpp"

#include <algorithm>
#include <chrono>
#include <thread>

#include "engine/core/error.hpp"
#include "engine/core/interrupt.hpp"
#include "engine/core/log.hpp"
#include "engine/core/text.hpp"
#include "engine/inventory/inventory.hpp"
#include "engine/operations/instances.hpp"
#include "engine/pg/connection.hpp"
#include "engine/pipeline/pipeline.hpp"

namespace pgforge::promote {
namespace {

using Clock = std::chrono::steady_clock;

// The journal marker of a promote that is about to ask the server: from here the server may be
// promoted whatever happens to this process, so the next command looks (resume).
constexpr const char* promotion_marker = "promotion";

// Whether the upstream recorded for a standby names an instance of this machine ("15/main"),
// not a conninfo.
bool local_reference(const std::string& upstream) {
    return !upstream.empty() && upstream.find('=') == std::string::npos &&
           upstream.find("://") == std::string::npos;
}

bool in_recovery(pg::Connection& c) {
    auto r = c.exec("SELECT pg_is_in_recovery()");
    return !r.rows.empty() && r.rows[0][0].value_or("t") == "t";
}

// Waits until the server accepts writes: out of recovery, and a transaction id can be assigned
// (a read-only server refuses txid_current()). Error(Exit::server) after `timeout` seconds.
void wait_writable(const Instance& i, double timeout) {
    const auto until = Clock::now() + std::chrono::duration<double>(timeout);
    std::string last = "it was still in recovery";
    for (;;) {
        try {
            pg::Connection c(i);
            if (!in_recovery(c)) {
                c.exec("SELECT txid_current()");
                return;
            }
        } catch (const Error& e) {
            last = e.what();
        }
        if (Clock::now() >= until)
            throw Error(Exit::server,
                        "instance " + i.qualified_name() + " did not accept writes within " +
                            std::to_string(int(timeout)) + " s after its promotion: " + last,
                        "see its log (pgforge instance logs " + i.qualified_name() +
                            "), then run pgforge instance promote " + i.qualified_name() +
                            " again: it finishes a promotion the server made");
        std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
}

// The server's current timeline, from the name of its current WAL file.
std::string timeline_of(const Instance& i) {
    try {
        pg::Connection c(i);
        auto r = c.exec("SELECT substr(pg_walfile_name(pg_current_wal_lsn()), 1, 8)");
        if (r.rows.empty() || !r.rows[0][0]) return {};
        return std::to_string(std::stoul(*r.rows[0][0], nullptr, 16));
    } catch (const std::exception&) {
        return {};
    }
}

// The old primary of `promoted`, when inventoried here as a primary, becomes "diverged" with
// the promoted instance as its upstream: its own operation "diverged" (no hook point), under
// its lock. A running one keeps running.
// The slot the promoted instance streamed from stays on the old primary: the WAL it keeps there is
// what pg_rewind reads back to the last common checkpoint, and the rebuild removes it (pg_rewind
// and a base backup leave none of the old primary's slots).
void mark_diverged(Context& ctx, const std::string& upstream, const Instance& promoted,
                   Outcome& out) {
    if (!local_reference(upstream)) return;
    std::optional<Instance> old;
    try {
        old = instances::get(ctx, upstream);
    } catch (const Error&) {
        return;  // dropped meanwhile: nothing to mark
    }
    try {
        auto held = instances::lock(ctx, *old);
        Instance o = ctx.inventory().find(old->version, old->name).value_or(*old);
        if (o.role != "primary") {
            // Already marked (a promote finished twice), or itself a standby: left as it is.
            if (o.role == "diverged" && o.upstream == promoted.qualified_name()) out.diverged = o;
            return;
        }
        const std::string was = o.role;
        o.role = "diverged";
        o.upstream = promoted.qualified_name();
        o.slot.clear();
        Pipeline p(ctx, "diverged", o);
        p.step("role " + was + " -> diverged (" + promoted.qualified_name() + " was promoted)",
               [] {});
        p.finish_updating_entry();
        out.diverged = o;
        out.diverged_running = instances::running(ctx, o);
    } catch (const std::exception& x) {
        out.diverged_error = x.what();
        log::warn("instance " + old->qualified_name() +
                  " could not be marked diverged: " + x.what());
    }
}

// The end shared by a promote and its resume: post_promote, the entry as a primary (with the
// journal's end), then the old primary marked diverged.
void finish_promotion(Context& ctx, Pipeline& p, Outcome& out) {
    Instance& i = p.instance();
    const std::string upstream = i.upstream;
    i.role = "primary";
    i.upstream.clear();
    i.slot.clear();
    p.finish_updating_entry();
    out.promoted = i;
    out.timeline = timeline_of(i);
    mark_diverged(ctx, upstream, i, out);
}

}  // namespace

Outcome promote(Context& ctx, const Instance& inst, std::optional<double> timeout) {
    auto held = instances::lock(ctx, inst);
    // The entry as it is now: the lock may just have finished an interrupted promote.
    Instance i = ctx.inventory().find(inst.version, inst.name).value_or(inst);
    const std::string q = i.qualified_name();
    if (i.role != "standby")
        throw Error(
            Exit::usage, "instance " + q + " is not a standby (its role is " + i.role + ")",
            i.role == "diverged"
                ? "a diverged instance is rebuilt, not promoted: pgforge instance "
                  "rebuild " +
                      q + " --from " + i.upstream
                : "promote one of its standbys (pgforge instance get " + q + " lists them)");
    pg::require_running(i);
    const double wait = timeout.value_or(ctx.settings().start_timeout);
    bool recovering = true;
    {
        pg::Connection c(i);
        recovering = in_recovery(c);
    }
    Outcome out;
    Pipeline p(ctx, "promote", i);
    // Once the server is promoted, the promotion stands: a post_promote handler that refuses
    // does not keep the entry of a primary as a standby's; it is reported after the entry is
    // updated (as a post_drop refusal is).
    std::optional<Error> post_refused;
    auto post_promote = [&] {
        try {
            p.hooks(sdk::HookPoint::post_promote);
        } catch (const Error& e) {
            if (e.code() == Exit::interrupted) throw;  // the next command finishes it
            post_refused = Error(Exit::failure, "instance " + q + " was promoted, but " + e.what(),
                                 "it is a primary, and recorded as one; see pgforge instance "
                                 "history " +
                                     q + " for what the handler said");
        }
    };
    if (!recovering) {
        // Promoted already (a promote killed after the server took it, or pg_ctl promote by
        // hand): the server is what it is, so no pre_promote can refuse it any more; the plugins
        // still learn of it and the inventory follows.
        out.already_promoted = true;
        p.step("promote (the server had already left recovery)", [&] { wait_writable(i, wait); });
        post_promote();
    } else {
        p.hooks(sdk::HookPoint::pre_promote);
        try {
            p.step("promote", [&] {
                p.made(promotion_marker, q);
                if (ctx.progress) ctx.progress("promoting");
                {
                    pg::Connection c(i);
                    auto r = c.exec("SELECT pg_promote(true, $1::integer)",
                                    {std::to_string(std::max(1, int(wait)))});
                    if (r.rows.empty() || r.rows[0][0].value_or("f") != "t")
                        throw Error(Exit::server,
                                    "instance " + q + " did not finish its promotion within " +
                                        std::to_string(int(wait)) + " s",
                                    "see its log (pgforge instance logs " + q +
                                        "), then run pgforge instance promote " + q + " again");
                }
                if (ctx.progress) ctx.progress("waiting until it accepts writes");
                wait_writable(i, wait);
            });
        } catch (const std::exception& e) {
            // The post handlers see the failure, as around() shows it to them.
            try {
                DeferInterrupts defer;
                p.hooks(sdk::HookPoint::post_promote, {false, e.what()});
            } catch (const std::exception& h) {
                log::warn(h.what());
            }
            throw;
        }
        post_promote();
    }
    finish_promotion(ctx, p, out);
    if (post_refused) throw *post_refused;
    return out;
}

std::string resume(Context& ctx, const Instance& inst, const std::vector<JournalStep>& steps) {
    const bool asked = std::any_of(steps.begin(), steps.end(), [](const JournalStep& st) {
        return st.kind == "made" && st.name == promotion_marker;
    });
    if (!asked || inst.role != "standby") return "";
    try {
        if (!instances::running(ctx, inst))
            return "; the server had been asked to promote but does not run: start it, then run "
                   "pgforge instance promote " +
                   inst.qualified_name() + " again";
        {
            pg::Connection c(inst);
            if (in_recovery(c))
                return "; the server had been asked to promote and is still in recovery: run "
                       "pgforge instance promote " +
                       inst.qualified_name() + " again";
        }
        Instance i = inst;
        Outcome out;
        out.already_promoted = true;
        Pipeline p(ctx, "promote", i);
        p.step("promote (the server had already left recovery)", [] {});
        std::string refused;
        try {
            p.hooks(sdk::HookPoint::post_promote);
        } catch (const Error& e) {
            if (e.code() == Exit::interrupted) throw;
            refused = e.what();  // the promotion stands (see promote)
            log::warn("instance " + inst.qualified_name() + " was promoted, but " + refused);
        }
        finish_promotion(ctx, p, out);
        return "; the server had been promoted: finished (post_promote, the inventory" +
               std::string(out.diverged ? ", " + out.diverged->qualified_name() + " diverged"
                                        : "") +
               ")";
    } catch (const std::exception& x) {
        log::warn("instance " + inst.qualified_name() +
                  ": the interrupted promote could not be finished: " + x.what());
        return std::string("; it could not be finished: ") + x.what();
    }
}

}  // namespace pgforge::promote
