// hba-policy: a declared pg_hba.conf policy enforced on every instance. At configure it adds the
// records the policy requires and refuses a pg_hba.conf that breaks a [never] rule; at start (and
// reload) it refuses a file on disk that does; `pgforge hba check` reports drift.
// See docs/plugins/hba-policy.md.
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <nlohmann/json.hpp>
#include <pgforge/hba.hpp>
#include <pgforge/plugin.hpp>
#include <sstream>

#include "policy.hpp"

namespace {

namespace fs = std::filesystem;
using namespace pgforge::sdk;
using namespace hba_policy;
using json = nlohmann::ordered_json;

// The policy of this run, or why there is none.
struct Loaded {
    Policy policy;
    std::string error;
};

bool read_text(const fs::path& file, std::string& text, std::string& error) {
    std::ifstream in(file, std::ios::binary);
    if (!in) {
        error = "cannot read " + file.string() + ": " + std::strerror(errno);
        return false;
    }
    std::ostringstream s;
    s << in.rdbuf();
    text = s.str();
    return true;
}

Loaded load_policy(Context& ctx, const std::optional<std::string>& path) {
    if (!path || path->empty()) return {default_policy(), {}};
    fs::path file = *path;
    if (file.is_relative()) file = ctx.config_dir() / file;
    struct stat st {};
    if (stat(file.c_str(), &st) != 0)
        return {{}, "policy file " + file.string() + ": " + std::strerror(errno)};
    // A policy anyone may rewrite enforces nothing (the rule the engine applies to site hooks).
    if (st.st_uid != 0 && st.st_uid != geteuid())
        return {{},
                "policy file " + file.string() + " is owned by uid " + std::to_string(st.st_uid) +
                    ", neither root nor the current user"};
    if (st.st_mode & (S_IWGRP | S_IWOTH))
        return {{}, "policy file " + file.string() + " is writable by others than its owner"};
    std::string text, error;
    if (!read_text(file, text, error)) return {{}, error};
    try {
        return {parse_policy(text, file.string()), {}};
    } catch (const PolicyError& e) {
        return {{}, e.what()};
    }
}

Names names_of(const Instance& i) {
    return {i.superuser(), i.owner()};
}

fs::path hba_file(const Instance& i) {
    return i.data_dir() / "pg_hba.conf";
}

// The instance's pg_hba.conf as on disk, read by the engine.
bool read_instance_hba(Context& ctx, HbaRead& read, std::string& error) {
    auto* file = find<HbaFileReader>(ctx);
    if (!file) {
        error = "this pgforge does not read pg_hba.conf for plugins (" +
                std::string(HbaFileReader::interface_name) + " " +
                std::to_string(HbaFileReader::interface_version) + ")";
        return false;
    }
    std::vector<HbaRecord> records;
    std::vector<HbaProblem> problems;
    if (!file->read_hba(records, problems, error)) return false;
    read = hba_read(records, problems);
    return true;
}

std::string listing(const Evaluation& e, bool (*keep)(const Violation&)) {
    std::string out;
    for (const auto& v : e.violations)
        if (keep(v)) out += "\n  " + hba_policy::describe(v);
    return out;
}

bool forbidden(const Violation& v) {
    return v.kind == "forbidden";
}

bool required_kind(const Violation& v) {
    return v.kind == "missing" || v.kind == "shadowed";
}

class HbaPolicy final : public Plugin {
  public:
    Result setup(Context& ctx) override {
        for (const auto& [key, value] : ctx.settings())
            if (key != "policy")
                ctx.log(LogLevel::warning,
                        "unknown setting [hba-policy] " + key + " (ignored; there is only policy)");
        loaded_ = load_policy(ctx, ctx.setting("policy"));
        if (!loaded_->error.empty())
            ctx.log(LogLevel::error, loaded_->error +
                                         " (configure and start of every instance are refused "
                                         "until it is fixed)");
        return Result::proceed();
    }

    Result on_hook(HookContext& ctx) override {
        if (!is_pre(ctx.point()) || !ctx.instance()) return Result::proceed();
        const Loaded& l = loaded(ctx);
        if (!l.error.empty())
            return Result::refuse(l.error +
                                  "; fix the policy file, or [hba-policy] policy in the settings");
        std::vector<Required> required;
        try {
            required = required_records(l.policy, names_of(*ctx.instance()));
        } catch (const PolicyError& e) {
            return Result::refuse(e.what());
        }
        if (ctx.point() == declared<HookPoint::pre_configure>() && ctx.configuration())
            return configure(ctx, *ctx.configuration(), l.policy, required);
        if (ctx.point() == declared<HookPoint::pre_configure>() ||
            ctx.point() == declared<HookPoint::pre_start>())
            return on_disk(ctx, l.policy, required);
        return Result::proceed();
    }

    std::vector<Command> commands() const override {
        return {{"hba", "check", "-i NAME [--json] [--policy FILE] | --all [--json]",
                 "report where pg_hba.conf departs from the hba policy (exit 1 if it does)", true}};
    }

    int run_command(const Command& command, CommandContext& ctx) override {
        if (command.family != "hba" || command.verb != "check") return 2;
        std::optional<std::string> policy_file;
        const auto& args = ctx.args();
        for (size_t k = 0; k < args.size(); ++k) {
            if (args[k] == "--policy" && k + 1 < args.size()) {
                policy_file = args[++k];
            } else if (args[k].rfind("--policy=", 0) == 0) {
                policy_file = args[k].substr(9);
            } else {
                ctx.err("hba check: unexpected argument '" + args[k] +
                        "'\nusage: pgforge hba check " + commands().front().args + "\n");
                return 2;
            }
        }
        return check(ctx, policy_file ? load_policy(ctx, policy_file) : loaded(ctx));
    }

    std::vector<pgforge::sdk::Field> describe(Context& ctx) override {
        if (!ctx.instance()) return {};
        const Loaded& l = loaded(ctx);
        if (!l.error.empty()) return {{"policy", "unusable: " + l.error}};
        std::vector<pgforge::sdk::Field> out = {{"policy", l.policy.source}};
        HbaRead read;
        std::string error;
        try {
            auto required = required_records(l.policy, names_of(*ctx.instance()));
            if (!read_instance_hba(ctx, read, error)) return out;
            Evaluation e = evaluate(l.policy, read, required);
            out.push_back({"pg_hba.conf", e.ok() ? "follows the policy"
                                                 : std::to_string(e.violations.size()) +
                                                       " violation(s): pgforge hba check -i " +
                                                       ctx.instance()->qualified_name()});
        } catch (const PolicyError& e) {
            out.push_back({"pg_hba.conf", e.what()});
        }
        return out;
    }

  private:
    const Loaded& loaded(Context& ctx) {
        if (!loaded_) loaded_ = load_policy(ctx, ctx.setting("policy"));
        return *loaded_;
    }

    // pre_configure of create or of a configure: add what is missing, then judge the file as it
    // will be written (the user's change and every contribution so far included).
    Result configure(HookContext& ctx, Configuration& c, const Policy& policy,
                     const std::vector<Required>& required) {
        auto* hba = find<HbaConfiguration>(c);
        if (!hba)
            return Result::refuse("this pgforge does not give pg_hba.conf as records (" +
                                  std::string(HbaConfiguration::interface_name) + " " +
                                  std::to_string(HbaConfiguration::interface_version) + ")");
        Evaluation before = evaluate(policy, hba_read(hba->hba_records()), required);
        // What the policy requires and the file on disk grants, the change may not take away
        // (remove the record, or put another before it): the policy must change first. What
        // the disk already lacks is added back below.
        std::string taken;
        HbaRead on_disk;
        std::string error;
        if (!ctx.first_configure() && read_instance_hba(ctx, on_disk, error)) {
            Evaluation disk = evaluate(policy, on_disk, required);
            for (size_t k = 0; k < required.size(); ++k) {
                const RequiredStatus& now = before.required[k];
                if (disk.required[k].status != "present" || now.status == "present") continue;
                taken += "\n  " + now.record + " [rule " + now.rule + "]: " +
                         (now.status == "missing"
                              ? std::string("no record would grant it")
                              : "line " + std::to_string(now.line) + " (" + now.text +
                                    ") would take some of these connections first");
            }
        }
        // Records placed first go in reverse so that they end up in the policy's order.
        std::string invalid;
        auto add = [&](const Required& r, HbaPlace place) {
            std::string why;
            if (!hba->add_hba_record(r.record.hba, place, why))
                invalid += "\n  " + r.record.text + " [rule " + r.rule + "]: " + why;
        };
        for (size_t k = required.size(); k-- > 0;)
            if (required[k].first && before.required[k].status != "present")
                add(required[k], HbaPlace::first);
        for (size_t k = 0; k < required.size(); ++k)
            if (!required[k].first && before.required[k].status == "missing")
                add(required[k], HbaPlace::last);
        if (!invalid.empty())
            return Result::refuse("the hba policy " + policy.source +
                                  " requires records pg_hba.conf cannot hold:" + invalid);
        Evaluation after = evaluate(policy, hba_read(hba->hba_records()), required);
        std::string problems = listing(after, forbidden);
        if (!taken.empty()) problems += "\nthe change takes away what the policy requires:" + taken;
        if (problems.empty()) {
            const std::string name = ctx.instance()->qualified_name();
            for (const auto& w : after.warnings) ctx.log(LogLevel::warning, name + ": " + w);
            for (const auto& v : after.violations)
                ctx.log(LogLevel::warning, name + ": " + hba_policy::describe(v));
            return Result::proceed();
        }
        return Result::refuse("pg_hba.conf as it would be written breaks the hba policy " +
                              policy.source + ":" + problems +
                              "\nnothing was written; change the records named, or the policy");
    }

    // pre_start, and reload (pre_configure without a configuration): the file on disk, as the
    // server is about to read it. A [never] rule refuses; a requirement not met is a warning.
    Result on_disk(HookContext& ctx, const Policy& policy, const std::vector<Required>& required) {
        const Instance& i = *ctx.instance();
        HbaRead read;
        std::string error;
        if (!read_instance_hba(ctx, read, error))
            return Result::refuse(error + " (the hba policy cannot be checked)");
        Evaluation e = evaluate(policy, read, required);
        for (const auto& w : e.warnings) ctx.log(LogLevel::warning, i.qualified_name() + ": " + w);
        std::string drift = listing(e, required_kind);
        if (!drift.empty())
            ctx.log(LogLevel::warning, i.qualified_name() + ": pg_hba.conf lacks what the hba " +
                                           "policy requires (a missing record comes back at the " +
                                           "next configure):" + drift);
        std::string problems = listing(e, forbidden);
        if (problems.empty()) return Result::proceed();
        std::string hint;
        for (const auto& v : e.violations)
            if (forbidden(v)) {
                hint = "\nremove the record (pgforge hba remove -i " + i.qualified_name() +
                       " --position " + std::to_string(v.position) +
                       ") or change the policy; see pgforge hba check -i " + i.qualified_name();
                break;
            }
        return Result::refuse(hba_file(i).string() + " breaks the hba policy " + policy.source +
                              ":" + problems + hint);
    }

    int check(CommandContext& ctx, const Loaded& l) {
        const Instance& i = *ctx.instance();
        json j = {{"instance", i.qualified_name()},
                  {"file", hba_file(i).string()},
                  {"policy", l.error.empty() ? l.policy.source : std::string()}};
        auto fail = [&](const std::string& message) {
            if (ctx.json()) {
                j["ok"] = false;
                j["error"] = message;
                ctx.out(j.dump(2) + "\n");
            } else {
                ctx.err("hba check: " + i.qualified_name() + ": " + message + "\n");
            }
            return 1;
        };
        if (!l.error.empty()) return fail(l.error);
        std::vector<Required> required;
        try {
            required = required_records(l.policy, names_of(i));
        } catch (const PolicyError& e) {
            return fail(e.what());
        }
        HbaRead read;
        std::string error;
        if (!read_instance_hba(ctx, read, error)) return fail(error);
        Evaluation e = evaluate(l.policy, read, required);
        if (ctx.json()) {
            j["ok"] = e.ok();
            json req = json::array();
            for (const auto& r : e.required) {
                json x = {{"rule", r.rule}, {"record", r.record}, {"status", r.status}};
                if (r.line) x["line"] = r.line;
                if (!r.text.empty()) x["text"] = r.text;
                req.push_back(x);
            }
            json violations = json::array();
            for (const auto& v : e.violations) {
                json x = {{"kind", v.kind}};
                if (v.line) x["line"] = v.line;
                if (v.position) x["position"] = v.position;
                if (!v.text.empty()) x["text"] = v.text;
                if (!v.record.empty()) x["record"] = v.record;
                x["rule"] = v.rule;
                x["reason"] = v.reason;
                violations.push_back(x);
            }
            j["required"] = req;
            j["violations"] = violations;
            j["warnings"] = e.warnings;
            ctx.out(j.dump(2) + "\n");
        } else {
            for (const auto& w : e.warnings) ctx.err(i.qualified_name() + ": " + w + "\n");
            if (e.ok())
                ctx.out(i.qualified_name() + ": pg_hba.conf follows the hba policy " +
                        l.policy.source + " (" + std::to_string(e.required.size()) +
                        " required record(s) in place)\n");
            else
                ctx.out(i.qualified_name() + ": pg_hba.conf breaks the hba policy " +
                        l.policy.source + ":" + listing(e, [](const Violation&) { return true; }) +
                        "\n");
        }
        return e.ok() ? 0 : 1;
    }

    std::optional<Loaded> loaded_;
};

}  // namespace

PGFORGE_PLUGIN(HbaPolicy);
