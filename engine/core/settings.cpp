#include "engine/core/settings.hpp"

#include <pwd.h>
#include <unistd.h>

#include <boost/program_options.hpp>
#include <cstdlib>
#include <sstream>

#include "engine/core/error.hpp"
#include "engine/core/input.hpp"
#include "engine/core/text.hpp"

namespace fs = std::filesystem;
namespace po = boost::program_options;

namespace pgforge {
namespace {

std::string env(const char* name) {
    const char* value = std::getenv(name);
    return value ? value : "";
}

fs::path home_dir() {
    if (auto h = env("HOME"); !h.empty()) return h;
    if (const passwd* pw = getpwuid(getuid())) return pw->pw_dir;
    return "/";
}

fs::path default_share_dir() {
    if (auto dir = env("PGFORGE_SHARE_DIR"); !dir.empty()) return dir;
    // An installed pgforge finds its share directory beside its bin directory.
    std::error_code ec;
    fs::path exe = fs::read_symlink("/proc/self/exe", ec);
    if (!ec) {
        fs::path beside = exe.parent_path().parent_path() / "share" / "pgforge";
        if (fs::exists(beside / "postgresql.conf", ec)) return beside;
    }
    if (fs::exists(fs::path(PGFORGE_SOURCE_SHARE_DIR) / "postgresql.conf", ec))
        return PGFORGE_SOURCE_SHARE_DIR;
    return PGFORGE_INSTALLED_SHARE_DIR;
}

// The plugins installed with pgforge (lib/pgforge/plugins beside bin/), or, running from the
// build tree, the plugins built there.
fs::path builtin_plugin_dir() {
    std::error_code ec;
    fs::path exe = fs::read_symlink("/proc/self/exe", ec);
    if (!ec) {
        fs::path beside = exe.parent_path().parent_path() / PGFORGE_PLUGIN_RELDIR;
        if (fs::is_directory(beside, ec)) return beside;
    }
    if (fs::is_directory(PGFORGE_BUILD_PLUGIN_DIR, ec)) return PGFORGE_BUILD_PLUGIN_DIR;
    return PGFORGE_INSTALLED_PLUGIN_DIR;
}

void read_settings_file(const fs::path& file, Settings& s) {
    std::istringstream in(
        read_bounded(file.string(), settings_size_limit, "settings file", Exit::usage));
    std::string prefix, run_dir;
    std::vector<std::string> bindirs, plugin_dirs, enabled, hook_dirs;
    po::options_description d;
    // clang-format off
    d.add_options()
        ("prefix", po::value(&prefix))
        ("run_dir", po::value(&run_dir))
        ("postgresql.version", po::value(&s.postgres_version))
        ("postgresql.bindir", po::value(&bindirs)->composing())
        ("postgresql.owner", po::value(&s.owner))
        ("postgresql.superuser", po::value(&s.superuser))
        ("postgresql.auth_local", po::value(&s.auth_local))
        ("postgresql.auth_host", po::value(&s.auth_host))
        ("postgresql.listen_addresses", po::value(&s.listen_addresses))
        ("postgresql.port_min", po::value(&s.port_min))
        ("postgresql.port_max", po::value(&s.port_max))
        ("postgresql.start_timeout", po::value(&s.start_timeout))
        ("postgresql.stop_timeout", po::value(&s.stop_timeout))
        ("postgresql.lock_timeout", po::value(&s.lock_timeout))
        ("plugins.path", po::value(&plugin_dirs)->composing())
        ("plugins.enabled", po::value(&enabled)->composing())
        ("hooks.dir", po::value(&hook_dirs)->composing())
        ("hooks.timeout", po::value(&s.hook_timeout))
        ("hooks.priority", po::value(&s.hook_priority));
    // clang-format on
    try {
        po::variables_map vm;
        // Sections of plugins are theirs to read: unknown keys are allowed here.
        auto parsed = po::parse_config_file(in, d, /*allow_unregistered=*/true);
        for (const auto& o : parsed.options) {
            auto dot = o.string_key.find('.');
            if (!o.unregistered || dot == std::string::npos) continue;
            std::string section = o.string_key.substr(0, dot);
            if (section == "postgresql" || section == "plugins" || section == "hooks")
                throw Error(
                    Exit::usage,
                    "settings file " + file.string() + ": unknown key '" + o.string_key + "'",
                    "see share/settings.ini.example for the keys of [" + section + "]");
            s.sections[section][o.string_key.substr(dot + 1)] =
                o.value.empty() ? std::string() : o.value.back();
        }
        po::store(parsed, vm);
        po::notify(vm);
    } catch (const po::error& e) {
        throw Error(Exit::usage, "settings file " + file.string() + ": " + e.what(),
                    "fix the value in the file");
    }
    if (!prefix.empty()) s.prefix = prefix;
    if (!run_dir.empty()) s.run_dir = run_dir;
    for (const auto& b : bindirs) s.bindirs.emplace_back(b);
    for (const auto& p : plugin_dirs) s.plugin_dirs.emplace_back(p);
    for (const auto& h : hook_dirs) s.hook_dirs.emplace_back(h);
    // "enabled = a, b" or one name per line.
    for (const auto& line : enabled)
        for (auto& name : split_list(line, ", \t")) s.enabled_plugins.push_back(std::move(name));
    const std::string where = "settings file " + file.string() + ": ";
    check_timeout(s.start_timeout, where + "[postgresql] start_timeout");
    check_timeout(s.stop_timeout, where + "[postgresql] stop_timeout");
    check_timeout(s.lock_timeout, where + "[postgresql] lock_timeout");
    check_timeout(s.hook_timeout, where + "[hooks] timeout");
    if (s.port_min < 1024 || s.port_max > 65535 || s.port_min > s.port_max)
        throw Error(Exit::usage,
                    "settings file " + file.string() + ": port range " +
                        std::to_string(s.port_min) + "-" + std::to_string(s.port_max) +
                        " is invalid",
                    "use 1024 <= port_min <= port_max <= 65535");
}

}  // namespace

bool running_as_root() {
    return geteuid() == 0;
}

std::string current_user_name() {
    if (const passwd* pw = getpwuid(geteuid())) return pw->pw_name;
    return std::to_string(geteuid());
}

Settings load_settings(const SettingsOverrides& overrides) {
    Settings s;
    const bool root = running_as_root();
    if (root) {
        s.prefix = "/var/lib/pgforge";
        s.run_dir = "/run/pgforge";
        s.config_dir = "/etc/pgforge";
        s.owner = "postgres";
    } else {
        auto data_home = env("XDG_DATA_HOME");
        s.prefix =
            (data_home.empty() ? home_dir() / ".local" / "share" : fs::path(data_home)) / "pgforge";
        auto runtime = env("XDG_RUNTIME_DIR");
        s.run_dir = runtime.empty() ? fs::path("/tmp") / ("pgforge-" + std::to_string(getuid()))
                                    : fs::path(runtime) / "pgforge";
        auto config_home = env("XDG_CONFIG_HOME");
        s.config_dir =
            (config_home.empty() ? home_dir() / ".config" : fs::path(config_home)) / "pgforge";
        s.owner = current_user_name();
    }
    s.share_dir = default_share_dir();

    fs::path file;
    bool required = true;
    if (overrides.settings_file) {
        file = *overrides.settings_file;
    } else if (auto e = env("PGFORGE_SETTINGS"); !e.empty()) {
        file = e;
    } else {
        file = s.config_dir / "settings.ini";
        required = false;
    }
    std::error_code ec;
    if (required || fs::exists(file, ec)) {
        read_settings_file(file, s);
        s.settings_file = file;
    }

    if (auto e = env("PGFORGE_PREFIX"); !e.empty()) s.prefix = e;
    if (overrides.prefix) s.prefix = *overrides.prefix;
    if (overrides.run_dir) s.run_dir = *overrides.run_dir;
    s.required_plugins = overrides.required_plugins;
    s.skipped_plugins = overrides.skipped_plugins;
    s.prefix = fs::absolute(s.prefix).lexically_normal();
    s.run_dir = fs::absolute(s.run_dir).lexically_normal();
    return s;
}

fs::path Settings::lock_file(const std::string& version, const std::string& name) const {
    return prefix / "locks" / (version + "-" + name + ".lock");
}

std::vector<fs::path> Settings::plugin_search_path() const {
    std::vector<fs::path> dirs = plugin_dirs;
    for (const auto& dir : split_list(env("PGFORGE_PLUGIN_PATH"), ":")) dirs.emplace_back(dir);
    dirs.push_back(builtin_plugin_dir());
    return dirs;
}

std::vector<fs::path> Settings::hook_search_path() const {
    std::vector<fs::path> dirs = {config_dir / "hooks"};
    dirs.insert(dirs.end(), hook_dirs.begin(), hook_dirs.end());
    return dirs;
}

fs::path Settings::find_template(const std::string& file) const {
    std::error_code ec;
    fs::path site = config_dir / "templates" / file;
    if (fs::exists(site, ec)) return site;
    return share_dir / file;
}

void assign_instance_paths(const Settings& s, Instance& i) {
    i.base_dir = s.prefix / i.version / i.name;
    i.data_dir = i.base_dir / "data";
    i.log_file = i.base_dir / "log" / "postgresql.log";
    i.socket_dir = s.run_dir / (i.version + "-" + i.name);
}

void check_instance_name(const std::string& name) {
    if (name.empty() || name.size() > 63)
        throw Error(Exit::usage, "instance name '" + name + "' must be 1 to 63 characters long",
                    "choose a name such as 'main' or 'app_1'");
    for (char c : name) {
        if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_'))
            throw Error(Exit::usage, "instance name '" + name + "' may only contain a-z, 0-9 and _",
                        "choose a name such as 'main' or 'app_1'");
    }
}

InstanceRef parse_instance_ref(const std::string& text) {
    InstanceRef ref;
    auto slash = text.find('/');
    if (slash == std::string::npos) {
        ref.name = text;
    } else {
        ref.version = text.substr(0, slash);
        ref.name = text.substr(slash + 1);
        bool digits = !ref.version.empty() && ref.version.size() <= 3;
        for (char c : ref.version) digits = digits && c >= '0' && c <= '9';
        if (!digits)
            throw Error(
                Exit::usage,
                "instance '" + text + "': '" + ref.version + "' is not a PostgreSQL major version",
                "write NAME or VERSION/NAME, as in 15/main");
    }
    check_instance_name(ref.name);
    return ref;
}

}  // namespace pgforge
