// Unified diffs of two texts, for `--diff` (what a change would do to a file).
#pragma once

#include <string>

namespace pgforge {

// The changes from `before` to `after` as `diff -u` prints them ("--- a_name", "+++ b_name",
// hunks with `context` lines around each change); "" when the texts are equal. A missing final
// newline is marked as diff marks it. Texts whose changed middle is too large to compare line by
// line (more than 16 million line pairs) come out as one hunk replacing that middle.
std::string unified_diff(const std::string& before, const std::string& after,
                         const std::string& a_name, const std::string& b_name, int context = 3);

}  // namespace pgforge
