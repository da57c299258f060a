#include "engine/conf/template.hpp"

#include "engine/core/error.hpp"
#include "engine/core/safe_fs.hpp"

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
    return safe_fs::read_file(file);
}

void write_file_atomically(const fs::path& file, const std::string& content, const OsUser* owner,
                           fs::perms mode) {
    safe_fs::write_file(file, content, owner, static_cast<mode_t>(mode) & 07777);
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
