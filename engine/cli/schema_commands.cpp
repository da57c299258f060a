// schema commands: the JSON Schema (draft 2020-12) of each manifest pgforge reads, for editors,
// linters and configuration management (docs/cli.md). The manifests describe themselves in the
// library (engine/operations/manifest_schema.hpp) and register their schemas when their files
// are linked in (database_manifest.cpp and role_manifest.cpp are, by `database apply` and
// `role apply`); this prints what is registered.
#include "engine/cli/command.hpp"
#include "engine/operations/apply.hpp"
#include "engine/operations/manifest_schema.hpp"

namespace pgforge::cli {
namespace {

void no_options(po::options_description&) {}

int print_schema(Invocation& inv, const std::string& name) {
    if (!inv.positional.empty())
        throw Error(Exit::usage, "unexpected '" + inv.positional[0] + "'",
                    "pgforge schema " + name + " takes no argument");
    auto schema = manifest_schema::registered(name);
    if (!schema)
        throw Error(Exit::not_found, "the schema of the " + name + " manifest is not available",
                    "this build of pgforge does not read " + name + " manifests yet");
    inv.out << manifest_schema::json_schema(*schema, "pgforge " + name + " manifest") << "\n";
    return 0;
}

// The instance manifest has a section per enabled plugin that declares per-instance options.
int schema_instance(Invocation& inv) {
    if (!inv.positional.empty())
        throw Error(Exit::usage, "unexpected '" + inv.positional[0] + "'",
                    "pgforge schema instance takes no argument");
    inv.out << instances::manifest_json_schema(instances::plugin_sections(inv.ctx())) << "\n";
    return 0;
}
int schema_database(Invocation& inv) {
    return print_schema(inv, "database");
}
int schema_role(Invocation& inv) {
    return print_schema(inv, "role");
}

const std::vector<CommandSpec> kSchemaCommands = {
    {"schema", "instance", "", "the JSON Schema of the manifest `instance apply` reads", no_options,
     schema_instance},
    {"schema", "database", "", "the JSON Schema of the manifest `database apply` reads", no_options,
     schema_database},
    {"schema", "role", "", "the JSON Schema of the manifest `role apply` reads", no_options,
     schema_role},
};

}  // namespace

const std::vector<CommandSpec>& schema_commands() {
    return kSchemaCommands;
}

}  // namespace pgforge::cli
