// Per-instance options (SDK 1.2): the keys a plugin declares in its manifest's [options]
// section (pgforge_add_plugin(... OPTIONS "stanza=string:the pgBackRest stanza") generates it),
// whose values the user sets per instance through pgforge (`instance create --option
// backup.stanza=prod`, the instance manifest's section named after the plugin). The engine checks
// each value against the declared type, keeps it in the inventory and hands it to the plugin;
// the plugin reads, never writes them. Reached with find<InstanceOptions>(ctx) on every context
// that has an instance (hooks, commands, describe, undos): nullptr from an engine older than SDK
// 1.2, or on a context without an instance.
//
//   if (auto* options = sdk::find<sdk::InstanceOptions>(ctx))
//       if (auto stanza = options->option("stanza")) use(*stanza);
#pragma once

#include <map>
#include <optional>
#include <string>
#include <string_view>

#include "pgforge/plugin.hpp"

namespace pgforge::sdk {

class InstanceOptions {
  public:
    static constexpr const char* interface_name = "pgforge.instance_options";
    static constexpr unsigned interface_version = 1;

    // The value of the plugin's option `key` for this instance: the one set, else the default
    // its manifest declares, else nullopt (also for a key the manifest does not declare).
    // Integers are written in decimal, booleans as "true" or "false".
    virtual std::optional<std::string> option(std::string_view key) const = 0;
    // Every declared option that has a value (set, or by default), by key.
    virtual std::map<std::string, std::string> options() const = 0;

  protected:
    ~InstanceOptions() = default;
};

}  // namespace pgforge::sdk
