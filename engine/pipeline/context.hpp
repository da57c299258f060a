// What every operation runs with: the site settings, the cluster driver, the inventory and the
// plugin host (both opened on first use), a progress reporter.
#pragma once

#include <memory>
#include <set>
#include <string>

#include "engine/core/settings.hpp"
#include "engine/driver/cluster_driver.hpp"

namespace pgforge {

class Inventory;
class PluginHost;

class Context {
  public:
    explicit Context(Settings settings, std::unique_ptr<ClusterDriver> driver = nullptr);
    ~Context();

    const Settings& settings() const { return settings_; }
    ClusterDriver& driver() { return *driver_; }
    Inventory& inventory();  // opened on first use
    // The plugins found on the search path, the enabled ones loaded and set up (on first use).
    PluginHost& plugins();
    // Whether any plugin is enabled or required (without looking at the disk).
    bool plugins_wanted() const {
        return !settings_.enabled_plugins.empty() || !settings_.required_plugins.empty();
    }
    Progress progress;            // may be empty
    bool quiet = false;           // --json or no terminal: plugins show no progress
    std::set<std::string> flags;  // plugin flags given on the command line ("purge-backups")

  private:
    Settings settings_;
    std::unique_ptr<ClusterDriver> driver_;
    std::unique_ptr<Inventory> inventory_;
    std::unique_ptr<PluginHost> plugins_;
};

}  // namespace pgforge
