// Site settings: built-in defaults, then the settings file, then PGFORGE_PREFIX, then the
// command line; and where an instance's files live.
#include "engine/core/settings.hpp"

#include <catch2/catch.hpp>
#include <filesystem>
#include <string>
#include <vector>

#include "engine/core/error.hpp"
#include "temp_dir.hpp"

namespace fs = std::filesystem;
using pgforge::Error;
using pgforge::Exit;
using pgforge::Instance;
using pgforge::load_settings;
using pgforge::Settings;
using pgforge::SettingsOverrides;
using pgforge::test::ScopedEnv;
using pgforge::test::TempDir;
using pgforge::test::write_text;

namespace {

const std::string kSettingsFile =
    "# a site settings file\n"
    "prefix = /x/p\n"
    "run_dir = /x/r\n"
    "\n"
    "[postgresql]\n"
    "version = 15\n"
    "port_min = 6000\n"
    "port_max = 6010\n"
    "owner = someone\n"
    "superuser = admin\n"
    "bindir = /a\n"
    "bindir = /b\n"
    "start_timeout = 12.5\n"
    "\n"
    "[backup]\n"
    "repository = /srv/backups\n"
    "retention = 7\n";

// A settings file in a fresh temporary directory, with the environment that could change what
// load_settings reads (PGFORGE_PREFIX, PGFORGE_SETTINGS) cleared for the test.
struct Site {
    TempDir dir{"settings"};
    ScopedEnv no_prefix{"PGFORGE_PREFIX", std::nullopt};
    ScopedEnv no_settings{"PGFORGE_SETTINGS", std::nullopt};

    fs::path write(const std::string& content) const {
        fs::path file = dir / "settings.ini";
        write_text(file, content);
        return file;
    }
    static SettingsOverrides from(const fs::path& file) {
        SettingsOverrides o;
        o.settings_file = file;
        return o;
    }
};

// Runs `f`, expecting Error(Exit::usage) whose message contains `needle`.
template <typename F>
void require_usage_error(F&& f, const std::string& needle) {
    try {
        f();
        FAIL("no error was thrown; expected one naming '" << needle << "'");
    } catch (const Error& e) {
        CHECK(e.code() == Exit::usage);
        CHECK_THAT(e.what(), Catch::Contains(needle));
    }
}

}  // namespace

TEST_CASE("load_settings reads the top-level and [postgresql] keys of a settings file", "[unit]") {
    Site site;
    fs::path file = site.write(kSettingsFile);
    Settings s = load_settings(Site::from(file));
    CHECK(s.settings_file == file);
    CHECK(s.prefix == "/x/p");
    CHECK(s.run_dir == "/x/r");
    CHECK(s.postgres_version == "15");
    CHECK(s.port_min == 6000);
    CHECK(s.port_max == 6010);
    CHECK(s.owner == "someone");
    CHECK(s.superuser == "admin");
    CHECK(s.start_timeout == Approx(12.5));
}

TEST_CASE("load_settings keeps every bindir line of the settings file, in order", "[unit]") {
    Site site;
    Settings s = load_settings(Site::from(site.write(kSettingsFile)));
    CHECK(s.bindirs == std::vector<fs::path>{"/a", "/b"});
}

TEST_CASE("load_settings accepts sections it does not know, which belong to plugins", "[unit]") {
    Site site;
    CHECK_NOTHROW(load_settings(Site::from(site.write(kSettingsFile))));
}

TEST_CASE("load_settings keeps the defaults for what the file does not set", "[unit]") {
    Site site;
    Settings s = load_settings(Site::from(site.write("[postgresql]\nport_max = 5999\n")));
    CHECK(s.superuser == "postgres");
    CHECK(s.auth_local == "peer");
    CHECK(s.auth_host == "scram-sha-256");
    CHECK(s.listen_addresses == "localhost");
    CHECK(s.port_min == 5432);
    CHECK(s.port_max == 5999);
    CHECK(s.bindirs.empty());
    CHECK(s.postgres_version.empty());
    CHECK_FALSE(s.prefix.empty());
    CHECK(s.prefix.is_absolute());
    CHECK(s.run_dir.is_absolute());
}

TEST_CASE(
    "load_settings of a named settings file that does not exist is a usage error "
    "naming it",
    "[unit]") {
    Site site;
    fs::path missing = site.dir / "nosuch.ini";
    require_usage_error([&] { load_settings(Site::from(missing)); }, missing.string());
}

TEST_CASE("load_settings reads the file named by PGFORGE_SETTINGS", "[unit]") {
    Site site;
    fs::path file = site.write("prefix = /from/env/settings\n");
    ScopedEnv settings("PGFORGE_SETTINGS", file.string());
    Settings s = load_settings();
    CHECK(s.settings_file == file);
    CHECK(s.prefix == "/from/env/settings");
}

TEST_CASE("load_settings of a PGFORGE_SETTINGS file that does not exist is a usage error",
          "[unit]") {
    Site site;
    fs::path missing = site.dir / "nosuch.ini";
    ScopedEnv settings("PGFORGE_SETTINGS", missing.string());
    require_usage_error([] { load_settings(); }, missing.string());
}

TEST_CASE("load_settings rejects a port range that is empty or out of bounds", "[unit]") {
    Site site;
    const char* range = GENERATE("port_min = 7000\nport_max = 6000\n",   // reversed
                                 "port_min = 80\nport_max = 6000\n",     // privileged
                                 "port_min = 6000\nport_max = 70000\n",  // beyond 65535
                                 "port_min = 6000\n");  // above the default port_max
    INFO(range);
    fs::path file = site.write(std::string("[postgresql]\n") + range);
    require_usage_error([&] { load_settings(Site::from(file)); }, "port range");
}

TEST_CASE("load_settings rejects a value of the wrong type, naming the file", "[unit]") {
    Site site;
    fs::path file = site.write("[postgresql]\nport_min = many\n");
    require_usage_error([&] { load_settings(Site::from(file)); }, file.string());
}

TEST_CASE("load_settings lets the command line's prefix and run_dir beat the file", "[unit]") {
    Site site;
    SettingsOverrides o = Site::from(site.write(kSettingsFile));
    o.prefix = "/cli/prefix";
    o.run_dir = "/cli/run";
    Settings s = load_settings(o);
    CHECK(s.prefix == "/cli/prefix");
    CHECK(s.run_dir == "/cli/run");
    CHECK(s.port_min == 6000);  // the rest of the file still applies
}

TEST_CASE("load_settings lets PGFORGE_PREFIX beat the file's prefix", "[unit]") {
    Site site;
    fs::path file = site.write(kSettingsFile);
    ScopedEnv prefix("PGFORGE_PREFIX", std::string("/env/prefix"));
    Settings s = load_settings(Site::from(file));
    CHECK(s.prefix == "/env/prefix");
    CHECK(s.run_dir == "/x/r");
}

TEST_CASE("load_settings lets the command line's prefix beat PGFORGE_PREFIX", "[unit]") {
    Site site;
    SettingsOverrides o = Site::from(site.write(kSettingsFile));
    o.prefix = "/cli/prefix";
    ScopedEnv prefix("PGFORGE_PREFIX", std::string("/env/prefix"));
    CHECK(load_settings(o).prefix == "/cli/prefix");
}

TEST_CASE("load_settings makes a relative prefix absolute and normal", "[unit]") {
    Site site;
    SettingsOverrides o = Site::from(site.write(kSettingsFile));
    o.prefix = "relative/./dir/../prefix";
    Settings s = load_settings(o);
    CHECK(s.prefix == (fs::current_path() / "relative" / "prefix"));
}

TEST_CASE("assign_instance_paths puts an instance's files under <prefix>/<version>/<name>",
          "[unit]") {
    Settings s;
    s.prefix = "/x/p";
    s.run_dir = "/x/r";
    Instance i;
    i.name = "main";
    i.version = "15";
    pgforge::assign_instance_paths(s, i);
    CHECK(i.base_dir == "/x/p/15/main");
    CHECK(i.data_dir == "/x/p/15/main/data");
    CHECK(i.log_file == "/x/p/15/main/log/postgresql.log");
    CHECK(i.socket_dir == "/x/r/15-main");
    CHECK(i.wal_dir.empty());
}

TEST_CASE("Settings keeps the inventory and the instances' lock files under the prefix", "[unit]") {
    Settings s;
    s.prefix = "/x/p";
    CHECK(s.inventory_file() == "/x/p/inventory.sqlite");
    CHECK(s.lock_file("15", "main") == "/x/p/locks/15-main.lock");
}

TEST_CASE("the example settings file shipped in share/ is accepted as it is", "[unit][settings]") {
    pgforge::SettingsOverrides o;
    o.settings_file = std::filesystem::path(PGFORGE_TEST_DATA_DIR) / ".." / ".." / "share" /
                      "settings.ini.example";
    auto s = pgforge::load_settings(o);
    CHECK(s.port_min == 5432);
    CHECK(s.auth_host == "scram-sha-256");
}

TEST_CASE("load_settings refuses timeouts that are not more than 0 seconds", "[unit][settings]") {
    Site site;
    const char* key = GENERATE("start_timeout", "stop_timeout", "lock_timeout");
    const char* value = GENERATE("0", "-1", "nan");
    INFO(key << " = " << value);
    fs::path file = site.write(std::string("[postgresql]\n") + key + " = " + value + "\n");
    require_usage_error([&] { load_settings(Site::from(file)); },
                        std::string("[postgresql] ") + key + " must be a number of seconds > 0");
    fs::path hooks = site.write(std::string("[hooks]\ntimeout = ") + value + "\n");
    require_usage_error([&] { load_settings(Site::from(hooks)); }, "[hooks] timeout");
}

TEST_CASE("a settings file larger than 1 MiB is refused, naming it and the limit",
          "[unit][settings]") {
    Site site;
    fs::path file = site.write("# " + std::string(1 << 20, 'x') + "\n");
    require_usage_error([&] { load_settings(Site::from(file)); },
                        "settings file " + file.string() + " is larger than the limit of 1 MiB");
    require_usage_error([&] { load_settings(Site::from("/dev/zero")); },
                        "settings file /dev/zero is larger than the limit of 1 MiB");
}
