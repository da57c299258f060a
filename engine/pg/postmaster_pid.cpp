#include "engine/pg/postmaster_pid.hpp"

#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <fstream>
#include <sstream>
#include <vector>

#include "engine/core/safe_fs.hpp"

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
    // The data directory is the owner's: a link there, or a file that is not the owner's (a
    // root-only file linked in), is not read. Opened in this process (it is read often while a
    // server starts), without following a link, and checked through the descriptor.
    const std::filesystem::path file = data_dir / "postmaster.pid";
    int fd = open(file.c_str(), O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC | O_NOCTTY);
    if (fd < 0) return std::nullopt;
    struct stat st {
    }, dir{};
    bool ok = fstat(fd, &st) == 0 && S_ISREG(st.st_mode) && stat(data_dir.c_str(), &dir) == 0 &&
              st.st_uid == dir.st_uid;
    std::string text;
    char buf[4096];
    while (ok && text.size() < 8192) {
        ssize_t n = read(fd, buf, sizeof buf);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) break;
        text.append(buf, static_cast<size_t>(n));
    }
    close(fd);
    if (!ok) return std::nullopt;
    return parse_postmaster_pid(text);
}

std::string tail_file(const std::filesystem::path& file, int lines) {
    if (lines <= 0) return {};
    // Read with the rights of the file's owner (safe_fs): a link to a file the owner cannot read
    // is refused, not printed.
    std::string text = safe_fs::read_tail(file, 65536).value_or("");
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
