// Small text utilities shared by the CLI and the engine.
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace pgforge {

// Levenshtein distance, for "did you mean" suggestions.
size_t edit_distance(std::string_view a, std::string_view b);
std::string to_lower(std::string_view s);
// The non-empty pieces of `text` between any of `separators`: "a:b::c" -> a, b, c.
std::vector<std::string> split_list(std::string_view text, std::string_view separators);

}  // namespace pgforge
