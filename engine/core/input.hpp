// Input from outside, bounded and checked before anything is written: files read with a size
// limit, numbers range-checked, text made safe to print, secret files checked for their mode.
#pragma once

#include <cstddef>
#include <filesystem>
#include <string>
#include <string_view>

#include "engine/core/error.hpp"

namespace pgforge {

// Manifests (database apply -f, role apply -f) and the settings file: at most 1 MiB each.
inline constexpr std::size_t manifest_size_limit = std::size_t{1} << 20;
inline constexpr std::size_t settings_size_limit = std::size_t{1} << 20;

// The whole of `file` ("-": standard input), read at most `limit` bytes at a time so that
// /dev/zero or a huge file cannot exhaust memory. `what` names the file in errors ("manifest").
// Throws Error(Exit::usage) naming the file and the limit when it is larger, Error(unreadable)
// when it cannot be opened.
std::string read_bounded(const std::string& file, std::size_t limit, const std::string& what,
                         Exit unreadable = Exit::not_found);

// "1 MiB", "64 KiB", "512 bytes".
std::string describe_size(std::size_t bytes);

// Control characters (C0 but tab and line feed, DEL, and the C1 range in UTF-8) written as \xNN
// (C1: \u00NN), so that text from input cannot drive the terminal it is printed on.
std::string escape_control(std::string_view text);

// Ports: 1024-65535, or 1-65535 when `allow_privileged`. `what` names the value ("--port").
void check_port(long long port, bool allow_privileged, const std::string& what);

// Timeouts in seconds: finite, > 0 and at most a week. `what` names the value ("--timeout").
void check_timeout(double seconds, const std::string& what);

// Counts and positions given on the command line: `value` >= `min`. `option` as "--position".
void check_at_least(long long value, long long min, const std::string& option);

// A file holding a secret must be a regular file that neither its group nor others can read
// (as libpq's .pgpass and ssh's keys): refused otherwise, with the chmod that fixes it.
void check_secret_file(const std::filesystem::path& file, const std::string& what);

// Password files: at most 64 KiB.
inline constexpr std::size_t secret_file_size_limit = std::size_t{64} << 10;

// The secret on the first line of `file` (a password file): check_secret_file, then read through
// read_bounded (so /dev/zero or a huge file is refused), without a trailing carriage return.
// An empty first line is Error(Exit::usage). `what` names the file ("password file").
std::string read_secret_line(const std::filesystem::path& file, const std::string& what);

}  // namespace pgforge
