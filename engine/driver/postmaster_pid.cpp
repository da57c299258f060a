#include "engine/driver/postmaster_pid.hpp"

#include <signal.h>

#include <cerrno>
#include <fstream>
#include <sstream>
#include <vector>

namespace pgforge {

std::optional<PostmasterPid> parse_postmaster_pid(const std::string& text) {
    std::vector<std::string> lines;
    std::istringstream in(text);
    for (std::string line; std::getline(in, line);) lines.push_back(line);
    if (lines.size() < 4) return std::nullopt;
    PostmasterPid p;
    try {
        size_t used = 0;
        long pid = std::stol(lines[0], &used);
        if (used != lines[0].size() || pid <= 0) return std::nullopt;
        p.pid = static_cast<pid_t>(pid);
        p.data_dir = lines[1];
        p.start_time = std::stol(lines[2]);
        p.port = std::stoi(lines[3]);
    } catch (const std::exception&) {
        return std::nullopt;
    }
    if (lines.size() > 4) p.socket_dir = lines[4];
    if (lines.size() > 5) p.listen_addresses = lines[5];
    if (lines.size() > 7) {
        p.status = lines[7];
        p.status.erase(p.status.find_last_not_of(' ') + 1);
    }
    return p;
}

std::optional<PostmasterPid> read_postmaster_pid(const std::filesystem::path& data_dir) {
    std::ifstream in(data_dir / "postmaster.pid");
    if (!in) return std::nullopt;
    std::stringstream buf;
    buf << in.rdbuf();
    return parse_postmaster_pid(buf.str());
}

bool process_exists(pid_t pid) {
    if (pid <= 0 || (kill(pid, 0) != 0 && errno != EPERM)) return false;
    // A zombie has exited; only its parent has not collected it yet (an init that reaps late
    // would otherwise keep a stopped server "running").
    std::ifstream stat("/proc/" + std::to_string(pid) + "/stat");
    std::string text;
    if (!std::getline(stat, text)) return true;
    auto paren = text.rfind(')');
    return paren == std::string::npos || paren + 2 >= text.size() || text[paren + 2] != 'Z';
}

std::string tail_file(const std::filesystem::path& file, int lines) {
    if (lines <= 0) return {};
    std::ifstream in(file, std::ios::binary | std::ios::ate);
    if (!in) return {};
    std::streamoff size = in.tellg();
    std::streamoff from = size > 65536 ? size - 65536 : 0;
    in.seekg(from);
    std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    if (!text.empty() && text.back() == '\n') text.pop_back();
    // Walk back over `lines` newlines; the text after the last one found is the tail.
    size_t begin = text.size();
    for (int n = 0; n < lines; ++n) {
        if (begin == 0) return text;
        size_t nl = text.rfind('\n', begin - 1);
        if (nl == std::string::npos) return text;
        begin = nl;
    }
    return text.substr(begin + 1);
}

}  // namespace pgforge
