// The pgforge plugin SDK: all a plugin includes.
//
// The boundary. A plugin is a shared library that exports one plain C descriptor
// (descriptor.h) under PGFORGE_DESCRIPTOR_SYMBOL; the engine checks it (same major version,
// minor version not newer than the engine's, struct size) before calling anything else. Behind
// the descriptor are the C++ classes below: a same-toolchain contract (GCC or Clang with
// libstdc++, C++20), like every C++ plugin ABI.
//
// The ABI rule. A plugin built against SDK 1.x loads and runs unchanged, source and binary, in
// every engine of SDK 1.y with y >= x. So, within a major version:
//   - The 1.0 classes keep their 1.0 layout forever: Instance, Context, HookContext,
//     CommandContext and Configuration (the engine implements them), Plugin (a plugin implements
//     it), and the structs passed across (Result, RunOptions, RunResult, QueryResult, Outcome,
//     Command, Flag, Field). Nothing is added to them, removed, reordered or retyped: HookContext
//     and CommandContext derive from Context, so even a method appended to Context would move
//     their slots.
//   - What the engine offers later arrives as a new interface: a class with
//         static constexpr const char* interface_name = "pgforge.<something>";
//         static constexpr unsigned interface_version = 1;
//     and only pure virtual methods, frozen once released (a change is a new name or a new
//     version; the engine goes on offering the old one). A plugin reaches one with
//     find<T>(object) from the context or configuration it was handed: nullptr when the engine
//     running it does not offer T there (an older engine, or T belongs elsewhere), so a plugin
//     that can do without T checks and does without.
//   - The C descriptor and the engine's host table (descriptor.h) only grow at their end,
//     struct_size telling what each side knows.
//   - A minor version adds interfaces (1.1: find<T> and EngineInfo; 1.2: InstanceOptions in
//     pgforge/options.hpp) or hook points at the end of HookPoint (1.3: pre_promote,
//     post_promote), whose values never move. tests/abi keeps a frozen copy of the headers of
//     each released minor version and builds a plugin against each: a layout change fails a
//     test.
//
// No exception crosses the boundary. The engine's methods return values and never throw; the
// engine wraps every call into a plugin in a catch-all, and a throw becomes a refusal that
// names the plugin.
//
// Lifetime. The engine loads the library (RTLD_LOCAL | RTLD_NOW), hands it the host table,
// creates the plugin object once, calls setup(), then hook handlers and commands, destroys the
// object, and unloads the library only at the end of the run. References handed to a call are
// valid during that call only, and so is what find<T> returns from them.
#pragma once

#include <boost/config.hpp>
#include <boost/dll/alias.hpp>
#include <cstddef>
#include <filesystem>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <type_traits>
#include <vector>

#include "pgforge/descriptor.h"

namespace pgforge::sdk {

// ---------------------------------------------------------------- hook points

// Where a handler runs. Each engine step of an operation has a point before and after it:
//   instance create: pre_init [initdb] post_init, pre_configure [write files] post_configure,
//                    pre_start [start] post_start
//   configure (conf set, hba add, ...): pre_configure [write files] post_configure; with
//                    --restart, then pre_stop [stop] post_stop pre_start [start] post_start
//   start --foreground: pre_start [the server replaces pgforge] (no post_start)
//   start, stop, restart, drop: pre_start/post_start, pre_stop/post_stop, ...
//   (restart is stop then start; reload is a configure with no change of its own: the
//   contributions are applied again, then the server re-reads its files)
//   promote (SDK 1.3): pre_promote [pg_promote, until writable] post_promote
//   rebuild (SDK 1.3 engines): pre_stop [stop] post_stop pre_init [pg_rewind or base backup]
//                    post_init [standby settings] pre_start [start] post_start
// New points are appended (an older point's value never changes) and belong to the SDK minor
// version that added them (since_minor): a plugin declaring one is a plugin of that version, and
// a plugin built before it is never called there.
enum class HookPoint {
    pre_init,
    post_init,
    pre_configure,
    post_configure,
    pre_start,
    post_start,
    pre_stop,
    post_stop,
    pre_drop,
    post_drop,
    // SDK 1.3
    pre_promote,
    post_promote,
};

inline constexpr HookPoint all_hook_points[] = {
    HookPoint::pre_init,       HookPoint::post_init,   HookPoint::pre_configure,
    HookPoint::post_configure, HookPoint::pre_start,   HookPoint::post_start,
    HookPoint::pre_stop,       HookPoint::post_stop,   HookPoint::pre_drop,
    HookPoint::post_drop,      HookPoint::pre_promote, HookPoint::post_promote};

constexpr const char* to_string(HookPoint p) {
    switch (p) {
        case HookPoint::pre_init:
            return "pre_init";
        case HookPoint::post_init:
            return "post_init";
        case HookPoint::pre_configure:
            return "pre_configure";
        case HookPoint::post_configure:
            return "post_configure";
        case HookPoint::pre_start:
            return "pre_start";
        case HookPoint::post_start:
            return "post_start";
        case HookPoint::pre_stop:
            return "pre_stop";
        case HookPoint::post_stop:
            return "post_stop";
        case HookPoint::pre_drop:
            return "pre_drop";
        case HookPoint::post_drop:
            return "post_drop";
        case HookPoint::pre_promote:
            return "pre_promote";
        case HookPoint::post_promote:
            return "post_promote";
    }
    return "?";
}

// The SDK minor version that added `p`: a plugin (its manifest's `sdk`) older than that is never
// called at `p`, and a manifest of an older SDK that names it is refused.
constexpr unsigned since_minor(HookPoint p) {
    return p == HookPoint::pre_promote || p == HookPoint::post_promote ? 3 : 0;
}

inline std::optional<HookPoint> parse_hook_point(std::string_view name) {
    for (HookPoint p : all_hook_points)
        if (name == to_string(p)) return p;
    return std::nullopt;
}

inline bool is_pre(HookPoint p) {
    return std::string_view(to_string(p)).substr(0, 4) == "pre_";
}

// Whether `hooks`, in the syntax of pgforge_add_plugin(HOOKS ...) ("pre_drop:900
// post_start:950:after=backup"), lists `point`.
constexpr bool hooks_list(std::string_view hooks, HookPoint point) {
    const std::string_view name = to_string(point);
    while (!hooks.empty()) {
        auto space = hooks.find(' ');
        std::string_view item = hooks.substr(0, space);
        if (item.substr(0, item.find(':')) == name) return true;
        hooks = space == std::string_view::npos ? std::string_view() : hooks.substr(space + 1);
    }
    return false;
}

#ifdef PGFORGE_PLUGIN_HOOKS
// The hook points of the plugin as pgforge_add_plugin(HOOKS ...) declares them: the manifest is
// generated from the same list, and the engine calls on_hook at these points only.
inline constexpr std::string_view declared_hooks = PGFORGE_PLUGIN_HOOKS;
inline constexpr const char* descriptor_hooks = PGFORGE_PLUGIN_HOOKS;
#else
inline constexpr const char* descriptor_hooks = nullptr;
#endif

template <HookPoint>
inline constexpr bool built_without_declaration = false;

// A hook point the plugin handles, checked at compile time against its declaration: dropping
// the point from pgforge_add_plugin(HOOKS ...) while the code still handles it fails the build.
//     switch (ctx.point()) { case declared<HookPoint::pre_drop>(): ... }
template <HookPoint point>
consteval HookPoint declared() {
#ifdef PGFORGE_PLUGIN_HOOKS
    static_assert(hooks_list(declared_hooks, point),
                  "this hook point is not in the plugin's pgforge_add_plugin(HOOKS ...): the "
                  "engine would never call it there");
#else
    static_assert(built_without_declaration<point>,
                  "declared<>() needs the plugin built by pgforge_add_plugin(... VERSION ... "
                  "HOOKS ...)");
#endif
    return point;
}

// ---------------------------------------------------------------- verdicts

enum class Verdict {
    // The pipeline goes on: the next handler at this point runs, and after the last one, the
    // step (at a pre_* point) or the rest of the operation (at a post_* point).
    proceed,
    // At a pre_* point: no later handler at this point runs, the step does not run, what this
    // operation already made is undone, and the operation fails with this plugin's name and
    // message. At a post_* point: the remaining handlers at this point still run, then the
    // operation fails with this plugin's name and message, and a create undoes what it made.
    refuse,
};

struct Result {
    Verdict verdict = Verdict::proceed;
    std::string message;  // why, for a refusal: shown to the user and journaled

    static Result proceed() { return {}; }
    static Result refuse(std::string why) { return {Verdict::refuse, std::move(why)}; }
    bool refused() const { return verdict == Verdict::refuse; }
};

// ---------------------------------------------------------------- what the engine offers

// A read-only view of one instance.
class Instance {
  public:
    virtual std::string name() const = 0;                // "main"
    virtual std::string version() const = 0;             // PostgreSQL major version, "15"
    virtual std::string qualified_name() const = 0;      // "15/main"
    virtual std::filesystem::path base_dir() const = 0;  // holds data/, log/, plugin files
    virtual std::filesystem::path data_dir() const = 0;  // PGDATA
    virtual std::filesystem::path wal_dir() const = 0;   // empty: inside data_dir
    virtual std::filesystem::path log_file() const = 0;
    virtual std::filesystem::path socket_dir() const = 0;
    virtual std::filesystem::path bindir() const = 0;  // the installation's programs
    virtual int port() const = 0;
    virtual std::string owner() const = 0;      // OS user the server runs as
    virtual std::string superuser() const = 0;  // database role pgforge connects as
    virtual bool running() const = 0;           // read now, from postmaster.pid

  protected:
    ~Instance() = default;
};

enum class LogLevel { debug, info, warning, error };

struct RunOptions {
    // "NAME=value" sets, a bare "NAME" unsets, over a built environment (PATH, the locale and TZ,
    // HOME/USER/LOGNAME of the user the program runs as); nothing of pgforge's own environment.
    std::vector<std::string> env;
    std::string input;          // written to standard input
    double timeout = 0;         // seconds; 0: none
    bool as_owner = true;       // as the instance's owner when pgforge runs as root
    std::filesystem::path cwd;  // empty: /
};

struct RunResult {
    bool started = false;  // false: the program could not be run (error says why)
    int exit_code = -1;    // 128 + signal number when killed
    bool timed_out = false;
    std::string out;
    std::string err;
    std::string error;
    bool ok() const { return started && exit_code == 0 && !timed_out; }
};

struct QueryResult {
    bool ok = false;
    std::string error;  // the server's message when !ok
    std::vector<std::string> columns;
    std::vector<std::vector<std::optional<std::string>>> rows;  // nullopt: SQL NULL
};

// What every call into a plugin gets: the instance (if any), the plugin's settings, logging,
// programs run as the instance owner, SQL on the instance, per-instance state.
class Context {
  public:
    // The instance the call is about; null for a command without one.
    virtual const Instance* instance() const = 0;
    // A key of the plugin's own section of the site settings file ([NAME] key = value).
    virtual std::optional<std::string> setting(std::string_view key) const = 0;
    // The whole section.
    virtual std::map<std::string, std::string> settings() const = 0;
    // Where pgforge keeps instances and the inventory, and its configuration directory.
    virtual std::filesystem::path prefix() const = 0;
    virtual std::filesystem::path config_dir() const = 0;
    // The engine's log (stderr, quiet under --json), prefixed with the plugin's name.
    virtual void log(LogLevel level, std::string_view message) = 0;
    // A step of long work, shown on a terminal only.
    virtual void progress(std::string_view step) = 0;
    // Runs a program (argv[0] a path, or a name looked up on PATH) and records it in the
    // journal. Never put secrets in argv: use options.input or a 0600 file.
    virtual RunResult run(const std::vector<std::string>& argv, const RunOptions& options) = 0;
    // Starts a long-running program in the background as the instance owner, output appended to
    // log_file; returns its pid, or 0 with the reason in `error`.
    virtual long spawn(const std::vector<std::string>& argv, const RunOptions& options,
                       const std::filesystem::path& log_file, std::string& error) = 0;
    // SQL on the instance as its superuser, over its unix socket; parameters are passed apart
    // from the text ($1, $2, ...), never pasted in. `database` empty: "postgres".
    virtual QueryResult query(std::string_view sql, const std::vector<std::string>& parameters = {},
                              std::string_view database = {}) = 0;
    // Quoting for the rare SQL that cannot take a parameter (an identifier in DDL).
    virtual std::string quote_identifier(std::string_view name) const = 0;
    virtual std::string quote_literal(std::string_view value) const = 0;
    // Small per-instance values the plugin keeps in the inventory; gone with the instance.
    virtual std::optional<std::string> state(std::string_view key) const = 0;
    virtual bool set_state(std::string_view key, std::string_view value) = 0;
    virtual bool erase_state(std::string_view key) = 0;
    // A free TCP port on loopback within [low, high], not taken by any instance nor reserved by
    // a plugin, reserved for this plugin on this instance (state key "port"); the same port on
    // later calls. 0 when none is free.
    virtual int reserve_port(int low, int high) = 0;
    // Writes a file atomically (temporary file + rename), owned by the instance owner with
    // `mode`; directories are made as needed. False with the reason in `error`.
    virtual bool write_file(const std::filesystem::path& path, std::string_view content,
                            unsigned mode, std::string& error) = 0;
    // Whether pgforge runs with --json or without a terminal: no progress output then.
    virtual bool quiet() const = 0;
    // Makes a directory (and missing parents, 0755) owned by the instance owner with `mode`
    // (an existing one is left as it is). False with the reason in `error`.
    virtual bool make_directory(const std::filesystem::path& path, unsigned mode,
                                std::string& error) = 0;

  protected:
    ~Context() = default;
};

// Where a contributed HBA record goes when it is not in pg_hba.conf yet.
enum class HbaPlace {
    first,  // before every other record
    last,   // after every other record
};

// Configuration contributions at pre_configure. The engine merges those of all plugins with the
// change the user asked for, refuses conflicting values naming both sides, and writes each file
// once; a contribution that is already in place writes nothing.
class Configuration {
  public:
    // A postgresql.conf parameter, required (a different value from the command or another plugin
    // is a conflict). On a list parameter (see Contributions) the value's items are added: two
    // plugins each adding a library to shared_preload_libraries compose.
    virtual void set_parameter(std::string_view name, std::string_view value) = 0;
    // A pg_hba.conf record ("host all all 10.0.0.0/8 scram-sha-256").
    virtual void add_hba_record(std::string_view record, HbaPlace place) = 0;
    // A file beside the instance, in <base_dir>/<plugin>/ (`relative_name` may not leave it).
    virtual void add_file(std::string_view relative_name, std::string_view content,
                          unsigned mode) = 0;
    // The value the parameter will have once this configure is written (contributions so far
    // included); nullopt when it is not set in the files.
    virtual std::optional<std::string> parameter(std::string_view name) const = 0;
    // The pg_hba.conf text as it will be written (contributions so far included).
    virtual std::string hba_text() const = 0;
    // A pg_ident.conf mapping (MAPNAME SYSTEM-USERNAME PG-USERNAME), added unless present; with
    // an HBA record "local all ROLE peer map=MAPNAME", a program running as the instance owner
    // connects as ROLE without a password.
    virtual void add_ident_mapping(std::string_view map, std::string_view system_user,
                                   std::string_view database_user) = 0;

  protected:
    ~Configuration() = default;
};

// ---------------------------------------------------------------- SDK 1.1: contributions

// How a plugin holds to a value it gives a (scalar) parameter.
enum class Strength {
    // Written only when neither the command nor the files set the parameter: a value the user
    // sets wins (the command's report names the default it replaces), and so does one already in
    // the files.
    default_value,
    // What Configuration::set_parameter means: the value is written, and a different value from
    // the command or another plugin is a conflict (exit 5) naming both.
    required,
};

// Contributions beyond Configuration's, at pre_configure, reached from the configuration with
// `find<Contributions>(*ctx.configuration())` (nullptr from an engine older than SDK 1.1).
//
// List parameters (the server's list-valued ones: shared_preload_libraries,
// session_preload_libraries, local_preload_libraries, search_path, temp_tablespaces,
// listen_addresses, unix_socket_directories, log_destination, wal_consistency_checking,
// restrict_nonsystem_relation_kind) compose
// as sets: the items the files (or the command) give keep their place and order, items plugins
// add follow in the order the handlers run, and items plugins remove go. Only a contradiction is
// a conflict: a plugin removing what another adds, a command setting a list without an item a
// plugin adds (or with one a plugin removes), a command removing a list a plugin adds to.
class Contributions {
  public:
    static constexpr const char* interface_name = "pgforge.contributions";
    static constexpr unsigned interface_version = 1;

    // Adds `item` (a library, a schema, an address: quoted by the engine where the list needs it)
    // to list parameter `name` unless the list has it.
    virtual void add_to_list(std::string_view name, std::string_view item) = 0;
    // Takes `item` out of list parameter `name`.
    virtual void remove_from_list(std::string_view name, std::string_view item) = 0;
    // A scalar parameter with a strength. On a list parameter, like Configuration::set_parameter:
    // the value's items are added.
    virtual void set_parameter(std::string_view name, std::string_view value,
                               Strength strength) = 0;
    // Says that what this plugin changed takes effect only when the server restarts (a file the
    // server reads at start, a library it preloads): reported with the command's changes, the
    // restart is pending on a running server, and `--restart` does it. Call it only when this
    // configure changes such a thing.
    virtual void restart_needed(std::string_view reason) = 0;

  protected:
    ~Contributions() = default;
};

// The outcome of the step a post_* handler runs after.
struct Outcome {
    bool ok = true;
    std::string message;  // why the step failed
};

class HookContext : public Context {
  public:
    virtual HookPoint point() const = 0;
    // "create", "configure", "start", "start --foreground", "stop", "restart", "reload",
    // "drop", "checksums", "promote", "rebuild" (the rows of the hook sequence table in
    // docs/plugins.md).
    virtual std::string_view operation() const = 0;
    virtual const Outcome& outcome() const = 0;
    // Non-null at every pre_configure (create, configure, reload): where contributions go.
    virtual Configuration* configuration() = 0;
    // True when this configure is part of `instance create` (the first one).
    virtual bool first_configure() const = 0;
    // Flags of the command line the plugin declared (`instance drop --purge-backups`):
    // whether "--NAME" was given.
    virtual bool flag(std::string_view name) const = 0;
    // What undoes something this handler made: if the operation fails after this handler, the
    // undos run in reverse order, interleaved with the engine's own, each with a context on the
    // same instance (a throw is logged, and the other undos still run). `what` names it in the
    // journal ("stanza 15-main").
    virtual void on_undo(std::string what, std::function<void(Context&)> undo) = 0;

  protected:
    ~HookContext() = default;
};

// A CLI command the plugin adds: `pgforge FAMILY VERB ...`.
struct Command {
    std::string family;          // "backup"
    std::string verb;            // "create"
    std::string args;            // shown in help: "-i NAME [--type full|diff|incr]"
    std::string summary;         // one line
    bool needs_instance = true;  // the engine resolves -i/--instance NAME and locks it
};

class CommandContext : public Context {
  public:
    // The command line after FAMILY VERB, without -i/--instance NAME and --json.
    virtual const std::vector<std::string>& args() const = 0;
    virtual bool json() const = 0;
    // Standard output (results) and standard error (messages).
    virtual void out(std::string_view text) = 0;
    virtual void err(std::string_view text) = 0;

  protected:
    ~CommandContext() = default;
};

// A flag a plugin adds to an engine command ("instance drop --purge-backups").
struct Flag {
    std::string command;  // "instance drop"
    std::string name;     // "purge-backups"
    std::string help;
};

// One line of `instance get` the plugin adds (under its name).
struct Field {
    std::string key;
    std::string value;
};

// ---------------------------------------------------------------- interfaces (SDK 1.1)

// The engine's host table, set through the descriptor when the library is loaded (before the
// plugin object is made). A test of a plugin that runs without the engine may set its own.
inline const pgforge_host* host_table = nullptr;

// The interface T (a class with interface_name and interface_version) of `object`, a Context
// (of any kind) or a Configuration the engine handed to this call; nullptr when the engine does
// not offer T there. Valid as long as `object` is.
//     if (auto* engine = sdk::find<sdk::EngineInfo>(ctx)) ctx.log(LogLevel::info,
//         "engine " + engine->version());
template <class T, class From>
T* find(From& object) {
    using Object = std::remove_cv_t<From>;
    static_assert(std::is_base_of_v<Context, Object> || std::is_base_of_v<Configuration, Object>,
                  "find<T>(object): object is a Context (of any kind) or a Configuration");
    const pgforge_host* host = host_table;
    if (!host ||
        host->struct_size < offsetof(pgforge_host, find_interface) + sizeof(host->find_interface) ||
        !host->find_interface)
        return nullptr;
    // The engine knows an object by the address of its SDK class.
    const void* address;
    if constexpr (std::is_base_of_v<Context, Object>)
        address = static_cast<const Context*>(&object);
    else
        address = static_cast<const Configuration*>(&object);
    return static_cast<T*>(
        host->find_interface(const_cast<void*>(address), T::interface_name, T::interface_version));
}

// The engine running the plugin (offered by every context and configuration since SDK 1.1).
class EngineInfo {
  public:
    static constexpr const char* interface_name = "pgforge.engine_info";
    static constexpr unsigned interface_version = 1;

    // pgforge's version, "0.1.0".
    virtual std::string version() const = 0;
    // The SDK the engine implements (a plugin built for a newer minor version is refused).
    virtual unsigned sdk_major() const = 0;
    virtual unsigned sdk_minor() const = 0;

  protected:
    ~EngineInfo() = default;
};

// ---------------------------------------------------------------- what a plugin implements

class BOOST_SYMBOL_VISIBLE Plugin {
  public:
    virtual ~Plugin() = default;

    // Once, before anything else, with no instance: check the settings section; a refusal
    // disables the plugin for this run with the message.
    virtual Result setup(Context& ctx) {
        (void)ctx;
        return Result::proceed();
    }
    // At each hook point the manifest names (and only those).
    virtual Result on_hook(HookContext& ctx) {
        (void)ctx;
        return Result::proceed();
    }
    virtual std::vector<Command> commands() const { return {}; }
    virtual std::vector<Flag> flags() const { return {}; }
    // Runs one of commands(); returns the exit status (0 ok, 1 failed, 2 bad usage).
    virtual int run_command(const Command& command, CommandContext& ctx) {
        (void)command;
        (void)ctx;
        return 2;
    }
    // Lines for `instance get`.
    virtual std::vector<Field> describe(Context& ctx) {
        (void)ctx;
        return {};
    }
};

}  // namespace pgforge::sdk

// Exports the descriptor of plugin class CLASS (default-constructible, derived from
// pgforge::sdk::Plugin):
//     PGFORGE_PLUGIN(Hello);                    // SDK 1.1, built by pgforge_add_plugin(hello
//                                               // ... VERSION ... HOOKS ...): name, version and
//                                               // hook points from that one declaration
//     PGFORGE_PLUGIN(Hello, "hello", "1.0.0");  // SDK 1.0: name and version written here, and
//                                               // again in a hand-written manifest
#define PGFORGE_PLUGIN(...)                                                            \
    PGFORGE_PLUGIN_PICK_(__VA_ARGS__, PGFORGE_PLUGIN_DESCRIPTOR_, PGFORGE_PLUGIN_TWO_, \
                         PGFORGE_PLUGIN_DECLARED_)                                     \
    (__VA_ARGS__)
#define PGFORGE_PLUGIN_PICK_(_1, _2, _3, MACRO, ...) MACRO
#define PGFORGE_PLUGIN_TWO_(CLASS, NAME) \
    static_assert(false, "PGFORGE_PLUGIN(Class) or PGFORGE_PLUGIN(Class, \"name\", \"version\")")
// Needs PGFORGE_PLUGIN_NAME and PGFORGE_PLUGIN_VERSION, which pgforge_add_plugin(... VERSION ...)
// defines.
#define PGFORGE_PLUGIN_DECLARED_(CLASS) \
    PGFORGE_PLUGIN_DESCRIPTOR_(CLASS, PGFORGE_PLUGIN_NAME, PGFORGE_PLUGIN_VERSION)
#define PGFORGE_PLUGIN_DESCRIPTOR_(CLASS, NAME, VERSION)                              \
    namespace {                                                                       \
    void* pgforge_plugin_create() noexcept {                                          \
        try {                                                                         \
            return static_cast<::pgforge::sdk::Plugin*>(new CLASS());                 \
        } catch (...) {                                                               \
            return nullptr;                                                           \
        }                                                                             \
    }                                                                                 \
    void pgforge_plugin_destroy(void* p) noexcept {                                   \
        try {                                                                         \
            delete static_cast<::pgforge::sdk::Plugin*>(p);                           \
        } catch (...) {                                                               \
        }                                                                             \
    }                                                                                 \
    }                                                                                 \
    extern "C" const ::pgforge_plugin_descriptor pgforge_plugin_descriptor_object = { \
        PGFORGE_SDK_VERSION_MAJOR,                                                    \
        PGFORGE_SDK_VERSION_MINOR,                                                    \
        sizeof(::pgforge_plugin_descriptor),                                          \
        NAME,                                                                         \
        VERSION,                                                                      \
        &pgforge_plugin_create,                                                       \
        &pgforge_plugin_destroy,                                                      \
        &::pgforge::sdk::host_table,                                                  \
        ::pgforge::sdk::descriptor_hooks};                                            \
    BOOST_DLL_ALIAS(pgforge_plugin_descriptor_object, pgforge_plugin_descriptor_v1)
