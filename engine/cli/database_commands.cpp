// database commands: create, alter, apply -f, get, list, drop, run, dump, dumps, restore on the
// databases of a running instance (-i NAME). docs/databases.md describes them.
#include <yaml-cpp/yaml.h>

#include <cmath>
#include <fstream>
#include <iostream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "engine/cli/command.hpp"
#include "engine/core/input.hpp"
#include "engine/core/text.hpp"
#include "engine/operations/databases.hpp"

namespace fs = std::filesystem;
using json = nlohmann::ordered_json;

namespace pgforge::cli {
namespace {

namespace db = databases;

// JSON of anything the server sent: invalid UTF-8 (a SQL_ASCII database) is replaced, not fatal.
std::string dump_json(const json& j) {
    return j.dump(2, ' ', false, json::error_handler_t::replace);
}

// ---- options --------------------------------------------------------------------------------

void instance_option(po::options_description& d) {
    d.add_options()("instance,i", po::value<std::string>(), "the instance (NAME or VERSION/NAME)");
}

void create_options(po::options_description& d) {
    instance_option(d);
    // clang-format off
    d.add_options()
        ("owner", po::value<std::string>(), "the role that owns it")
        ("tablespace", po::value<std::string>(), "its default tablespace")
        ("set", po::value<std::vector<std::string>>(), "a setting NAME=VALUE (ALTER DATABASE SET), repeatable");
    // clang-format on
}

void alter_options(po::options_description& d) {
    create_options(d);
    d.add_options()("reset", po::value<std::vector<std::string>>(),
                    "reset a setting NAME, repeatable");
}

void apply_options(po::options_description& d) {
    instance_option(d);
    d.add_options()("file,f", po::value<std::string>(),
                    "YAML or JSON description (one database or a list; - reads stdin)");
}

void list_options(po::options_description& d) {
    instance_option(d);
    d.add_options()("exclude-database", po::value<std::vector<std::string>>(),
                    "leave this database out, repeatable");
}

void drop_options(po::options_description& d) {
    instance_option(d);
    d.add_options()("force", po::bool_switch(),
                    "terminate the sessions using it first (PostgreSQL 13+)");
}

void run_options(po::options_description& d) {
    instance_option(d);
    // clang-format off
    d.add_options()
        ("database,d", po::value<std::vector<std::string>>(), "run on this database, repeatable (default: all but templates)")
        ("exclude-database", po::value<std::vector<std::string>>(), "leave this database out, repeatable")
        ("jobs,j", po::value<int>()->default_value(4), "connections at once");
    // clang-format on
}

void dump_options(po::options_description& d) {
    instance_option(d);
    d.add_options()("output", po::value<std::string>(),
                    "directory to write into (default: the instance's dumps directory)");
}

void restore_options(po::options_description& d) {
    instance_option(d);
    d.add_options()("jobs,j", po::value<int>()->default_value(1),
                    "pg_restore --jobs: parallel restore");
}

// ---- the instance ---------------------------------------------------------------------------

Instance instance_of(Invocation& inv) {
    auto ref = inv.opt<std::string>("instance");
    if (!ref)
        throw Error(Exit::usage, "no instance", "name it with -i NAME (see pgforge instance list)");
    return instances::get(inv.ctx(), *ref);
}

std::vector<std::string> strings(Invocation& inv, const char* name) {
    return inv.opt<std::vector<std::string>>(name).value_or(std::vector<std::string>{});
}

// ---- the description: YAML or JSON in, JSON or YAML out ------------------------------------

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

db::State state_of(const YAML::Node& parent, const std::string& path) {
    auto s = optional_text(parent, "state", path);
    if (!s) return db::State::present;
    try {
        return db::parse_state(*s);
    } catch (const Error& e) {
        throw Error(Exit::usage, where(path + ".state", parent["state"]) + ": " + e.what());
    }
}

db::Database parse_database(const YAML::Node& n, const std::string& path) {
    check_keys(n, path,
               {"name", "state", "owner", "settings", "schemas", "extensions", "tablespace",
                "force_drop"});
    db::Database d;
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
            db::Schema schema;
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
            db::Extension ext;
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

// One database (a mapping) or several (a list of mappings).
std::vector<db::Database> read_descriptions(const std::string& file, bool& is_list) {
    const std::string content = read_bounded(file, manifest_size_limit, "manifest");
    std::string name = file == "-" ? "standard input" : file;
    YAML::Node root;
    try {
        root = YAML::Load(content);
    } catch (const YAML::Exception& e) {
        throw Error(Exit::usage, name + ": " + e.what());
    }
    std::vector<db::Database> out;
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

json description_json(const db::Database& d) {
    json j = {{"name", d.name}};
    if (d.state == db::State::absent) j["state"] = "absent";
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
        if (s.state == db::State::absent) o["state"] = "absent";
        schemas.push_back(o);
    }
    j["schemas"] = schemas;
    json extensions = json::array();
    for (const auto& e : d.extensions) {
        json o = {{"name", e.name}};
        if (e.schema) o["schema"] = *e.schema;
        if (e.version) o["version"] = *e.version;
        if (e.state == db::State::absent) o["state"] = "absent";
        extensions.push_back(o);
    }
    j["extensions"] = extensions;
    if (d.tablespace) j["tablespace"] = *d.tablespace;
    return j;
}

std::string description_yaml(const db::Database& d) {
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

json result_json(const db::ApplyResult& r) {
    return {{"name", r.name}, {"result", db::to_string(r.result)}, {"statements", r.statements}};
}

int report(Invocation& inv, const std::vector<db::ApplyResult>& results, bool as_list) {
    if (inv.json) {
        json arr = json::array();
        for (const auto& r : results) arr.push_back(result_json(r));
        inv.out << dump_json(as_list ? arr : arr.at(0)) << "\n";
    } else if (!inv.quiet) {
        for (const auto& r : results)
            inv.out << "database " << escape_control(r.name) << ": " << db::to_string(r.result)
                    << "\n";
    }
    return 0;
}

// --set NAME=VALUE and --reset NAME into a settings map (nullopt when neither is given).
std::optional<std::map<std::string, std::optional<std::string>>> settings_of(Invocation& inv) {
    auto sets = strings(inv, "set");
    auto resets = inv.vm.count("reset") ? strings(inv, "reset") : std::vector<std::string>{};
    if (sets.empty() && resets.empty()) return std::nullopt;
    std::map<std::string, std::optional<std::string>> out;
    for (const auto& s : sets) {
        size_t eq = s.find('=');
        if (eq == std::string::npos || eq == 0)
            throw Error(Exit::usage, "--set takes NAME=VALUE, not '" + s + "'",
                        "for example: --set work_mem=64MB");
        out[s.substr(0, eq)] = s.substr(eq + 1);
    }
    for (const auto& r : resets) out[r] = std::nullopt;
    return out;
}

db::Database from_options(Invocation& inv) {
    db::Database d;
    d.name = inv.arg(0, "database name");
    if (inv.positional.size() > 1)
        throw Error(Exit::usage, "one database at a time",
                    "for several, describe them in a file: pgforge database apply -f FILE");
    d.owner = inv.opt<std::string>("owner");
    d.tablespace = inv.opt<std::string>("tablespace");
    d.settings = settings_of(inv);
    return d;
}

// ---- commands -------------------------------------------------------------------------------

int database_create(Invocation& inv) {
    db::Database d = from_options(inv);
    Instance i = instance_of(inv);
    db::ApplyResult r;
    journaled(inv.ctx(), i, "database create " + d.name, [&] {
        r = db::create(inv.ctx(), i, d);
        return r.statements;
    });
    return report(inv, {r}, false);
}

int database_alter(Invocation& inv) {
    db::Database d = from_options(inv);
    Instance i = instance_of(inv);
    db::ApplyResult r;
    journaled(inv.ctx(), i, "database alter " + d.name, [&] {
        r = db::alter(inv.ctx(), i, d);
        return r.statements;
    });
    return report(inv, {r}, false);
}

int database_apply(Invocation& inv) {
    auto file = inv.opt<std::string>("file");
    if (!file)
        throw Error(Exit::usage, "apply needs a description",
                    "give -f FILE (YAML or JSON), or -f - to read standard input");
    bool is_list = false;
    auto descriptions = read_descriptions(*file, is_list);
    Instance i = instance_of(inv);
    std::vector<db::ApplyResult> results;
    journaled(inv.ctx(), i, "database apply", [&] {
        results = db::apply(inv.ctx(), i, descriptions);
        std::vector<std::string> statements;
        for (const auto& r : results)
            statements.insert(statements.end(), r.statements.begin(), r.statements.end());
        return statements;
    });
    return report(inv, results, is_list);
}

int database_get(Invocation& inv) {
    std::string name = inv.arg(0, "database name");
    Instance i = instance_of(inv);
    db::Database d = db::get(inv.ctx(), i, name);
    if (inv.json)
        inv.out << dump_json(description_json(d)) << "\n";
    else
        inv.out << description_yaml(d);
    return 0;
}

std::string human_size(std::int64_t bytes) {
    if (bytes < 0) return "";
    const char* units[] = {"bytes", "kB", "MB", "GB", "TB", "PB"};
    double v = static_cast<double>(bytes);
    int u = 0;
    while (v >= 10 * 1024 && u < 5) v /= 1024, ++u;
    std::ostringstream s;
    s << static_cast<std::int64_t>(std::llround(v)) << " " << units[u];
    return s.str();
}

int database_list(Invocation& inv) {
    Instance i = instance_of(inv);
    auto items = db::ls(inv.ctx(), i, inv.positional, strings(inv, "exclude-database"));
    if (inv.json) {
        json arr = json::array();
        for (const auto& d : items)
            arr.push_back({{"name", d.name},
                           {"owner", d.owner},
                           {"encoding", d.encoding},
                           {"collation", d.collation},
                           {"ctype", d.ctype},
                           {"size", d.size < 0 ? json(nullptr) : json(d.size)},
                           {"tablespace", d.tablespace},
                           {"description", d.description ? json(*d.description) : json(nullptr)}});
        inv.out << dump_json(arr) << "\n";
        return 0;
    }
    std::vector<std::vector<std::string>> rows = {
        {"NAME", "OWNER", "ENCODING", "COLLATION", "SIZE", "TABLESPACE", "DESCRIPTION"}};
    for (const auto& d : items)
        rows.push_back({d.name, d.owner, d.encoding, d.collation, human_size(d.size), d.tablespace,
                        d.description.value_or("")});
    print_table(inv.out, rows);
    return 0;
}

int database_drop(Invocation& inv) {
    std::string name = inv.arg(0, "database name");
    Instance i = instance_of(inv);
    db::ApplyResult r;
    r.name = name;
    r.result = db::Result::dropped;
    journaled(inv.ctx(), i, "database drop " + name, [&] {
        r.statements.push_back(db::drop(inv.ctx(), i, name, inv.flag("force")));
        return r.statements;
    });
    return report(inv, {r}, false);
}

// A value as JSON, by its type: numbers, booleans and json stay what they are.
json value_json(const std::optional<std::string>& v, unsigned type) {
    if (!v) return nullptr;
    try {
        switch (type) {
            case 16:  // bool
                return *v == "t";
            case 20:  // int8
            case 21:  // int2
            case 23:  // int4
            case 26:  // oid
                return std::stoll(*v);
            case 700:   // float4
            case 701:   // float8
            case 1700:  // numeric
            {
                size_t used = 0;
                double d = std::stod(*v, &used);
                if (used == v->size() && std::isfinite(d)) return d;
                return *v;
            }
            case 114:   // json
            case 3802:  // jsonb
                return json::parse(*v);
        }
    } catch (const std::exception&) {
    }
    return *v;
}

int database_run(Invocation& inv) {
    if (inv.positional.size() != 1)
        throw Error(Exit::usage, "run takes one SQL text (quote it)",
                    "for example: pgforge database run -i main 'SELECT 1'");
    const std::string sql = inv.positional[0];
    Instance i = instance_of(inv);
    db::RunOptions o;
    o.dbnames = strings(inv, "database");
    o.exclude_dbnames = strings(inv, "exclude-database");
    o.jobs = inv.opt<int>("jobs").value_or(4);
    check_at_least(o.jobs, 1, "--jobs");
    if (o.jobs < 1) throw Error(Exit::usage, "--jobs must be at least 1");
    if (!inv.quiet)
        o.on_notice = [&](const std::string& database, const std::string& message) {
            inv.err << database << ": " << message << "\n";
        };
    auto results = db::run(inv.ctx(), i, sql, o);
    std::vector<std::string> failed;
    for (const auto& r : results)
        if (r.error) failed.push_back(r.database);
    if (inv.json) {
        json j = json::object();
        for (const auto& r : results) {
            if (r.error) {
                j[r.database] = {{"error", *r.error}};
                continue;
            }
            json rows = json::array();
            for (const auto& row : r.result.rows) {
                json o = json::object();
                for (size_t c = 0; c < row.size(); ++c)
                    o[r.result.columns[c]] = value_json(row[c], r.result.types[c]);
                rows.push_back(o);
            }
            j[r.database] = rows;
        }
        inv.out << dump_json(j) << "\n";
    } else if (!inv.quiet) {
        for (const auto& r : results) {
            if (r.error) {
                inv.out << r.database << ": ERROR: " << *r.error << "\n";
                continue;
            }
            if (r.result.columns.empty()) {
                inv.out << r.database << ": " << r.result.command << "\n";
                continue;
            }
            inv.out << r.database << ":\n";
            std::vector<std::vector<std::string>> rows;
            rows.emplace_back();
            for (const auto& c : r.result.columns) rows.back().push_back(c);
            for (const auto& row : r.result.rows) {
                rows.emplace_back();
                for (const auto& v : row) rows.back().push_back(v.value_or("NULL"));
            }
            std::ostringstream table;
            print_table(table, rows);
            std::istringstream lines(table.str());
            for (std::string line; std::getline(lines, line);) inv.out << "  " << line << "\n";
        }
    }
    if (failed.empty()) return 0;
    std::string names;
    for (const auto& f : failed) names += (names.empty() ? "" : ", ") + f;
    inv.err << "pgforge: " << failed.size() << " of " << results.size()
            << " databases failed: " << names << "\n";
    return static_cast<int>(Exit::failure);
}

json dump_info_json(const db::DumpInfo& d) {
    return {
        {"database", d.database}, {"file", d.file.string()}, {"size", d.size}, {"time", d.time}};
}

int database_dump(Invocation& inv) {
    std::string name = inv.arg(0, "database name");
    Instance i = instance_of(inv);
    std::optional<fs::path> output;
    if (auto o = inv.opt<std::string>("output")) output = *o;
    auto info = db::dump(inv.ctx(), i, name, output);
    inv.end_progress();
    if (inv.json)
        inv.out << dump_json(dump_info_json(info)) << "\n";
    else if (!inv.quiet)
        inv.out << "database " << name << " dumped to " << info.file.string() << " ("
                << human_size(static_cast<std::int64_t>(info.size)) << ")\n";
    return 0;
}

int database_dumps(Invocation& inv) {
    Instance i = instance_of(inv);
    auto list = db::dumps(i, inv.positional);
    if (inv.json) {
        json arr = json::array();
        for (const auto& d : list) arr.push_back(dump_info_json(d));
        inv.out << dump_json(arr) << "\n";
        return 0;
    }
    std::vector<std::vector<std::string>> rows = {{"DATABASE", "FILE", "SIZE", "TIME"}};
    for (const auto& d : list)
        rows.push_back({d.database, d.file.filename().string(),
                        human_size(static_cast<std::int64_t>(d.size)), d.time});
    print_table(inv.out, rows);
    return 0;
}

int database_restore(Invocation& inv) {
    std::string ref = inv.arg(0, "dump (file, file name or database name)");
    if (inv.positional.size() > 2) throw Error(Exit::usage, "restore takes DUMP [NEW_NAME]");
    Instance i = instance_of(inv);
    db::RestoreOptions o;
    if (inv.positional.size() == 2) o.target = inv.positional[1];
    o.jobs = inv.opt<int>("jobs").value_or(1);
    check_at_least(o.jobs, 1, "--jobs");
    if (o.jobs < 1) throw Error(Exit::usage, "--jobs must be at least 1");
    std::string target = db::restore(inv.ctx(), i, ref, o);
    inv.end_progress();
    if (inv.json)
        inv.out << dump_json({{"dump", ref}, {"database", target}, {"result", "restored"}}) << "\n";
    else if (!inv.quiet)
        inv.out << "database " << target << ": restored\n";
    return 0;
}

const std::vector<CommandSpec> kDatabaseCommands = {
    {"database", "create", "NAME", "create a database (--owner, --tablespace, --set NAME=VALUE)",
     create_options, database_create},
    {"database", "alter", "NAME", "change owner, tablespace, settings (--set, --reset)",
     alter_options, database_alter},
    {"database", "apply", "-f FILE",
     "make databases what a YAML/JSON description says: created, changed, dropped, unchanged",
     apply_options, database_apply},
    {"database", "get", "NAME", "a database's description (YAML; --json), input for apply",
     instance_option, database_get},
    {"database", "list", "[NAME...]",
     "databases: owner, encoding, collation, size, tablespace, description", list_options,
     database_list},
    {"database", "drop", "NAME", "drop a database (--force terminates its sessions)", drop_options,
     database_drop},
    {"database", "run", "SQL",
     "run SQL on databases at once (--database, --exclude-database; default all)", run_options,
     database_run},
    {"database", "dump", "NAME", "pg_dump -Fc into the instance's dumps directory", dump_options,
     database_dump},
    {"database", "dumps", "[NAME...]", "the dumps of an instance", instance_option, database_dumps},
    {"database", "restore", "DUMP [NEW_NAME]",
     "pg_restore a dump (file, file name, or database name: its newest dump)", restore_options,
     database_restore},
};

}  // namespace

const std::vector<CommandSpec>& database_commands() {
    return kDatabaseCommands;
}

}  // namespace pgforge::cli
