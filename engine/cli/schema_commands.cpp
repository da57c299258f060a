// schema commands: the JSON Schema (draft 2020-12) of each manifest pgforge reads, for editors,
// linters and configuration management (docs/cli.md). The manifests describe themselves in the
// library (engine/operations/manifest_schema.hpp); this prints what they registered.
#include "engine/cli/command.hpp"
#include "engine/operations/database_manifest.hpp"
#include "engine/operations/manifest_schema.hpp"
#include "engine/operations/role_manifest.hpp"

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

int schema_instance(Invocation& inv) {
    return print_schema(inv, "instance");
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
    // The library's manifests register their schemas when their files are linked in; naming
    // them here makes sure they are.
    static const bool linked = [] {
        (void)&databases::descriptions_schema;
        (void)&roles::descriptions_schema;
        return true;
    }();
    (void)linked;
    return kSchemaCommands;
}

}  // namespace pgforge::cli
