#include "engine/operations/role_manifest.hpp"

#include <yaml-cpp/yaml.h>

#include <limits>
#include <nlohmann/json.hpp>

#include "engine/core/error.hpp"
#include "engine/core/input.hpp"

using json = nlohmann::ordered_json;

namespace pgforge::roles {

namespace ms = manifest_schema;

ms::Schema role_schema() {
    auto flag = [](const char* what) { return ms::boolean().describe(what).allow_null(); };
    return ms::object(
               {ms::required("name", ms::string().describe("the role's name")),
                ms::optional("login", flag("LOGIN: the role can log in")),
                ms::optional("superuser", flag("SUPERUSER")),
                ms::optional("createdb", flag("CREATEDB: the role can create databases")),
                ms::optional("createrole", flag("CREATEROLE: the role can create roles")),
                ms::optional("replication", flag("REPLICATION: the role can stream WAL")),
                ms::optional("inherit", flag("INHERIT: the role has the privileges of its roles")),
                ms::optional("connection_limit",
                             ms::integer(-1, std::numeric_limits<int>::max())
                                 .describe("the most connections at once; -1: no limit")
                                 .allow_null()),
                ms::optional("valid_until",
                             ms::string()
                                 .describe("when its password expires: a timestamp, or infinity")
                                 .allow_null()),
                ms::optional("in_roles",
                             ms::list(ms::string().describe("a role's name"))
                                 .describe("the roles it is a member of: exactly these when given")
                                 .allow_null()),
                ms::optional("password",
                             ms::string()
                                 .describe("its password in clear text (only a SCRAM-SHA-256 "
                                           "verifier reaches the server)")
                                 .allow_null()),
                ms::optional("pgpass", flag("true: keep an entry in ~/.pgpass; false: remove it")),
                ms::optional("state", ms::enumeration({"present", "absent"})
                                          .describe("present (the default) or absent")
                                          .allow_null()),
                ms::optional("drop_owned",
                             flag("with state absent: drop what the role owns first")),
                ms::optional("reassign_owned",
                             ms::string()
                                 .describe("with state absent: give what the role owns to this "
                                           "role first")
                                 .allow_null())})
        .describe("a role of an instance (docs/roles.md)");
}

ms::Schema descriptions_schema() {
    return ms::one_of({role_schema(), ms::list(role_schema())})
        .describe("one role, or a list of them (docs/roles.md)");
}

namespace {

[[maybe_unused]] const bool kRegistered = [] {
    ms::register_schema("role", descriptions_schema);
    return true;
}();

}  // namespace

Role role_from_node(const YAML::Node& node) {
    auto given = [&](const char* key) -> std::optional<YAML::Node> {
        YAML::Node v = node[key];
        if (!v || v.IsNull()) return std::nullopt;
        return v;
    };
    auto scalar = [&](const char* key) -> std::optional<std::string> {
        if (auto v = given(key)) return v->Scalar();
        return std::nullopt;
    };
    auto boolean = [&](const char* key) -> std::optional<bool> {
        if (auto v = given(key)) return v->as<bool>();
        return std::nullopt;
    };
    Role r;
    r.name = node["name"].Scalar();
    r.login = boolean("login");
    r.superuser = boolean("superuser");
    r.createdb = boolean("createdb");
    r.createrole = boolean("createrole");
    r.replication = boolean("replication");
    r.inherit = boolean("inherit");
    if (auto v = given("connection_limit")) r.connection_limit = v->as<int>();
    r.valid_until = scalar("valid_until");
    if (auto v = given("in_roles")) {
        std::vector<std::string> in;
        for (const auto& g : *v) in.push_back(g.Scalar());
        r.in_roles = std::move(in);
    }
    r.password = scalar("password");
    r.pgpass = boolean("pgpass");
    if (scalar("state").value_or("present") == "absent") r.state = State::absent;
    r.drop_owned = boolean("drop_owned").value_or(false);
    r.reassign_owned = scalar("reassign_owned");
    return r;
}

std::vector<Role> read_descriptions(const std::string& file, bool& is_list) {
    const std::string content = read_bounded(file, manifest_size_limit, "manifest", Exit::usage);
    return parse_descriptions(content, file == "-" ? "standard input" : file, is_list);
}

std::vector<Role> parse_descriptions(const std::string& content, const std::string& source,
                                     bool& is_list) {
    YAML::Node root = ms::parse(content, source);
    ms::validate(root, descriptions_schema(), source);
    std::vector<Role> out;
    is_list = root.IsSequence();
    if (is_list)
        for (const auto& n : root) out.push_back(role_from_node(n));
    else
        out.push_back(role_from_node(root));
    return out;
}

std::string description_json(const Role& r) {
    json in = json::array();
    for (const auto& g : r.in_roles.value_or(std::vector<std::string>{})) in.push_back(g);
    auto b = [](const std::optional<bool>& v) { return v ? json(*v) : json(nullptr); };
    json j = {{"name", r.name},
              {"login", b(r.login)},
              {"superuser", b(r.superuser)},
              {"createdb", b(r.createdb)},
              {"createrole", b(r.createrole)},
              {"replication", b(r.replication)},
              {"inherit", b(r.inherit)},
              {"connection_limit", r.connection_limit ? json(*r.connection_limit) : json(nullptr)},
              {"valid_until", r.valid_until ? json(*r.valid_until) : json(nullptr)},
              {"in_roles", in},
              {"pgpass", b(r.pgpass)},
              {"state", "present"}};
    return j.dump(2, ' ', false, json::error_handler_t::replace);
}

std::string description_yaml(const Role& r) {
    YAML::Emitter e;
    e << YAML::BeginMap;
    e << YAML::Key << "name" << YAML::Value << YAML::DoubleQuoted << r.name;
    auto b = [&](const char* key, const std::optional<bool>& v) {
        if (v) e << YAML::Key << key << YAML::Value << *v;
    };
    b("login", r.login);
    b("superuser", r.superuser);
    b("createdb", r.createdb);
    b("createrole", r.createrole);
    b("replication", r.replication);
    b("inherit", r.inherit);
    if (r.connection_limit)
        e << YAML::Key << "connection_limit" << YAML::Value << *r.connection_limit;
    e << YAML::Key << "valid_until" << YAML::Value;
    if (r.valid_until)
        e << YAML::DoubleQuoted << *r.valid_until;
    else
        e << YAML::Null;
    e << YAML::Key << "in_roles" << YAML::Value << YAML::Flow << YAML::BeginSeq;
    for (const auto& g : r.in_roles.value_or(std::vector<std::string>{}))
        e << YAML::DoubleQuoted << g;
    e << YAML::EndSeq;
    b("pgpass", r.pgpass);
    e << YAML::Key << "state" << YAML::Value << "present";
    e << YAML::EndMap;
    return std::string(e.c_str()) + "\n";
}

}  // namespace pgforge::roles
