#include "engine/core/diff.hpp"

#include <catch2/catch.hpp>
#include <random>
#include <sstream>
#include <vector>

using pgforge::unified_diff;

namespace {

// Applies a unified diff to `before` as patch(1) would, hunk by hunk, checking every context and
// removed line against the text: returns the text after.
std::string patched(const std::string& before, const std::string& diff) {
    std::vector<std::string> a;
    std::istringstream in(before);
    for (std::string l; std::getline(in, l);) a.push_back(l);
    bool a_ends_newline = before.empty() || before.back() == '\n';
    std::vector<std::string> out;
    bool out_ends_newline = true;
    size_t next = 0;  // next line of `a` not yet copied
    std::istringstream d(diff);
    std::string line;
    std::getline(d, line);
    REQUIRE(line.rfind("--- ", 0) == 0);
    std::getline(d, line);
    REQUIRE(line.rfind("+++ ", 0) == 0);
    char last = ' ';
    while (std::getline(d, line)) {
        if (line.rfind("@@ -", 0) == 0) {
            size_t start = std::stoul(line.substr(4));
            size_t comma = line.find_first_of(", ", 4);
            size_t count = line[comma] == ',' ? std::stoul(line.substr(comma + 1)) : 1;
            size_t first = count == 0 ? start : start - 1;
            REQUIRE(first >= next);
            while (next < first) out.push_back(a[next++]);
            continue;
        }
        if (line == "\\ No newline at end of file") {
            if (last != '-') out_ends_newline = false;
            continue;
        }
        last = line[0];
        std::string text = line.substr(1);
        if (line[0] == ' ' || line[0] == '-') {
            REQUIRE(next < a.size());
            REQUIRE(a[next] == text);
            ++next;
        }
        if (line[0] == ' ' || line[0] == '+') out.push_back(text);
    }
    if (next < a.size()) out_ends_newline = a_ends_newline;  // the end of `a`, as it was
    while (next < a.size()) out.push_back(a[next++]);
    std::string text;
    for (size_t k = 0; k < out.size(); ++k) {
        text += out[k];
        if (k + 1 < out.size() || out_ends_newline) text += '\n';
    }
    return text;
}

}  // namespace

TEST_CASE("a unified diff says what changed, as diff -u does", "[unit][diff]") {
    CHECK(unified_diff("a\nb\n", "a\nb\n", "x", "y").empty());
    CHECK(unified_diff("a\nb\nc\n", "a\nB\nc\n", "a/f", "b/f") ==
          "--- a/f\n+++ b/f\n@@ -1,3 +1,3 @@\n a\n-b\n+B\n c\n");
    CHECK(unified_diff("", "x\n", "a", "b") == "--- a\n+++ b\n@@ -0,0 +1 @@\n+x\n");
    CHECK(unified_diff("x\n", "", "a", "b") == "--- a\n+++ b\n@@ -1 +0,0 @@\n-x\n");
    CHECK(unified_diff("x", "x\n", "a", "b") ==
          "--- a\n+++ b\n@@ -1 +1 @@\n-x\n\\ No newline at end of file\n+x\n");
    // Changes far apart are two hunks; near ones one.
    std::string before, after;
    for (int k = 0; k < 30; ++k) before += "line " + std::to_string(k) + "\n";
    after = before;
    after.replace(after.find("line 2\n"), 7, "two\n");
    after.replace(after.find("line 25\n"), 8, "");
    auto d = unified_diff(before, after, "a", "b");
    CHECK(d ==
          "--- a\n+++ b\n@@ -1,6 +1,6 @@\n line 0\n line 1\n-line 2\n+two\n line 3\n line "
          "4\n line 5\n@@ -23,7 +23,6 @@\n line 22\n line 23\n line 24\n-line 25\n line "
          "26\n line 27\n line 28\n");
}

TEST_CASE("a unified diff applied to the text before gives the text after", "[unit][diff]") {
    std::mt19937 random(42);
    for (int round = 0; round < 300; ++round) {
        auto text = [&] {
            std::string t;
            int n = static_cast<int>(random() % 40);
            for (int k = 0; k < n; ++k)
                t += std::string(1, static_cast<char>('a' + random() % 5)) + "\n";
            if (!t.empty() && random() % 4 == 0) t.pop_back();
            return t;
        };
        std::string before = text(), after = text();
        auto d = unified_diff(before, after, "a", "b", static_cast<int>(random() % 4));
        if (before == after) {
            CHECK(d.empty());
            continue;
        }
        INFO(before << "=>\n" << after << "diff:\n" << d);
        CHECK(patched(before, d) == after);
    }
}
