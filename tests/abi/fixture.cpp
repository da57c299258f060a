// A plugin compiled against a frozen copy of released SDK headers (tests/abi/sdk-1.MINOR, on the
// include path instead of sdk/include), loaded by the current engine. Its hook (at
// pre_configure, and an undo) and its command call every method of the 1.0 classes that a test
// can call and report what each returned, one line per call, so that a method the engine
// answers from the wrong slot of a vtable, or a struct read with the wrong layout, shows as a
// wrong line. The report goes to the file named by the setting `report`, and to the command's
// output.
#include <pgforge/plugin.hpp>
#if PGFORGE_SDK_VERSION_MINOR >= 2
#include <pgforge/options.hpp>
#endif
#include <sstream>
#include <string>

#ifndef ABI_NAME
#error "ABI_NAME is the plugin's name"
#endif

namespace {

using namespace pgforge::sdk;

std::string text(const std::optional<std::string>& v) {
    return v ? "'" + *v + "'" : "none";
}

std::string yes(bool b) {
    return b ? "yes" : "no";
}

// Every Context method (the instance's too), in the order of the 1.0 header.
void report_context(Context& ctx, std::ostream& out, const std::string& tag) {
    const Instance* i = ctx.instance();
    out << tag << " instance " << (i ? "yes" : "no") << "\n";
    if (i) {
        out << tag << " instance.name " << i->name() << "\n";
        out << tag << " instance.version " << i->version() << "\n";
        out << tag << " instance.qualified_name " << i->qualified_name() << "\n";
        out << tag << " instance.base_dir " << i->base_dir().string() << "\n";
        out << tag << " instance.data_dir " << i->data_dir().string() << "\n";
        out << tag << " instance.wal_dir " << i->wal_dir().string() << "\n";
        out << tag << " instance.log_file " << i->log_file().string() << "\n";
        out << tag << " instance.socket_dir " << i->socket_dir().string() << "\n";
        out << tag << " instance.bindir " << (i->bindir().empty() ? "empty" : "set") << "\n";
        out << tag << " instance.port " << i->port() << "\n";
        out << tag << " instance.owner " << i->owner() << "\n";
        out << tag << " instance.superuser " << i->superuser() << "\n";
        out << tag << " instance.running " << yes(i->running()) << "\n";
    }
    out << tag << " setting " << text(ctx.setting("colour")) << " " << text(ctx.setting("none"))
        << "\n";
    std::string keys;
    for (const auto& setting : ctx.settings()) keys += setting.first + ";";
    out << tag << " settings " << keys << "\n";
    out << tag << " prefix " << ctx.prefix().string() << "\n";
    out << tag << " config_dir " << (ctx.config_dir().empty() ? "empty" : "set") << "\n";
    ctx.log(LogLevel::warning, tag + " logged");
    ctx.progress(tag + " progressed");
    RunOptions options;
    options.env = {"ABI_WORD=" + tag};
    options.input = "from stdin";
    RunResult r =
        ctx.run({"/bin/sh", "-c", "cat; echo \" $ABI_WORD\"; echo err >&2; exit 3"}, options);
    out << tag << " run " << yes(r.started) << " " << r.exit_code << " " << yes(r.timed_out) << " ["
        << r.out.substr(0, r.out.find('\n')) << "] [" << r.err.substr(0, 3) << "] " << yes(r.ok())
        << "\n";
    if (i) {
        std::string error;
        long pid = ctx.spawn({"/bin/sh", "-c", "echo spawned"}, RunOptions{},
                             i->base_dir() / (tag + "-spawn.log"), error);
        out << tag << " spawn " << (pid > 0 ? "pid" : "0: " + error) << "\n";
    }
    QueryResult q = ctx.query("SELECT $1::text", {"x"}, "postgres");
    out << tag << " query " << yes(q.ok) << " "
        << (q.ok              ? ""
            : q.error.empty() ? "?"
                              : "error")
        << " " << q.columns.size() << " " << q.rows.size() << "\n";
    out << tag << " quote_identifier " << ctx.quote_identifier("a\"b") << "\n";
    out << tag << " quote_literal " << ctx.quote_literal("it's") << "\n";
    out << tag << " set_state " << yes(ctx.set_state("k", tag)) << "\n";
    out << tag << " state " << text(ctx.state("k")) << " " << text(ctx.state("none")) << "\n";
    out << tag << " erase_state " << yes(ctx.erase_state("k")) << " " << text(ctx.state("k"))
        << "\n";
    int port = ctx.reserve_port(47500, 47999);
    out << tag << " reserve_port " << (port >= 47500 && port <= 47999 ? "in range" : "none") << " "
        << (ctx.state("port") == std::to_string(port) ? "kept" : "not kept") << "\n";
    if (i) {
        std::string error;
        bool wrote = ctx.write_file(i->base_dir() / ABI_NAME / (tag + ".txt"), tag + " wrote\n",
                                    0640, error);
        out << tag << " write_file " << yes(wrote) << (wrote ? "" : " " + error) << "\n";
    }
    out << tag << " quiet " << yes(ctx.quiet()) << "\n";
    if (i) {
        std::string error;
        bool made = ctx.make_directory(i->base_dir() / (tag + "-dir"), 0750, error);
        out << tag << " make_directory " << yes(made) << (made ? "" : " " + error) << "\n";
    }
}

class Abi final : public Plugin {
  public:
    Result setup(Context& ctx) override {
        if (ctx.instance()) return Result::refuse("setup has an instance");
        if (ctx.setting("refuse_setup")) return Result::refuse("refused by its settings");
        return Result::proceed();
    }

    Result on_hook(HookContext& ctx) override {
        if (ctx.point() != HookPoint::pre_configure) return Result::proceed();
        std::ostringstream out;
        report_context(ctx, out, "hook");
        out << "hook point " << to_string(ctx.point()) << "\n";
        out << "hook operation " << ctx.operation() << "\n";
        out << "hook outcome " << yes(ctx.outcome().ok) << " [" << ctx.outcome().message << "]\n";
        out << "hook first_configure " << yes(ctx.first_configure()) << "\n";
        out << "hook flag " << yes(ctx.flag(ABI_NAME "-flag")) << " " << yes(ctx.flag("other"))
            << "\n";
        Configuration* c = ctx.configuration();
        out << "hook configuration " << yes(c != nullptr) << "\n";
        if (c) {
            c->set_parameter("work_mem", "7MB");
            c->add_hba_record("host all all 10.1.2.0/24 scram-sha-256", HbaPlace::first);
            c->add_file("abi.conf", "made\n", 0600);
            c->add_ident_mapping("abimap", "abiuser", "postgres");
            out << "configuration parameter " << text(c->parameter("work_mem")) << "\n";
            std::string hba = c->hba_text();
            out << "configuration hba_text "
                << (hba.find("10.1.2.0/24") != std::string::npos ? "has the record" : "lacks it")
                << "\n";
        }
#if PGFORGE_SDK_VERSION_MINOR >= 1
        auto* engine = find<EngineInfo>(ctx);
        out << "hook find EngineInfo "
            << (engine ? "version " + std::string(engine->version().empty() ? "empty" : "set") +
                             " sdk " + std::to_string(engine->sdk_major()) + "." +
                             std::to_string(engine->sdk_minor())
                       : "none")
            << "\n";
#endif
#if PGFORGE_SDK_VERSION_MINOR >= 2
        auto* options = find<InstanceOptions>(ctx);
        out << "hook find InstanceOptions "
            << (options ? "tone " + options->option("tone").value_or("unset") + ", " +
                              std::to_string(options->options().size()) + " option(s)"
                        : "none")
            << "\n";
#endif
        ctx.on_undo("abi marker", [](Context& undo) {
            std::string error;
            if (auto file = undo.setting("undo_file"))
                undo.write_file(*file, "undone for " + undo.instance()->qualified_name() + "\n",
                                0644, error);
        });
        std::string error;
        if (!ctx.write_file(*ctx.setting("report"), out.str(), 0644, error))
            return Result::refuse("cannot write the report: " + error);
        return Result::proceed();
    }

    std::vector<Command> commands() const override {
        return {{ABI_NAME, "report", "-i NAME ARGS...", "every 1.0 call, reported", true}};
    }
    std::vector<Flag> flags() const override {
        return {{"instance drop", ABI_NAME "-flag", "a flag for tests"}};
    }
    int run_command(const Command& command, CommandContext& ctx) override {
        std::ostringstream out;
        out << "command " << command.family << " " << command.verb << "\n";
        report_context(ctx, out, "command");
        std::string args;
        for (const auto& a : ctx.args()) args += "[" + a + "]";
        out << "command args " << args << "\n";
        out << "command json " << yes(ctx.json()) << "\n";
        ctx.err("command err\n");
        ctx.out(out.str());
        return 0;
    }
    std::vector<Field> describe(Context& ctx) override {
        return {{"instance", ctx.instance() ? ctx.instance()->qualified_name() : "none"}};
    }
};

}  // namespace

PGFORGE_PLUGIN(Abi, ABI_NAME, "0.1");
