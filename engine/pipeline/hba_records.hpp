// pg_hba.conf records for plugins (sdk/include/pgforge/hba.hpp): the engine's records (conf/hba)
// in the SDK's form and back, and the instance's file on disk as records.
#pragma once

#include <string>
#include <vector>

#include "engine/conf/hba.hpp"
#include "engine/core/instance.hpp"
#include "pgforge/hba.hpp"

namespace pgforge {

sdk::HbaRecord to_sdk(const conf::HbaRecord& r);
// The engine's record; Error(Exit::usage) saying what is wrong when the server would refuse it.
conf::HbaRecord from_sdk(const sdk::HbaRecord& r);

// The instance's pg_hba.conf as on disk, read with the engine's parser.
class InstanceHbaReader final : public sdk::HbaFileReader {
  public:
    explicit InstanceHbaReader(const Instance& instance) : instance_(instance) {}
    bool read_hba(std::vector<sdk::HbaRecord>& records, std::vector<sdk::HbaProblem>& problems,
                  std::string& error) override;

  private:
    const Instance& instance_;
};

}  // namespace pgforge
