#include "engine/conf/template.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>

#include "engine/core/error.hpp"

namespace fs = std::filesystem;

namespace pgforge {

std::string render_template(const std::string& text,
                            const std::map<std::string, std::string>& values,
                            const std::string& origin) {
    std::string out;
    out.reserve(text.size() + 256);
    size_t pos = 0;
    for (;;) {
        size_t open = text.find("{{", pos);
        if (open == std::string::npos) break;
        size_t close = text.find("}}", open + 2);
        if (close == std::string::npos) break;
        std::string key = text.substr(open + 2, close - open - 2);
        auto it = values.find(key);
        if (it == values.end())
            throw Error(Exit::failure,
                        "template " + origin + ": unknown placeholder {{" + key + "}}",
                        "remove it from the template or use a known one (see docs/templates.md)");
        out.append(text, pos, open - pos);
        out += it->second;
        pos = close + 2;
    }
    out.append(text, pos, std::string::npos);
    return out;
}

std::string read_text_file(const fs::path& file) {
    std::ifstream in(file, std::ios::binary);
    if (!in)
        throw Error(Exit::failure, "cannot read " + file.string() + ": " + std::strerror(errno));
    std::stringstream buf;
    buf << in.rdbuf();
    return buf.str();
}

void write_file_atomically(const fs::path& file, const std::string& content, const OsUser* owner,
                           fs::perms mode) {
    fs::path tmp = file;
    tmp += ".pgforge-tmp";
    auto fail = [&](const std::string& what) {
        int e = errno;
        unlink(tmp.c_str());
        throw Error(Exit::failure,
                    "cannot write " + file.string() + ": " + what + ": " + std::strerror(e));
    };
    int fd = open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, static_cast<mode_t>(mode));
    if (fd < 0) fail("create");
    size_t done = 0;
    while (done < content.size()) {
        ssize_t n = write(fd, content.data() + done, content.size() - done);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) {
            close(fd);
            fail("write");
        }
        done += static_cast<size_t>(n);
    }
    if (fchmod(fd, static_cast<mode_t>(mode)) != 0 || fsync(fd) != 0) {
        close(fd);
        fail("sync");
    }
    if (owner && geteuid() == 0 && fchown(fd, owner->uid, owner->gid) != 0) {
        close(fd);
        fail("chown");
    }
    close(fd);
    if (rename(tmp.c_str(), file.c_str()) != 0) fail("rename");
    int dir = open(file.parent_path().c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dir >= 0) {
        fsync(dir);
        close(dir);
    }
}

std::string conf_quote(const std::string& value) {
    std::string out = "'";
    for (char c : value) {
        // The server's scanner reads backslash escapes inside quoted values.
        if (c == '\'' || c == '\\') out += c;
        out += c;
    }
    return out + "'";
}

}  // namespace pgforge
