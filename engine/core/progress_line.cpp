#include "engine/core/progress_line.hpp"

#include <unistd.h>

namespace pgforge {

void ProgressLine::operator()(std::string_view piece) {
    pending_.append(piece);
    for (size_t nl; (nl = pending_.find_first_of("\r\n")) != std::string::npos;) {
        std::string line = pending_.substr(0, nl);
        pending_.erase(0, nl + 1);
        if (line.empty()) continue;
        std::string text = "\r  " + label_ + "... " + line + "\x1b[K";
        if (::write(STDERR_FILENO, text.data(), text.size()) < 0) return;
    }
}

}  // namespace pgforge
