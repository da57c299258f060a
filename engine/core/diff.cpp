#include "engine/core/diff.hpp"

#include <algorithm>
#include <cstdint>
#include <vector>

namespace pgforge {
namespace {

struct Line {
    std::string text;
    bool newline = true;  // false for a last line without '\n'
    bool operator==(const Line&) const = default;
};

std::vector<Line> lines_of(const std::string& text) {
    std::vector<Line> out;
    size_t start = 0;
    while (start < text.size()) {
        size_t nl = text.find('\n', start);
        if (nl == std::string::npos) {
            out.push_back({text.substr(start), false});
            break;
        }
        out.push_back({text.substr(start, nl - start), true});
        start = nl + 1;
    }
    return out;
}

// One line of the edit script: ' ' kept, '-' removed, '+' added, with its line numbers.
struct Op {
    char kind;
    size_t a, b;  // index in before / after (the line's, or where it would be)
};

// The edit script by the longest common subsequence of the middle (the common prefix and suffix
// are kept as they are).
std::vector<Op> edit_script(const std::vector<Line>& a, const std::vector<Line>& b) {
    size_t prefix = 0;
    while (prefix < a.size() && prefix < b.size() && a[prefix] == b[prefix]) ++prefix;
    size_t suffix = 0;
    while (suffix < a.size() - prefix && suffix < b.size() - prefix &&
           a[a.size() - 1 - suffix] == b[b.size() - 1 - suffix])
        ++suffix;
    const size_t n = a.size() - prefix - suffix, m = b.size() - prefix - suffix;
    std::vector<Op> ops;
    for (size_t k = 0; k < prefix; ++k) ops.push_back({' ', k, k});
    if (static_cast<std::uint64_t>(n) * m <= 16'000'000) {
        // lcs[x][y]: the longest common subsequence of a[x..n) and b[y..m) (of the middle).
        std::vector<std::uint32_t> lcs((n + 1) * (m + 1), 0);
        auto at = [&](size_t x, size_t y) -> std::uint32_t& { return lcs[x * (m + 1) + y]; };
        for (size_t x = n; x-- > 0;)
            for (size_t y = m; y-- > 0;)
                at(x, y) = a[prefix + x] == b[prefix + y] ? at(x + 1, y + 1) + 1
                                                          : std::max(at(x + 1, y), at(x, y + 1));
        size_t x = 0, y = 0;
        while (x < n || y < m) {
            if (x < n && y < m && a[prefix + x] == b[prefix + y]) {
                ops.push_back({' ', prefix + x++, prefix + y++});
            } else if (x < n && (y == m || at(x + 1, y) >= at(x, y + 1))) {
                ops.push_back({'-', prefix + x++, prefix + y});
            } else {
                ops.push_back({'+', prefix + x, prefix + y++});
            }
        }
    } else {
        for (size_t x = 0; x < n; ++x) ops.push_back({'-', prefix + x, prefix});
        for (size_t y = 0; y < m; ++y) ops.push_back({'+', prefix + n, prefix + y});
    }
    for (size_t k = 0; k < suffix; ++k) ops.push_back({' ', prefix + n + k, prefix + m + k});
    return ops;
}

std::string range(size_t start, size_t count) {
    // diff -u: "start,count", the start 1-based, or the line before when count is 0.
    size_t shown = count == 0 ? start : start + 1;
    return count == 1 ? std::to_string(shown) : std::to_string(shown) + "," + std::to_string(count);
}

}  // namespace

std::string unified_diff(const std::string& before, const std::string& after,
                         const std::string& a_name, const std::string& b_name, int context) {
    if (before == after) return "";
    const auto a = lines_of(before), b = lines_of(after);
    const auto ops = edit_script(a, b);
    const size_t ctx = static_cast<size_t>(std::max(context, 0));
    std::string out = "--- " + a_name + "\n+++ " + b_name + "\n";
    size_t k = 0;
    while (k < ops.size()) {
        while (k < ops.size() && ops[k].kind == ' ') ++k;
        if (k == ops.size()) break;
        // A hunk: from `ctx` kept lines before the first change to `ctx` after the last change
        // that is not followed by more than 2*ctx kept lines.
        size_t begin = k >= ctx ? k - ctx : 0;
        size_t end = k;
        while (true) {
            while (end < ops.size() && ops[end].kind != ' ') ++end;
            size_t kept = end;
            while (kept < ops.size() && ops[kept].kind == ' ') ++kept;
            if (kept < ops.size() && kept - end <= 2 * ctx) {
                end = kept;
                continue;
            }
            end = std::min(end + ctx, ops.size());
            break;
        }
        size_t a_start = ops[begin].a, b_start = ops[begin].b, a_count = 0, b_count = 0;
        for (size_t j = begin; j < end; ++j) {
            if (ops[j].kind != '+') ++a_count;
            if (ops[j].kind != '-') ++b_count;
        }
        out += "@@ -" + range(a_start, a_count) + " +" + range(b_start, b_count) + " @@\n";
        for (size_t j = begin; j < end; ++j) {
            const Line& line = ops[j].kind == '+' ? b[ops[j].b] : a[ops[j].a];
            out += ops[j].kind;
            out += line.text;
            out += '\n';
            if (!line.newline) out += "\\ No newline at end of file\n";
        }
        k = end;
    }
    return out;
}

}  // namespace pgforge
