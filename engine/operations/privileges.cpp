#include "engine/operations/privileges.hpp"

#include <set>
#include <sstream>

#include "engine/core/error.hpp"
#include "engine/pg/connection.hpp"

namespace pgforge::privileges {
namespace {

// The schemas the report leaves out, as a condition on n.nspname.
const char* const kUserSchema =
    "n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname !~ '^pg_(toast|temp_)'";

// Every object with an ACL of its own in the current database, one row per (object, grantee,
// grantor) with the privileges as comma-separated lists ($1: the roles wanted, none for all).
const std::string kGrants = std::string(R"(
WITH objects AS (
    SELECT 1 AS rank, 'database' AS object_type, NULL::name AS schema, d.datname::text AS name,
           NULL::text AS col, d.datacl AS acl
      FROM pg_catalog.pg_database d WHERE d.datname = current_database()
    UNION ALL
    SELECT 2, 'schema', NULL, n.nspname::text, NULL, n.nspacl
      FROM pg_catalog.pg_namespace n WHERE )") +
                            kUserSchema + R"(
    UNION ALL
    SELECT 3, CASE c.relkind WHEN 'v' THEN 'view' WHEN 'm' THEN 'materialized view'
                             WHEN 'S' THEN 'sequence' WHEN 'f' THEN 'foreign table'
                             ELSE 'table' END,
           n.nspname, c.relname::text, NULL, c.relacl
      FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
     WHERE c.relkind IN ('r', 'p', 'v', 'm', 'S', 'f') AND )" +
                            kUserSchema + R"(
    UNION ALL
    SELECT 4, 'column', n.nspname, c.relname::text, a.attname::text, a.attacl
      FROM pg_catalog.pg_attribute a
      JOIN pg_catalog.pg_class c ON c.oid = a.attrelid
      JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
     WHERE a.attacl IS NOT NULL AND a.attnum > 0 AND NOT a.attisdropped AND )" +
                            kUserSchema + R"(
    UNION ALL
    SELECT 5, CASE p.prokind WHEN 'p' THEN 'procedure' WHEN 'a' THEN 'aggregate'
                             ELSE 'function' END,
           n.nspname, p.proname || '(' || pg_catalog.pg_get_function_identity_arguments(p.oid) || ')',
           NULL, p.proacl
      FROM pg_catalog.pg_proc p JOIN pg_catalog.pg_namespace n ON n.oid = p.pronamespace
     WHERE )" + kUserSchema +
                            R"(
    UNION ALL
    SELECT 6, CASE t.typtype WHEN 'd' THEN 'domain' ELSE 'type' END,
           n.nspname, t.typname::text, NULL, t.typacl
      FROM pg_catalog.pg_type t JOIN pg_catalog.pg_namespace n ON n.oid = t.typnamespace
     WHERE t.typacl IS NOT NULL AND )" +
                            kUserSchema + R"(
), grants AS (
    SELECT o.rank, o.object_type, o.schema, o.name, o.col,
           COALESCE(g.rolname, 'PUBLIC') AS role, COALESCE(gr.rolname, a.grantor::text) AS grantor,
           a.privilege_type, a.is_grantable
      FROM objects o
      CROSS JOIN LATERAL pg_catalog.aclexplode(o.acl) a
      LEFT JOIN pg_catalog.pg_roles g ON g.oid = a.grantee
      LEFT JOIN pg_catalog.pg_roles gr ON gr.oid = a.grantor
     WHERE o.acl IS NOT NULL
)
SELECT object_type, schema, name, col, role, grantor,
       string_agg(privilege_type, ',' ORDER BY privilege_type),
       string_agg(CASE WHEN is_grantable THEN privilege_type END, ',' ORDER BY privilege_type)
  FROM grants
 WHERE cardinality($1::text[]) = 0 OR role = ANY($1::text[])
 GROUP BY rank, object_type, schema, name, col, role, grantor
 ORDER BY rank, schema NULLS FIRST, name, col NULLS FIRST, role, grantor)";

const std::string kDefaults = R"(
SELECT n.nspname, pg_catalog.pg_get_userbyid(d.defaclrole),
       CASE d.defaclobjtype WHEN 'r' THEN 'tables' WHEN 'S' THEN 'sequences'
                            WHEN 'f' THEN 'functions' WHEN 'T' THEN 'types'
                            WHEN 'n' THEN 'schemas' ELSE d.defaclobjtype::text END AS object_type,
       COALESCE(g.rolname, 'PUBLIC') AS role,
       string_agg(a.privilege_type, ',' ORDER BY a.privilege_type),
       string_agg(CASE WHEN a.is_grantable THEN a.privilege_type END, ','
                  ORDER BY a.privilege_type)
  FROM pg_catalog.pg_default_acl d
  LEFT JOIN pg_catalog.pg_namespace n ON n.oid = d.defaclnamespace
  CROSS JOIN LATERAL pg_catalog.aclexplode(d.defaclacl) a
  LEFT JOIN pg_catalog.pg_roles g ON g.oid = a.grantee
 WHERE cardinality($1::text[]) = 0 OR COALESCE(g.rolname, 'PUBLIC') = ANY($1::text[])
 GROUP BY n.nspname, d.defaclrole, d.defaclobjtype, g.rolname
 ORDER BY n.nspname NULLS FIRST, 2, 3, 4)";

std::vector<std::string> split_list(const std::optional<std::string>& text) {
    std::vector<std::string> out;
    if (!text) return out;
    std::istringstream in(*text);
    for (std::string item; std::getline(in, item, ',');)
        if (!item.empty()) out.push_back(item);
    return out;
}

}  // namespace

Report report(Context&, const Instance& instance, const std::vector<std::string>& databases,
              const std::vector<std::string>& roles) {
    std::vector<std::string> names;
    {
        pg::Connection c(instance);
        auto r = c.exec(
            "SELECT datname, datallowconn, datistemplate FROM pg_catalog.pg_database "
            "ORDER BY datname");
        std::set<std::string> known;
        for (const auto& row : r.rows) {
            const std::string name = row.at(0).value_or("");
            known.insert(name);
            if (databases.empty() && row.at(1) == "t" && row.at(2) == "f") names.push_back(name);
        }
        for (const auto& d : databases) {
            if (!known.count(d))
                throw Error(
                    Exit::not_found,
                    "database " + d + " does not exist in instance " + instance.qualified_name(),
                    "see pgforge database list -i " + instance.qualified_name());
            names.push_back(d);
        }
    }
    const std::string wanted = pg::array_literal(roles);
    Report out;
    std::set<std::string> seen;
    for (const auto& db : names) {
        if (!seen.insert(db).second) continue;
        pg::Connection c(instance, db);
        for (const auto& row : c.exec(kGrants, {wanted}).rows) {
            Grant g;
            g.database = db;
            g.object_type = row.at(0).value_or("");
            g.schema = row.at(1);
            g.object_name = row.at(2).value_or("");
            g.column = row.at(3);
            g.role = row.at(4).value_or("");
            g.grantor = row.at(5).value_or("");
            g.privileges = split_list(row.at(6));
            g.grantable = split_list(row.at(7));
            out.grants.push_back(std::move(g));
        }
        for (const auto& row : c.exec(kDefaults, {wanted}).rows) {
            DefaultGrant d;
            d.database = db;
            d.schema = row.at(0);
            d.owner = row.at(1).value_or("");
            d.object_type = row.at(2).value_or("");
            d.role = row.at(3).value_or("");
            d.privileges = split_list(row.at(4));
            d.grantable = split_list(row.at(5));
            out.defaults.push_back(std::move(d));
        }
    }
    return out;
}

}  // namespace pgforge::privileges
