// The description of databases that `database apply -f` reads and `database get` writes (YAML or
// JSON; docs/databases.md): parsed here, in the library, so that a C++ program reads the same
// files the CLI does.
#pragma once

#include <string>
#include <vector>

#include "engine/operations/databases.hpp"
#include "engine/operations/manifest_schema.hpp"

namespace pgforge::databases {

// The schema of one database's description, and of a file (one database or a list of them),
// registered as "database" for `pgforge schema database`.
manifest_schema::Schema database_schema();
manifest_schema::Schema descriptions_schema();

// One database from a node already validated against database_schema() (for manifests that
// nest databases: `databases: [...]`).
Database database_from_node(const YAML::Node& node);

// One database (a mapping) or several (a list of mappings) from `file` ("-": standard input),
// at most manifest_size_limit bytes. `is_list` says which form it had. The whole file is
// checked against descriptions_schema() first: Error(Exit::usage) "FILE:LINE:COLUMN: PATH:
// expected …", with a suggestion for a misspelt key.
std::vector<Database> read_descriptions(const std::string& file, bool& is_list);
// The same from text; `source` names it in errors.
std::vector<Database> parse_descriptions(const std::string& content, const std::string& source,
                                         bool& is_list);

// A database's description as pretty-printed JSON (invalid UTF-8 from the server replaced) and
// as YAML, in the form parse_descriptions reads back.
std::string description_json(const Database& d);
std::string description_yaml(const Database& d);

}  // namespace pgforge::databases
