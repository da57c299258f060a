// A plugin's on_hook that handles pre_start and pre_drop through sdk::declared<>: it compiles
// only when its declaration (PGFORGE_PLUGIN_HOOKS, from pgforge_add_plugin(HOOKS ...)) lists
// both. Compiled by declared_hooks_test.cmake with several declarations.
#include <pgforge/plugin.hpp>

using namespace pgforge::sdk;

Result handle(HookContext& ctx) {
    switch (ctx.point()) {
        case declared<HookPoint::pre_start>():
            return Result::proceed();
        case declared<HookPoint::pre_drop>():
            return Result::refuse("kept");
        default:
            return Result::proceed();
    }
}
