// Small text utilities shared by the CLI and the engine.
#pragma once

#include <string>
#include <string_view>

namespace pgforge {

// Levenshtein distance, for "did you mean" suggestions.
size_t edit_distance(std::string_view a, std::string_view b);
std::string to_lower(std::string_view s);

}  // namespace pgforge
