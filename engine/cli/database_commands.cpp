// database commands.
#include "engine/cli/command.hpp"

namespace pgforge::cli {

const std::vector<CommandSpec>& database_commands() {
    static const std::vector<CommandSpec> commands;
    return commands;
}

}  // namespace pgforge::cli
