// The privileges granted in an instance's databases (what `\dp`, `\ddp` and `\l` show, per role):
// on each database, its schemas and their objects (tables, views, sequences, functions,
// procedures, types, domains, foreign tables, columns), and the default privileges. Read from
// the catalogs with aclexplode() over a connection as the instance's superuser; names and
// filters are bound parameters, never pasted into the SQL.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "engine/core/instance.hpp"
#include "engine/pipeline/context.hpp"

namespace pgforge::privileges {

// The privileges one role holds on one object, from the object's ACL (an object whose ACL is
// the built-in default, NULL in the catalog, has no row).
struct Grant {
    std::string database;
    std::optional<std::string> schema;  // none for a database or a schema
    std::string object_type;  // database, schema, table, view, materialized view, sequence,
                              // foreign table, function, procedure, aggregate, type, domain,
                              // column
    std::string object_name;  // functions with their argument types: f(integer, text)
    std::optional<std::string> column;  // for a column: its name (object_name is the table)
    std::string role;                   // the grantee; PUBLIC for everyone
    std::string grantor;
    std::vector<std::string> privileges;  // SELECT, INSERT, ... sorted
    std::vector<std::string> grantable;   // those held WITH GRANT OPTION
};

// ALTER DEFAULT PRIVILEGES: what `role` gets on the objects `owner` creates later (in `schema`,
// or in every schema when none).
struct DefaultGrant {
    std::string database;
    std::optional<std::string> schema;
    std::string owner;        // FOR ROLE
    std::string object_type;  // tables, sequences, functions, types, schemas
    std::string role;         // the grantee; PUBLIC for everyone
    std::vector<std::string> privileges;
    std::vector<std::string> grantable;
};

struct Report {
    std::vector<Grant> grants;
    std::vector<DefaultGrant> defaults;
};

// The privileges in `databases` (empty: every database that accepts connections, templates
// left out), held by `roles` (empty: every role, PUBLIC included; "PUBLIC" names it). System
// schemas (pg_catalog, information_schema, pg_toast, temporary schemas) are left out. A database
// that does not exist is Error(Exit::not_found); a stopped instance Error(Exit::stopped).
Report report(Context& ctx, const Instance& instance, const std::vector<std::string>& databases,
              const std::vector<std::string>& roles);

}  // namespace pgforge::privileges
