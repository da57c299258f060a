// Per-instance plugin options (SDK 1.2, sdk/include/pgforge/options.hpp): the keys plugins
// declare in their manifests' [options], and the values set for each instance, kept in the
// inventory. Only this library writes them; a plugin reads them with find<InstanceOptions>.
#pragma once

#include <map>
#include <optional>
#include <string>
#include <vector>

#include "engine/core/instance.hpp"
#include "engine/pipeline/context.hpp"

namespace pgforge::plugin_options {

// One option a loaded plugin declares.
struct DeclaredOption {
    std::string plugin, key, type, description;
    std::optional<std::string> default_value;
};

// plugin -> key -> value.
using Values = std::map<std::string, std::map<std::string, std::string>>;
// plugin -> key -> value, or nullopt to remove the value (the plugin's default applies again).
using Wanted = std::map<std::string, std::map<std::string, std::optional<std::string>>>;

// The options of the enabled, loaded plugins, by plugin then in their manifests' order.
std::vector<DeclaredOption> declared(Context& ctx);

// The values set for `instance` (defaults are not values: an option left unset is not here).
Values values(Context& ctx, const Instance& instance);

// Refuses (Error(Exit::usage), naming PLUGIN.KEY and what to do) a plugin that is not enabled
// and loaded, a key its manifest does not declare, or a value that is not of the key's type.
// Removing (nullopt) a key no plugin declares any more is accepted.
void check(Context& ctx, const Wanted& wanted);
Wanted wanted_from(const Values& values);

// What storing `wanted` would change: field "PLUGIN.KEY", the value before and after (values as
// stored: integers in decimal, booleans "true"/"false"). check() first.
struct OptionChange {
    std::string field;
    std::optional<std::string> before, after;
    bool operator==(const OptionChange&) const = default;
};
std::vector<OptionChange> plan(Context& ctx, const Instance& instance, const Wanted& wanted);

// check(), then writes what plan() says under the instance's lock (taken here: call it without
// holding it), journaled as the operation "options" with one step per change; nothing at all
// (no journal row) when nothing changes. Plugins see the new values from their next call: run a
// configure afterwards for their pre_configure to use them. Returns the changes.
std::vector<OptionChange> store(Context& ctx, const Instance& instance, const Wanted& wanted);

// For instance create, inside its "inventory entry" step (under its lock and journal): records
// the values, checked beforehand with check(), of the new instance.
void store_new(Context& ctx, const Instance& instance, const Values& values);

// "backup.stanza=prod" as given on a command line, into `values`; Error(Exit::usage) when it is
// not PLUGIN.KEY=VALUE (the value is checked by check()).
void parse_assignment(const std::string& text, Values& values);

}  // namespace pgforge::plugin_options
