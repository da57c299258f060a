#include "engine/operations/manifest_schema.hpp"

#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <map>
#include <mutex>
#include <nlohmann/json.hpp>
#include <set>
#include <stdexcept>

#include "engine/core/error.hpp"
#include "engine/core/text.hpp"

using json = nlohmann::ordered_json;

namespace pgforge::manifest_schema {

// ---- building ------------------------------------------------------------------------------

Schema& Schema::describe(std::string text) {
    description_ = std::move(text);
    return *this;
}

Schema& Schema::allow_null(bool yes) {
    nullable_ = yes;
    return *this;
}

Schema& Schema::add(Field field) {
    if (kind_ != Kind::object) throw std::logic_error("manifest_schema: add on a non-object");
    for (auto& f : fields_)
        if (f.name == field.name) {
            f = std::move(field);
            return *this;
        }
    fields_.push_back(std::move(field));
    return *this;
}

Schema& Schema::add(std::string name, Schema schema, bool required) {
    return add(Field{std::move(name), std::move(schema), required});
}

bool Schema::remove(const std::string& name) {
    auto it = std::find_if(fields_.begin(), fields_.end(),
                           [&](const Field& f) { return f.name == name; });
    if (it == fields_.end()) return false;
    fields_.erase(it);
    return true;
}

const Schema& Schema::items() const {
    if ((kind_ != Kind::list && kind_ != Kind::map) || children_.empty())
        throw std::logic_error("manifest_schema: items of a schema that is not a list or map");
    return children_.front();
}

const Field* Schema::field(const std::string& name) const {
    for (const auto& f : fields_)
        if (f.name == name) return &f;
    return nullptr;
}

Schema any() {
    return Schema();
}

Schema string() {
    Schema s;
    s.kind_ = Kind::string;
    return s;
}

Schema integer(std::optional<long long> minimum, std::optional<long long> maximum) {
    Schema s;
    s.kind_ = Kind::integer;
    s.minimum_ = minimum;
    s.maximum_ = maximum;
    return s;
}

Schema number() {
    Schema s;
    s.kind_ = Kind::number;
    return s;
}

Schema boolean() {
    Schema s;
    s.kind_ = Kind::boolean;
    return s;
}

Schema enumeration(std::vector<std::string> values) {
    Schema s;
    s.kind_ = Kind::enumeration;
    s.values_ = std::move(values);
    return s;
}

Schema object(std::vector<Field> fields) {
    Schema s;
    s.kind_ = Kind::object;
    for (auto& f : fields) s.add(std::move(f));
    return s;
}

Schema list(Schema item) {
    Schema s;
    s.kind_ = Kind::list;
    s.children_.push_back(std::move(item));
    return s;
}

Schema map_of(Schema value) {
    Schema s;
    s.kind_ = Kind::map;
    s.children_.push_back(std::move(value));
    return s;
}

Schema one_of(std::vector<Schema> alternatives) {
    Schema s;
    s.kind_ = Kind::one_of;
    s.children_ = std::move(alternatives);
    return s;
}

// ---- JSON Schema ---------------------------------------------------------------------------

namespace {

const char* json_type(Kind k) {
    switch (k) {
        case Kind::string:
            return "string";
        case Kind::integer:
            return "integer";
        case Kind::number:
            return "number";
        case Kind::boolean:
            return "boolean";
        case Kind::object:
        case Kind::map:
            return "object";
        case Kind::list:
            return "array";
        default:
            return nullptr;
    }
}

json to_json(const Schema& s) {
    json j = json::object();
    if (!s.description().empty()) j["description"] = s.description();
    switch (s.kind()) {
        case Kind::any:
            break;
        case Kind::enumeration: {
            json values = json::array();
            for (const auto& v : s.values()) values.push_back(v);
            if (s.nullable()) values.push_back(nullptr);
            j["enum"] = values;
            return j;
        }
        case Kind::one_of: {
            json alternatives = json::array();
            for (const auto& a : s.alternatives()) alternatives.push_back(to_json(a));
            if (s.nullable()) alternatives.push_back({{"type", "null"}});
            j["oneOf"] = alternatives;
            return j;
        }
        default: {
            const char* type = json_type(s.kind());
            if (s.nullable())
                j["type"] = json::array({type, "null"});
            else
                j["type"] = type;
        }
    }
    switch (s.kind()) {
        case Kind::integer:
            if (s.minimum()) j["minimum"] = *s.minimum();
            if (s.maximum()) j["maximum"] = *s.maximum();
            break;
        case Kind::object: {
            json properties = json::object();
            json required = json::array();
            for (const auto& f : s.fields()) {
                properties[f.name] = to_json(f.schema);
                if (f.required) required.push_back(f.name);
            }
            j["properties"] = properties;
            if (!required.empty()) j["required"] = required;
            j["additionalProperties"] = false;
            break;
        }
        case Kind::list:
            j["items"] = to_json(s.items());
            break;
        case Kind::map:
            j["additionalProperties"] = to_json(s.items());
            break;
        default:
            break;
    }
    return j;
}

}  // namespace

std::string json_schema(const Schema& schema, const std::string& title) {
    json j = {{"$schema", "https://json-schema.org/draft/2020-12/schema"}};
    if (!title.empty()) j["title"] = title;
    const json body = to_json(schema);
    for (const auto& [k, v] : body.items()) j[k] = v;
    return j.dump(2);
}

// ---- validating ----------------------------------------------------------------------------

namespace {

struct Where {
    const std::string& source;
    YAML::Mark mark;  // the nearest known position
};

[[noreturn]] void fail(const Where& w, const std::string& path, const std::string& message,
                       std::string hint = {}) {
    std::string text = w.source;
    if (!w.mark.is_null())
        text += ":" + std::to_string(w.mark.line + 1) + ":" + std::to_string(w.mark.column + 1);
    text += ": ";
    if (!path.empty()) text += path + ": ";
    throw Error(Exit::usage, text + message, std::move(hint));
}

YAML::Mark mark_of(const YAML::Node& n, const YAML::Mark& fallback) {
    YAML::Mark m = n.Mark();
    return m.is_null() ? fallback : m;
}

const char* shape(const YAML::Node& n) {
    switch (n.Type()) {
        case YAML::NodeType::Null:
            return "null";
        case YAML::NodeType::Scalar:
            return "a scalar";
        case YAML::NodeType::Sequence:
            return "a list";
        case YAML::NodeType::Map:
            return "a mapping";
        default:
            return "nothing";
    }
}

std::string found(const YAML::Node& n) {
    if (n.IsScalar()) return "found '" + n.Scalar() + "'";
    return std::string("found ") + shape(n);
}

// What a value of this schema is called in "expected …".
std::string expectation(const Schema& s) {
    switch (s.kind()) {
        case Kind::any:
            return "a value";
        case Kind::string:
            return "a string";
        case Kind::integer:
            if (s.minimum() && s.maximum())
                return "an integer from " + std::to_string(*s.minimum()) + " to " +
                       std::to_string(*s.maximum());
            if (s.minimum()) return "an integer >= " + std::to_string(*s.minimum());
            if (s.maximum()) return "an integer <= " + std::to_string(*s.maximum());
            return "an integer";
        case Kind::number:
            return "a number";
        case Kind::boolean:
            return "true or false";
        case Kind::enumeration: {
            std::string t = "one of ";
            for (size_t k = 0; k < s.values().size(); ++k) t += (k ? ", " : "") + s.values()[k];
            return t;
        }
        case Kind::object:
            return "a mapping";
        case Kind::list:
            return "a list";
        case Kind::map:
            return "a mapping";
        case Kind::one_of: {
            std::vector<std::string> names;
            for (const auto& a : s.alternatives()) {
                std::string e = expectation(a);
                if (std::find(names.begin(), names.end(), e) == names.end()) names.push_back(e);
            }
            std::string t;
            for (size_t k = 0; k < names.size(); ++k)
                t += (k == 0 ? "" : k + 1 == names.size() ? " or " : ", ") + names[k];
            return t;
        }
    }
    return "a value";
}

bool is_scalar_kind(Kind k) {
    return k == Kind::string || k == Kind::integer || k == Kind::number || k == Kind::boolean ||
           k == Kind::enumeration;
}

// Whether a value of this shape could be of this schema (to pick an alternative of one_of).
bool shape_fits(const YAML::Node& n, const Schema& s) {
    if (s.kind() == Kind::any) return true;
    if (n.IsNull()) return s.nullable();
    if (n.IsScalar()) return is_scalar_kind(s.kind());
    if (n.IsSequence()) return s.kind() == Kind::list;
    if (n.IsMap()) return s.kind() == Kind::object || s.kind() == Kind::map;
    return false;
}

void check(const YAML::Node& n, const Schema& s, const Where& parent, const std::string& path);

std::string key_path(const std::string& path, const std::string& key) {
    return path.empty() ? key : path + "." + key;
}

// The keys of a mapping, refusing a key that is not a scalar and a key given twice.
std::string key_of(const YAML::Node& key, const Where& w, const std::string& path,
                   std::set<std::string>& seen) {
    Where at{w.source, mark_of(key, w.mark)};
    if (!key.IsScalar()) fail(at, path, "a key must be a string, " + found(key));
    std::string k = key.Scalar();
    if (!seen.insert(k).second) fail(at, path, "'" + k + "' is given twice");
    return k;
}

void check_object(const YAML::Node& n, const Schema& s, const Where& w, const std::string& path) {
    std::set<std::string> seen;
    for (const auto& kv : n) {
        std::string key = key_of(kv.first, w, path, seen);
        const Field* f = s.field(key);
        if (!f) {
            std::string best;
            size_t best_d = 99;
            for (const auto& known : s.fields())
                if (size_t d = edit_distance(key, known.name); d < best_d)
                    best = known.name, best_d = d;
            std::string hint;
            if (!best.empty() && best_d <= std::max<size_t>(2, key.size() / 3))
                hint = "did you mean '" + best + "'?";
            else if (!s.fields().empty()) {
                hint = "known keys: ";
                for (size_t k = 0; k < s.fields().size(); ++k)
                    hint += (k ? ", " : "") + s.fields()[k].name;
            }
            fail(Where{w.source, mark_of(kv.first, w.mark)}, path, "unknown key '" + key + "'",
                 hint);
        }
        check(kv.second, f->schema, Where{w.source, mark_of(kv.first, w.mark)},
              key_path(path, key));
    }
    for (const auto& f : s.fields())
        if (f.required && !seen.count(f.name)) fail(w, path, "'" + f.name + "' is required");
}

void check(const YAML::Node& n, const Schema& s, const Where& parent, const std::string& path) {
    const std::string& at = path;
    if (s.kind() == Kind::any) return;
    if (!n || n.IsNull()) {
        if (s.nullable()) return;
        // An empty value's position is that of what follows it: name the key's.
        fail(parent, at, "expected " + expectation(s), "found null (nothing)");
    }
    const Where w{parent.source, mark_of(n, parent.mark)};
    switch (s.kind()) {
        case Kind::any:
            return;
        case Kind::string:
            if (!n.IsScalar()) fail(w, at, "expected a string", found(n));
            return;
        case Kind::integer: {
            long long v = 0;
            if (!n.IsScalar() || !YAML::convert<long long>::decode(n, v))
                fail(w, at, "expected " + expectation(s), found(n));
            if ((s.minimum() && v < *s.minimum()) || (s.maximum() && v > *s.maximum()))
                fail(w, at, "expected " + expectation(s), found(n));
            return;
        }
        case Kind::number: {
            double v = 0;
            if (!n.IsScalar() || !YAML::convert<double>::decode(n, v))
                fail(w, at, "expected a number", found(n));
            return;
        }
        case Kind::boolean: {
            bool v = false;
            if (!n.IsScalar() || !YAML::convert<bool>::decode(n, v))
                fail(w, at, "expected true or false", found(n));
            return;
        }
        case Kind::enumeration: {
            if (n.IsScalar()) {
                const std::string& v = n.Scalar();
                if (std::find(s.values().begin(), s.values().end(), v) != s.values().end()) return;
                std::string best;
                size_t best_d = 99;
                for (const auto& known : s.values())
                    if (size_t d = edit_distance(v, known); d < best_d) best = known, best_d = d;
                fail(w, at, "expected " + expectation(s),
                     found(n) + (best_d <= std::max<size_t>(2, v.size() / 3)
                                     ? "; did you mean '" + best + "'?"
                                     : std::string()));
            }
            fail(w, at, "expected " + expectation(s), found(n));
        }
        case Kind::object:
            if (!n.IsMap()) fail(w, at, "expected a mapping", found(n));
            check_object(n, s, w, at);
            return;
        case Kind::map: {
            if (!n.IsMap()) fail(w, at, "expected a mapping", found(n));
            std::set<std::string> seen;
            for (const auto& kv : n) {
                std::string key = key_of(kv.first, w, at, seen);
                check(kv.second, s.items(), Where{w.source, mark_of(kv.first, w.mark)},
                      key_path(at, key));
            }
            return;
        }
        case Kind::list:
            if (!n.IsSequence()) fail(w, at, "expected a list", found(n));
            for (size_t k = 0; k < n.size(); ++k)
                check(n[k], s.items(), w, at + "[" + std::to_string(k) + "]");
            return;
        case Kind::one_of: {
            std::vector<const Schema*> fitting;
            for (const auto& a : s.alternatives())
                if (shape_fits(n, a)) fitting.push_back(&a);
            if (fitting.empty()) fail(w, at, "expected " + expectation(s), found(n));
            // One alternative of this shape: its own message is the most precise.
            if (fitting.size() == 1) return check(n, *fitting.front(), w, at);
            for (const Schema* a : fitting) {
                try {
                    check(n, *a, w, at);
                    return;
                } catch (const Error&) {
                }
            }
            fail(w, at, "expected " + expectation(s), found(n));
        }
    }
}

}  // namespace

void validate(const YAML::Node& node, const Schema& schema, const std::string& source,
              const std::string& path) {
    try {
        check(node, schema, Where{source, node.Mark()}, path);
    } catch (const YAML::Exception& e) {
        std::string text = source;
        if (!e.mark.is_null())
            text += ":" + std::to_string(e.mark.line + 1) + ":" + std::to_string(e.mark.column + 1);
        throw Error(Exit::usage, text + ": " + (path.empty() ? "" : path + ": ") + e.msg);
    }
}

YAML::Node parse(const std::string& content, const std::string& source) {
    try {
        return YAML::Load(content);
    } catch (const YAML::Exception& e) {
        std::string text = source;
        if (!e.mark.is_null())
            text += ":" + std::to_string(e.mark.line + 1) + ":" + std::to_string(e.mark.column + 1);
        throw Error(Exit::usage, text + ": " + e.msg, "the file is not valid YAML or JSON");
    }
}

// ---- the registry --------------------------------------------------------------------------

namespace {

struct Registry {
    std::mutex mutex;
    std::map<std::string, Factory> factories;
};

Registry& registry() {
    static Registry r;
    return r;
}

}  // namespace

void register_schema(const std::string& name, Factory factory) {
    auto& r = registry();
    std::lock_guard lock(r.mutex);
    r.factories[name] = std::move(factory);
}

std::optional<Schema> registered(const std::string& name) {
    Factory f;
    {
        auto& r = registry();
        std::lock_guard lock(r.mutex);
        auto it = r.factories.find(name);
        if (it == r.factories.end()) return std::nullopt;
        f = it->second;
    }
    return f();
}

std::vector<std::string> registered_names() {
    auto& r = registry();
    std::lock_guard lock(r.mutex);
    std::vector<std::string> names;
    for (const auto& [name, f] : r.factories) names.push_back(name);
    return names;
}

}  // namespace pgforge::manifest_schema
