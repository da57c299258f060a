// A plugin that provides the start and stop steps (pgforge/steps.hpp) of the instances named in
// its setting `instances` (comma-separated names; others are declined, and the engine's driver
// runs their steps), with pg_ctl run as the instance's owner. Each step it runs or declines is
// appended to the file of its setting `log`: "start NAME ARGS..." or "declined start NAME".
// With the setting `fail = start` (or stop) it fails that step.
#include <fstream>
#include <pgforge/plugin.hpp>
#include <pgforge/steps.hpp>
#include <sstream>

namespace {

using namespace pgforge::sdk;

class Stepper final : public Plugin {
  public:
    int run_command(const Command& command, CommandContext& ctx) override {
        if (command.family != step_family) return 2;
        const Instance* i = ctx.instance();
        if (!i) return 2;
        std::string mine = "," + ctx.setting("instances").value_or("") + ",";
        std::ofstream log(ctx.setting("log").value_or("/dev/null"), std::ios::app);
        if (mine.find("," + i->name() + ",") == std::string::npos) {
            log << "declined " << command.verb << " " << i->name() << "\n";
            return step_declined;
        }
        log << command.verb << " " << i->name();
        for (const auto& a : ctx.args()) log << " " << a;
        log << "\n";
        if (ctx.setting("fail").value_or("") == command.verb) {
            ctx.err("the stepper refuses to " + command.verb);
            return 1;
        }
        // Already as asked: nothing to do.
        if (i->running() == (command.verb == "start")) return 0;
        std::string timeout = "60";
        std::string mode = "fast";
        const auto& args = ctx.args();
        for (size_t k = 0; k + 1 < args.size(); ++k) {
            if (args[k] == "--timeout") timeout = args[k + 1];
            if (args[k] == "--mode") mode = args[k + 1];
        }
        std::vector<std::string> argv = {
            (i->bindir() / "pg_ctl").string(), "-D", i->data_dir().string(), "-w", "-t", timeout};
        if (command.verb == "start")
            argv.insert(argv.end(), {"-l", i->log_file().string(), "start"});
        else
            argv.insert(argv.end(), {"-m", mode, "stop"});
        RunOptions o;
        o.timeout = 120;
        RunResult r = ctx.run(argv, o);
        if (!r.ok()) {
            ctx.err("pg_ctl " + command.verb + " failed: " + r.error + r.err + r.out);
            return 1;
        }
        return 0;
    }
};

}  // namespace

PGFORGE_PLUGIN(Stepper);
