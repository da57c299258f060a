// The testing kit: fakes of what the engine hands a plugin, so that a plugin is unit-tested
// without a server. Header-only, no engine code, no test framework: use it from Catch2,
// GoogleTest, doctest or plain asserts.
//
//   FakeInstance        an instance with settable fields (port, directories, running, ...)
//   FakeContext         Context: settings, logs, programs run (results scripted), SQL (results
//                       scripted), state, files written, directories made, ports
//   FakeHookContext     HookContext: the above, plus the point, the operation, the outcome,
//                       flags, undos, and a FakeConfiguration at pre_configure
//   FakeCommandContext  CommandContext: the above, plus the arguments and what the command
//                       printed on out() and err()
//   FakeConfiguration   Configuration: parameters, pg_hba.conf (text and records), files and
//                       ident mappings contributed
//
// Every method of the 1.0 interfaces is implemented, and every call is recorded in a public
// member that a test reads (and may set beforehand). The fakes also answer sdk::find<T> for the
// versioned interfaces of this SDK (sdk::EngineInfo, pgforge/hba.hpp's, pgforge/helpers.hpp's
// and, with an instance, pgforge/options.hpp's sdk::InstanceOptions): the kit installs
// its own host table (install_host()) in place of the engine's; withhold<T>() makes one answer
// nullptr, as an engine that lacks it would.
//
//   pgforge::testing::FakeHookContext ctx(pgforge::sdk::HookPoint::pre_configure);
//   ctx.settings_values["greeting"] = "bonjour";
//   auto plugin = pgforge::testing::create_plugin();  // the plugin compiled into this test
//   assert(!plugin->on_hook(ctx).refused());
//   assert(ctx.fake_configuration.files_added.at(0).content == "bonjour, 15/main\n");
#pragma once

#include <sys/stat.h>

#include <algorithm>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "pgforge/hba.hpp"
#include "pgforge/helpers.hpp"
#include "pgforge/options.hpp"
#include "pgforge/plugin.hpp"

namespace pgforge::testing {

namespace fs = std::filesystem;

// ---------------------------------------------------------------- results to script

// A program that ran and exited with `code`.
inline sdk::RunResult exited(int code, std::string out = {}, std::string err = {}) {
    sdk::RunResult r;
    r.started = true;
    r.exit_code = code;
    r.out = std::move(out);
    r.err = std::move(err);
    return r;
}

// A program that could not be run at all.
inline sdk::RunResult not_started(std::string error) {
    sdk::RunResult r;
    r.error = std::move(error);
    return r;
}

// A query that returned rows (each value a string, nullopt for NULL).
inline sdk::QueryResult rows(std::vector<std::string> columns,
                             std::vector<std::vector<std::optional<std::string>>> values = {}) {
    sdk::QueryResult r;
    r.ok = true;
    r.columns = std::move(columns);
    r.rows = std::move(values);
    return r;
}

// A query the server refused.
inline sdk::QueryResult query_error(std::string message) {
    sdk::QueryResult r;
    r.error = std::move(message);
    return r;
}

// ---------------------------------------------------------------- pg_hba.conf records

// A name as written in pg_hba.conf: "\"all\"" (in double quotes) is the quoted name all,
// anything else the name itself, unquoted.
inline sdk::HbaName hba_name(std::string_view written) {
    if (written.size() >= 2 && written.front() == '"' && written.back() == '"') {
        std::string text;
        for (size_t k = 1; k + 1 < written.size(); ++k) {
            text += written[k];
            if (written[k] == '"' && k + 2 < written.size() && written[k + 1] == '"') ++k;
        }
        return {text, true};
    }
    return {std::string(written), false};
}

// A record from its fields, names written as in pg_hba.conf (see hba_name); `address` empty
// for local.
inline sdk::HbaRecord hba_record(std::string type, std::vector<std::string> databases,
                                 std::vector<std::string> users, std::string address,
                                 std::string method,
                                 std::vector<std::pair<std::string, std::string>> options = {}) {
    sdk::HbaRecord r;
    r.type = std::move(type);
    for (const auto& d : databases) r.databases.push_back(hba_name(d));
    for (const auto& u : users) r.users.push_back(hba_name(u));
    if (!address.empty()) r.address = hba_name(address);
    r.method = std::move(method);
    r.options = std::move(options);
    return r;
}

// The record as one line, fields joined by one blank, quoted names in double quotes.
inline std::string hba_line(const sdk::HbaRecord& r) {
    auto name = [](const sdk::HbaName& n) {
        if (!n.quoted) return n.text;
        std::string out = "\"";
        for (char c : n.text) out += c == '"' ? std::string("\"\"") : std::string(1, c);
        return out + "\"";
    };
    auto list = [&](const std::vector<sdk::HbaName>& names) {
        std::string out;
        for (size_t k = 0; k < names.size(); ++k) out += (k ? "," : "") + name(names[k]);
        return out;
    };
    std::string s = r.type + " " + list(r.databases) + " " + list(r.users);
    if (!r.address.text.empty() || r.address.quoted) s += " " + name(r.address);
    if (!r.mask.empty()) s += " " + r.mask;
    s += " " + r.method;
    for (const auto& [k, v] : r.options) s += " " + k + "=" + v;
    return s;
}

// ---------------------------------------------------------------- versioned interfaces

// Which fake answers sdk::find<T> on which object: the kit's side of the host table.
namespace detail {

using Finder = std::function<void*(std::string_view name, unsigned version)>;

inline std::map<const void*, Finder>& finders() {
    static std::map<const void*, Finder> m;
    return m;
}

// Registers `object` (a Context or Configuration the plugin is handed) for the lifetime of the
// returned token.
class Registration {
  public:
    Registration() = default;
    Registration(const void* object, Finder f) : object_(object) {
        finders()[object] = std::move(f);
    }
    Registration(const Registration&) = delete;
    Registration& operator=(const Registration&) = delete;
    ~Registration() {
        if (object_) finders().erase(object_);
    }

  private:
    const void* object_ = nullptr;
};

}  // namespace detail

// What the kit answers for `object` (the same question the engine's host table answers):
// the implementation of interface `name` at `version`, or nullptr.
inline void* find_interface(const void* object, const char* name, uint32_t version) {
    auto& m = detail::finders();
    auto it = m.find(object);
    if (it == m.end() || !name) return nullptr;
    return it->second(name, version);
}

namespace detail {

inline void* kit_find_interface(void* object, const char* name, uint32_t version) noexcept {
    try {
        return find_interface(object, name, version);
    } catch (...) {
        return nullptr;
    }
}

inline const pgforge_host kit_host{sizeof(pgforge_host), &kit_find_interface};

}  // namespace detail

// Makes sdk::find<T> in this program (the plugin compiled into the test) answered by the fakes
// instead of an engine. Every fake does it when it is made.
inline void install_host() {
    sdk::host_table = &detail::kit_host;
}

// The engine as a fake tells it (sdk::EngineInfo, offered by every fake).
class FakeEngineInfo final : public sdk::EngineInfo {
  public:
    std::string engine_version = "0.0.0-testing";
    unsigned major = PGFORGE_SDK_VERSION_MAJOR;
    unsigned minor = PGFORGE_SDK_VERSION_MINOR;

    std::string version() const override { return engine_version; }
    unsigned sdk_major() const override { return major; }
    unsigned sdk_minor() const override { return minor; }
};

// The versioned interfaces a fake offers; withhold<T>() makes find<T> answer nullptr.
class Offers {
  public:
    template <class T>
    void withhold() {
        withheld_.insert(T::interface_name);
    }
    template <class T>
    void offer() {
        withheld_.erase(T::interface_name);
    }

  protected:
    template <class T, class Impl>
    void* answer(Impl* impl, std::string_view name, unsigned version) const {
        if (name != T::interface_name || version != T::interface_version) return nullptr;
        if (withheld_.count(std::string(name))) return nullptr;
        return static_cast<T*>(impl);
    }

  private:
    std::set<std::string> withheld_;
};

// The instance's options (SDK 1.2) as the engine hands them: set `values` to what the user set
// for the instance and the defaults the plugin's manifest declares (the engine merges them).
class FakeInstanceOptions final : public sdk::InstanceOptions {
  public:
    std::map<std::string, std::string> values;

    std::optional<std::string> option(std::string_view key) const override {
        auto it = values.find(std::string(key));
        if (it == values.end()) return std::nullopt;
        return it->second;
    }
    std::map<std::string, std::string> options() const override { return values; }
};

// ---------------------------------------------------------------- instance

// An instance with settable fields. place_under(dir) points every directory into `dir` (a test's
// temporary directory) when the plugin touches them.
struct FakeInstance {
    std::string name = "main";
    std::string version = "15";
    fs::path base_dir = "/var/lib/pgforge/15/main";
    fs::path data_dir = "/var/lib/pgforge/15/main/data";
    fs::path wal_dir;
    fs::path log_file = "/var/lib/pgforge/15/main/log/postgresql.log";
    fs::path socket_dir = "/var/lib/pgforge/15/main/run";
    fs::path bindir = "/usr/lib/postgresql/15/bin";
    int port = 5432;
    std::string owner = "postgres";
    std::string superuser = "postgres";
    bool running = true;

    FakeInstance() = default;
    FakeInstance(const FakeInstance& o) { copy(o); }
    FakeInstance& operator=(const FakeInstance& o) {
        copy(o);
        return *this;
    }

    void place_under(const fs::path& dir) {
        base_dir = dir / version / name;
        data_dir = base_dir / "data";
        log_file = base_dir / "log" / "postgresql.log";
        socket_dir = base_dir / "run";
    }

    // What a plugin sees.
    const sdk::Instance& view() const { return view_; }

  private:
    class View final : public sdk::Instance {
      public:
        explicit View(const FakeInstance* f) : f_(f) {}
        std::string name() const override { return f_->name; }
        std::string version() const override { return f_->version; }
        std::string qualified_name() const override { return f_->version + "/" + f_->name; }
        fs::path base_dir() const override { return f_->base_dir; }
        fs::path data_dir() const override { return f_->data_dir; }
        fs::path wal_dir() const override { return f_->wal_dir; }
        fs::path log_file() const override { return f_->log_file; }
        fs::path socket_dir() const override { return f_->socket_dir; }
        fs::path bindir() const override { return f_->bindir; }
        int port() const override { return f_->port; }
        std::string owner() const override { return f_->owner; }
        std::string superuser() const override { return f_->superuser; }
        bool running() const override { return f_->running; }

      private:
        const FakeInstance* f_;
    };
    View view_{this};

    // Copies the fields; the view stays this object's own.
    void copy(const FakeInstance& o) {
        name = o.name;
        version = o.version;
        base_dir = o.base_dir;
        data_dir = o.data_dir;
        wal_dir = o.wal_dir;
        log_file = o.log_file;
        socket_dir = o.socket_dir;
        bindir = o.bindir;
        port = o.port;
        owner = o.owner;
        superuser = o.superuser;
        running = o.running;
    }
};

// ---------------------------------------------------------------- what a context records

struct LogLine {
    sdk::LogLevel level;
    std::string message;
};

struct Run {
    std::vector<std::string> argv;
    sdk::RunOptions options;
};

struct Spawn {
    std::vector<std::string> argv;
    sdk::RunOptions options;
    fs::path log_file;
};

struct Query {
    std::string sql;
    std::vector<std::string> parameters;
    std::string database;
};

struct WrittenFile {
    std::string content;
    unsigned mode = 0;
};

// Supervised helpers (sdk::Helpers) without processes: what the plugin asked is recorded, and a
// helper "runs" from a successful ensure until stop. `on_ensure` scripts a result (a failure, a
// port held by another program); by default ensure starts a helper that does not run, restarts
// one asked to or running with another hash, and leaves the others alone.
class FakeHelpers final : public sdk::Helpers {
  public:
    struct Ensured {
        std::string name;
        sdk::HelperSpec spec;
        bool restart = false;
    };
    std::vector<Ensured> ensured;                      // every ensure call, in order
    std::vector<std::string> stopped;                  // every stop call's name
    std::map<std::string, int> ports;                  // reservations by helper name
    std::map<std::string, sdk::HelperStatus> running;  // what runs, by name
    std::function<sdk::HelperResult(const std::string&, const sdk::HelperSpec&, bool)> on_ensure;
    long next_pid = 4242;

    int reserve_port(std::string_view name, int low, int high) override {
        auto it = ports.find(std::string(name));
        if (it != ports.end() && it->second >= low && it->second <= high) return it->second;
        for (int p = low; p <= high; ++p) {
            bool taken = false;
            for (const auto& [n, q] : ports) taken = taken || q == p;
            if (!taken) return ports[std::string(name)] = p;
        }
        return 0;
    }
    void release_port(std::string_view name) override { ports.erase(std::string(name)); }
    sdk::HelperResult ensure(std::string_view name, const sdk::HelperSpec& spec,
                             bool restart) override {
        const std::string n(name);
        ensured.push_back({n, spec, restart});
        if (on_ensure) {
            sdk::HelperResult r = on_ensure(n, spec, restart);
            if (r.ok) running[n] = {true, r.pid ? r.pid : next_pid++, spec.port, hash(spec)};
            return r;
        }
        sdk::HelperResult r;
        r.ok = true;
        auto it = running.find(n);
        if (it != running.end() && !restart && it->second.config_hash == hash(spec)) {
            r.pid = it->second.pid;
            return r;
        }
        r.restarted = it != running.end();
        r.started = true;
        r.pid = next_pid++;
        running[n] = {true, r.pid, spec.port, hash(spec)};
        return r;
    }
    sdk::HelperStatus status(std::string_view name) override {
        auto it = running.find(std::string(name));
        if (it != running.end()) return it->second;
        sdk::HelperStatus st;
        if (auto p = ports.find(std::string(name)); p != ports.end()) st.port = p->second;
        return st;
    }
    bool stop(std::string_view name, double, std::string&) override {
        stopped.emplace_back(name);
        running.erase(std::string(name));
        return true;
    }
    std::string hash(const sdk::HelperSpec& spec) const override {
        if (!spec.config_hash.empty()) return spec.config_hash;
        std::string h;
        for (const auto& a : spec.argv) h += a + '\0';
        for (const auto& e : spec.env) h += e + '\0';
        return h + spec.cwd.string() + '\0' + std::to_string(spec.port) + '\0' +
               spec.log_file.string();
    }
};

// The Context part shared by every fake context (Base: sdk::Context, sdk::HookContext or
// sdk::CommandContext).
template <class Base>
class BasicFakeContext : public Base, public sdk::HbaFileReader, public Offers {
  public:
    // ---- what the test sets
    FakeInstance fake_instance;
    bool has_instance = true;                            // false: instance() is null
    std::map<std::string, std::string> settings_values;  // the plugin's settings section
    fs::path prefix_dir = "/var/lib/pgforge";
    fs::path config_directory = "/etc/pgforge";
    bool is_quiet = true;
    std::map<std::string, std::string> state_values;  // the plugin's per-instance state
    bool state_fails = false;                         // set_state/erase_state return false
    std::optional<int> free_port;  // what reserve_port gives (default: low); 0: none free
    long spawn_pid = 4242;         // what spawn returns; 0 with spawn_error: it fails
    std::string spawn_error;
    std::string write_error;                  // write_file/make_directory fail with it when set
    bool write_to_disk = false;               // write_file/make_directory also act on disk
    std::vector<sdk::HbaRecord> hba_on_disk;  // what the HbaFileReader gives
    std::vector<sdk::HbaProblem> hba_problems;
    std::string hba_read_error;  // read_hba fails with it when set
    FakeEngineInfo engine_info;  // what sdk::find<sdk::EngineInfo> gives
    FakeHelpers helpers;         // what sdk::find<sdk::Helpers> gives (with an instance)
    // What sdk::find<sdk::InstanceOptions> gives (with an instance): instance_options.values.
    FakeInstanceOptions instance_options;

    // Programs: the first script whose argv prefix matches answers (see script_run); without
    // one, on_run if set, else exit 0 with no output.
    std::function<sdk::RunResult(const std::vector<std::string>&, const sdk::RunOptions&)> on_run;
    void script_run(std::vector<std::string> argv_prefix, sdk::RunResult result) {
        run_scripts_.push_back({std::move(argv_prefix), std::move(result)});
    }
    // Queries: the first script whose text occurs in the SQL answers; without one, on_query if
    // set, else ok with no rows.
    std::function<sdk::QueryResult(std::string_view sql, const std::vector<std::string>&)> on_query;
    void script_query(std::string sql_part, sdk::QueryResult result) {
        query_scripts_.push_back({std::move(sql_part), std::move(result)});
    }

    // ---- what the plugin did
    std::vector<LogLine> logs;
    std::vector<std::string> progress_steps;
    std::vector<Run> runs;
    std::vector<Spawn> spawns;
    std::vector<Query> queries;
    std::map<fs::path, WrittenFile> files_written;
    std::map<fs::path, unsigned> directories_made;
    std::vector<std::pair<int, int>> port_requests;  // (low, high)

    // ---- questions a test asks
    // Whether a log line at `level` (any level when nullopt) contains `part`.
    bool logged(std::string_view part, std::optional<sdk::LogLevel> level = std::nullopt) const {
        return std::any_of(logs.begin(), logs.end(), [&](const LogLine& l) {
            return (!level || l.level == *level) && l.message.find(part) != std::string::npos;
        });
    }
    // The first program run whose argv starts with `argv_prefix`, or null.
    const Run* ran(const std::vector<std::string>& argv_prefix) const {
        for (const Run& r : runs)
            if (starts_with(r.argv, argv_prefix)) return &r;
        return nullptr;
    }
    // The first query whose SQL contains `part`, or null.
    const Query* queried(std::string_view part) const {
        for (const Query& q : queries)
            if (q.sql.find(part) != std::string::npos) return &q;
        return nullptr;
    }

    // ---- Context
    const sdk::Instance* instance() const override {
        return has_instance ? &fake_instance.view() : nullptr;
    }
    std::optional<std::string> setting(std::string_view key) const override {
        auto it = settings_values.find(std::string(key));
        if (it == settings_values.end()) return std::nullopt;
        return it->second;
    }
    std::map<std::string, std::string> settings() const override { return settings_values; }
    fs::path prefix() const override { return prefix_dir; }
    fs::path config_dir() const override { return config_directory; }
    void log(sdk::LogLevel level, std::string_view message) override {
        logs.push_back({level, std::string(message)});
    }
    void progress(std::string_view step) override { progress_steps.emplace_back(step); }
    sdk::RunResult run(const std::vector<std::string>& argv,
                       const sdk::RunOptions& options) override {
        runs.push_back({argv, options});
        for (const auto& [prefix, result] : run_scripts_)
            if (starts_with(argv, prefix)) return result;
        if (on_run) return on_run(argv, options);
        return exited(0);
    }
    long spawn(const std::vector<std::string>& argv, const sdk::RunOptions& options,
               const fs::path& log_file, std::string& error) override {
        spawns.push_back({argv, options, log_file});
        if (!spawn_error.empty()) error = spawn_error;
        return spawn_error.empty() ? spawn_pid : 0;
    }
    sdk::QueryResult query(std::string_view sql, const std::vector<std::string>& parameters = {},
                           std::string_view database = {}) override {
        queries.push_back({std::string(sql), parameters, std::string(database)});
        for (const auto& [part, result] : query_scripts_)
            if (sql.find(part) != std::string_view::npos) return result;
        if (on_query) return on_query(sql, parameters);
        return rows({});
    }
    std::string quote_identifier(std::string_view name) const override { return quoted(name, '"'); }
    std::string quote_literal(std::string_view value) const override {
        if (value.find('\\') == std::string_view::npos) return quoted(value, '\'');
        std::string doubled;
        for (char c : value) doubled += c == '\\' ? std::string("\\\\") : std::string(1, c);
        return " E" + quoted(doubled, '\'');
    }
    std::optional<std::string> state(std::string_view key) const override {
        auto it = state_values.find(std::string(key));
        if (it == state_values.end()) return std::nullopt;
        return it->second;
    }
    bool set_state(std::string_view key, std::string_view value) override {
        if (state_fails) return false;
        state_values[std::string(key)] = std::string(value);
        return true;
    }
    bool erase_state(std::string_view key) override {
        if (state_fails) return false;
        state_values.erase(std::string(key));
        return true;
    }
    int reserve_port(int low, int high) override {
        port_requests.emplace_back(low, high);
        if (auto mine = state("port")) return std::stoi(*mine);
        int p = free_port.value_or(low);
        if (p == 0 || !set_state("port", std::to_string(p))) return 0;
        return p;
    }
    bool write_file(const fs::path& path, std::string_view content, unsigned mode,
                    std::string& error) override {
        if (!write_error.empty()) {
            error = write_error;
            return false;
        }
        files_written[path] = {std::string(content), mode};
        if (write_to_disk) {
            std::error_code ec;
            fs::create_directories(path.parent_path(), ec);
            std::ofstream out(path, std::ios::binary | std::ios::trunc);
            out << content;
            out.close();
            if (!out || ::chmod(path.c_str(), mode & 07777) != 0) {
                error = "cannot write " + path.string();
                return false;
            }
        }
        return true;
    }
    bool quiet() const override { return is_quiet; }
    bool make_directory(const fs::path& path, unsigned mode, std::string& error) override {
        if (!write_error.empty()) {
            error = write_error;
            return false;
        }
        directories_made[path] = mode;
        if (write_to_disk) {
            std::error_code ec;
            fs::create_directories(path, ec);
            if (ec) {
                error = ec.message();
                return false;
            }
        }
        return true;
    }

    // ---- HbaFileReader (offered when there is an instance)
    bool read_hba(std::vector<sdk::HbaRecord>& records, std::vector<sdk::HbaProblem>& problems,
                  std::string& error) override {
        if (!hba_read_error.empty()) {
            error = hba_read_error;
            return false;
        }
        records.insert(records.end(), hba_on_disk.begin(), hba_on_disk.end());
        problems.insert(problems.end(), hba_problems.begin(), hba_problems.end());
        return true;
    }

  protected:
    BasicFakeContext()
        : registration_(
              static_cast<const sdk::Context*>(this),
              [this](std::string_view name, unsigned version) -> void* {
                  if (void* e = this->template answer<sdk::EngineInfo>(&engine_info, name, version))
                      return e;
                  if (!has_instance) return nullptr;
                  if (void* h = this->template answer<sdk::Helpers>(&helpers, name, version))
                      return h;
                  if (void* o = this->template answer<sdk::InstanceOptions>(&instance_options, name,
                                                                            version))
                      return o;
                  return this->template answer<sdk::HbaFileReader>(this, name, version);
              }) {
        install_host();
    }
    ~BasicFakeContext() = default;
    BasicFakeContext(const BasicFakeContext&) = delete;
    BasicFakeContext& operator=(const BasicFakeContext&) = delete;

  private:
    std::vector<std::pair<std::vector<std::string>, sdk::RunResult>> run_scripts_;
    std::vector<std::pair<std::string, sdk::QueryResult>> query_scripts_;
    detail::Registration registration_;

    static bool starts_with(const std::vector<std::string>& argv,
                            const std::vector<std::string>& prefix) {
        return argv.size() >= prefix.size() &&
               std::equal(prefix.begin(), prefix.end(), argv.begin());
    }
    static std::string quoted(std::string_view s, char q) {
        std::string out(1, q);
        for (char c : s) {
            if (c == q) out += q;
            out += c;
        }
        return out + q;
    }
};

// A plain context: setup(), describe(), and undos get one.
class FakeContext final : public BasicFakeContext<sdk::Context> {
  public:
    FakeContext() = default;
};

// ---------------------------------------------------------------- configuration

struct HbaAdded {
    sdk::HbaRecord record;
    sdk::HbaPlace place;
};

struct HbaTextAdded {
    std::string text;
    sdk::HbaPlace place;
};

struct FileAdded {
    std::string relative_name;
    std::string content;
    unsigned mode = 0;
};

struct IdentMapping {
    std::string map;
    std::string system_user;
    std::string database_user;
};

// The Configuration of a pre_configure: records every contribution. pg_hba.conf is held as
// lines: records (set `hba` before the call, read it after) and the text records contributed
// with add_hba_record(text), which the kit keeps as they are (it has no parser).
class FakeConfiguration final : public sdk::Configuration,
                                public sdk::HbaConfiguration,
                                public sdk::Contributions,
                                public Offers {
  public:
    // ---- what the test sets
    // postgresql.conf as written before this configure (name -> value).
    std::map<std::string, std::string> parameters_in_files;
    // pg_hba.conf records before this configure (their lines are renumbered).
    void set_hba(std::vector<sdk::HbaRecord> records) {
        hba_.clear();
        for (auto& r : records) hba_.push_back({std::move(r), {}});
    }
    // Why the engine would refuse a record (empty: it takes it); the kit takes every record.
    std::function<std::string(const sdk::HbaRecord&)> check_hba_record;
    FakeEngineInfo engine_info;  // what sdk::find<sdk::EngineInfo> gives

    // ---- what the plugin did
    std::map<std::string, std::string> parameters_set;                 // name -> the last value set
    std::vector<std::pair<std::string, std::string>> parameter_calls;  // every call, in order
    std::vector<HbaAdded> hba_added;           // records added (duplicates not included)
    std::vector<HbaTextAdded> hba_text_added;  // text records added
    std::vector<FileAdded> files_added;
    std::vector<IdentMapping> ident_mappings;
    // Contributions (SDK 1.1): list items added and removed (name -> items, in call order),
    // scalars with their strength, restart reasons.
    std::map<std::string, std::vector<std::string>> list_added;
    std::map<std::string, std::vector<std::string>> list_removed;
    std::map<std::string, std::pair<std::string, sdk::Strength>> parameters_with_strength;
    std::vector<std::string> restart_reasons;
    // What would make the engine refuse this configure (invalid contributions).
    std::vector<std::string> problems;

    // ---- Configuration
    void set_parameter(std::string_view name, std::string_view value) override {
        parameter_calls.emplace_back(name, value);
        parameters_set[std::string(name)] = std::string(value);
    }
    void add_hba_record(std::string_view record, sdk::HbaPlace place) override {
        hba_text_added.push_back({std::string(record), place});
        for (const auto& l : hba_)
            if (!l.record && l.text == record) return;
        Line l{std::nullopt, std::string(record)};
        if (place == sdk::HbaPlace::first)
            hba_.insert(hba_.begin(), std::move(l));
        else
            hba_.push_back(std::move(l));
    }
    void add_file(std::string_view relative_name, std::string_view content,
                  unsigned mode) override {
        files_added.push_back({std::string(relative_name), std::string(content), mode});
    }
    std::optional<std::string> parameter(std::string_view name) const override {
        if (auto it = parameters_set.find(std::string(name)); it != parameters_set.end())
            return it->second;
        if (auto it = parameters_in_files.find(std::string(name)); it != parameters_in_files.end())
            return it->second;
        return std::nullopt;
    }
    std::string hba_text() const override {
        std::string out;
        for (const auto& l : hba_) out += (l.record ? hba_line(*l.record) : l.text) + "\n";
        return out;
    }
    void add_ident_mapping(std::string_view map, std::string_view system_user,
                           std::string_view database_user) override {
        ident_mappings.push_back(
            {std::string(map), std::string(system_user), std::string(database_user)});
    }

    // ---- Contributions
    void add_to_list(std::string_view name, std::string_view item) override {
        list_added[std::string(name)].emplace_back(item);
    }
    void remove_from_list(std::string_view name, std::string_view item) override {
        list_removed[std::string(name)].emplace_back(item);
    }
    void set_parameter(std::string_view name, std::string_view value,
                       sdk::Strength strength) override {
        parameters_with_strength[std::string(name)] = {std::string(value), strength};
        parameter_calls.emplace_back(name, value);
        parameters_set[std::string(name)] = std::string(value);
    }
    void restart_needed(std::string_view reason) override { restart_reasons.emplace_back(reason); }

    // ---- HbaConfiguration
    std::vector<sdk::HbaRecord> hba_records() const override {
        std::vector<sdk::HbaRecord> out;
        for (size_t k = 0; k < hba_.size(); ++k)
            if (hba_[k].record) {
                out.push_back(*hba_[k].record);
                out.back().line = static_cast<int>(k) + 1;
            }
        return out;
    }
    bool add_hba_record(const sdk::HbaRecord& record, sdk::HbaPlace place,
                        std::string& error) override {
        sdk::HbaRecord r = record;
        r.line = 0;
        if (check_hba_record) {
            std::string why = check_hba_record(r);
            if (!why.empty()) {
                error = why;
                problems.push_back("invalid HBA record " + hba_line(r) + ": " + why);
                return false;
            }
        }
        for (const auto& l : hba_)
            if (l.record && *l.record == r) return true;
        hba_added.push_back({r, place});
        Line l{r, {}};
        if (place == sdk::HbaPlace::first)
            hba_.insert(hba_.begin(), std::move(l));
        else
            hba_.push_back(std::move(l));
        return true;
    }

    FakeConfiguration()
        : registration_(static_cast<const sdk::Configuration*>(this),
                        [this](std::string_view name, unsigned version) -> void* {
                            if (void* e = answer<sdk::EngineInfo>(&engine_info, name, version))
                                return e;
                            if (void* c = answer<sdk::Contributions>(this, name, version)) return c;
                            return answer<sdk::HbaConfiguration>(this, name, version);
                        }) {
        install_host();
    }
    FakeConfiguration(const FakeConfiguration&) = delete;
    FakeConfiguration& operator=(const FakeConfiguration&) = delete;

  private:
    struct Line {
        std::optional<sdk::HbaRecord> record;  // held with line 0
        std::string text;                      // a text contribution
    };
    std::vector<Line> hba_;
    detail::Registration registration_;
};

// ---------------------------------------------------------------- hook and command contexts

struct Undo {
    std::string what;
    std::function<void(sdk::Context&)> undo;
};

class FakeHookContext final : public BasicFakeContext<sdk::HookContext> {
  public:
    explicit FakeHookContext(sdk::HookPoint point = sdk::HookPoint::pre_configure,
                             std::string operation = "create")
        : hook_point(point), operation_name(std::move(operation)) {}

    // ---- what the test sets
    sdk::HookPoint hook_point;
    std::string operation_name;
    sdk::Outcome step_outcome;  // what outcome() gives (post_* points)
    bool is_first_configure = true;
    bool has_configuration = true;  // configuration() is non-null at pre_configure
    std::set<std::string> flags_given;
    FakeConfiguration fake_configuration;

    // ---- what the plugin did
    std::vector<Undo> undos;
    // Runs the undos in reverse order, as the engine does when the operation fails, each with
    // `undo_context` (a fresh FakeContext on the same instance unless given), and returns how
    // many threw.
    int run_undos(FakeContext* undo_context = nullptr) {
        FakeContext own;
        own.fake_instance = fake_instance;
        own.settings_values = settings_values;
        FakeContext& c = undo_context ? *undo_context : own;
        int threw = 0;
        for (auto it = undos.rbegin(); it != undos.rend(); ++it) {
            try {
                it->undo(c);
            } catch (...) {
                ++threw;
            }
        }
        return threw;
    }

    // ---- HookContext
    sdk::HookPoint point() const override { return hook_point; }
    std::string_view operation() const override { return operation_name; }
    const sdk::Outcome& outcome() const override { return step_outcome; }
    sdk::Configuration* configuration() override {
        if (hook_point != sdk::HookPoint::pre_configure || !has_configuration) return nullptr;
        return &fake_configuration;
    }
    bool first_configure() const override { return is_first_configure; }
    bool flag(std::string_view name) const override {
        return flags_given.count(std::string(name)) > 0;
    }
    void on_undo(std::string what, std::function<void(sdk::Context&)> undo) override {
        undos.push_back({std::move(what), std::move(undo)});
    }
};

class FakeCommandContext final : public BasicFakeContext<sdk::CommandContext> {
  public:
    explicit FakeCommandContext(std::vector<std::string> args = {}) : arguments(std::move(args)) {}

    // ---- what the test sets
    std::vector<std::string> arguments;
    bool json_output = false;

    // ---- what the command printed
    std::string out_text;
    std::string err_text;

    // ---- CommandContext
    const std::vector<std::string>& args() const override { return arguments; }
    bool json() const override { return json_output; }
    void out(std::string_view text) override { out_text += text; }
    void err(std::string_view text) override { err_text += text; }
};

// ---------------------------------------------------------------- the plugin under test

// The descriptor of the plugin compiled into the test program (its PGFORGE_PLUGIN line): a test
// program holds one plugin.
extern "C" const ::pgforge_plugin_descriptor pgforge_plugin_descriptor_object;

struct PluginDeleter {
    void operator()(sdk::Plugin* p) const {
        if (p) pgforge_plugin_descriptor_object.destroy(p);
    }
};
using PluginPtr = std::unique_ptr<sdk::Plugin, PluginDeleter>;

// The plugin object, made through its descriptor as the engine makes it (null if create
// failed).
inline PluginPtr create_plugin() {
    const ::pgforge_plugin_descriptor& d = pgforge_plugin_descriptor_object;
    return PluginPtr(static_cast<sdk::Plugin*>(d.create()));
}

// The name and version the descriptor declares.
inline std::string plugin_name() {
    return pgforge_plugin_descriptor_object.name;
}
inline std::string plugin_version() {
    return pgforge_plugin_descriptor_object.version;
}

}  // namespace pgforge::testing
