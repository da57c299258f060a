#include "engine/operations/instance_manifest.hpp"

#include <yaml-cpp/yaml.h>

#include "engine/core/error.hpp"
#include "engine/core/input.hpp"
#include "engine/operations/database_manifest.hpp"
#include "engine/operations/manifest_schema.hpp"
#include "engine/operations/role_manifest.hpp"

namespace pgforge::instances {

namespace ms = manifest_schema;

const char* to_string(WantedState s) {
    switch (s) {
        case WantedState::stopped:
            return "stopped";
        case WantedState::absent:
            return "absent";
        case WantedState::started:
            break;
    }
    return "started";
}

namespace {

// What `instance get --json` prints besides the manifest's fields: accepted (so that its output
// can be applied as it is) and not looked at.
const char* const kReadOnly[] = {"qualified_name", "data_dir",        "wal_dir",    "socket_dir",
                                 "log_file",       "created_at",      "options",    "status",
                                 "plugins",        "pending_restart", "role",       "upstream",
                                 "slot",           "upgraded_from",   "replication"};

ms::Schema scalar_value() {
    return ms::one_of({ms::string(), ms::number(), ms::boolean()});
}

ms::Schema instance_schema(const std::vector<PluginSection>& plugin_sections) {
    auto text = [](const char* what) { return ms::string().describe(what); };
    auto mode = [](const char* what) {
        return ms::enumeration({"present", "exact"})
            .describe(std::string("present (the default): the ") + what +
                      " listed must be there, others stay; exact: the list is the whole file");
    };
    ms::Schema names = ms::one_of({ms::string(), ms::list(ms::string())});
    ms::Schema hba_record =
        ms::object(
            {ms::required("type", text("local, host, hostssl, hostnossl, hostgssenc, ...")),
             ms::required("database", ms::Schema(names).describe("database name(s) or keyword")),
             ms::required("user", ms::Schema(names).describe("role name(s) or keyword")),
             ms::optional("address",
                          text("IP address/CIDR, host name, all, samehost, samenet").allow_null()),
             ms::optional("mask", text("a netmask, with an address without /CIDR").allow_null()),
             ms::required("method", text("the authentication method")),
             ms::optional("options", ms::map_of(scalar_value())
                                         .describe("authentication options (name: value)")
                                         .allow_null())})
            .describe("a pg_hba.conf record");
    ms::Schema ident_entry =
        ms::object({ms::required("map", text("the map's name")),
                    ms::required("system_user", text("the OS user name (or /regex)")),
                    ms::required("database_user", text("the database role"))})
            .describe("a pg_ident.conf entry");
    ms::Schema schema = ms::object({
        ms::required("name", text("the instance's name")),
        ms::optional("version", ms::one_of({ms::string(), ms::number()})
                                    .describe("PostgreSQL major version (default: as create)")),
        ms::optional("port", ms::integer(1, 65535).describe("the port")),
        ms::optional("state", ms::enumeration({"started", "stopped", "absent"})
                                  .describe("started (the default), stopped or absent")),
        ms::optional("restart_on_changes",
                     ms::boolean().describe("restart a running instance when a setting that "
                                            "needs it changed (else reported pending_restart)")),
        ms::optional("owner", text("OS user the server runs as (creation)")),
        ms::optional("encoding", text("database encoding (creation)")),
        ms::optional("locale", text("locale (creation)")),
        ms::optional("data_checksums", ms::boolean().describe("data checksums (creation)")),
        ms::optional("auth_local", text("method for local connections (creation)")),
        ms::optional("auth_host", text("method for host connections (creation)")),
        ms::optional("superuser", text("superuser role name (creation)")),
        ms::optional("superuser_password_file",
                     text("a 0600 file whose first line is the superuser's password (creation)")),
        ms::optional("waldir", text("WAL directory outside the data directory (creation)")),
        ms::optional("settings", ms::map_of(ms::Schema(scalar_value()).allow_null())
                                     .describe("postgresql.conf settings; null removes one")),
        ms::optional("hba_mode", mode("records")),
        ms::optional("hba",
                     ms::list(ms::one_of({text("a record as written in pg_hba.conf"), hba_record}))
                         .describe("pg_hba.conf records")),
        ms::optional("ident_mode", mode("entries")),
        ms::optional("ident", ms::list(ms::one_of({text("an entry as written in pg_ident.conf"),
                                                   ident_entry}))
                                  .describe("pg_ident.conf entries")),
        ms::optional("roles",
                     ms::list(roles::role_schema())
                         .describe("roles, as `role apply` reads them (before databases)")),
        ms::optional("databases", ms::list(databases::database_schema())
                                      .describe("databases, as `database apply` reads them")),
    });
    for (const char* key : kReadOnly)
        schema.add(key, ms::any().describe("read only (instance get): not looked at"));
    for (const auto& section : plugin_sections) {
        if (schema.field(section.plugin)) continue;
        std::vector<ms::Field> keys;
        for (const auto& k : section.keys) {
            ms::Schema value = k.type == "integer"   ? ms::integer()
                               : k.type == "boolean" ? ms::boolean()
                                                     : ms::string();
            keys.push_back(ms::optional(
                k.name,
                value.describe(k.description + " (null: the plugin's default)").allow_null()));
        }
        schema.add(section.plugin,
                   ms::object(std::move(keys))
                       .describe("per-instance options of the " + section.plugin + " plugin"));
    }
    return schema.describe("an instance (docs/apply.md)");
}

ms::Schema file_schema(const std::vector<PluginSection>& plugin_sections) {
    ms::Schema one = instance_schema(plugin_sections);
    return ms::one_of({one, ms::list(one)}).describe("one instance, or a list of them");
}

[[maybe_unused]] const bool kRegistered = [] {
    ms::register_schema("instance", [] { return file_schema({}); });
    return true;
}();

std::optional<std::string> text_of(const YAML::Node& parent, const char* key) {
    YAML::Node n = parent[key];
    if (!n || n.IsNull()) return std::nullopt;
    return n.Scalar();
}

std::string joined(const YAML::Node& n) {
    if (n.IsScalar()) return n.Scalar();
    std::string out;
    for (const auto& item : n) out += (out.empty() ? "" : ",") + item.Scalar();
    return out;
}

conf::HbaRecord hba_record_of(const YAML::Node& n, const std::string& where) {
    try {
        if (n.IsScalar()) {
            auto records = conf::HbaFile::parse(n.Scalar() + "\n").records();
            if (records.size() != 1)
                throw Error(Exit::usage,
                            "expected one pg_hba.conf record, not '" + n.Scalar() + "'");
            return records.front();
        }
        std::vector<std::string> fields = {n["type"].Scalar(), joined(n["database"]),
                                           joined(n["user"])};
        if (auto a = text_of(n, "address")) fields.push_back(*a);
        if (auto m = text_of(n, "mask")) fields.push_back(*m);
        fields.push_back(n["method"].Scalar());
        if (auto o = n["options"]; o && !o.IsNull())
            for (const auto& kv : o) fields.push_back(kv.first.Scalar() + "=" + kv.second.Scalar());
        return conf::HbaRecord::parse_fields(fields);
    } catch (const Error& e) {
        throw Error(Exit::usage, where + ": " + e.what(), "see docs/apply.md for the format");
    }
}

conf::IdentEntry ident_entry_of(const YAML::Node& n, const std::string& where) {
    if (n.IsScalar()) {
        auto entries = conf::IdentFile::parse(n.Scalar() + "\n").entries();
        if (entries.size() != 1)
            throw Error(
                Exit::usage,
                where + ": expected MAP SYSTEM-USER DATABASE-USER, not '" + n.Scalar() + "'",
                "see docs/apply.md for the format");
        return entries.front();
    }
    conf::IdentEntry e;
    e.map = n["map"].Scalar();
    e.system_user = n["system_user"].Scalar();
    e.pg_user = n["database_user"].Scalar();
    return e;
}

ListMode mode_of(const YAML::Node& parent, const char* key) {
    auto m = text_of(parent, key);
    return m && *m == "exact" ? ListMode::exact : ListMode::present;
}

Manifest manifest_of(const YAML::Node& n, const std::string& source, const std::string& path,
                     const std::vector<PluginSection>& plugin_sections) {
    auto where = [&](const std::string& sub, const YAML::Node& node) {
        auto mark = node.Mark();
        std::string at = source;
        if (!mark.is_null())
            at += ":" + std::to_string(mark.line + 1) + ":" + std::to_string(mark.column + 1);
        return at + ": " + (path.empty() ? sub : path + "." + sub);
    };
    Manifest m;
    m.name = n["name"].Scalar();
    m.version = text_of(n, "version");
    if (auto p = n["port"]; p && !p.IsNull()) m.port = p.as<int>();
    if (auto s = text_of(n, "state"))
        m.state = *s == "absent"    ? WantedState::absent
                  : *s == "stopped" ? WantedState::stopped
                                    : WantedState::started;
    if (auto r = n["restart_on_changes"]; r && !r.IsNull()) m.restart_on_changes = r.as<bool>();
    m.owner = text_of(n, "owner");
    m.encoding = text_of(n, "encoding");
    m.locale = text_of(n, "locale");
    if (auto c = n["data_checksums"]; c && !c.IsNull()) m.data_checksums = c.as<bool>();
    m.auth_local = text_of(n, "auth_local");
    m.auth_host = text_of(n, "auth_host");
    m.superuser = text_of(n, "superuser");
    if (auto f = text_of(n, "superuser_password_file")) m.superuser_password_file = *f;
    if (auto w = text_of(n, "waldir")) m.waldir = *w;
    if (auto s = n["settings"]; s && !s.IsNull()) {
        m.settings.emplace();
        for (const auto& kv : s)
            (*m.settings)[kv.first.Scalar()] =
                kv.second.IsNull() ? std::nullopt : std::optional(kv.second.Scalar());
    }
    m.hba_mode = mode_of(n, "hba_mode");
    if (auto list = n["hba"]; list && !list.IsNull()) {
        m.hba.emplace();
        for (size_t k = 0; k < list.size(); ++k)
            m.hba->push_back(
                hba_record_of(list[k], where("hba[" + std::to_string(k) + "]", list[k])));
    }
    m.ident_mode = mode_of(n, "ident_mode");
    if (auto list = n["ident"]; list && !list.IsNull()) {
        m.ident.emplace();
        for (size_t k = 0; k < list.size(); ++k)
            m.ident->push_back(
                ident_entry_of(list[k], where("ident[" + std::to_string(k) + "]", list[k])));
    }
    if (auto list = n["roles"]; list && !list.IsNull())
        for (const auto& r : list) m.roles.push_back(roles::role_from_node(r));
    if (auto list = n["databases"]; list && !list.IsNull())
        for (const auto& d : list) m.databases.push_back(databases::database_from_node(d));
    for (const auto& s : plugin_sections)
        if (auto section = n[s.plugin]; section && !section.IsNull())
            for (const auto& kv : section)
                m.plugin_options[s.plugin][kv.first.Scalar()] =
                    kv.second.IsNull() ? std::nullopt : std::optional(kv.second.Scalar());
    return m;
}

}  // namespace

std::string manifest_json_schema(const std::vector<PluginSection>& plugin_sections) {
    return ms::json_schema(file_schema(plugin_sections), "pgforge instance manifest");
}

std::vector<Manifest> read_manifests(const std::string& file,
                                     const std::vector<PluginSection>& plugin_sections) {
    const std::string content = read_bounded(file, manifest_size_limit, "manifest");
    return parse_manifests(content, file == "-" ? "standard input" : file, plugin_sections);
}

std::vector<Manifest> parse_manifests(const std::string& content, const std::string& source,
                                      const std::vector<PluginSection>& plugin_sections) {
    YAML::Node root = ms::parse(content, source);
    ms::validate(root, file_schema(plugin_sections), source);
    std::vector<Manifest> out;
    if (root.IsSequence()) {
        for (size_t k = 0; k < root.size(); ++k)
            out.push_back(
                manifest_of(root[k], source, "[" + std::to_string(k) + "]", plugin_sections));
    } else {
        out.push_back(manifest_of(root, source, "", plugin_sections));
    }
    return out;
}

}  // namespace pgforge::instances
