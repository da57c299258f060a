// role commands.
#include "engine/cli/command.hpp"

namespace pgforge::cli {

const std::vector<CommandSpec>& role_commands() {
    static const std::vector<CommandSpec> commands;
    return commands;
}

}  // namespace pgforge::cli
