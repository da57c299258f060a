// SDK 1.1 versioned interfaces: the host table a plugin gets at load, sdk::find<T> answered from
// the objects the engine hands out (contexts, the configuration), and nothing for an object or
// an interface the engine does not know.
#include <catch2/catch.hpp>
#include <cstddef>
#include <fstream>
#include <sstream>
#include <stdexcept>

#include "engine/core/error.hpp"
#include "engine/operations/instances.hpp"
#include "engine/pipeline/context.hpp"
#include "engine/pipeline/plugin_calls.hpp"
#include "engine/pipeline/plugin_host.hpp"
#include "fake_driver.hpp"
#include "temp_dir.hpp"

namespace fs = std::filesystem;
using namespace pgforge;
using pgforge::test::FakeDriver;
using pgforge::test::TempDir;

namespace {

const fs::path fixtures = PGFORGE_TEST_PLUGIN_DIR;

std::string engine_sdk() {
    return std::to_string(PGFORGE_SDK_VERSION_MAJOR) + "." +
           std::to_string(PGFORGE_SDK_VERSION_MINOR);
}

// A site with the recorder fixture enabled, over a fake driver.
Context recorder_site(const TempDir& dir, FakeDriver::Log& driver, const std::string& extra) {
    fs::permissions(dir.path(), fs::perms(0755));
    std::ofstream(dir / "settings.ini")
        << "prefix = " << (dir / "prefix").string() << "\nrun_dir = " << (dir / "run").string()
        << "\n[postgresql]\nport_min = 47000\nport_max = 47999\n[plugins]\npath = "
        << (fixtures / "recorder").string() << "\nenabled = recorder\n[recorder]\n"
        << extra;
    SettingsOverrides o;
    o.settings_file = dir / "settings.ini";
    return Context(load_settings(o), std::make_unique<FakeDriver>(driver));
}

std::string read_all(const fs::path& file) {
    std::ifstream in(file);
    std::stringstream s;
    s << in.rdbuf();
    return s.str();
}

class Probe final : public sdk::EngineInfo {
  public:
    std::string version() const override { return "probe"; }
    unsigned sdk_major() const override { return 7; }
    unsigned sdk_minor() const override { return 7; }
};

}  // namespace

TEST_CASE("a plugin built against SDK 1.1 finds EngineInfo on its command context") {
    TempDir dir("interfaces");
    FakeDriver::Log driver;
    Context ctx = recorder_site(dir, driver, "");
    LoadedPlugin* recorder = ctx.plugins().find("recorder");
    REQUIRE(recorder);
    std::ostringstream out, err;
    int rc = run_plugin_command(ctx, *recorder, {"recorder", "engine", "", "", false}, nullptr, {},
                                false, out, err);
    CHECK(rc == 0);
    CHECK(out.str() == "pgforge " PGFORGE_TEST_ENGINE_VERSION " sdk " + engine_sdk() + "\n");
}

TEST_CASE("a hook finds EngineInfo on its context and on the configuration at pre_configure") {
    TempDir dir("interfaces");
    FakeDriver::Log driver;
    fs::create_directories(dir / "out");
    fs::permissions(dir / "out", fs::perms(0777));
    Context ctx = recorder_site(dir, driver, "engine_file = " + (dir / "out" / "engine").string());
    instances::CreateOptions o;
    o.name = "main";
    instances::create(ctx, o);
    std::string line = "pgforge " PGFORGE_TEST_ENGINE_VERSION " sdk " + engine_sdk();
    // Once, at the create's pre_configure: the only point with a configuration.
    CHECK(read_all(dir / "out" / "engine") == "pre_configure " + line + " / " + line + "\n");
}

TEST_CASE("find_interface answers only for live objects and the interfaces offered on them") {
    // What every 1.1 plugin gets at load.
    const pgforge_host& host = engine_host();
    CHECK(host.struct_size == sizeof(pgforge_host));
    REQUIRE(host.find_interface == &find_offered_interface);

    Probe probe;
    int object = 0;
    const char* name = sdk::EngineInfo::interface_name;
    CHECK(host.find_interface(&object, name, 1) == nullptr);  // not handed out
    {
        OfferedInterfaces offered(&object, [&](std::string_view n, std::uint32_t v) {
            return offer<sdk::EngineInfo>(n, v, &probe);
        });
        void* found = host.find_interface(&object, name, 1);
        REQUIRE(found);
        CHECK(static_cast<sdk::EngineInfo*>(found)->version() == "probe");
        CHECK(host.find_interface(&object, name, 2) == nullptr);               // another version
        CHECK(host.find_interface(&object, "pgforge.nothing", 1) == nullptr);  // another name
        CHECK(host.find_interface(nullptr, name, 1) == nullptr);
        CHECK(host.find_interface(&object, nullptr, 1) == nullptr);
        {
            // An object at the same address while the first is alive (not done by the engine,
            // but the older answer comes back when the newer one goes).
            OfferedInterfaces inner(&object, [](std::string_view, std::uint32_t) -> void* {
                throw std::runtime_error("a finder that throws answers nothing");
            });
            CHECK(host.find_interface(&object, name, 1) == nullptr);
        }
        CHECK(host.find_interface(&object, name, 1) == found);
    }
    CHECK(host.find_interface(&object, name, 1) == nullptr);  // gone with its object
}

TEST_CASE("sdk::find<T> goes through the host table the plugin was given, if any") {
    Probe probe;
    pgforge_host table{sizeof(pgforge_host), &find_offered_interface};
    const pgforge_host* before = sdk::host_table;
    sdk::host_table = nullptr;
    // A plain Configuration stand-in: find keys it by its Configuration address.
    struct Draft final : sdk::Configuration {
        void set_parameter(std::string_view, std::string_view) override {}
        void add_hba_record(std::string_view, sdk::HbaPlace) override {}
        void add_file(std::string_view, std::string_view, unsigned) override {}
        std::optional<std::string> parameter(std::string_view) const override { return {}; }
        std::string hba_text() const override { return {}; }
        void add_ident_mapping(std::string_view, std::string_view, std::string_view) override {}
    } draft;
    OfferedInterfaces offered(
        static_cast<const sdk::Configuration*>(&draft),
        [&](std::string_view n, std::uint32_t v) { return offer<sdk::EngineInfo>(n, v, &probe); });
    CHECK(sdk::find<sdk::EngineInfo>(draft) == nullptr);  // no host table: an older engine
    sdk::host_table = &table;
    CHECK(sdk::find<sdk::EngineInfo>(draft) == &probe);
    const sdk::Configuration& as_const = draft;
    CHECK(sdk::find<sdk::EngineInfo>(as_const) == &probe);
    // A table smaller than find_interface (a future engine would only grow it) answers nothing.
    table.struct_size = sizeof(std::uint32_t);
    CHECK(sdk::find<sdk::EngineInfo>(draft) == nullptr);
    sdk::host_table = before;
}

TEST_CASE("the descriptor check takes a 1.0 descriptor, and a 1.1 one only with its host field") {
    const size_t v1_0 = offsetof(pgforge_plugin_descriptor, host);
    auto create = []() -> void* { return nullptr; };
    auto destroy = [](void*) {};
    pgforge_plugin_descriptor d{1, 0, std::uint32_t(v1_0), "x", "1", create, destroy, nullptr};
    CHECK(check_descriptor(&d, "x.so", "x") == "");
    d.sdk_minor = 1;
    CHECK_THAT(check_descriptor(&d, "x.so", "x"),
               Catch::Contains("its descriptor is " + std::to_string(v1_0) +
                               " bytes, SDK 1.1 needs at least " +
                               std::to_string(sizeof(pgforge_plugin_descriptor))));
    d.struct_size = sizeof(pgforge_plugin_descriptor);
    CHECK(check_descriptor(&d, "x.so", "x") == "");
    d.sdk_minor = 0;
    d.struct_size = v1_0 - 8;
    CHECK_THAT(check_descriptor(&d, "x.so", "x"), Catch::Contains("SDK 1.0 needs at least"));
}
