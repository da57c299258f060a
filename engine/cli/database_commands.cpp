// database commands: create, alter, apply -f, get, list, drop, run, dump, dumps, restore on the
// databases of a running instance (-i NAME). docs/databases.md describes them.
#include <cmath>
#include <fstream>
#include <iostream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "engine/cli/command.hpp"
#include "engine/core/input.hpp"
#include "engine/core/text.hpp"
#include "engine/operations/database_manifest.hpp"
#include "engine/operations/databases.hpp"
#include "engine/pipeline/pipeline.hpp"

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
    // clang-format off
    d.add_options()
        ("file,f", po::value<std::string>(), "YAML or JSON description (one database or a list; - reads stdin)")
        ("check", po::bool_switch(), "say what would change and the statements that would run; change nothing")
        ("diff", po::bool_switch(), "print the SQL (run, or with --check that would run)");
    // clang-format on
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

json result_json(const db::ApplyResult& r) {
    return {{"name", r.name}, {"result", db::to_string(r.result)}, {"statements", r.statements}};
}

// `diff`: each outcome's statements follow it, one per line. `check`: a last line says that
// nothing was done.
int report(Invocation& inv, const std::vector<db::ApplyResult>& results, bool as_list,
           bool diff = false, bool check = false) {
    if (inv.json) {
        json arr = json::array();
        for (const auto& r : results) arr.push_back(result_json(r));
        inv.out << dump_json(as_list ? arr : arr.at(0)) << "\n";
    } else if (!inv.quiet) {
        for (const auto& r : results) {
            inv.out << "database " << escape_control(r.name) << ": " << db::to_string(r.result)
                    << "\n";
            if (diff) print_statements(inv.out, r.statements);
        }
        if (check) inv.out << "check: nothing was changed\n";
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
    journal_change(inv.ctx(), i, "database create " + d.name, [&] {
        r = db::create(inv.ctx(), i, d);
        return r.statements;
    });
    return report(inv, {r}, false);
}

int database_alter(Invocation& inv) {
    db::Database d = from_options(inv);
    Instance i = instance_of(inv);
    db::ApplyResult r;
    journal_change(inv.ctx(), i, "database alter " + d.name, [&] {
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
    auto descriptions = db::read_descriptions(*file, is_list);
    Instance i = instance_of(inv);
    std::vector<db::ApplyResult> results;
    const bool check = inv.flag("check");
    if (check) {  // nothing is changed: nothing to journal
        results = db::apply(inv.ctx(), i, descriptions, {.check = true});
        return report(inv, results, is_list, inv.flag("diff"), true);
    }
    journal_change(inv.ctx(), i, "database apply", [&] {
        results = db::apply(inv.ctx(), i, descriptions);
        std::vector<std::string> statements;
        for (const auto& r : results)
            statements.insert(statements.end(), r.statements.begin(), r.statements.end());
        return statements;
    });
    return report(inv, results, is_list, inv.flag("diff"));
}

int database_get(Invocation& inv) {
    std::string name = inv.arg(0, "database name");
    Instance i = instance_of(inv);
    db::Database d = db::get(inv.ctx(), i, name);
    if (inv.json)
        inv.out << db::description_json(d) << "\n";
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
    journal_change(inv.ctx(), i, "database drop " + name, [&] {
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
