// Supervised helpers (sdk::Helpers): daemons a plugin runs beside an instance, their pid, process
// identity, port and configuration hash kept in the inventory with the plugin's state (key
// "helpers"), so that any later pgforge run finds, checks and stops them.
#pragma once

#include <functional>
#include <optional>
#include <pgforge/helpers.hpp>
#include <pgforge/plugin.hpp>
#include <string>

#include "engine/core/instance.hpp"
#include "engine/core/process.hpp"
#include "engine/inventory/inventory.hpp"

namespace pgforge {

struct Settings;

// What a plugin's helpers on one instance are supervised with.
struct HelperScope {
    Inventory* inventory = nullptr;
    Instance instance;
    std::string plugin;
    // The user helpers run as when pgforge runs as root; empty: pgforge's own user.
    std::optional<OsUser> owner;
    std::filesystem::path ports_lock;  // locks/ports.lock: held while a port is chosen
    double lock_timeout = 10;
    std::function<void(JournalStep)> record;           // journals a start; may be empty
    std::function<void(const std::string&)> progress;  // may be empty
};

// The scope of a plugin call: the context's inventory and lock settings, the instance's owner.
HelperScope helper_scope(const Settings& settings, Inventory& inventory, const Instance& instance,
                         const std::string& plugin);

class HelperSupervisor final : public sdk::Helpers {
  public:
    explicit HelperSupervisor(HelperScope scope) : s_(std::move(scope)) {}

    int reserve_port(std::string_view name, int low, int high) override;
    void release_port(std::string_view name) override;
    sdk::HelperResult ensure(std::string_view name, const sdk::HelperSpec& spec,
                             bool restart) override;
    sdk::HelperStatus status(std::string_view name) override;
    bool stop(std::string_view name, double timeout, std::string& error) override;
    std::string hash(const sdk::HelperSpec& spec) const override;

  private:
    HelperScope s_;
    std::string who(std::string_view name) const;  // "helper exporter of 15/main (monitoring)"
};

// Whether the process `identity` (process_identity) names runs under `pid`: alive, not a zombie,
// not a later process that reused the pid. An empty identity, or one /proc does not show
// (hidepid), trusts the pid.
bool helper_alive(long pid, const std::string& identity);

}  // namespace pgforge
