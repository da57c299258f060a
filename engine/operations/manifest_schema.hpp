// The shape of a manifest (`database apply`, `role apply`, `instance apply`), described once and
// used twice: to print its JSON Schema (draft 2020-12, `pgforge schema NAME`) and to check a
// parsed YAML or JSON document against it before anything is done, naming the first bad value
// by its path, line and column:
//
//     app.yaml:3:7: databases[2].owner: expected a string
//
// A schema is a small value built with the functions below:
//
//     using namespace pgforge::manifest_schema;
//     Schema db = object({required("name", string().describe("the database's name")),
//                         optional("owner", string().allow_null()),
//                         optional("state", enumeration({"present", "absent"})),
//                         optional("settings", map_of(one_of({string(), number(), boolean()})
//                                                         .allow_null()))});
//     Schema file = one_of({db, list(db)});
//
// The header stays light: yaml-cpp and nlohmann-json are used by the .cpp only (YAML::Node is
// declared, not defined, here).
#pragma once

#include <functional>
#include <optional>
#include <string>
#include <vector>

namespace YAML {
class Node;
}

namespace pgforge::manifest_schema {

enum class Kind {
    any,          // any value
    string,       // a scalar (YAML reads `5` as the string "5": a plain number is accepted)
    integer,      // a whole number, within minimum..maximum when given
    number,       // any number
    boolean,      // true or false (YAML's yes/no/on/off too)
    enumeration,  // one of `values`
    object,       // a mapping with the keys of `fields` and no other
    list,         // a sequence of `items()`
    map,          // a mapping of any keys to `items()` (an open map: settings)
    one_of,       // one of `alternatives`
};

struct Field;

class Schema {
  public:
    Schema() = default;  // Kind::any

    // Builders: each returns *this, so that they chain on a temporary:
    // string().describe("…").allow_null().
    Schema& describe(std::string text);
    Schema& allow_null(bool yes = true);
    // Object: adds a field, or replaces the one of that name (at run time: a section per
    // plugin). Throws std::logic_error on another kind.
    Schema& add(Field field);
    Schema& add(std::string name, Schema schema, bool required = false);
    // Object: removes a field; true when there was one.
    bool remove(const std::string& name);

    Kind kind() const { return kind_; }
    const std::string& description() const { return description_; }
    bool nullable() const { return nullable_; }
    const std::optional<long long>& minimum() const { return minimum_; }
    const std::optional<long long>& maximum() const { return maximum_; }
    const std::vector<std::string>& values() const { return values_; }     // enumeration
    const std::vector<Field>& fields() const { return fields_; }           // object
    const std::vector<Schema>& alternatives() const { return children_; }  // one_of
    // List: the item; map: the value. Throws std::logic_error on another kind.
    const Schema& items() const;
    // Object: the field of that name, or nullptr.
    const Field* field(const std::string& name) const;

  private:
    friend Schema string();
    friend Schema integer(std::optional<long long>, std::optional<long long>);
    friend Schema number();
    friend Schema boolean();
    friend Schema enumeration(std::vector<std::string>);
    friend Schema object(std::vector<Field>);
    friend Schema list(Schema);
    friend Schema map_of(Schema);
    friend Schema one_of(std::vector<Schema>);

    Kind kind_ = Kind::any;
    std::string description_;
    bool nullable_ = false;
    std::optional<long long> minimum_, maximum_;
    std::vector<std::string> values_;
    std::vector<Field> fields_;
    std::vector<Schema> children_;  // one_of: the alternatives; list and map: the one item
};

struct Field {
    std::string name;
    Schema schema;
    bool required = false;
};

inline Field required(std::string name, Schema schema) {
    return Field{std::move(name), std::move(schema), true};
}
inline Field optional(std::string name, Schema schema) {
    return Field{std::move(name), std::move(schema), false};
}

Schema any();
Schema string();
Schema integer(std::optional<long long> minimum = std::nullopt,
               std::optional<long long> maximum = std::nullopt);
Schema number();
Schema boolean();
Schema enumeration(std::vector<std::string> values);
Schema object(std::vector<Field> fields);
Schema list(Schema item);
Schema map_of(Schema value);
// Alternatives are told apart by the shape of the value (a scalar, a mapping, a list): give at
// most one alternative per shape for precise messages (scalars of several kinds are fine).
Schema one_of(std::vector<Schema> alternatives);

// The JSON Schema (draft 2020-12) as pretty-printed JSON text. `title` (when given) and
// "$schema" go on the top level.
std::string json_schema(const Schema& schema, const std::string& title = {});

// Checks `node` against `schema`. Throws Error(Exit::usage) naming the first bad value:
// "SOURCE:LINE:COLUMN: PATH: expected …", with a did-you-mean hint for an unknown key. `path`
// is the path of `node` itself ("" for a document's root; "databases[2]" when nesting).
void validate(const YAML::Node& node, const Schema& schema, const std::string& source,
              const std::string& path = {});

// YAML (or JSON) text to a node; a syntax error becomes Error(Exit::usage)
// "SOURCE:LINE:COLUMN: message". The first document only.
YAML::Node parse(const std::string& content, const std::string& source);

// The manifests `pgforge schema NAME` prints: a name and a function building the schema of a
// whole file (called when asked, so that it may depend on what is loaded then, e.g. plugins).
// Registering a name again replaces it.
using Factory = std::function<Schema()>;
void register_schema(const std::string& name, Factory factory);
// The schema registered under `name`, built now; nullopt when there is none.
std::optional<Schema> registered(const std::string& name);
std::vector<std::string> registered_names();  // sorted

}  // namespace pgforge::manifest_schema
