// Test plugins. GOOD: records every hook call to the file named by its `log` setting and does
// what its settings say (refuse at points, contribute a parameter, an HBA record, an ident
// mapping, a file).
// The others each break one rule of the plugin boundary.
#include <fstream>
#include <pgforge/plugin.hpp>
#include <sstream>
#include <stdexcept>

namespace {

using namespace pgforge::sdk;

[[maybe_unused]] bool listed(const std::optional<std::string>& list, std::string_view item) {
    if (!list) return false;
    std::stringstream in(*list);
    std::string word;
    while (std::getline(in, word, ','))
        if (word == item) return true;
    return false;
}

[[maybe_unused]] std::string engine_line(const EngineInfo& engine) {
    return "pgforge " + engine.version() + " sdk " + std::to_string(engine.sdk_major()) + "." +
           std::to_string(engine.sdk_minor());
}

class Fixture final : public Plugin {
  public:
    Result setup(Context& ctx) override {
        if (ctx.setting("fail_setup")) return Result::refuse("setup refused by its settings");
        if (listed(ctx.setting("throw_in"), "setup")) throw std::runtime_error("boom in setup");
        return Result::proceed();
    }

    Result on_hook(HookContext& ctx) override {
#ifdef FIXTURE_THROWS
        (void)ctx;
        throw std::runtime_error("boom in " FIXTURE_NAME);
#else
        const char* point = to_string(ctx.point());
        if (auto log = ctx.setting("log")) {
            std::ofstream out(*log, std::ios::app);
            out << FIXTURE_NAME << " " << point << " " << ctx.operation() << " "
                << ctx.instance()->qualified_name() << " " << (ctx.outcome().ok ? "ok" : "failed")
                << (ctx.flag(FIXTURE_NAME "-flag") ? " flag" : "") << "\n";
        }
        if (Configuration* c = ctx.configuration()) {
            if (auto p = ctx.setting("parameter")) {
                auto eq = p->find('=');
                c->set_parameter(p->substr(0, eq), p->substr(eq + 1));
            }
            if (auto h = ctx.setting("hba")) c->add_hba_record(*h, HbaPlace::first);
            if (auto f = ctx.setting("file")) c->add_file(*f, "made by " FIXTURE_NAME "\n", 0600);
            if (auto m = ctx.setting("ident")) {
                // "MAPNAME SYSTEM-USERNAME PG-USERNAME"
                std::stringstream in(*m);
                std::string map, system_user, database_user;
                in >> map >> system_user >> database_user;
                c->add_ident_mapping(map, system_user, database_user);
            }
        }
        // SDK 1.1: what the engine offers, found on the hook's context and its configuration.
        if (auto file = ctx.setting("engine_file"); file && ctx.configuration()) {
            auto* from_context = find<EngineInfo>(ctx);
            auto* from_configuration = find<EngineInfo>(*ctx.configuration());
            std::ofstream out(*file, std::ios::app);
            out << point << " " << (from_context ? engine_line(*from_context) : "none") << " / "
                << (from_configuration ? engine_line(*from_configuration) : "none") << "\n";
        }
        if (auto file = ctx.setting("undo_file"); file && ctx.point() == HookPoint::post_start)
            ctx.on_undo("marker", [path = *file](Context& undo) {
                std::ofstream(path, std::ios::app) << "undone by " FIXTURE_NAME " for "
                                                   << undo.instance()->qualified_name() << "\n";
            });
        if (listed(ctx.setting("refuse"), point))
            return Result::refuse(FIXTURE_NAME " says no at " + std::string(point));
        return Result::proceed();
#endif
    }

    std::vector<Command> commands() const override {
        return {{FIXTURE_NAME, "echo", "WORDS...", "print the arguments", false},
                {FIXTURE_NAME, "sql", "-i NAME TEXT", "select a text through a parameter", true},
                {FIXTURE_NAME, "engine", "", "the engine's version and SDK (SDK 1.1)", false}};
    }
    std::vector<Flag> flags() const override {
        return {{"instance drop", FIXTURE_NAME "-flag", "a flag for tests"}};
    }
    int run_command(const Command& command, CommandContext& ctx) override {
        if (listed(ctx.setting("throw_in"), "command")) throw std::runtime_error("boom in command");
        if (command.verb == "engine") {
            auto* engine = find<EngineInfo>(ctx);
            ctx.out((engine ? engine_line(*engine) : "none") + "\n");
            return 0;
        }
        if (command.verb == "echo") {
            std::string line;
            for (const auto& a : ctx.args()) line += (line.empty() ? "" : " ") + a;
            ctx.out(line + "\n");
            return 0;
        }
        auto r = ctx.query("SELECT $1::text AS value", {ctx.args().empty() ? "" : ctx.args()[0]});
        if (!r.ok) {
            ctx.err(r.error + "\n");
            return 1;
        }
        ctx.out(r.rows.at(0).at(0).value_or("NULL") + "\n");
        return 0;
    }
    std::vector<Field> describe(Context& ctx) override {
        if (listed(ctx.setting("throw_in"), "describe"))
            throw std::runtime_error("boom in describe");
        return {{"instance", ctx.instance() ? ctx.instance()->qualified_name() : "none"}};
    }
};

}  // namespace

#if defined(FIXTURE_NO_SYMBOL)
// A library that is not a plugin: no descriptor.
extern "C" BOOST_SYMBOL_EXPORT int not_a_plugin() {
    return 1;
}
#elif defined(FIXTURE_WRONG_MAJOR) || defined(FIXTURE_NEWER_MINOR) || \
    defined(FIXTURE_SMALL_STRUCT) || defined(FIXTURE_MISNAMED)
namespace {
void* create_fixture() noexcept {
    return static_cast<Plugin*>(new Fixture());
}
void destroy_fixture(void* p) noexcept {
    delete static_cast<Plugin*>(p);
}
}  // namespace
extern "C" const pgforge_plugin_descriptor fixture_descriptor = {
#if defined(FIXTURE_WRONG_MAJOR)
    PGFORGE_SDK_VERSION_MAJOR + 1,
    0,
    sizeof(pgforge_plugin_descriptor),
#elif defined(FIXTURE_NEWER_MINOR)
    PGFORGE_SDK_VERSION_MAJOR,
    PGFORGE_SDK_VERSION_MINOR + 1,
    sizeof(pgforge_plugin_descriptor),
#elif defined(FIXTURE_SMALL_STRUCT)
    PGFORGE_SDK_VERSION_MAJOR,
    PGFORGE_SDK_VERSION_MINOR,
    12,
#else
    PGFORGE_SDK_VERSION_MAJOR,
    PGFORGE_SDK_VERSION_MINOR,
    sizeof(pgforge_plugin_descriptor),
#endif
#if defined(FIXTURE_MISNAMED)
    "someone_else",
#else
    FIXTURE_NAME,
#endif
    "0.1",
    &create_fixture,
    &destroy_fixture,
    nullptr};
BOOST_DLL_ALIAS(fixture_descriptor, pgforge_plugin_descriptor_v1)
#else
PGFORGE_PLUGIN(Fixture, FIXTURE_NAME, "0.1");
#endif
