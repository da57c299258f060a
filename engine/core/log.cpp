#include "engine/core/log.hpp"

#include <spdlog/sinks/basic_file_sink.h>
#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>

#include "engine/core/error.hpp"

namespace pgforge::log {
namespace {

spdlog::logger& logger() {
    static auto instance = [] {
        auto l = std::make_shared<spdlog::logger>(
            "pgforge", std::make_shared<spdlog::sinks::stderr_color_sink_mt>());
        l->set_pattern("%^%l%$: %v");
        l->set_level(spdlog::level::warn);
        return l;
    }();
    return *instance;
}

}  // namespace

Level parse_level(std::string_view name) {
    if (name == "trace") return Level::trace;
    if (name == "debug") return Level::debug;
    if (name == "info") return Level::info;
    if (name == "warn" || name == "warning") return Level::warn;
    if (name == "error") return Level::error;
    if (name == "off") return Level::off;
    throw Error(Exit::usage, "unknown log level '" + std::string(name) + "'",
                "use one of trace, debug, info, warn, error, off");
}

void configure(Level level, const std::string& file) {
    auto& l = logger();
    l.set_level(static_cast<spdlog::level::level_enum>(level));
    if (!file.empty()) {
        auto sink = std::make_shared<spdlog::sinks::basic_file_sink_mt>(file);
        sink->set_pattern("%Y-%m-%dT%H:%M:%S.%e %P %l: %v");
        l.sinks().push_back(sink);
    }
}

void debug(std::string_view message) {
    logger().debug(message);
}
void info(std::string_view message) {
    logger().info(message);
}
void warn(std::string_view message) {
    logger().warn(message);
}
void error(std::string_view message) {
    logger().error(message);
}

}  // namespace pgforge::log
