#include "engine/operations/database_manifest.hpp"

#include <yaml-cpp/yaml.h>

#include <nlohmann/json.hpp>

#include "engine/core/error.hpp"
#include "engine/core/input.hpp"
#include "engine/core/text.hpp"
#include "engine/operations/manifest_schema.hpp"

using json = nlohmann::ordered_json;

namespace pgforge::databases {

namespace ms = manifest_schema;

ms::Schema database_schema() {
    auto state = [] {
        return ms::enumeration({"present", "absent"})
            .describe("present (the default) or absent")
            .allow_null();
    };
    auto name = [](const char* what) { return ms::string().describe(what); };
    ms::Schema schema =
        ms::object({ms::required("name", name("the schema's name")),
                    ms::optional("owner", name("the role that owns it").allow_null()),
                    ms::optional("state", state())});
    ms::Schema extension = ms::object(
        {ms::required("name", name("the extension's name")),
         ms::optional("schema", name("the schema it is created in").allow_null()),
         ms::optional("version",
                      name("its version (not given: the default one when created, and left as "
                           "it is afterwards)")
                          .allow_null()),
         ms::optional("state", state())});
    return ms::object(
               {ms::required("name", name("the database's name")), ms::optional("state", state()),
                ms::optional("owner", name("the role that owns it").allow_null()),
                ms::optional(
                    "settings",
                    ms::map_of(ms::one_of({ms::string(), ms::number(), ms::boolean()})
                                   .describe("a value; null resets the setting")
                                   .allow_null())
                        .describe("ALTER DATABASE SET: exactly these when given ({} resets all)")
                        .allow_null()),
                ms::optional("schemas", ms::list(ms::one_of({name("a schema's name"), schema}))
                                            .describe("schemas (only those named are looked at)")
                                            .allow_null()),
                ms::optional("extensions",
                             ms::list(ms::one_of({name("an extension's name"), extension}))
                                 .describe("extensions (only those named are looked at)")
                                 .allow_null()),
                ms::optional("tablespace", name("its default tablespace").allow_null()),
                ms::optional(
                    "force_drop", ms::boolean()
                                      .describe("with state absent: terminate its sessions first")
                                      .allow_null())})
        .describe("a database of an instance (docs/databases.md)");
}

ms::Schema descriptions_schema() {
    return ms::one_of({database_schema(), ms::list(database_schema())})
        .describe("one database, or a list of them (docs/databases.md)");
}

namespace {

[[maybe_unused]] const bool kRegistered = [] {
    ms::register_schema("database", descriptions_schema);
    return true;
}();

// Not given, or null: nullopt. The node has been validated: a scalar.
std::optional<std::string> optional_text(const YAML::Node& parent, const char* key) {
    YAML::Node n = parent[key];
    if (!n || n.IsNull()) return std::nullopt;
    return n.Scalar();
}

State state_of(const YAML::Node& parent) {
    auto s = optional_text(parent, "state");
    return s ? parse_state(*s) : State::present;
}

}  // namespace

Database database_from_node(const YAML::Node& n) {
    Database d;
    d.name = n["name"].Scalar();
    d.state = state_of(n);
    d.owner = optional_text(n, "owner");
    d.tablespace = optional_text(n, "tablespace");
    if (auto f = n["force_drop"]; f && !f.IsNull()) d.force_drop = f.as<bool>();
    if (auto s = n["settings"]; s && !s.IsNull()) {
        d.settings.emplace();
        for (const auto& kv : s)
            (*d.settings)[kv.first.Scalar()] =
                kv.second.IsNull() ? std::nullopt : std::optional(kv.second.Scalar());
    }
    if (auto list = n["schemas"]; list && !list.IsNull()) {
        for (const auto& s : list) {
            Schema schema;
            if (s.IsScalar()) {
                schema.name = s.Scalar();
            } else {
                schema.name = s["name"].Scalar();
                schema.owner = optional_text(s, "owner");
                schema.state = state_of(s);
            }
            d.schemas.push_back(std::move(schema));
        }
    }
    if (auto list = n["extensions"]; list && !list.IsNull()) {
        for (const auto& e : list) {
            Extension ext;
            if (e.IsScalar()) {
                ext.name = e.Scalar();
            } else {
                ext.name = e["name"].Scalar();
                ext.schema = optional_text(e, "schema");
                ext.version = optional_text(e, "version");
                ext.state = state_of(e);
            }
            d.extensions.push_back(std::move(ext));
        }
    }
    return d;
}

// One database (a mapping) or several (a list of mappings).
std::vector<Database> read_descriptions(const std::string& file, bool& is_list) {
    const std::string content = read_bounded(file, manifest_size_limit, "manifest");
    return parse_descriptions(content, file == "-" ? "standard input" : file, is_list);
}

std::vector<Database> parse_descriptions(const std::string& content, const std::string& name,
                                         bool& is_list) {
    YAML::Node root = ms::parse(content, name);
    ms::validate(root, descriptions_schema(), name);
    std::vector<Database> out;
    is_list = root.IsSequence();
    if (is_list)
        for (const auto& n : root) out.push_back(database_from_node(n));
    else
        out.push_back(database_from_node(root));
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
