#include "engine/conf/lists.hpp"

#include <algorithm>
#include <cctype>

#include "engine/core/text.hpp"

namespace pgforge::conf {
namespace {

// The lists whose unquoted names the server folds to lower case (SplitIdentifierString).
bool folds_case(std::string_view parameter) {
    std::string p = to_lower(parameter);
    return p == "search_path" || p == "temp_tablespaces" || p == "log_destination" ||
           p == "wal_consistency_checking" || p == "restrict_nonsystem_relation_kind";
}

bool blank(char c) {
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v';
}

std::string dequote(std::string_view quoted) {
    std::string out;
    for (size_t k = 1; k + 1 < quoted.size(); ++k) {
        out += quoted[k];
        if (quoted[k] == '"' && k + 2 < quoted.size() && quoted[k + 1] == '"') ++k;
    }
    return out;
}

}  // namespace

const std::vector<std::string>& list_parameters() {
    static const std::vector<std::string> names = {"listen_addresses",
                                                   "local_preload_libraries",
                                                   "log_destination",
                                                   "restrict_nonsystem_relation_kind",
                                                   "search_path",
                                                   "session_preload_libraries",
                                                   "shared_preload_libraries",
                                                   "temp_tablespaces",
                                                   "unix_socket_directories",
                                                   "wal_consistency_checking"};
    return names;
}

bool is_list_parameter(std::string_view name) {
    const auto& names = list_parameters();
    return std::find(names.begin(), names.end(), to_lower(name)) != names.end();
}

std::vector<ListItem> split_list_value(std::string_view parameter, std::string_view value) {
    std::vector<ListItem> items;
    const bool fold = folds_case(parameter);
    size_t k = 0;
    while (k < value.size()) {
        while (k < value.size() && blank(value[k])) ++k;
        if (k == value.size()) break;
        size_t start = k;
        bool quoted = value[k] == '"';
        if (quoted) {
            ++k;
            while (k < value.size()) {
                if (value[k] == '"') {
                    if (k + 1 < value.size() && value[k + 1] == '"') {
                        k += 2;
                        continue;
                    }
                    ++k;
                    break;
                }
                ++k;
            }
        }
        while (k < value.size() && value[k] != ',') ++k;
        std::string_view text = value.substr(start, k - start);
        while (!text.empty() && blank(text.back())) text.remove_suffix(1);
        if (k < value.size()) ++k;  // the comma
        if (text.empty()) continue;
        ListItem item;
        item.text = std::string(text);
        if (quoted && text.size() >= 2 && text.back() == '"')
            item.key = dequote(text);
        else
            item.key = fold ? to_lower(text) : std::string(text);
        items.push_back(std::move(item));
    }
    return items;
}

ListItem list_item(std::string_view parameter, std::string_view name) {
    if (name.size() >= 2 && name.front() == '"' && name.back() == '"')
        return {std::string(name), dequote(name)};
    bool quote = name.empty();
    for (char c : name)
        if (c == ',' || c == '"' || blank(c) ||
            (folds_case(parameter) && std::isupper(static_cast<unsigned char>(c))))
            quote = true;
    if (!quote) return {std::string(name), std::string(name)};
    std::string text = "\"";
    for (char c : name) {
        if (c == '"') text += '"';
        text += c;
    }
    return {text + "\"", std::string(name)};
}

std::string join_list_value(const std::vector<ListItem>& items) {
    std::string out;
    for (const auto& item : items) out += (out.empty() ? "" : ", ") + item.text;
    return out;
}

}  // namespace pgforge::conf
