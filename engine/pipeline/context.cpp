#include "engine/pipeline/context.hpp"

#include "engine/core/safe_fs.hpp"
#include "engine/inventory/inventory.hpp"
#include "engine/pipeline/plugin_calls.hpp"
#include "engine/pipeline/plugin_host.hpp"

namespace pgforge {

Context::Context(Settings settings, std::unique_ptr<ClusterDriver> driver)
    : settings_(std::move(settings)),
      driver_(driver ? std::move(driver) : std::make_unique<PostgresDriver>()) {
    // The prefix holds every instance, the inventory and the locks: no other user may be able to
    // change it or a parent (safe_fs.hpp). Checked for each command, before any lock is taken.
    safe_fs::check_trusted_directory(settings_.prefix, "prefix");
}

// Plugin objects and libraries go before the inventory and the driver they may still use.
Context::~Context() {
    plugins_.reset();
}

Inventory& Context::inventory() {
    if (!inventory_) inventory_ = std::make_unique<Inventory>(settings_.inventory_file());
    return *inventory_;
}

PluginHost& Context::plugins() {
    if (!plugins_) {
        plugins_ = std::make_unique<PluginHost>(settings_);
        plugins_->load([this](LoadedPlugin& p) { return setup_plugin(*this, p); });
    }
    return *plugins_;
}

}  // namespace pgforge
