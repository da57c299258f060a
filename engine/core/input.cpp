#include "engine/core/input.hpp"

#include <sys/stat.h>

#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <iostream>

#include "engine/core/error.hpp"

namespace fs = std::filesystem;

namespace pgforge {

std::string describe_size(std::size_t bytes) {
    if (bytes >= (std::size_t{1} << 20) && bytes % (std::size_t{1} << 20) == 0)
        return std::to_string(bytes >> 20) + " MiB";
    if (bytes >= 1024 && bytes % 1024 == 0) return std::to_string(bytes >> 10) + " KiB";
    return std::to_string(bytes) + " bytes";
}

std::string read_bounded(const std::string& file, std::size_t limit, const std::string& what,
                         Exit unreadable) {
    const bool standard_input = file == "-";
    const std::string name = standard_input ? "standard input" : file;
    std::ifstream opened;
    if (!standard_input) {
        std::error_code ec;
        if (fs::is_directory(file, ec))
            throw Error(Exit::usage, what + " " + file + " is a directory", "give a file");
        opened.open(file, std::ios::binary);
        if (!opened)
            throw Error(unreadable,
                        "cannot read " + what + " " + file + ": " + std::strerror(errno),
                        "check that it exists and is readable");
    }
    std::istream& in = standard_input ? std::cin : opened;
    std::string content;
    char buffer[65536];
    // One byte more than the limit tells a file of exactly `limit` bytes from a larger one.
    while (content.size() <= limit && in) {
        const std::size_t want = std::min(sizeof buffer, limit + 1 - content.size());
        in.read(buffer, static_cast<std::streamsize>(want));
        content.append(buffer, static_cast<std::size_t>(in.gcount()));
    }
    if (content.size() > limit)
        throw Error(Exit::usage,
                    what + " " + name + " is larger than the limit of " + describe_size(limit),
                    "split it into smaller files");
    if (in.bad())
        throw Error(Exit::failure,
                    "cannot read " + what + " " + name + ": " + std::strerror(errno));
    return content;
}

std::string escape_control(std::string_view text) {
    std::string out;
    out.reserve(text.size());
    char code[8];
    for (std::size_t k = 0; k < text.size(); ++k) {
        const auto c = static_cast<unsigned char>(text[k]);
        if ((c < 0x20 && c != '\n' && c != '\t') || c == 0x7f) {
            std::snprintf(code, sizeof code, "\\x%02x", c);
            out += code;
        } else if (c == 0xc2 && k + 1 < text.size() &&
                   static_cast<unsigned char>(text[k + 1]) >= 0x80 &&
                   static_cast<unsigned char>(text[k + 1]) <= 0x9f) {
            // U+0080..U+009F: C1 controls (U+009B is a CSI to many terminals).
            std::snprintf(code, sizeof code, "\\u%04x", static_cast<unsigned char>(text[++k]));
            out += code;
        } else {
            out += static_cast<char>(c);
        }
    }
    return out;
}

void check_port(long long port, bool allow_privileged, const std::string& what) {
    const long long lowest = allow_privileged ? 1 : 1024;
    if (port < lowest || port > 65535)
        throw Error(Exit::usage,
                    what + " " + std::to_string(port) + " is out of range (" +
                        std::to_string(lowest) + "-65535)",
                    allow_privileged ? "use a port between 1 and 65535"
                                     : "use a port between 1024 and 65535 (ports below 1024 "
                                       "need --allow-privileged-port)");
}

void check_timeout(double seconds, const std::string& what) {
    constexpr double week = 7 * 24 * 3600;
    if (!std::isfinite(seconds) || seconds <= 0 || seconds > week)
        throw Error(Exit::usage, what + " must be a number of seconds > 0 (and at most a week)",
                    "give seconds, such as 60");
}

void check_at_least(long long value, long long min, const std::string& option) {
    if (value < min)
        throw Error(Exit::usage, option + " " + std::to_string(value) + " is out of range",
                    "give a number >= " + std::to_string(min));
}

void check_secret_file(const fs::path& file, const std::string& what) {
    struct stat st {};
    if (::stat(file.c_str(), &st) != 0)
        throw Error(Exit::usage,
                    "cannot read " + what + " " + file.string() + ": " + std::strerror(errno),
                    "write the password on the first line of a file only you can read");
    if (S_ISDIR(st.st_mode))
        throw Error(Exit::usage, what + " " + file.string() + " is a directory",
                    "give a file whose first line is the password");
    if (S_ISREG(st.st_mode) && (st.st_mode & 077) != 0) {
        char mode[8];
        std::snprintf(mode, sizeof mode, "%04o", static_cast<unsigned>(st.st_mode & 07777));
        throw Error(
            Exit::usage,
            what + " " + file.string() + " has mode " + mode + ": its group or others can read it",
            "make it private first: chmod 600 " + file.string());
    }
}

std::string read_secret_line(const fs::path& file, const std::string& what) {
    check_secret_file(file, what);
    std::string text = read_bounded(file.string(), secret_file_size_limit, what, Exit::usage);
    std::string line = text.substr(0, text.find('\n'));
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (line.empty())
        throw Error(Exit::usage, what + " " + file.string() + " is empty",
                    "write the password on its first line");
    return line;
}

}  // namespace pgforge
