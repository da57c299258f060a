#include "engine/operations/database_manifest.hpp"

#include <yaml-cpp/yaml.h>

#include <nlohmann/json.hpp>

#include "engine/core/error.hpp"
#include "engine/core/input.hpp"
#include "engine/core/text.hpp"

using json = nlohmann::ordered_json;

namespace pgforge::databases {
namespace {

std::string where(const std::string& path, const YAML::Node& n) {
    auto m = n.Mark();
    if (m.is_null()) return path;
    return path + " (line " + std::to_string(m.line + 1) + ")";
}

void check_keys(const YAML::Node& n, const std::string& path,
                std::initializer_list<const char*> known) {
    if (!n.IsMap()) throw Error(Exit::usage, where(path, n) + " must be a mapping");
    for (const auto& kv : n) {
        std::string key = kv.first.IsScalar() ? kv.first.Scalar() : "?";
        bool ok = false;
        std::string best;
        size_t best_d = 99;
        for (const char* k : known) {
            if (key == k) ok = true;
            size_t d = edit_distance(key, k);
            if (d < best_d) best = k, best_d = d;
        }
        if (!ok)
            throw Error(Exit::usage, where(path, kv.first) + ": unknown key '" + key + "'",
                        best_d <= 3 ? "did you mean '" + best + "'?"
                                    : "see docs/databases.md for the format");
    }
}

std::string text(const YAML::Node& n, const std::string& path) {
    if (!n.IsScalar()) throw Error(Exit::usage, where(path, n) + " must be a string");
    return n.Scalar();
}

// Not given, or null: nullopt.
std::optional<std::string> optional_text(const YAML::Node& parent, const char* key,
                                         const std::string& path) {
    YAML::Node n = parent[key];
    if (!n || n.IsNull()) return std::nullopt;
    return text(n, path + "." + key);
}

State state_of(const YAML::Node& parent, const std::string& path) {
    auto s = optional_text(parent, "state", path);
    if (!s) return State::present;
    try {
        return parse_state(*s);
    } catch (const Error& e) {
        throw Error(Exit::usage, where(path + ".state", parent["state"]) + ": " + e.what());
    }
}

Database parse_database(const YAML::Node& n, const std::string& path) {
    check_keys(n, path,
               {"name", "state", "owner", "settings", "schemas", "extensions", "tablespace",
                "force_drop"});
    Database d;
    if (!n["name"]) throw Error(Exit::usage, where(path, n) + ": a database needs a name");
    d.name = text(n["name"], path + ".name");
    d.state = state_of(n, path);
    d.owner = optional_text(n, "owner", path);
    d.tablespace = optional_text(n, "tablespace", path);
    if (auto f = n["force_drop"]; f && !f.IsNull()) {
        try {
            d.force_drop = f.as<bool>();
        } catch (const YAML::Exception&) {
            throw Error(Exit::usage, where(path + ".force_drop", f) + " must be true or false");
        }
    }
    if (auto s = n["settings"]; s && !s.IsNull()) {
        if (!s.IsMap())
            throw Error(Exit::usage, where(path + ".settings", s) + " must be a mapping");
        d.settings.emplace();
        for (const auto& kv : s) {
            std::string key = text(kv.first, path + ".settings");
            if (kv.second.IsNull())
                (*d.settings)[key] = std::nullopt;
            else
                (*d.settings)[key] = text(kv.second, path + ".settings." + key);
        }
    }
    if (auto list = n["schemas"]; list && !list.IsNull()) {
        if (!list.IsSequence())
            throw Error(Exit::usage, where(path + ".schemas", list) + " must be a list");
        for (size_t k = 0; k < list.size(); ++k) {
            std::string p = path + ".schemas[" + std::to_string(k) + "]";
            const YAML::Node& s = list[k];
            Schema schema;
            if (s.IsScalar()) {
                schema.name = s.Scalar();
            } else {
                check_keys(s, p, {"name", "owner", "state"});
                if (!s["name"]) throw Error(Exit::usage, where(p, s) + ": a schema needs a name");
                schema.name = text(s["name"], p + ".name");
                schema.owner = optional_text(s, "owner", p);
                schema.state = state_of(s, p);
            }
            d.schemas.push_back(std::move(schema));
        }
    }
    if (auto list = n["extensions"]; list && !list.IsNull()) {
        if (!list.IsSequence())
            throw Error(Exit::usage, where(path + ".extensions", list) + " must be a list");
        for (size_t k = 0; k < list.size(); ++k) {
            std::string p = path + ".extensions[" + std::to_string(k) + "]";
            const YAML::Node& e = list[k];
            Extension ext;
            if (e.IsScalar()) {
                ext.name = e.Scalar();
            } else {
                check_keys(e, p, {"name", "schema", "version", "state"});
                if (!e["name"])
                    throw Error(Exit::usage, where(p, e) + ": an extension needs a name");
                ext.name = text(e["name"], p + ".name");
                ext.schema = optional_text(e, "schema", p);
                ext.version = optional_text(e, "version", p);
                ext.state = state_of(e, p);
            }
            d.extensions.push_back(std::move(ext));
        }
    }
    return d;
}

}  // namespace

// One database (a mapping) or several (a list of mappings).
std::vector<Database> read_descriptions(const std::string& file, bool& is_list) {
    const std::string content = read_bounded(file, manifest_size_limit, "manifest");
    return parse_descriptions(content, file == "-" ? "standard input" : file, is_list);
}

std::vector<Database> parse_descriptions(const std::string& content, const std::string& name,
                                         bool& is_list) {
    YAML::Node root;
    try {
        root = YAML::Load(content);
    } catch (const YAML::Exception& e) {
        throw Error(Exit::usage, name + ": " + e.what());
    }
    std::vector<Database> out;
    try {
        if (root.IsSequence()) {
            is_list = true;
            for (size_t k = 0; k < root.size(); ++k)
                out.push_back(parse_database(root[k], "[" + std::to_string(k) + "]"));
        } else if (root.IsMap()) {
            is_list = false;
            out.push_back(parse_database(root, "database"));
        } else {
            throw Error(Exit::usage, name + ": expected a database (a mapping) or a list of them");
        }
    } catch (const YAML::Exception& e) {
        throw Error(Exit::usage, name + ": " + e.what());
    } catch (const Error& e) {
        throw Error(e.code(), name + ": " + e.what(), e.hint());
    }
    return out;
}

std::string description_json(const Database& d) {
    json j = {{"name", d.name}};
    if (d.state == State::absent) j["state"] = "absent";
    if (d.owner) j["owner"] = *d.owner;
    if (d.settings) {
        json s = json::object();
        for (const auto& [k, v] : *d.settings) s[k] = v ? json(*v) : json(nullptr);
        j["settings"] = s;
    }
    json schemas = json::array();
    for (const auto& s : d.schemas) {
        json o = {{"name", s.name}};
        if (s.owner) o["owner"] = *s.owner;
        if (s.state == State::absent) o["state"] = "absent";
        schemas.push_back(o);
    }
    j["schemas"] = schemas;
    json extensions = json::array();
    for (const auto& e : d.extensions) {
        json o = {{"name", e.name}};
        if (e.schema) o["schema"] = *e.schema;
        if (e.version) o["version"] = *e.version;
        if (e.state == State::absent) o["state"] = "absent";
        extensions.push_back(o);
    }
    j["extensions"] = extensions;
    if (d.tablespace) j["tablespace"] = *d.tablespace;
    return j.dump(2, ' ', false, json::error_handler_t::replace);
}

std::string description_yaml(const Database& d) {
    YAML::Emitter e;
    e << YAML::BeginMap;
    e << YAML::Key << "name" << YAML::Value << d.name;
    if (d.owner) e << YAML::Key << "owner" << YAML::Value << *d.owner;
    if (d.settings) {
        e << YAML::Key << "settings" << YAML::Value;
        if (d.settings->empty()) e << YAML::Flow;
        e << YAML::BeginMap;
        for (const auto& [k, v] : *d.settings) {
            e << YAML::Key << k << YAML::Value;
            if (v)
                e << YAML::DoubleQuoted << *v;
            else
                e << YAML::Null;
        }
        e << YAML::EndMap;
    }
    e << YAML::Key << "schemas" << YAML::Value;
    if (d.schemas.empty()) e << YAML::Flow;
    e << YAML::BeginSeq;
    for (const auto& s : d.schemas) {
        e << YAML::BeginMap << YAML::Key << "name" << YAML::Value << s.name;
        if (s.owner) e << YAML::Key << "owner" << YAML::Value << *s.owner;
        e << YAML::EndMap;
    }
    e << YAML::EndSeq;
    e << YAML::Key << "extensions" << YAML::Value;
    if (d.extensions.empty()) e << YAML::Flow;
    e << YAML::BeginSeq;
    for (const auto& x : d.extensions) {
        e << YAML::BeginMap << YAML::Key << "name" << YAML::Value << x.name;
        if (x.schema) e << YAML::Key << "schema" << YAML::Value << *x.schema;
        if (x.version)
            e << YAML::Key << "version" << YAML::Value << YAML::DoubleQuoted << *x.version;
        e << YAML::EndMap;
    }
    e << YAML::EndSeq;
    if (d.tablespace) e << YAML::Key << "tablespace" << YAML::Value << *d.tablespace;
    e << YAML::EndMap;
    return std::string(e.c_str()) + "\n";
}

}  // namespace pgforge::databases
