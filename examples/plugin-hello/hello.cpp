// The smallest useful pgforge plugin: it contributes a file beside each instance when it is
// configured (and, with the setting `preload = LIBRARY`, adds LIBRARY to the instance's
// shared_preload_libraries, composing with what the user and other plugins preload), logs when
// it starts, and adds `pgforge hello greet -i NAME`.
#include <pgforge/plugin.hpp>

namespace {

using namespace pgforge::sdk;

class Hello final : public Plugin {
  public:
    Result on_hook(HookContext& ctx) override {
        const Instance& i = *ctx.instance();
        if (ctx.point() == declared<HookPoint::pre_configure>() && ctx.configuration()) {
            std::string greeting = ctx.setting("greeting").value_or("hello");
            ctx.configuration()->add_file("greeting", greeting + ", " + i.qualified_name() + "\n",
                                          0644);
            if (auto library = ctx.setting("preload")) {
                // A list contribution (SDK 1.1): an item added to the set, never the whole value.
                auto* more = find<Contributions>(*ctx.configuration());
                if (!more) return Result::refuse("preload needs an engine with SDK 1.1");
                more->add_to_list("shared_preload_libraries", *library);
            }
        }
        if (ctx.point() == declared<HookPoint::post_start>())
            ctx.log(LogLevel::info,
                    i.qualified_name() + " is up on port " + std::to_string(i.port()));
        return Result::proceed();
    }

    std::vector<Command> commands() const override {
        return {{"hello", "greet", "-i NAME", "say hello to a running instance", true}};
    }

    int run_command(const Command&, CommandContext& ctx) override {
        QueryResult r = ctx.query("SELECT current_setting('server_version_num')");
        if (!r.ok) {
            ctx.err("hello: " + r.error + "\n");
            return 1;
        }
        ctx.out("hello, " + ctx.instance()->qualified_name() + " (server " +
                r.rows.at(0).at(0).value_or("?") + ")\n");
        return 0;
    }
};

}  // namespace

PGFORGE_PLUGIN(Hello);
