// What every command of the CLI shares: the invocation (parsed options, streams, the library
// context), the shape of a command table row, and small output helpers. Only cli/ includes it.
#pragma once

#include <unistd.h>

#include <boost/program_options.hpp>
#include <chrono>
#include <functional>
#include <iomanip>
#include <memory>
#include <nlohmann/json_fwd.hpp>
#include <optional>
#include <ostream>
#include <string>
#include <vector>

#include "engine/core/error.hpp"
#include "engine/operations/instances.hpp"

namespace pgforge::cli {

namespace po = boost::program_options;

// What a command runs with: its parsed options, the streams, and the library context.
struct Invocation {
    std::ostream& out;
    std::ostream& err;
    po::variables_map vm;
    std::vector<std::string> positional;
    std::vector<std::string> trailing;  // after "--"
    SettingsOverrides overrides;
    bool json = false;
    bool quiet = false;
    std::unique_ptr<Context> context;

    Context& ctx() {
        if (!context) {
            context = std::make_unique<Context>(load_settings(overrides));
            context->quiet = json || quiet || !isatty(STDERR_FILENO);
            if (!context->quiet) context->progress = progress_printer();
        }
        return *context;
    }

    // On a terminal, long work says what it is doing; a step's time shows when the next begins.
    Progress progress_printer() {
        struct State {
            std::string step;
            std::chrono::steady_clock::time_point began;
        };
        auto state = std::make_shared<State>();
        return [this, state](std::string_view step) {
            auto now = std::chrono::steady_clock::now();
            if (!state->step.empty())
                err << " (" << std::fixed << std::setprecision(2)
                    << std::chrono::duration<double>(now - state->began).count() << " s)\n";
            state->step = std::string(step);
            state->began = now;
            if (!step.empty()) err << "  " << step << "..." << std::flush;
        };
    }
    void end_progress() {
        if (context && context->progress) context->progress("");
    }

    std::string arg(size_t k, const char* what) const {
        if (positional.size() <= k)
            throw Error(Exit::usage, std::string("missing ") + what,
                        "see pgforge --help for the command's arguments");
        return positional[k];
    }
    bool flag(const char* name) const { return vm.count(name) && vm[name].as<bool>(); }
    template <typename T>
    std::optional<T> opt(const char* name) const {
        if (!vm.count(name)) return std::nullopt;
        return vm[name].as<T>();
    }
};

using Handler = int (*)(Invocation&);

struct CommandSpec {
    const char* object;
    const char* verb;
    const char* args;  // shown in help
    const char* help;
    void (*options)(po::options_description&);
    Handler run;
};

// ---- output helpers
std::string shell_quote(const std::string& s);
void print_table(std::ostream& out, const std::vector<std::vector<std::string>>& rows);
// SQL statements for `apply --diff`: each indented, ending with ';', control characters shown.
void print_statements(std::ostream& out, const std::vector<std::string>& statements);

// An instance's inventory entry as every command's --json prints it (docs/cli.md).
nlohmann::ordered_json instance_json(const Instance& instance);

// The command tables, one per object family.
const std::vector<CommandSpec>& instance_commands();
const std::vector<CommandSpec>& apply_commands();
const std::vector<CommandSpec>& conf_commands();
const std::vector<CommandSpec>& database_commands();
const std::vector<CommandSpec>& role_commands();
const std::vector<CommandSpec>& plugin_commands();
const std::vector<CommandSpec>& schema_commands();
const std::vector<CommandSpec>& upgrade_commands();
// instance promote, instance rebuild
const std::vector<CommandSpec>& replication_commands();
// Every table, in the order help lists them.
std::vector<const std::vector<CommandSpec>*> all_command_tables();

}  // namespace pgforge::cli
