// List-valued parameters: the server's GUC_LIST_INPUT parameters whose value is a set of items
// ("pg_stat_statements, auto_explain"), which configuration contributions compose item by item.
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace pgforge::conf {

// Whether `name` (any case) is one of PostgreSQL 15's list parameters that compose as sets:
// shared_preload_libraries, session_preload_libraries, local_preload_libraries, search_path,
// temp_tablespaces, listen_addresses, unix_socket_directories, log_destination,
// wal_consistency_checking, restrict_nonsystem_relation_kind (15.8). The server flags them
// GUC_LIST_INPUT, which `postgres --describe-config` does not print, hence a fixed list, checked
// against the server by tests/integration/compose_test.cpp. DateStyle and
// synchronous_standby_names take lists too, but their items are not a set (an output style and an
// order; "FIRST 2 (a, b)"): they stay scalars.
bool is_list_parameter(std::string_view name);
const std::vector<std::string>& list_parameters();

// One item of a list value: `text` as written in the value (quoted where needed), `key` what the
// server reads (quotes removed; an unquoted name of search_path, temp_tablespaces,
// log_destination, wal_consistency_checking and restrict_nonsystem_relation_kind folded to lower
// case, as the server does).
struct ListItem {
    std::string text;
    std::string key;
};

// Splits a list value as the server does: items separated by commas, blanks around them
// ignored, an item in double quotes kept whole ("" inside is one quote). "" is no items.
std::vector<ListItem> split_list_value(std::string_view parameter, std::string_view value);
// The item a plugin names (a library, a schema, an address): written in double quotes when the
// server would not read it back alone (empty, a comma, a blank, a double quote, or upper case in
// a list of identifiers); a name already in double quotes is taken as written.
ListItem list_item(std::string_view parameter, std::string_view name);
// The items joined with ", ".
std::string join_list_value(const std::vector<ListItem>& items);

}  // namespace pgforge::conf
