// libFuzzer target for engine/conf/pgconf: arbitrary bytes either fail to parse (a
// pgforge::Error) or print back byte for byte; edits of a parsed document print text that parses
// again and reads back what was set.
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <optional>
#include <string>
#include <string_view>

#include "engine/conf/pgconf.hpp"
#include "engine/core/error.hpp"

using pgforge::conf::ConfDocument;

namespace {

[[noreturn]] void fail(const char* what) {
    std::fprintf(stderr, "pgconf_fuzz: %s\n", what);
    std::abort();  // libFuzzer reports the crash and saves the input
}

void check(bool ok, const char* what) {
    if (!ok) fail(what);
}

ConfDocument must_parse(const std::string& text) {
    try {
        return ConfDocument::parse(text, "fuzz-output.conf");
    } catch (const pgforge::Error&) {
        fail("printed text does not parse");
    }
}

// A parameter name written right after the first '#', as in "#work_mem = 4MB".
std::optional<std::string> commented_name(std::string_view text) {
    size_t hash = text.find('#');
    if (hash == std::string_view::npos) return std::nullopt;
    size_t end = hash + 1;
    while (end < text.size() && end - hash < 64) {
        char c = text[end];
        if (!(c == '_' || c == '.' || (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') ||
              (c >= 'A' && c <= 'Z') || static_cast<unsigned char>(c) >= 0x80))
            break;
        ++end;
    }
    std::string name(text.substr(hash + 1, end - hash - 1));
    if (!pgforge::conf::is_valid_name(name)) return std::nullopt;
    return name;
}

bool is_directive(std::string_view name) {
    std::string lower;
    for (char c : name) lower += (c >= 'A' && c <= 'Z') ? static_cast<char>(c + 32) : c;
    return lower == "include" || lower == "include_if_exists" || lower == "include_dir";
}

void set_and_check(ConfDocument& doc, const std::string& name, const std::string& value) {
    doc.set(name, value);
    std::string printed = doc.print();
    ConfDocument again = must_parse(printed);
    check(again.print() == printed, "reparsed output does not print back");
    auto got = again.get(name);
    check(got.has_value() && got->value == value, "set value does not read back");
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    const std::string text(reinterpret_cast<const char*>(data), size);

    // Values: any bytes but NUL are written so that they read back identically.
    std::string value = text.substr(0, 24);
    for (char& c : value)
        if (c == '\0') c = '0';
    {
        ConfDocument doc = must_parse("x = " + pgforge::conf::format_value(value) + "\n");
        check(doc.get("x").has_value() && doc.get("x")->value == value,
              "format_value does not read back");
    }

    std::optional<ConfDocument> parsed;
    try {
        parsed = ConfDocument::parse(text, "fuzz.conf");
    } catch (const pgforge::Error&) {
        return 0;  // a syntax error is a fine answer
    }
    ConfDocument& doc = *parsed;
    check(doc.print() == text, "print() differs from the input");

    auto entries = doc.entries();
    for (const auto& e : entries)
        check(doc.get(e.name).has_value(), "an entry is not found by its name");
    doc.includes();

    // Set an existing name (in place), a commented default (un-comment) and a new name (append).
    if (!entries.empty()) set_and_check(doc, entries[size % entries.size()].name, value);
    if (auto name = commented_name(text); name && !is_directive(*name))
        set_and_check(doc, *name, value);
    set_and_check(doc, "fuzz.new_setting", value);

    // Remove one name, commented out or deleted.
    std::string victim = entries.empty() ? std::string("fuzz.new_setting") : entries[0].name;
    doc.remove(victim, (size & 1) != 0);
    std::string printed = doc.print();
    ConfDocument after = must_parse(printed);
    check(after.print() == printed, "output after remove does not print back");
    check(!after.get(victim).has_value(), "a removed setting is still active");
    return 0;
}
