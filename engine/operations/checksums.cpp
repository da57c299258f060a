#include "engine/operations/checksums.hpp"

#include <unistd.h>

#include <nlohmann/json.hpp>
#include <sstream>

#include "engine/core/error.hpp"
#include "engine/core/process.hpp"
#include "engine/core/progress_line.hpp"
#include "engine/core/text.hpp"
#include "engine/inventory/inventory.hpp"
#include "engine/operations/instances.hpp"
#include "engine/operations/stopped_scope.hpp"
#include "engine/pipeline/pipeline.hpp"

namespace pgforge::checksums {
namespace {

// A server-side program of the instance's installation, run as its owner; its messages in
// English (the output is parsed), nothing of pgforge's own PG* variables.
Command owner_command(const Cluster& c, const std::string& program) {
    Command cmd;
    cmd.as = &c.owner;
    cmd.argv = {c.installation.program(program).string(),
                "--pgdata=" + c.instance.data_dir.string()};
    cmd.env = {"LC_ALL=C", "LANG=C", "LANGUAGE", "PGDATA", "PGPORT", "PGHOST"};
    return cmd;
}

std::string message_of(const ProcessResult& r) {
    std::string text = r.err.empty() ? r.out : r.err;
    while (!text.empty() && (text.back() == '\n' || text.back() == '\r')) text.pop_back();
    return tail_text(text);
}

// The value of "Name:   value" lines in a program's output.
std::string field(const std::string& out, const std::string& name) {
    std::istringstream in(out);
    for (std::string line; std::getline(in, line);) {
        if (line.rfind(name + ":", 0) != 0) continue;
        std::string v = line.substr(name.size() + 1);
        v.erase(0, v.find_first_not_of(" \t"));
        v.erase(v.find_last_not_of(" \t\r") + 1);
        return v;
    }
    return {};
}

long number(const std::string& out, const std::string& name) {
    std::string v = field(out, name);
    try {
        return v.empty() ? -1 : std::stol(v);
    } catch (const std::exception&) {
        return -1;
    }
}

}  // namespace

Status status(Context& ctx, const Instance& instance) {
    Cluster c = instances::cluster_for(ctx, instance);
    auto r = run_process(owner_command(c, "pg_controldata"));
    if (!r.ok())
        throw Error(
            Exit::failure,
            "instance " + instance.qualified_name() + ": pg_controldata failed: " + message_of(r),
            "see that the data directory " + instance.data_dir.string() + " is whole");
    std::string v = field(r.out, "Data page checksum version");
    if (v.empty())
        throw Error(Exit::failure, "instance " + instance.qualified_name() +
                                       ": pg_controldata did not say the data page checksum "
                                       "version");
    Status s;
    try {
        s.version = std::stoi(v);
    } catch (const std::exception&) {
        throw Error(Exit::failure, "instance " + instance.qualified_name() +
                                       ": unexpected data page checksum version '" + v + "'");
    }
    s.enabled = s.version != 0;
    return s;
}

Outcome set(Context& ctx, const Instance& inst, bool enable) {
    auto held = instances::lock(ctx, inst);
    Outcome out;
    // The entry as it is now (a resume may just have changed it), with its options' data_checksums
    // set to `enable`: `instance get` shows the state, not only what create was given.
    Instance i = ctx.inventory().find(inst.version, inst.name).value_or(inst);
    auto options = nlohmann::json::parse(i.options.empty() ? "{}" : i.options, nullptr, false);
    if (!options.is_object()) options = nlohmann::json::object();
    const bool entry_says = options.value("data_checksums", false);
    options["data_checksums"] = enable;
    // Already as asked: nothing stopped. The entry is brought in line when it is not (a command
    // killed after pg_checksums did its work), else nothing is journaled.
    if (status(ctx, inst).enabled == enable) {
        out.enabled = enable;
        if (entry_says != enable) {
            i.options = options.dump();
            Pipeline p(ctx, "checksums", i);
            p.finish_updating_entry();
        }
        return out;
    }
    i.options = options.dump();
    Cluster c = instances::cluster_for(ctx, i);
    const std::string verb = enable ? "enabling" : "disabling";
    Pipeline p(ctx, "checksums", i);
    out.was_running = instances::with_server_stopped(ctx, p, [&] {
        p.step("pg_checksums", [&] {
            Command cmd = owner_command(c, "pg_checksums");
            cmd.argv.push_back(enable ? "--enable" : "--disable");
            if (ctx.progress) ctx.progress(verb + " data checksums");
            if (!ctx.quiet) {
                cmd.argv.push_back("--progress");
                cmd.on_stderr = ProgressLine(verb + " data checksums");
            }
            auto r = run_process(cmd);
            if (!r.ok())
                throw Error(Exit::failure,
                            "instance " + i.qualified_name() + ": pg_checksums --" +
                                (enable ? "enable" : "disable") + " failed: " + message_of(r),
                            "data checksums are as they were; see pgforge instance checksums " +
                                i.qualified_name() + " status");
            out.files_scanned = number(r.out, "Files scanned");
            out.blocks_scanned = number(r.out, "Blocks scanned");
            out.files_written = number(r.out, "Files written");
            out.blocks_written = number(r.out, "Blocks written");
        });
    });
    p.finish_updating_entry();
    out.changed = true;
    out.enabled = enable;
    return out;
}

}  // namespace pgforge::checksums
