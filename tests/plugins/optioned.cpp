// A plugin that declares per-instance options (SDK 1.2, pgforge/options.hpp) and, at each
// pre_configure, writes what it read to <instance>/optioned/options.txt ("key=value" lines, or
// "no options interface" from an engine without them).
#include <pgforge/options.hpp>
#include <pgforge/plugin.hpp>

namespace {

using namespace pgforge::sdk;

class Optioned final : public Plugin {
  public:
    Result on_hook(HookContext& ctx) override {
        Configuration* c = ctx.configuration();
        if (!c) return Result::proceed();
        std::string text;
        if (auto* options = find<InstanceOptions>(ctx)) {
            for (const auto& [key, value] : options->options()) text += key + "=" + value + "\n";
        } else {
            text = "no options interface\n";
        }
        c->add_file("options.txt", text, 0600);
        return Result::proceed();
    }
};

}  // namespace

PGFORGE_PLUGIN(Optioned);
