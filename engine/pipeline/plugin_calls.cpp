#include "engine/pipeline/plugin_calls.hpp"

#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <map>
#include <mutex>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>

#include "engine/conf/template.hpp"
#include "engine/core/error.hpp"
#include "engine/core/log.hpp"
#include "engine/core/process.hpp"
#include "engine/core/safe_fs.hpp"
#include "engine/core/text.hpp"
#include "engine/driver/installations.hpp"
#include "engine/driver/ports.hpp"
#include "engine/inventory/inventory.hpp"
#include "engine/pg/connection.hpp"
#include "engine/pg/postmaster_pid.hpp"
#include "engine/pipeline/configure_draft.hpp"
#include "engine/pipeline/context.hpp"
#include "engine/pipeline/hba_records.hpp"
#include "engine/pipeline/helpers.hpp"
#include "engine/pipeline/pipeline.hpp"
#include "engine/pipeline/plugin_host.hpp"
#include "pgforge/options.hpp"
#include "pgforge/steps.hpp"

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

#ifndef PGFORGE_VERSION
#error "PGFORGE_VERSION is defined by engine/CMakeLists.txt"
#endif

namespace pgforge {
namespace {

// The objects handed to plugins that are alive now, by the address of their SDK class.
struct Offered {
    std::mutex mutex;
    std::map<const void*, const OfferedInterfaces*> objects;
};

Offered& offered() {
    static Offered o;
    return o;
}

class EngineInfoImpl final : public sdk::EngineInfo {
  public:
    std::string version() const override { return PGFORGE_VERSION; }
    unsigned sdk_major() const override { return PGFORGE_SDK_VERSION_MAJOR; }
    unsigned sdk_minor() const override { return PGFORGE_SDK_VERSION_MINOR; }
};

const pgforge_host host{sizeof(pgforge_host), &find_offered_interface};

// A plugin's options for one instance (SDK 1.2): the values set, else the manifest's defaults;
// only the keys the manifest declares.
class InstanceOptionsImpl final : public sdk::InstanceOptions {
  public:
    explicit InstanceOptionsImpl(std::map<std::string, std::string> values)
        : values_(std::move(values)) {}
    std::optional<std::string> option(std::string_view key) const override {
        auto it = values_.find(std::string(key));
        if (it == values_.end()) return std::nullopt;
        return it->second;
    }
    std::map<std::string, std::string> options() const override { return values_; }

  private:
    std::map<std::string, std::string> values_;
};

}  // namespace

OfferedInterfaces::OfferedInterfaces(const void* object, Finder finder)
    : object_(object), finder_(std::move(finder)) {
    std::lock_guard lock(offered().mutex);
    auto& slot = offered().objects[object_];
    previous_ = slot;
    slot = this;
}

OfferedInterfaces::~OfferedInterfaces() {
    std::lock_guard lock(offered().mutex);
    if (previous_)
        offered().objects[object_] = previous_;
    else
        offered().objects.erase(object_);
}

void* find_offered_interface(void* object, const char* name, std::uint32_t version) noexcept {
    if (!object || !name) return nullptr;
    try {
        std::lock_guard lock(offered().mutex);
        auto it = offered().objects.find(object);
        if (it == offered().objects.end()) return nullptr;
        return it->second->finder_(name, version);
    } catch (...) {
        return nullptr;
    }
}

const pgforge_host& engine_host() {
    return host;
}

void* common_interface(std::string_view name, std::uint32_t version) {
    static EngineInfoImpl engine_info;
    return offer<sdk::EngineInfo>(name, version, &engine_info);
}

namespace {

// The SDK's read-only view of an instance.
class InstanceView final : public sdk::Instance {
  public:
    InstanceView(pgforge::Context& ctx, const pgforge::Instance& i) : ctx_(ctx), i_(i) {}
    std::string name() const override { return i_.name; }
    std::string version() const override { return i_.version; }
    std::string qualified_name() const override { return i_.qualified_name(); }
    fs::path base_dir() const override { return i_.base_dir; }
    fs::path data_dir() const override { return i_.data_dir; }
    fs::path wal_dir() const override { return i_.wal_dir; }
    fs::path log_file() const override { return i_.log_file; }
    fs::path socket_dir() const override { return i_.socket_dir; }
    fs::path bindir() const override {
        try {
            return select_installation(ctx_.settings(), i_.version).bindir;
        } catch (const std::exception&) {
            return {};
        }
    }
    int port() const override { return i_.port; }
    std::string owner() const override { return i_.owner; }
    std::string superuser() const override { return i_.superuser; }
    bool running() const override {
        auto pm = read_postmaster_pid(i_.data_dir);
        return pm && process_exists(pm->pid);
    }

  private:
    Context& ctx_;
    const pgforge::Instance& i_;
};

// What every call into a plugin gets, for each of the SDK's context kinds.
template <typename Base>
class PluginCall : public Base {
  public:
    PluginCall(pgforge::Context& ctx, std::string plugin, const pgforge::Instance* instance,
               Pipeline* pipeline)
        : ctx_(ctx),
          plugin_(std::move(plugin)),
          engine_instance_(instance),
          pipeline_(pipeline),
          offered_(static_cast<const sdk::Context*>(this),
                   [this](std::string_view name, std::uint32_t version) {
                       return find_interface(name, version);
                   }) {
        if (instance) {
            view_.emplace(ctx, *instance);
            hba_reader_.emplace(*instance);
        }
    }
    // The interfaces this context offers to sdk::find (a kind of context may offer more).
    virtual void* find_interface(std::string_view name, std::uint32_t version) {
        if (hba_reader_)
            if (void* found = offer<sdk::HbaFileReader>(name, version, &*hba_reader_)) return found;
        if (engine_instance_ && name == sdk::Helpers::interface_name) {
            if (!helpers_) {
                HelperScope scope =
                    helper_scope(ctx_.settings(), ctx_.inventory(), *engine_instance_, plugin_);
                scope.record = [this](JournalStep step) {
                    if (pipeline_) pipeline_->record(std::move(step));
                };
                scope.progress = [this](const std::string& step) {
                    if (ctx_.progress) ctx_.progress(step);
                };
                helpers_ = std::make_unique<HelperSupervisor>(std::move(scope));
            }
            return offer<sdk::Helpers>(name, version, helpers_.get());
        }
        if (engine_instance_ && name == sdk::InstanceOptions::interface_name) {
            if (!options_) {
                std::map<std::string, std::string> values;
                if (LoadedPlugin* p = ctx_.plugins().find(plugin_)) {
                    auto set = ctx_.inventory().plugin_options(*engine_instance_)[plugin_];
                    for (const ManifestOption& o : p->manifest().options) {
                        if (auto v = set.find(o.key); v != set.end())
                            values[o.key] = v->second;
                        else if (o.default_value)
                            values[o.key] = *o.default_value;
                    }
                }
                options_ = std::make_unique<InstanceOptionsImpl>(std::move(values));
            }
            return offer<sdk::InstanceOptions>(name, version, options_.get());
        }
        return common_interface(name, version);
    }

    const sdk::Instance* instance() const override { return view_ ? &*view_ : nullptr; }
    std::optional<std::string> setting(std::string_view key) const override {
        auto s = ctx_.settings().sections.find(plugin_);
        if (s == ctx_.settings().sections.end()) return std::nullopt;
        auto v = s->second.find(std::string(key));
        if (v == s->second.end()) return std::nullopt;
        return v->second;
    }
    std::map<std::string, std::string> settings() const override {
        auto s = ctx_.settings().sections.find(plugin_);
        return s == ctx_.settings().sections.end() ? std::map<std::string, std::string>{}
                                                   : s->second;
    }
    fs::path prefix() const override { return ctx_.settings().prefix; }
    fs::path config_dir() const override { return ctx_.settings().config_dir; }
    void log(sdk::LogLevel level, std::string_view message) override {
        std::string m = plugin_ + ": " + std::string(message);
        switch (level) {
            case sdk::LogLevel::debug:
                log::debug(m);
                break;
            case sdk::LogLevel::info:
                log::info(m);
                break;
            case sdk::LogLevel::warning:
                log::warn(m);
                break;
            case sdk::LogLevel::error:
                log::error(m);
                break;
        }
    }
    void progress(std::string_view step) override {
        if (ctx_.progress) ctx_.progress(plugin_ + ": " + std::string(step));
    }
    sdk::RunResult run(const std::vector<std::string>& argv,
                       const sdk::RunOptions& options) override {
        sdk::RunResult r;
        auto began = Clock::now();
        std::string started_at = utc_timestamp();
        std::string what;
        try {
            Command c = command(argv, options);
            what = describe(c);
            ProcessResult p = run_process(c);
            r.started = true;
            r.exit_code = p.status;
            r.timed_out = p.timed_out;
            r.out = std::move(p.out);
            r.err = std::move(p.err);
        } catch (const std::exception& e) {
            r.error = e.what();
        }
        if (pipeline_) {
            std::string output = r.started ? tail_text(r.out + r.err) : r.error;
            pipeline_->record({"run", plugin_ + ": " + (what.empty() ? argv.at(0) : what),
                               started_at, ms_since(began), r.ok() ? "ok" : "failed",
                               r.timed_out ? "timed out\n" + output : output});
        }
        return r;
    }
    long spawn(const std::vector<std::string>& argv, const sdk::RunOptions& options,
               const fs::path& log_file, std::string& error) override {
        try {
            Command c = command(argv, options);
            pid_t pid = spawn_detached(c, log_file);
            if (pipeline_)
                pipeline_->record({"run", plugin_ + ": " + describe(c) + " &", utc_timestamp(), 0,
                                   "ok", "pid " + std::to_string(pid)});
            return pid;
        } catch (const std::exception& e) {
            error = e.what();
            return 0;
        }
    }
    sdk::QueryResult query(std::string_view sql, const std::vector<std::string>& parameters,
                           std::string_view database) override {
        sdk::QueryResult r;
        if (!engine_instance_) {
            r.error = "this call has no instance";
            return r;
        }
        try {
            pg::Connection c(*engine_instance_,
                             database.empty() ? std::string("postgres") : std::string(database));
            auto q = c.exec(std::string(sql), parameters);
            r.ok = true;
            r.columns = std::move(q.columns);
            r.rows = std::move(q.rows);
        } catch (const pg::SqlError& e) {
            r.error = e.server_message().empty() ? e.what() : e.server_message();
        } catch (const std::exception& e) {
            r.error = e.what();
        }
        return r;
    }
    std::string quote_identifier(std::string_view name) const override {
        if (auto* c = connection()) return c->quote_identifier(std::string(name));
        return quoted(name, '"');
    }
    std::string quote_literal(std::string_view value) const override {
        if (auto* c = connection()) return c->quote_literal(std::string(value));
        // Standard-conforming strings: doubling the quote is all a literal needs, unless it has
        // a backslash, which E'' syntax then doubles too.
        if (value.find('\\') == std::string_view::npos) return quoted(value, '\'');
        std::string doubled;
        for (char ch : value) doubled += ch == '\\' ? std::string("\\\\") : std::string(1, ch);
        return " E" + quoted(doubled, '\'');
    }
    std::optional<std::string> state(std::string_view key) const override {
        if (!engine_instance_) return std::nullopt;
        try {
            auto j = state_object();
            auto it = j.find(std::string(key));
            if (it == j.end()) return std::nullopt;
            return it->is_string() ? it->template get<std::string>() : it->dump();
        } catch (const std::exception&) {
            return std::nullopt;
        }
    }
    bool set_state(std::string_view key, std::string_view value) override {
        if (!engine_instance_) return false;
        try {
            auto j = state_object();
            j[std::string(key)] = std::string(value);
            if (key == "port") j["port"] = std::stoi(std::string(value));
            ctx_.inventory().set_plugin_state(*engine_instance_, plugin_, j.dump());
            return true;
        } catch (const std::exception& e) {
            log::warn(plugin_ + ": cannot save state " + std::string(key) + ": " + e.what());
            return false;
        }
    }
    bool erase_state(std::string_view key) override {
        if (!engine_instance_) return false;
        try {
            auto j = state_object();
            j.erase(std::string(key));
            ctx_.inventory().set_plugin_state(*engine_instance_, plugin_, j.dump());
            return true;
        } catch (const std::exception&) {
            return false;
        }
    }
    int reserve_port(int low, int high) override {
        if (!engine_instance_) return 0;
        try {
            if (auto mine = state("port")) return std::stoi(*mine);
            const auto& s = ctx_.settings();
            FileLock ports(s.prefix / "locks" / "ports.lock",
                           std::chrono::milliseconds(long(s.lock_timeout * 1000)), "port choice");
            auto taken = ctx_.inventory().ports();
            auto reserved = ctx_.inventory().plugin_ports();
            std::set<int> used(taken.begin(), taken.end());
            used.insert(reserved.begin(), reserved.end());
            for (int p = std::max(low, 1024); p <= std::min(high, 65535); ++p) {
                if (used.count(p) || !port_is_free(p)) continue;
                if (set_state("port", std::to_string(p))) return p;
                return 0;
            }
        } catch (const std::exception& e) {
            log::warn(plugin_ + ": cannot reserve a port: " + e.what());
        }
        return 0;
    }
    bool write_file(const fs::path& path, std::string_view content, unsigned mode,
                    std::string& error) override {
        try {
            std::optional<OsUser> owner;
            if (engine_instance_) owner = lookup_os_user(engine_instance_->owner);
            write_owned_file(path, std::string(content), owner ? &*owner : nullptr, mode);
            return true;
        } catch (const std::exception& e) {
            error = e.what();
            return false;
        }
    }
    bool quiet() const override { return ctx_.quiet; }
    bool make_directory(const fs::path& path, unsigned mode, std::string& error) override {
        try {
            std::error_code ec;
            // An existing directory is left as it is; a link there is not one (safe_fs says so).
            if (fs::is_directory(fs::symlink_status(path, ec))) return true;
            if (engine_instance_ && running_as_root())
                make_owned_directory(path, lookup_os_user(engine_instance_->owner),
                                     fs::perms(mode & 07777));
            else {
                fs::create_directories(path);
                fs::permissions(path, fs::perms(mode & 07777));
            }
            return true;
        } catch (const std::exception& e) {
            error = e.what();
            return false;
        }
    }

  protected:
    pgforge::Context& ctx_;
    std::string plugin_;
    const pgforge::Instance* engine_instance_;
    Pipeline* pipeline_;

  private:
    Command command(const std::vector<std::string>& argv, const sdk::RunOptions& o) {
        if (argv.empty()) throw Error(Exit::failure, "empty command");
        Command c;
        c.argv = argv;
        // A name not on PATH is left as it is: exec fails and says so.
        if (auto found = find_on_path(argv[0]); !found.empty()) c.argv[0] = found.string();
        if (o.as_owner && engine_instance_) {
            owner_ = lookup_os_user(engine_instance_->owner);
            c.as = &owner_;
        }
        c.env = o.env;
        c.input = o.input;
        c.timeout = o.timeout;
        if (!o.cwd.empty()) c.cwd = o.cwd;
        return c;
    }
    nlohmann::json state_object() const {
        auto j = nlohmann::json::parse(ctx_.inventory().plugin_state(*engine_instance_, plugin_),
                                       nullptr, false);
        return j.is_object() ? j : nlohmann::json::object();
    }
    static std::string quoted(std::string_view text, char q) {
        std::string out(1, q);
        for (char ch : text) {
            if (ch == q) out += q;
            out += ch;
        }
        return out + q;
    }
    pg::Connection* connection() const {
        if (!connection_ && engine_instance_) {
            try {
                connection_ = std::make_unique<pg::Connection>(*engine_instance_);
            } catch (const std::exception&) {
            }
        }
        return connection_.get();
    }

    std::optional<InstanceView> view_;
    std::optional<InstanceHbaReader> hba_reader_;
    OsUser owner_;
    mutable std::unique_ptr<pg::Connection> connection_;
    std::unique_ptr<HelperSupervisor> helpers_;     // made on the first find<sdk::Helpers>
    std::unique_ptr<InstanceOptionsImpl> options_;  // made on the first find<sdk::InstanceOptions>
    OfferedInterfaces offered_;
};

class HookCall final : public PluginCall<sdk::HookContext> {
  public:
    HookCall(pgforge::Context& ctx, std::string plugin, Pipeline& p, sdk::HookPoint point,
             const sdk::Outcome& outcome, ConfigureDraft* draft)
        : PluginCall(ctx, std::move(plugin), &p.instance(), &p),
          point_(point),
          outcome_(outcome),
          draft_(draft) {}
    sdk::HookPoint point() const override { return point_; }
    std::string_view operation() const override { return pipeline_->operation(); }
    const sdk::Outcome& outcome() const override { return outcome_; }
    sdk::Configuration* configuration() override { return draft_; }
    bool first_configure() const override { return pipeline_->first_configure; }
    bool flag(std::string_view name) const override {
        return ctx_.flags.count(std::string(name)) > 0;
    }
    void on_undo(std::string what, std::function<void(sdk::Context&)> undo) override {
        Pipeline* p = pipeline_;
        pgforge::Context& ctx = ctx_;
        std::string plugin = plugin_;
        p->on_undo("plugin " + plugin + ": " + what, [p, &ctx, plugin, undo = std::move(undo)] {
            PluginCall<sdk::Context> call(ctx, plugin, &p->instance(), p);
            undo(call);
        });
    }

  private:
    sdk::HookPoint point_;
    const sdk::Outcome& outcome_;
    ConfigureDraft* draft_;
};

class CommandCall final : public PluginCall<sdk::CommandContext> {
  public:
    CommandCall(pgforge::Context& ctx, std::string plugin, const pgforge::Instance* instance,
                Pipeline* p, const std::vector<std::string>& args, bool json, std::ostream& out,
                std::ostream& err)
        : PluginCall(ctx, std::move(plugin), instance, p),
          args_(args),
          json_(json),
          out_(out),
          err_(err) {}
    const std::vector<std::string>& args() const override { return args_; }
    bool json() const override { return json_; }
    void out(std::string_view text) override { out_ << text << std::flush; }
    void err(std::string_view text) override { err_ << text << std::flush; }

  private:
    const std::vector<std::string>& args_;
    bool json_;
    std::ostream& out_;
    std::ostream& err_;
};

using PlainCall = PluginCall<sdk::Context>;

}  // namespace

sdk::Result call_plugin_hook(Context& ctx, LoadedPlugin& plugin, Pipeline& p, sdk::HookPoint point,
                             const sdk::Outcome& outcome, ConfigureDraft* draft) {
    HookCall call(ctx, plugin.name(), p, point, outcome, draft);
    // The configuration's interfaces, while the handler runs: its contributions (SDK 1.1) and
    // what every object offers.
    std::optional<OfferedInterfaces> configuration;
    if (draft)
        configuration.emplace(static_cast<const sdk::Configuration*>(draft),
                              [draft](std::string_view name, std::uint32_t version) -> void* {
                                  if (void* c = offer<sdk::Contributions>(name, version, draft))
                                      return c;
                                  if (void* h = offer<sdk::HbaConfiguration>(name, version, draft))
                                      return h;
                                  return common_interface(name, version);
                              });
    return plugin.on_hook(call);
}

int run_plugin_command(Context& ctx, LoadedPlugin& plugin, const sdk::Command& command,
                       const Instance* instance, const std::vector<std::string>& args, bool json,
                       std::ostream& out, std::ostream& err) {
    if (!instance) {
        CommandCall call(ctx, plugin.name(), nullptr, nullptr, args, json, out, err);
        return plugin.run_command(command, call);
    }
    Instance target = *instance;
    Pipeline p(ctx, command.family + " " + command.verb, target);
    CommandCall call(ctx, plugin.name(), &target, &p, args, json, out, err);
    int rc = 0;
    try {
        rc = plugin.run_command(command, call);
    } catch (const Error& e) {
        p.fail(e.what());  // a throw in the plugin is journaled with the operation
        throw;
    }
    if (rc == 0)
        p.finish();
    else
        p.fail("exit status " + std::to_string(rc));
    return rc;
}

int call_step_provider(Context& ctx, LoadedPlugin& plugin, Pipeline& p, const std::string& step,
                       const std::vector<std::string>& args, std::string& message) {
    sdk::Command command{sdk::step_family, step, "", "the " + step + " step", true};
    std::ostringstream out, err;
    CommandCall call(ctx, plugin.name(), &p.instance(), &p, args, false, out, err);
    int rc = plugin.run_command(command, call);
    message = tail_text(err.str().empty() ? out.str() : err.str());
    return rc;
}

std::vector<std::tuple<std::string, std::string, std::string>> plugin_fields(
    Context& ctx, const Instance& instance) {
    std::vector<std::tuple<std::string, std::string, std::string>> out;
    if (!ctx.plugins_wanted()) return out;
    for (LoadedPlugin* p : ctx.plugins().loaded()) {
        PlainCall call(ctx, p->name(), &instance, nullptr);
        for (auto& f : p->describe(call)) out.emplace_back(p->name(), f.key, f.value);
    }
    // An enabled plugin that is not loaded says so where its fields would be.
    for (const auto& r : ctx.plugins().records()) {
        if (r.skipped) out.emplace_back(r.manifest.name, "state", "skipped (--skip-plugin)");
        if (r.broken()) out.emplace_back(r.manifest.name, "state", "broken: " + r.error);
    }
    return out;
}

sdk::Result setup_plugin(Context& ctx, LoadedPlugin& plugin) {
    PlainCall call(ctx, plugin.name(), nullptr, nullptr);
    return plugin.setup(call);
}

}  // namespace pgforge
