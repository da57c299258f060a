// The engine's side of the SDK: the contexts a plugin's hook, command, describe and setup are
// called with, and the calls themselves.
#pragma once

#include <cstdint>
#include <functional>
#include <ostream>
#include <string>
#include <string_view>
#include <tuple>
#include <vector>

#include "engine/core/instance.hpp"
#include "pgforge/plugin.hpp"

namespace pgforge {

class Context;
class LoadedPlugin;
class Pipeline;
class ConfigureDraft;

// The interfaces (SDK 1.1) the engine offers on an object it hands to a plugin: while this
// lives, a plugin's sdk::find<T>(object) is answered by `finder` (with the name and version of T).
// `object` is the address of the SDK class the plugin sees (sdk::Context, sdk::Configuration).
class OfferedInterfaces {
  public:
    using Finder = std::function<void*(std::string_view name, std::uint32_t version)>;
    OfferedInterfaces(const void* object, Finder finder);
    ~OfferedInterfaces();
    OfferedInterfaces(const OfferedInterfaces&) = delete;
    OfferedInterfaces& operator=(const OfferedInterfaces&) = delete;

  private:
    friend void* find_offered_interface(void*, const char*, std::uint32_t) noexcept;
    const void* object_;
    Finder finder_;
    const OfferedInterfaces* previous_;
};

// `impl` as a T* when (name, version) are T's: a finder's answer.
template <class T, class Impl>
void* offer(std::string_view name, std::uint32_t version, Impl* impl) {
    return name == T::interface_name && version == T::interface_version
               ? static_cast<void*>(static_cast<T*>(impl))
               : nullptr;
}

// The engine's answer to a plugin's find_interface: nullptr for an object the engine does not
// know (any more) or an interface it does not offer there. Never throws.
void* find_offered_interface(void* object, const char* name, std::uint32_t version) noexcept;

// The host table every SDK 1.1 plugin gets at load.
const pgforge_host& engine_host();

// The interfaces every context and configuration offers (sdk::EngineInfo).
void* common_interface(std::string_view name, std::uint32_t version);

// A plugin's handler at `point` of the pipeline's operation (the draft only at pre_configure).
sdk::Result call_plugin_hook(Context& ctx, LoadedPlugin& plugin, Pipeline& p, sdk::HookPoint point,
                             const sdk::Outcome& outcome, ConfigureDraft* draft);

// The context a plugin's command runs with (pgforge FAMILY VERB ...).
int run_plugin_command(Context& ctx, LoadedPlugin& plugin, const sdk::Command& command,
                       const Instance* instance, const std::vector<std::string>& args, bool json,
                       std::ostream& out, std::ostream& err);

// Lines plugins add to `instance get`: (plugin, key, value).
std::vector<std::tuple<std::string, std::string, std::string>> plugin_fields(
    Context& ctx, const Instance& instance);

// Each loaded plugin's setup(), with a context that has no instance.
sdk::Result setup_plugin(Context& ctx, LoadedPlugin& plugin);

}  // namespace pgforge
