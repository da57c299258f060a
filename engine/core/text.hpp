// Small text utilities shared by the CLI and the engine.
#pragma once

#include <chrono>
#include <string>
#include <string_view>
#include <vector>

namespace pgforge {

// Levenshtein distance, for "did you mean" suggestions.
size_t edit_distance(std::string_view a, std::string_view b);
std::string to_lower(std::string_view s);

// `bytes` random bytes from the kernel (getrandom), as 2 * bytes lower-case hex digits: names
// nobody can guess, generated passwords. Throws Error when the kernel gives none.
std::string random_hex(size_t bytes);
// The non-empty pieces of `text` between any of `separators`: "a:b::c" -> a, b, c.
std::vector<std::string> split_list(std::string_view text, std::string_view separators);

// The end of a long text without trailing blanks: journals and messages keep the last `n` bytes.
std::string tail_text(const std::string& text, size_t n = 4000);

// Milliseconds since `t`, for the journal's step durations.
inline double ms_since(std::chrono::steady_clock::time_point t) {
    return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t).count();
}

}  // namespace pgforge
