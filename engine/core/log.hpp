// Logging through spdlog, kept out of every other header so that it stays cheap to include.
#pragma once

#include <string>
#include <string_view>

namespace pgforge::log {

enum class Level { trace, debug, info, warn, error, off };

// Throws Error(Exit::usage) for an unknown name.
Level parse_level(std::string_view name);
// Logs go to stderr; with a file, to that file as well.
void configure(Level level, const std::string& file = {});

void debug(std::string_view message);
void info(std::string_view message);
void warn(std::string_view message);
void error(std::string_view message);

}  // namespace pgforge::log
