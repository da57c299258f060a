// The run-time settings of an instance as the server sees them (`instance settings`): on a
// running server its pg_settings; on a stopped one, the files as the server would read them.
#pragma once

#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include "engine/operations/instances.hpp"

namespace pgforge::settings_view {

struct Setting {
    std::string name;
    std::string setting;  // pg_settings.setting (running); `postgres -C` (stopped)
    std::string value;    // with its unit, as SHOW prints it ("128MB"); stopped: as a file
                          // writes it, else `postgres -C`'s
    std::optional<std::string> unit;      // pg_settings.unit; nullopt when none or stopped
    std::string source;                   // pg_settings.source; stopped: "configuration file"
                                          // when a file sets it, else "default"
    std::filesystem::path file;           // where it is set (sourcefile), empty when not
    int line = 0;                         // sourceline, 0 when not from a file
    std::string context;                  // postmaster, sighup, ...; "" when unknown
    std::optional<bool> pending_restart;  // nullopt when the server is stopped
};

struct Query {
    std::vector<std::string> names;  // empty: every parameter (stopped: those the files set)
    bool changed = false;            // only those whose source is not the default
    bool pending_restart = false;    // only those waiting for a restart (none when stopped)
};

struct View {
    bool running = false;
    std::string note;               // "instance stopped: values from the files" when stopped
    std::vector<Setting> settings;  // by name
};

// Reads pg_settings of a running instance (one query); of a stopped one, with names, one
// `postgres -C NAME -D DATADIR` per name as the data directory's owner (the value the server
// would start with, default included), with the file and line pgforge's conf tree reader finds;
// without names, the settings the files make (postgresql.conf, its includes, then
// postgresql.auto.conf), with their file and line. A name the server does not know is
// Error(Exit::usage) with a "did you mean".
View read(Context& ctx, const Instance& instance, const Query& query);

// Whether a parameter of the running server waits for a restart (pg_settings.pending_restart);
// nullopt when it is stopped, or cannot be asked (a warning says why).
std::optional<bool> pending_restart(Context& ctx, const Instance& instance);

}  // namespace pgforge::settings_view
