// postmaster.pid, the server's own account of whether it runs and how far it has got.
#pragma once

#include <sys/types.h>

#include <filesystem>
#include <optional>
#include <string>

#include "engine/core/process.hpp"

namespace pgforge {

struct PostmasterPid {
    pid_t pid = 0;
    std::filesystem::path data_dir;
    long start_time = 0;  // seconds since the epoch
    int port = 0;
    std::string socket_dir;        // first unix_socket_directories entry
    std::string listen_addresses;  // first listen address, "*" or empty
    std::string status;            // "starting", "stopping", "ready", "standby"; empty before 10
};

// Parses the file's text; a file still being written (fewer than the first four lines, or a
// pid that is not a number) gives nullopt.
std::optional<PostmasterPid> parse_postmaster_pid(const std::string& text);
std::optional<PostmasterPid> read_postmaster_pid(const std::filesystem::path& data_dir);


// The last `lines` lines of a text file (of its last 64 KiB), read with the rights of whoever
// controls it (empty if it does not exist; an Error if that user cannot read it).
std::string tail_file(const std::filesystem::path& file, int lines);

}  // namespace pgforge
