// std::filesystem paths for Boost.DLL (before any Boost.DLL header).
#define BOOST_DLL_USE_STD_FS
#include "engine/pipeline/plugin_host.hpp"

#include <dlfcn.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <boost/dll/shared_library.hpp>
#include <boost/program_options.hpp>
#include <cerrno>
#include <cstddef>
#include <cstring>
#include <map>
#include <set>
#include <sstream>

#include "engine/core/error.hpp"
#include "engine/core/input.hpp"
#include "engine/core/log.hpp"
#include "engine/pipeline/plugin_calls.hpp"

namespace fs = std::filesystem;
namespace po = boost::program_options;

namespace pgforge {

namespace {

std::string sdk_text(unsigned major, unsigned minor) {
    return std::to_string(major) + "." + std::to_string(minor);
}

const std::string engine_sdk = sdk_text(PGFORGE_SDK_VERSION_MAJOR, PGFORGE_SDK_VERSION_MINOR);

// The least size of the descriptor of SDK 1.MINOR: 1.0 ends before `host`, 1.1 has it (and
// `hooks` after it, read when struct_size holds it).
size_t descriptor_size(unsigned minor) {
    return minor == 0 ? offsetof(pgforge_plugin_descriptor, host)
                      : offsetof(pgforge_plugin_descriptor, host) + sizeof(void*);
}

bool valid_plugin_name(const std::string& name) {
    if (name.empty() || name.size() > 63) return false;
    return std::all_of(name.begin(), name.end(), [](char c) {
        return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || c == '-';
    });
}

std::optional<int> parse_priority(const std::string& text) {
    try {
        size_t used = 0;
        int priority = std::stoi(text, &used);
        if (used != text.size()) return std::nullopt;
        return priority;
    } catch (const std::logic_error&) {
        return std::nullopt;
    }
}

// Adds "after=a,b" or "before=c" to `order`; the reason when it is neither (`self`: the plugin's
// own name, which it may not name).
std::string add_constraint(HookOrder& order, const std::string& word, const std::string& self) {
    auto eq = word.find('=');
    std::string kind = word.substr(0, eq);
    if (eq == std::string::npos || (kind != "after" && kind != "before"))
        return "'" + word + "' is not after=PLUGIN,... or before=PLUGIN,...";
    auto& names = kind == "after" ? order.after : order.before;
    std::istringstream in(word.substr(eq + 1));
    std::string name;
    bool any = false;
    while (std::getline(in, name, ',')) {
        if (!valid_plugin_name(name))
            return "'" + word + "' names an invalid plugin '" + name + "'";
        if (name == self) return "'" + word + "' names the plugin itself";
        if (std::find(names.begin(), names.end(), name) == names.end()) names.push_back(name);
        any = true;
    }
    if (!any) return "'" + word + "' names no plugin";
    return {};
}

}  // namespace

std::string hook_text(int priority, const HookOrder& order) {
    std::string text = std::to_string(priority);
    auto list = [&](const char* kind, const std::vector<std::string>& names) {
        if (names.empty()) return;
        text += std::string(" ") + kind + "=";
        for (size_t i = 0; i < names.size(); ++i) text += (i ? "," : "") + names[i];
    };
    list("after", order.after);
    list("before", order.before);
    return text;
}

std::map<sdk::HookPoint, DeclaredHook> parse_declared_hooks(const std::string& text,
                                                            const std::string& where) {
    std::map<sdk::HookPoint, DeclaredHook> out;
    std::istringstream items(text);
    std::string item;
    while (items >> item) {
        auto bad = [&](const std::string& why) {
            return Error(Exit::failure,
                         where + ": its descriptor's hook '" + item + "' " + why +
                             " (the syntax is point:priority[:after=PLUGIN,...][:before=...])",
                         "rebuild the plugin with pgforge_add_plugin(... HOOKS ...)");
        };
        std::vector<std::string> parts;
        std::istringstream in(item);
        for (std::string part; std::getline(in, part, ':');) parts.push_back(part);
        auto point = parts.empty() ? std::nullopt : sdk::parse_hook_point(parts[0]);
        if (!point) throw bad("names no hook point");
        if (out.count(*point)) throw bad("is there twice");
        auto priority = parts.size() < 2 ? std::nullopt : parse_priority(parts[1]);
        if (!priority) throw bad("has no priority");
        DeclaredHook h{*priority, {}};
        for (size_t i = 2; i < parts.size(); ++i)
            if (auto why = add_constraint(h.order, parts[i], std::string()); !why.empty())
                throw bad(why);
        out[*point] = std::move(h);
    }
    return out;
}

std::string check_option_value(const std::string& type, const std::string& value,
                               std::string& normalized) {
    if (type == "integer") {
        size_t at = value.size() > 1 && (value[0] == '-' || value[0] == '+') ? 1 : 0;
        bool digits = at < value.size() && value.size() <= 20 &&
                      std::all_of(value.begin() + at, value.end(),
                                  [](char c) { return c >= '0' && c <= '9'; });
        try {
            if (!digits) throw std::invalid_argument(value);
            normalized = std::to_string(std::stoll(value));
        } catch (const std::logic_error&) {
            return "'" + value + "' is not an integer";
        }
        return {};
    }
    if (type == "boolean") {
        std::string v;
        for (char c : value) v += char(std::tolower(static_cast<unsigned char>(c)));
        if (v == "true" || v == "on" || v == "yes" || v == "1")
            normalized = "true";
        else if (v == "false" || v == "off" || v == "no" || v == "0")
            normalized = "false";
        else
            return "'" + value + "' is not a boolean (true or false)";
        return {};
    }
    if (type == "string") {
        if (value.empty()) return "the value is empty";
        if (value.size() > 1024) return "the value is longer than 1024 characters";
        if (std::any_of(value.begin(), value.end(),
                        [](char c) { return static_cast<unsigned char>(c) < 0x20 || c == 0x7f; }))
            return "the value has a control character";
        normalized = value;
        return {};
    }
    return "the type '" + type + "' is not string, integer or boolean";
}

const ManifestOption* PluginManifest::option(const std::string& key) const {
    for (const ManifestOption& o : options)
        if (o.key == key) return &o;
    return nullptr;
}

namespace {

std::string trim(const std::string& s) {
    auto b = s.find_first_not_of(" \t");
    if (b == std::string::npos) return {};
    return s.substr(b, s.find_last_not_of(" \t") - b + 1);
}

// "type[=default]: description", the value of a key of a manifest's [options].
ManifestOption parse_option(const std::string& key, const std::string& value,
                            const std::string& where) {
    const std::string hint = "write " + key +
                             " = TYPE[=DEFAULT]: DESCRIPTION (TYPE: string, integer or boolean), "
                             "or pgforge_add_plugin(... OPTIONS \"" +
                             key + "=TYPE[=DEFAULT]:DESCRIPTION\")";
    if (key.empty() || !(key[0] >= 'a' && key[0] <= 'z') ||
        !std::all_of(key.begin(), key.end(), [](char c) {
            return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_';
        }))
        throw Error(Exit::usage, where + ": option '" + key + "' is not a valid key",
                    "an option's key is a-z, 0-9 and _, starting with a letter");
    ManifestOption o;
    o.key = key;
    auto colon = value.find(':');
    std::string head = value.substr(0, colon);
    if (colon != std::string::npos) o.description = trim(value.substr(colon + 1));
    auto eq = head.find('=');
    o.type = trim(head.substr(0, eq));
    if (o.type != "string" && o.type != "integer" && o.type != "boolean")
        throw Error(Exit::usage, where + ": option " + key + ": unknown type '" + o.type + "'",
                    hint);
    if (eq != std::string::npos) {
        std::string normalized;
        std::string value_default = trim(head.substr(eq + 1));
        if (auto why = check_option_value(o.type, value_default, normalized); !why.empty())
            throw Error(Exit::usage, where + ": option " + key + ": its default: " + why, hint);
        o.default_value = normalized;
    }
    return o;
}

}  // namespace

PluginManifest read_plugin_manifest(const fs::path& file) {
    std::string why;
    auto opened = safe_fs::open_trusted(file, false, why);
    if (!opened)
        throw Error(Exit::failure, "plugin manifest refused: " + why,
                    "make it and every directory above it owned by root (or you) and not "
                    "writable by group or others");
    std::istringstream in(safe_fs::read_rest(opened->fd.get(), file, manifest_size_limit));
    PluginManifest m;
    m.file = file;
    std::string sdk, library;
    po::options_description d;
    // clang-format off
    d.add_options()
        ("name", po::value(&m.name))
        ("version", po::value(&m.version))
        ("summary", po::value(&m.summary))
        ("sdk", po::value(&sdk))
        ("library", po::value(&library));
    // clang-format on
    auto where = "plugin manifest " + file.string();
    try {
        auto parsed = po::parse_config_file(in, d, /*allow_unregistered=*/true);
        for (const auto& o : parsed.options) {
            if (!o.unregistered) continue;
            auto dot = o.string_key.find('.');
            std::string section =
                dot == std::string::npos ? std::string() : o.string_key.substr(0, dot);
            std::string key =
                dot == std::string::npos ? o.string_key : o.string_key.substr(dot + 1);
            std::string value = o.value.empty() ? std::string() : o.value.back();
            if (section == "hooks") {
                auto point = sdk::parse_hook_point(key);
                if (!point)
                    throw Error(Exit::usage, where + ": unknown hook point '" + key + "'",
                                "use pre_init, post_init, pre_configure, post_configure, "
                                "pre_start, post_start, pre_stop, post_stop, pre_drop, post_drop, "
                                "pre_promote, post_promote (SDK 1.3)");
                // "PRIORITY [after=NAME,...] [before=NAME,...]"
                std::istringstream words(value);
                std::string word;
                words >> word;
                auto priority = parse_priority(word);
                if (!priority)
                    throw Error(
                        Exit::usage,
                        where + ": priority of " + key + " must be a number, not '" + word + "'",
                        "write " + key + " = 100 (lower runs first)");
                m.priorities[*point] = *priority;
                HookOrder order;
                while (words >> word)
                    if (auto why = add_constraint(order, word, file.stem().string()); !why.empty())
                        throw Error(Exit::usage, where + ": " + key + ": " + why,
                                    "write " + key + " = " + word +
                                        " after=PLUGIN,... before=PLUGIN,... (plugin names)");
                if (!order.empty()) m.order[*point] = std::move(order);
            } else if (section == "commands") {
                m.families[key] = value;
            } else if (section == "steps") {
                if (key != "start" && key != "stop")
                    throw Error(Exit::usage, where + ": unknown step '" + key + "'",
                                "a plugin can provide the steps start and stop");
                m.steps[key] = value;
            } else if (section == "options") {
                if (m.option(key))
                    throw Error(Exit::usage, where + ": option " + key + " is there twice",
                                "declare each option once");
                m.options.push_back(parse_option(key, value, where));
            } else {
                throw Error(Exit::usage, where + ": unknown key '" + o.string_key + "'",
                            "keys are name, version, sdk, library, summary, [hooks], [commands], "
                            "[steps], [options]");
            }
        }
        po::variables_map vm;
        po::store(parsed, vm);
        po::notify(vm);
    } catch (const po::error& e) {
        throw Error(Exit::usage, where + ": " + e.what(), "fix the manifest");
    }
    if (!valid_plugin_name(m.name))
        throw Error(Exit::usage, where + ": name '" + m.name + "' is missing or invalid",
                    "a plugin name is 1 to 63 characters of a-z, 0-9, _ and -");
    if (file.stem() != m.name)
        throw Error(
            Exit::usage,
            where + ": declares plugin '" + m.name + "' but is named " + file.filename().string(),
            "name the manifest " + m.name + ".plugin");
    auto dot = sdk.find('.');
    try {
        if (dot == std::string::npos) throw std::invalid_argument(sdk);
        m.sdk_major = std::stoi(sdk.substr(0, dot));
        m.sdk_minor = std::stoi(sdk.substr(dot + 1));
    } catch (const std::logic_error&) {
        throw Error(Exit::usage, where + ": sdk '" + sdk + "' is not MAJOR.MINOR",
                    "write sdk = " + engine_sdk);
    }
    // A point is called only on plugins of the SDK that added it: a plugin built before it never
    // sees it, and a manifest of an older SDK naming it was not written for it.
    for (const auto& [point, _] : m.priorities)
        if (m.sdk_major == PGFORGE_SDK_VERSION_MAJOR && int(sdk::since_minor(point)) > m.sdk_minor)
            throw Error(Exit::usage,
                        where + ": hook point " + sdk::to_string(point) + " needs SDK " +
                            sdk_text(PGFORGE_SDK_VERSION_MAJOR, sdk::since_minor(point)) +
                            ", the manifest says sdk = " + sdk,
                        "build the plugin against SDK " +
                            sdk_text(PGFORGE_SDK_VERSION_MAJOR, sdk::since_minor(point)) +
                            " or later, and write sdk = " + engine_sdk);
    if (library.empty())
        throw Error(Exit::usage, where + ": 'library' is missing",
                    "write library = " + m.name + ".so");
    m.library = fs::path(library).is_absolute() ? fs::path(library) : file.parent_path() / library;
    if (m.version.empty()) m.version = "?";
    return m;
}

std::string check_descriptor(const pgforge_plugin_descriptor* d, const fs::path& file,
                             const std::string& expected_name) {
    const std::string where = "plugin " + file.string();
    if (!d) return where + ": its descriptor is null";
    // The first three fields are there in every version; read them before anything else.
    if (d->sdk_major != PGFORGE_SDK_VERSION_MAJOR)
        return where + " was built for pgforge SDK " + sdk_text(d->sdk_major, d->sdk_minor) +
               ", this pgforge has SDK " + engine_sdk + " (the major versions must be equal)";
    if (d->sdk_minor > PGFORGE_SDK_VERSION_MINOR)
        return where + " needs pgforge SDK " + sdk_text(d->sdk_major, d->sdk_minor) +
               ", newer than this pgforge's SDK " + engine_sdk;
    // A plugin's descriptor has the fields of the SDK minor version it was built with.
    const size_t needed = descriptor_size(d->sdk_minor);
    if (d->struct_size < needed)
        return where + ": its descriptor is " + std::to_string(d->struct_size) + " bytes, SDK " +
               sdk_text(d->sdk_major, d->sdk_minor) + " needs at least " + std::to_string(needed);
    if (!d->name || !d->version || !d->create || !d->destroy)
        return where + ": its descriptor lacks a name, version, create or destroy";
    if (expected_name != d->name)
        return where + " calls itself '" + std::string(d->name) + "' but its manifest says '" +
               expected_name + "'";
    return {};
}

std::string check_manifest_agrees(const pgforge_plugin_descriptor* d, const PluginManifest& m) {
    const std::string library = "plugin " + m.name + ": its library " + m.library.string();
    const std::string manifest = ", its manifest " + m.file.string() + " says '";
    if (m.version != "?" && d->version != m.version)
        return library + " says version '" + d->version + "'" + manifest + m.version + "'";
    // The hooks field is in descriptors of SDK 1.1 that are long enough for it; absent or null:
    // the manifest alone says.
    if (d->struct_size < offsetof(pgforge_plugin_descriptor, hooks) + sizeof(d->hooks) || !d->hooks)
        return {};
    auto declared = parse_declared_hooks(d->hooks, "plugin " + m.library.string());
    for (sdk::HookPoint point : sdk::all_hook_points) {
        auto in_library = declared.find(point);
        auto in_manifest = m.priorities.find(point);
        std::string said_library = "(not handled)", said_manifest = "(not handled)";
        if (in_library != declared.end())
            said_library = hook_text(in_library->second.priority, in_library->second.order);
        if (in_manifest != m.priorities.end()) {
            auto order = m.order.find(point);
            said_manifest = hook_text(in_manifest->second,
                                      order == m.order.end() ? HookOrder{} : order->second);
        }
        if (said_library != said_manifest)
            return library + " says hook " + sdk::to_string(point) + " '" + said_library + "'" +
                   manifest + said_manifest + "'";
    }
    return {};
}

struct LoadedPlugin::Library {
    boost::dll::shared_library library;
};

namespace {

// The name the dynamic loader gets for the library open at `fd`: /proc/self/fd/N, which opens
// that very file (whatever its path names by now). The loader knows objects by the names they
// were opened with and hands back an object already loaded under the same name without opening
// anything, and descriptor numbers are used again (for another library while the first one stays
// loaded, or cannot be unloaded). So each load gets a name never used before in this process:
// the count of loads so far, in binary, written as "./" (1) and "/" (0) after "fd/", which the
// kernel reads as the same directory: /proc/self/fd/5, /proc/self/fd/./5, /proc/self/fd/.//5...
std::string loader_name(int fd) {
    static std::atomic<unsigned long long> loads{0};
    unsigned long long k = loads++;
    std::string bits;
    for (; k > 0; k >>= 1) bits.insert(0, (k & 1) ? "./" : "/");
    return "/proc/self/fd/" + bits + std::to_string(fd);
}

// The loader's message with the descriptor's name replaced by the library's real path.
std::string with_real_path(std::string text, const std::string& name, const fs::path& real) {
    for (size_t at = text.find(name); at != std::string::npos;
         at = text.find(name, at + real.native().size()))
        text.replace(at, name.size(), real.native());
    return text;
}

}  // namespace

LoadedPlugin::~LoadedPlugin() {
    // The object goes before its library.
    if (object_ && descriptor_) descriptor_->destroy(object_);
}

std::string LoadedPlugin::version() const {
    return descriptor_ && descriptor_->version ? descriptor_->version : manifest_.version;
}

std::unique_ptr<LoadedPlugin> LoadedPlugin::load(const PluginManifest& m) {
    // The manifest (and with it the plugin directory) and the library are each opened once,
    // over their whole path; the library is loaded through its descriptor, so the file checked
    // is the file loaded, whatever is renamed in between.
    std::string why;
    std::optional<safe_fs::TrustedFile> library;
    if (!safe_fs::open_trusted(m.file, false, why) ||
        !(library = safe_fs::open_trusted(m.library, false, why)))
        throw Error(Exit::failure, "plugin " + m.name + " refused: " + why,
                    "make it and every directory above it owned by root (or you) and not "
                    "writable by group or others");
    if (m.sdk_major != PGFORGE_SDK_VERSION_MAJOR || m.sdk_minor > PGFORGE_SDK_VERSION_MINOR)
        throw Error(Exit::failure,
                    "plugin " + m.name + " (" + m.file.string() + ") declares SDK " +
                        sdk_text(m.sdk_major, m.sdk_minor) + ", this pgforge has SDK " + engine_sdk,
                    "rebuild the plugin against this pgforge's SDK");
    std::unique_ptr<LoadedPlugin> p(new LoadedPlugin());
    p->manifest_ = m;
    p->library_ = std::make_unique<Library>();
    std::error_code ec;
    // The descriptor stays open until dlopen has mapped the file (library goes out of scope
    // after this call).
    const std::string name = loader_name(library->fd.get());
    p->library_->library.load(
        fs::path(name), boost::dll::load_mode::rtld_local | boost::dll::load_mode::rtld_now, ec);
    if (ec) {
        const char* said = dlerror();
        throw Error(Exit::failure,
                    "plugin " + m.name + ": cannot load " + m.library.string() + ": " +
                        (said ? with_real_path(said, name, library->path) : ec.message()),
                    "check the library exists and was built against this pgforge's SDK");
    }
    const char* symbol = BOOST_PP_STRINGIZE(PGFORGE_DESCRIPTOR_SYMBOL);
    if (!p->library_->library.has(symbol))
        throw Error(
            Exit::failure,
            "plugin " + m.library.string() + " exports no " + symbol + " (is it a pgforge plugin?)",
            "export the descriptor with PGFORGE_PLUGIN(Class, \"name\", \"version\")");
    p->descriptor_ = &p->library_->library.get_alias<const pgforge_plugin_descriptor>(symbol);
    if (auto why = check_descriptor(p->descriptor_, m.library, m.name); !why.empty())
        throw Error(Exit::failure, why, "rebuild the plugin against this pgforge's SDK");
    if (auto why = check_manifest_agrees(p->descriptor_, m); !why.empty())
        throw Error(Exit::failure, why,
                    "install the manifest built with this library: pgforge_add_plugin() "
                    "generates both from one declaration (never edit an installed manifest)");
    // A 1.1 plugin gets the host table (its sdk::find) before anything of it runs; a 1.0
    // descriptor ends before the field.
    if (p->descriptor_->sdk_minor >= 1 && p->descriptor_->host)
        *p->descriptor_->host = &engine_host();
    void* object = p->descriptor_->create();
    if (!object)
        throw Error(Exit::failure, "plugin " + m.name + ": create() failed",
                    "see the plugin's documentation");
    p->object_ = static_cast<sdk::Plugin*>(object);
    return p;
}

namespace {

std::string what_of(std::exception_ptr e) {
    try {
        std::rethrow_exception(std::move(e));
    } catch (const std::exception& x) {
        return x.what();
    } catch (...) {
        return "an unknown exception";
    }
}

// Calls into the plugin; a throw becomes what `on_throw` makes of `why` ("threw an exception:
// WHAT"), said in one line naming the plugin.
template <class Call, class OnThrow>
auto wrapped(const std::string& name, Call&& call, OnThrow&& on_throw) -> decltype(call()) {
    try {
        return call();
    } catch (...) {
        std::string why = "threw an exception: " + what_of(std::current_exception());
        log::debug("plugin " + name + " " + why);
        return on_throw(why);
    }
}

}  // namespace

std::string LoadedPlugin::check_commands() {
    for (const auto& c : commands())
        if (!manifest_.families.count(c.family)) {
            std::string listed;
            for (const auto& [family, summary] : manifest_.families)
                listed += (listed.empty() ? "" : ", ") + family;
            return "plugin " + name() + ": its library adds command '" + c.family + " " + c.verb +
                   "', its manifest " + manifest_.file.string() +
                   " says its command families are '" + listed + "'";
        }
    return {};
}

sdk::Result LoadedPlugin::setup(sdk::Context& ctx) {
    return wrapped(
        name(), [&] { return object_->setup(ctx); },
        [](const std::string& why) { return sdk::Result::refuse("setup() " + why); });
}

sdk::Result LoadedPlugin::on_hook(sdk::HookContext& ctx) {
    return wrapped(
        name(), [&] { return object_->on_hook(ctx); },
        [](const std::string& why) { return sdk::Result::refuse(why); });
}

std::vector<sdk::Command> LoadedPlugin::commands() {
    return wrapped(
        name(), [&] { return object_->commands(); },
        [&](const std::string& why) {
            log::warn("plugin " + name() + ": commands() " + why + " (its commands are left out)");
            return std::vector<sdk::Command>{};
        });
}

std::vector<sdk::Flag> LoadedPlugin::flags() {
    return wrapped(
        name(), [&] { return object_->flags(); },
        [&](const std::string& why) {
            log::warn("plugin " + name() + ": flags() " + why + " (its flags are left out)");
            return std::vector<sdk::Flag>{};
        });
}

int LoadedPlugin::run_command(const sdk::Command& command, sdk::CommandContext& ctx) {
    return wrapped(
        name(), [&] { return object_->run_command(command, ctx); },
        [&](const std::string& why) -> int {
            throw Error(
                Exit::failure,
                "plugin " + name() + ": command " + command.family + " " + command.verb + " " + why,
                "this is a fault of plugin " + name() + ": report it to its authors");
        });
}

std::vector<sdk::Field> LoadedPlugin::describe(sdk::Context& ctx) {
    return wrapped(
        name(), [&] { return object_->describe(ctx); },
        [&](const std::string& why) {
            log::warn("plugin " + name() + ": describe() " + why);
            return std::vector<sdk::Field>{{"error", "describe() " + why}};
        });
}

bool PluginRecord::hooks_at(sdk::HookPoint point) const {
    if (manifest.library.empty()) return true;  // the manifest was not read
    if (manifest.steps.count("start") &&
        (point == sdk::HookPoint::pre_start || point == sdk::HookPoint::post_start))
        return true;
    if (manifest.steps.count("stop") &&
        (point == sdk::HookPoint::pre_stop || point == sdk::HookPoint::post_stop))
        return true;
    return manifest.priorities.count(point) > 0;
}

PluginHost::PluginHost(const Settings& settings) : settings_(settings) {
    std::set<std::string> seen;
    std::set<std::string> enabled(settings.enabled_plugins.begin(), settings.enabled_plugins.end());
    for (const auto& r : settings.required_plugins) enabled.insert(r);
    for (const fs::path& dir : settings.plugin_search_path()) {
        std::error_code ec;
        std::vector<fs::path> manifests;
        for (const auto& e : fs::directory_iterator(dir, ec))
            if (e.path().extension() == ".plugin") manifests.push_back(e.path());
        std::sort(manifests.begin(), manifests.end());
        for (const auto& file : manifests) {
            PluginRecord r;
            try {
                r.manifest = read_plugin_manifest(file);
            } catch (const Error& e) {
                r.manifest.file = file;
                r.manifest.name = file.stem().string();
                r.error = e.what();
            }
            if (!seen.insert(r.manifest.name).second) continue;  // the first on the path wins
            r.enabled = enabled.count(r.manifest.name) > 0;
            records_.push_back(std::move(r));
        }
    }
}

PluginHost::~PluginHost() {
    // Objects first (each LoadedPlugin destroys its object, then its library goes).
    plugins_.clear();
}

void PluginHost::load(const std::function<sdk::Result(LoadedPlugin&)>& setup) {
    if (loaded_) return;
    loaded_ = true;
    std::set<std::string> required(settings_.required_plugins.begin(),
                                   settings_.required_plugins.end());
    for (const auto& name : required)
        if (!record(name))
            throw Error(Exit::failure, "required plugin " + name + " is not installed",
                        "install it in a directory of the plugin path ([plugins] path, "
                        "PGFORGE_PLUGIN_PATH), or drop --require-plugin " +
                            name);
    std::set<std::string> skipped(settings_.skipped_plugins.begin(),
                                  settings_.skipped_plugins.end());
    // One provider per step: a second enabled plugin that provides it is broken, naming both.
    std::map<std::string, std::string> provider;
    for (auto& r : records_) {
        if (!r.enabled || skipped.count(r.manifest.name) || !r.error.empty()) continue;
        for (const auto& [step, summary] : r.manifest.steps) {
            auto [it, first] = provider.emplace(step, r.manifest.name);
            if (!first && r.error.empty())
                r.error = "plugins " + it->second + " and " + r.manifest.name +
                          " both provide the " + step + " step: enable one of them";
        }
    }
    for (auto& r : records_) {
        if (!r.enabled) continue;
        if (skipped.count(r.manifest.name) && !required.count(r.manifest.name)) {
            r.skipped = true;
            log::warn("plugin " + r.manifest.name +
                      " is skipped (--skip-plugin): its hooks do not run");
            continue;
        }
        try {
            if (!r.error.empty()) throw Error(Exit::failure, r.error);
            auto p = LoadedPlugin::load(r.manifest);
            sdk::Result ok = setup(*p);
            if (ok.refused())
                throw Error(Exit::failure, "plugin " + r.manifest.name + ": " + ok.message,
                            "fix its section [" + r.manifest.name + "] in the settings file");
            if (auto why = p->check_commands(); !why.empty())
                throw Error(Exit::failure, why,
                            "declare the family in pgforge_add_plugin(... COMMANDS family=summary)"
                            " (or the manifest's [commands] of a 1.0 plugin)");
            r.loaded = true;
            plugins_.push_back(std::move(p));
        } catch (const Error& e) {
            r.error = e.what();
            if (required.count(r.manifest.name))
                throw Error(Exit::failure,
                            "required plugin " + r.manifest.name + " failed to load: " + e.what(),
                            e.hint());
            log::warn(std::string(e.what()) + " (broken: operations that run its hooks fail; " +
                      "--skip-plugin " + r.manifest.name + " goes on without it)");
        }
    }
}

void PluginHost::check_point(sdk::HookPoint point) const {
    for (const auto& r : records_)
        if (r.broken() && r.hooks_at(point))
            throw Error(Exit::failure,
                        "plugin " + r.manifest.name + " is enabled but broken, and would run at " +
                            sdk::to_string(point) + ": " + r.error,
                        "fix the plugin (pgforge plugin show " + r.manifest.name +
                            "), or go on without it: --skip-plugin " + r.manifest.name);
}

std::vector<const PluginRecord*> PluginHost::skipped_at(sdk::HookPoint point) const {
    std::vector<const PluginRecord*> out;
    for (const auto& r : records_)
        if (r.skipped && r.hooks_at(point)) out.push_back(&r);
    return out;
}

LoadedPlugin* PluginHost::provider_of(const std::string& step) const {
    for (const auto& p : plugins_)
        if (p->manifest().steps.count(step)) return p.get();
    return nullptr;
}

std::vector<LoadedPlugin*> PluginHost::loaded() const {
    std::vector<LoadedPlugin*> out;
    for (const auto& p : plugins_) out.push_back(p.get());
    return out;
}

LoadedPlugin* PluginHost::find(const std::string& name) const {
    for (const auto& p : plugins_)
        if (p->name() == name) return p.get();
    return nullptr;
}

const PluginRecord* PluginHost::record(const std::string& name) const {
    for (const auto& r : records_)
        if (r.manifest.name == name) return &r;
    return nullptr;
}

}  // namespace pgforge
