// The description of roles that `role apply -f` reads and `role get` writes (YAML or JSON;
// docs/roles.md): parsed here, in the library, so that a C++ program (and the instance
// manifest, which nests roles) reads the same files the CLI does.
#pragma once

#include <string>
#include <vector>

#include "engine/operations/manifest_schema.hpp"
#include "engine/operations/roles.hpp"

namespace pgforge::roles {

// The schema of one role's description, and of a file (one role or a list of them),
// registered as "role" for `pgforge schema role`.
manifest_schema::Schema role_schema();
manifest_schema::Schema descriptions_schema();

// One role from a node already validated against role_schema() (for manifests that nest roles:
// `roles: [...]`).
Role role_from_node(const YAML::Node& node);

// One role (a mapping) or several (a list of mappings) from `file` ("-": standard input), at
// most manifest_size_limit bytes. `is_list` says which form it had. The whole file is checked
// against descriptions_schema() first: Error(Exit::usage) "FILE:LINE:COLUMN: PATH: expected …",
// with a suggestion for a misspelt key.
std::vector<Role> read_descriptions(const std::string& file, bool& is_list);
// The same from text; `source` names it in errors.
std::vector<Role> parse_descriptions(const std::string& content, const std::string& source,
                                     bool& is_list);

// A role's description (as `get` fills it: no password) as pretty-printed JSON, and as YAML, in
// the form parse_descriptions reads back.
std::string description_json(const Role& r);
std::string description_yaml(const Role& r);

}  // namespace pgforge::roles
