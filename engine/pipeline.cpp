#include "engine/pipeline.hpp"

#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <fstream>
#include <nlohmann/json.hpp>
#include <ostream>
#include <set>
#include <thread>

#include "engine/conf/template.hpp"
#include "engine/core/error.hpp"
#include "engine/core/fault.hpp"
#include "engine/core/interrupt.hpp"
#include "engine/core/log.hpp"
#include "engine/core/plugins.hpp"
#include "engine/core/safe_fs.hpp"
#include "engine/core/text.hpp"
#include "engine/driver/postmaster_pid.hpp"
#include "engine/pg/connection.hpp"
#include "engine/server.hpp"

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

namespace pgforge {
namespace {

double ms_since(Clock::time_point t) {
    return std::chrono::duration<double, std::milli>(Clock::now() - t).count();
}

// The end of a long text: journals and messages keep the last `n` bytes.
std::string tail(const std::string& text, size_t n = 4000) {
    std::string t = text;
    while (!t.empty() && (t.back() == '\n' || t.back() == ' ')) t.pop_back();
    return t.size() <= n ? t : "..." + t.substr(t.size() - n);
}

// run-parts' idea of a file to run: no hidden files, editor backups or package leftovers.
bool runnable_name(const std::string& name) {
    if (name.empty() || name[0] == '.' || name.back() == '~') return false;
    for (const char* suffix : {".dpkg-old", ".dpkg-new", ".dpkg-dist", ".dpkg-tmp", ".rpmnew",
                               ".rpmsave", ".disabled", ".swp"}) {
        std::string s = suffix;
        if (name.size() > s.size() && name.compare(name.size() - s.size(), s.size(), s) == 0)
            return false;
    }
    return std::all_of(name.begin(), name.end(), [](char c) {
        return std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '-' || c == '.';
    });
}

// Writes a file atomically with `mode`, given to `owner` when pgforge runs as root; a missing
// directory is made 0700 for the owner (plain, without an owner). Both go through safe_fs: in a
// directory of the owner, the work is done as the owner, so a link the owner planted leads
// nowhere the owner could not write.
void write_owned_file(const fs::path& path, const std::string& content, const OsUser* owner,
                      unsigned mode) {
    std::error_code ec;
    fs::path dir = path.parent_path();
    if (!fs::exists(dir, ec)) {
        if (owner)
            make_owned_directory(dir, *owner, fs::perms(0700));
        else
            fs::create_directories(dir);
    }
    write_file_atomically(path, content, owner && running_as_root() ? owner : nullptr,
                          fs::perms(mode & 07777));
}

// A plugin's file is `<base_dir>/<plugin>/<relative>`: `relative` may not be absolute, hold a
// `..` or an empty component, and nothing on the way below the base directory may be a symbolic
// link. Returns why not, or "".
std::string outside_plugin_directory(const fs::path& base_dir, const std::string& plugin,
                                     const std::string& relative) {
    fs::path rel(relative);
    if (relative.empty() || rel.is_absolute()) return "not a relative path";
    for (const auto& part : rel)
        if (part == ".." || part == "." || part.empty()) return "'" + part.string() + "' in it";
    if (plugin.empty() || plugin.find('/') != std::string::npos || plugin == "..")
        return "no plugin directory";
    fs::path p = base_dir / plugin;
    std::vector<fs::path> steps = {p};
    for (const auto& part : rel) steps.push_back(steps.back() / part);
    for (const fs::path& step : steps) {
        struct stat st {};
        if (lstat(step.c_str(), &st) != 0) break;
        if (S_ISLNK(st.st_mode)) return step.string() + " is a symbolic link";
    }
    return "";
}

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
        : ctx_(ctx), plugin_(std::move(plugin)), engine_instance_(instance), pipeline_(pipeline) {
        if (instance) view_.emplace(ctx, *instance);
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
            std::string output = r.started ? tail(r.out + r.err) : r.error;
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
    OsUser owner_;
    mutable std::unique_ptr<pg::Connection> connection_;
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

// ---------------------------------------------------------------- handlers

std::vector<fs::path> find_site_hooks(const Settings& settings, sdk::HookPoint point) {
    std::vector<std::pair<std::string, fs::path>> found;
    std::error_code ec;
    for (const fs::path& dir : settings.hook_search_path()) {
        fs::path d = dir / (std::string(sdk::to_string(point)) + ".d");
        if (!fs::is_directory(d, ec)) continue;
        if (auto why = safe_fs::unsafe_reason(d); !why.empty())
            throw Error(Exit::failure, "site hooks refused: " + why,
                        "make it owned by root (or you) and not writable by group or others");
        for (const auto& e : fs::directory_iterator(d, ec)) {
            std::string name = e.path().filename().string();
            if (!runnable_name(name) || e.is_directory(ec)) continue;
            if (auto why = safe_fs::unsafe_reason(e.path()); !why.empty())
                throw Error(Exit::failure, "site hook refused: " + why,
                            "make it owned by root (or you) and not writable by group or others");
            if (::access(e.path().c_str(), X_OK) != 0) {
                log::warn("site hook " + e.path().string() + " is not executable: skipped");
                continue;
            }
            found.emplace_back(name, e.path());
        }
    }
    std::stable_sort(found.begin(), found.end(),
                     [](const auto& a, const auto& b) { return a.first < b.first; });
    std::vector<fs::path> out;
    for (auto& f : found) out.push_back(std::move(f.second));
    return out;
}

std::vector<HookHandler> handlers_at(Context& ctx, sdk::HookPoint point) {
    std::vector<HookHandler> hs;
    if (ctx.plugins_wanted()) {
        ctx.plugins().check_point(point);  // fail closed on a broken plugin
        for (LoadedPlugin* p : ctx.plugins().loaded()) {
            auto it = p->manifest().priorities.find(point);
            if (it != p->manifest().priorities.end()) hs.push_back({it->second, p->name(), p, {}});
        }
    }
    for (const auto& file : find_site_hooks(ctx.settings(), point))
        hs.push_back(
            {ctx.settings().hook_priority,
             "hooks/" + std::string(sdk::to_string(point)) + ".d/" + file.filename().string(),
             nullptr, file});
    // Site hooks keep their name order among themselves (they share one priority).
    std::stable_sort(hs.begin(), hs.end(), [](const HookHandler& a, const HookHandler& b) {
        if (a.priority != b.priority) return a.priority < b.priority;
        if ((a.plugin == nullptr) != (b.plugin == nullptr)) return a.plugin != nullptr;
        return a.plugin ? a.name < b.name : false;
    });
    return hs;
}

// ---------------------------------------------------------------- configure draft

ConfigureDraft::ConfigureDraft(const Instance& instance,
                               std::map<fs::path, conf::ConfDocument>& docs, conf::HbaFile& hba,
                               conf::IdentFile& ident,
                               std::function<fs::path(const std::string&)> file_for)
    : instance_(instance), docs_(docs), hba_(hba), ident_(ident), file_for_(std::move(file_for)) {}

void ConfigureDraft::add_ident_mapping(std::string_view map, std::string_view system_user,
                                       std::string_view database_user) {
    try {
        conf::IdentEntry e;
        e.map = std::string(map);
        e.system_user = std::string(system_user);
        e.pg_user = std::string(database_user);
        if (e.map.empty() || e.system_user.empty() || e.pg_user.empty())
            throw Error(Exit::usage, "a mapping needs a map name, a system user and a role");
        if (ident_.add(e)) ident_changed_ = true;
    } catch (const std::exception& e) {
        conflicts_.push_back("plugin " + contributor_ +
                             " contributes an invalid ident mapping: " + e.what());
    }
}

void ConfigureDraft::user_sets(const std::string& name, std::optional<std::string> value) {
    user_[to_lower(name)] = std::move(value);
}

void ConfigureDraft::set_parameter(std::string_view name_view, std::string_view value) {
    std::string name = to_lower(std::string(name_view));
    std::string who = "plugin " + contributor_;
    if (!conf::is_valid_name(name)) {
        conflicts_.push_back(who + " contributes an invalid parameter name '" + name + "'");
        return;
    }
    if (auto u = user_.find(name);
        u != user_.end() && u->second != std::optional<std::string>(std::string(value))) {
        conflicts_.push_back("parameter " + name + ": the command " +
                             (u->second ? "sets '" + *u->second + "'" : std::string("removes it")) +
                             ", " + who + " sets '" + std::string(value) + "'");
        return;
    }
    auto it = parameters_.find(name);
    if (it != parameters_.end() && it->second.first != value) {
        conflicts_.push_back("parameter " + name + ": plugin " + it->second.second + " sets '" +
                             it->second.first + "', " + who + " sets '" + std::string(value) + "'");
        return;
    }
    parameters_[name] = {std::string(value), contributor_};
}

void ConfigureDraft::add_hba_record(std::string_view text, sdk::HbaPlace place) {
    try {
        auto parsed = conf::HbaFile::parse(std::string(text) + "\n");
        auto records = parsed.records();
        if (records.size() != 1)
            throw Error(Exit::usage, "not one record: '" + std::string(text) + "'");
        const conf::HbaRecord r = records.front();
        for (const auto& existing : hba_.records())
            if (existing.same_as(r)) return;
        if (place == sdk::HbaPlace::first)
            hba_.insert(0, r);
        else
            hba_.insert(hba_.size(), r);
        hba_changed_ = true;
    } catch (const std::exception& e) {
        conflicts_.push_back("plugin " + contributor_ +
                             " contributes an invalid HBA record: " + e.what());
    }
}

void ConfigureDraft::add_file(std::string_view relative_name, std::string_view content,
                              unsigned mode) {
    std::string why =
        outside_plugin_directory(instance_.base_dir, contributor_, std::string(relative_name));
    if (!why.empty()) {
        conflicts_.push_back("plugin " + contributor_ +
                             " contributes a file outside its directory: '" +
                             std::string(relative_name) + "' (" + why + ")");
        return;
    }
    fs::path path = instance_.base_dir / contributor_ / std::string(relative_name);
    for (const auto& f : files_)
        if (f.path == path) {
            conflicts_.push_back("file " + path.string() + " contributed twice by plugin " +
                                 contributor_);
            return;
        }
    files_.push_back({contributor_, path, std::string(content), mode});
}

std::optional<std::string> ConfigureDraft::parameter(std::string_view name_view) const {
    std::string name = to_lower(std::string(name_view));
    if (auto it = parameters_.find(name); it != parameters_.end()) return it->second.first;
    if (auto u = user_.find(name); u != user_.end()) return u->second;
    fs::path file = file_for_(name);
    if (auto d = docs_.find(file); d != docs_.end()) {
        if (auto e = d->second.get(name)) return e->value;
        return std::nullopt;
    }
    try {
        if (auto e = conf::ConfDocument::read(file).get(name)) return e->value;
    } catch (const std::exception&) {
    }
    return std::nullopt;
}

std::string ConfigureDraft::hba_text() const {
    return hba_.print();
}

std::vector<std::string> ConfigureDraft::apply_parameters() {
    std::vector<std::string> changed;
    for (const auto& [name, contribution] : parameters_) {
        fs::path file = file_for_(name);
        if (!docs_.count(file)) docs_.emplace(file, conf::ConfDocument::read(file));
        auto& doc = docs_.at(file);
        auto now = doc.get(name);
        if (now && now->value == contribution.first) continue;
        doc.set(name, contribution.first);
        changed.push_back(name);
    }
    return changed;
}

std::vector<fs::path> ConfigureDraft::write_files(const OsUser& owner) {
    std::vector<fs::path> written;
    for (const auto& f : files_) {
        // Checked again at the write: the owner may have planted a link since add_file.
        std::string why = outside_plugin_directory(
            instance_.base_dir, f.plugin,
            f.path.lexically_relative(instance_.base_dir / f.plugin).string());
        if (!why.empty())
            throw Error(
                Exit::failure,
                "refusing to write " + f.path.string() + " for plugin " + f.plugin + ": " + why,
                "remove the link; pgforge writes a plugin's files only inside " +
                    (instance_.base_dir / f.plugin).string());
        struct stat st {};
        if (lstat(f.path.c_str(), &st) == 0 && S_ISREG(st.st_mode) &&
            (st.st_mode & 07777) == (f.mode & 07777) && read_text_file(f.path) == f.content)
            continue;
        write_owned_file(f.path, f.content, &owner, f.mode);
        written.push_back(f.path);
    }
    return written;
}

// ---------------------------------------------------------------- pipeline

Pipeline::Pipeline(Context& ctx, std::string operation, Instance& instance)
    : ctx_(ctx), operation_(std::move(operation)), instance_(instance) {
    // A signal before anything began: nothing to undo, nothing journaled.
    throw_if_interrupted();
    journal_id_ = ctx.inventory().begin_operation(operation_, instance_.qualified_name());
    fault_point(operation_, "begin", "after");
}

Pipeline::~Pipeline() {
    if (finished_) return;
    // The undo of an interrupted operation runs to its end; a second signal still ends the
    // process, and the next command on the instance resumes from the journal.
    DeferInterrupts defer;
    for (auto it = undo_.rbegin(); it != undo_.rend(); ++it) {
        fault_point(operation_, "undo " + it->first, "before");
        auto began = Clock::now();
        std::string at = utc_timestamp();
        try {
            log::info("undoing: " + it->first);
            it->second();
            pending_.push_back({"undo", it->first, at, ms_since(began), "ok", {}});
        } catch (const std::exception& e) {
            log::warn("could not undo " + it->first + ": " + e.what());
            pending_.push_back({"undo", it->first, at, ms_since(began), "failed", e.what()});
        } catch (...) {
            log::warn("could not undo " + it->first + ": an unknown exception");
            pending_.push_back({"undo", it->first, at, ms_since(began), "failed", "exception"});
        }
    }
    try {
        auto steps = std::move(pending_);
        ctx_.inventory().end_operation(journal_id_, false,
                                       failure_.empty() ? "interrupted" : failure_, steps);
    } catch (...) {
    }
}

void Pipeline::check_interrupt() {
    try {
        throw_if_interrupted();
    } catch (const Error& e) {
        failure_ = e.what();
        throw;
    }
}

void Pipeline::record(JournalStep step) {
    pending_.push_back(std::move(step));
}

void Pipeline::flush(bool synced) {
    if (pending_.empty()) return;
    auto steps = std::move(pending_);
    pending_.clear();
    ctx_.inventory().record_steps(journal_id_, steps, synced);
}

void Pipeline::on_undo(std::string what, std::function<void()> undo) {
    undo_.emplace_back(std::move(what), std::move(undo));
}

void Pipeline::made(const std::string& kind, const std::string& target) {
    pending_.push_back({"made", kind, utc_timestamp(), 0, "ok", target});
    flush();
    fault_point(operation_, "made " + kind, "after");
}

std::vector<JournalStep> Pipeline::close_for_end() {
    // A signal during the last step still fails the operation: it is undone, not half-kept.
    check_interrupt();
    fault_point(operation_, "finish", "before");
    finished_ = true;
    undo_.clear();
    auto steps = std::move(pending_);
    pending_.clear();
    return steps;
}

void Pipeline::finish() {
    auto steps = close_for_end();
    ctx_.inventory().end_operation(journal_id_, true, {}, steps);
}

void Pipeline::finish_removing_entry() {
    auto steps = close_for_end();
    ctx_.inventory().end_operation_removing(journal_id_, steps, instance_.version, instance_.name);
}

void Pipeline::finish_updating_entry() {
    auto steps = close_for_end();
    ctx_.inventory().end_operation_updating(journal_id_, steps, instance_);
}

void Pipeline::step(const std::string& name, const std::function<void()>& body) {
    // What ran so far is written before a long step: a kill -9 leaves it visible. History only,
    // so not synced (a power loss may lose it, never a `made` row: those are).
    flush(false);
    check_interrupt();
    fault_point(operation_, name, "before");
    auto began = Clock::now();
    std::string at = utc_timestamp();
    try {
        body();
    } catch (const std::exception& e) {
        failure_ = e.what();
        pending_.push_back({"step", name, at, ms_since(began), "failed", e.what()});
        // A program cut short by the signal fails with its own message; the signal is the cause.
        if (interrupted()) check_interrupt();
        throw;
    }
    pending_.push_back({"step", name, at, ms_since(began), "ok", {}});
    fault_point(operation_, name, "after");
    check_interrupt();
}

void Pipeline::hooks(sdk::HookPoint point, const sdk::Outcome& outcome, ConfigureDraft* draft) {
    const bool pre = sdk::is_pre(point);
    check_interrupt();
    const std::string point_name = sdk::to_string(point);
    fault_point(operation_, point_name, "before");
    std::vector<HookHandler> hs;
    try {
        hs = handlers_at(ctx_, point);
    } catch (const Error& e) {
        failure_ = e.what();
        throw;
    }
    if (ctx_.plugins_wanted())
        for (const PluginRecord* r : ctx_.plugins().skipped_at(point))
            pending_.push_back({"plugin", point_name + " " + r->manifest.name, utc_timestamp(), 0,
                                "skipped", "--skip-plugin " + r->manifest.name});
    std::optional<Error> refusal;
    for (const auto& h : hs) {
        auto began = Clock::now();
        std::string at = utc_timestamp();
        sdk::Result r;
        std::string kind;
        if (h.plugin) {
            kind = "plugin";
            if (draft) draft->begin_contributions(h.name);
            HookCall call(ctx_, h.name, *this, point, outcome,
                          point == sdk::HookPoint::pre_configure ? draft : nullptr);
            r = h.plugin->on_hook(call);
        } else {
            kind = "hook";
            r = run_site_hook(h, point, outcome);
        }
        pending_.push_back({kind, point_name + " " + h.name, at, ms_since(began),
                            r.refused() ? "refused" : "ok", r.message});
        check_interrupt();
        if (!r.refused()) continue;
        std::string who = (h.plugin ? "plugin " : "site hook ") + h.name;
        Error e(Exit::failure,
                operation_ + " of instance " + instance_.qualified_name() + " refused at " +
                    point_name + " by " + who + ": " + r.message,
                pre ? "the step did not run" : "");
        if (pre) {
            failure_ = e.what();
            throw e;
        }
        if (!refusal) refusal = e;
    }
    if (draft && point == sdk::HookPoint::pre_configure && !draft->conflicts().empty()) {
        std::string text;
        for (const auto& c : draft->conflicts()) text += "\n  " + c;
        failure_ = "conflicting configuration:" + text;
        throw Error(
            Exit::conflict,
            "instance " + instance_.qualified_name() + ": conflicting configuration:" + text,
            "change the command, or the settings of the plugins named");
    }
    if (refusal) {
        failure_ = refusal->what();
        throw *refusal;
    }
}

sdk::Result Pipeline::run_site_hook(const HookHandler& h, sdk::HookPoint point,
                                    const sdk::Outcome& outcome) {
    const Instance& i = instance_;
    // The file is opened once and checked through its descriptor over its whole path; that
    // descriptor is what runs, whatever its name points to by then.
    std::string why;
    auto file = safe_fs::open_trusted(h.executable, false, why);
    if (!file) return sdk::Result::refuse("refused: " + why);
    Command c;
    c.argv = {h.executable.string()};
    c.exec_fd = file->fd.get();
    OsUser owner;
    if (running_as_root() && !i.owner.empty()) {
        owner = lookup_os_user(i.owner);
        c.as = &owner;
    }
    c.env = {"PGFORGE_HOOK=" + std::string(sdk::to_string(point)),
             "PGFORGE_OPERATION=" + operation_,
             "PGFORGE_INSTANCE=" + i.qualified_name(),
             "PGFORGE_VERSION=" + i.version,
             "PGDATA=" + i.data_dir.string(),
             "PGPORT=" + std::to_string(i.port),
             "PGHOST=" + i.socket_dir.string(),
             "PGUSER=" + i.superuser};
    if (!sdk::is_pre(point))
        c.env.push_back("PGFORGE_OUTCOME=" + std::string(outcome.ok ? "ok" : "failed"));
    c.timeout = ctx_.settings().hook_timeout;
    try {
        ProcessResult p = run_process(c);
        if (p.timed_out)
            return sdk::Result::refuse("timed out after " +
                                       std::to_string(static_cast<int>(c.timeout)) + " s (killed)");
        if (p.ok()) return sdk::Result::proceed();
        std::string why = tail(p.err, 2000);
        if (why.empty()) why = tail(p.out, 2000);
        return sdk::Result::refuse("exited with status " + std::to_string(p.status) +
                                   (why.empty() ? "" : ": " + why));
    } catch (const Error& e) {
        if (e.code() == Exit::interrupted) throw;  // the operation stops, not only the hook
        return sdk::Result::refuse(e.what());
    } catch (const std::exception& e) {
        return sdk::Result::refuse(e.what());
    }
}

void Pipeline::around(sdk::HookPoint pre, const std::string& step_name,
                      const std::function<void()>& body, ConfigureDraft* draft) {
    auto post = static_cast<sdk::HookPoint>(static_cast<int>(pre) + 1);
    hooks(pre, {}, draft);
    try {
        step(step_name, body);
    } catch (const std::exception& e) {
        sdk::Outcome failed{false, e.what()};
        std::string saved = failure_;
        try {
            // The post handlers see an interrupted step fail like any other.
            DeferInterrupts defer;
            hooks(post, failed);
        } catch (const std::exception& h) {
            log::warn(h.what());
        }
        failure_ = saved;
        throw;
    }
    hooks(post, {});
}

// ---------------------------------------------------------------- what a killed operation made

namespace {

// Programs pgforge starts in an instance's directories and that may outlive it: initdb (its
// working directory is the base directory) and the backends it or the server runs.
bool instance_program(const std::string& comm) {
    return comm == "initdb" || comm == "postgres" || comm == "postmaster";
}

// The pids of those programs whose working directory is `dir` or below it, run by the owner of
// `dir` (never another user's process, whatever its name).
std::vector<pid_t> programs_working_in(const fs::path& dir) {
    std::vector<pid_t> pids;
    struct stat owner {};
    if (::lstat(dir.c_str(), &owner) != 0) return pids;
    std::error_code ec;
    const std::string prefix = dir.string() + "/";
    for (const auto& entry : fs::directory_iterator("/proc", ec)) {
        const std::string name = entry.path().filename().string();
        if (name.empty() || !std::all_of(name.begin(), name.end(), ::isdigit)) continue;
        pid_t pid = static_cast<pid_t>(std::stol(name));
        struct stat st {};
        if (pid == getpid() || ::stat(entry.path().c_str(), &st) != 0 || st.st_uid != owner.st_uid)
            continue;
        std::error_code e2;
        fs::path cwd = fs::read_symlink(entry.path() / "cwd", e2);
        if (e2) continue;
        const std::string c = cwd.string();
        if (c != dir.string() && c.rfind(prefix, 0) != 0) continue;
        std::string comm;
        std::getline(std::ifstream(entry.path() / "comm"), comm);
        while (!comm.empty() && comm.back() == '\n') comm.pop_back();
        if (instance_program(comm)) pids.push_back(pid);
    }
    return pids;
}

// Whether `pid` is the postmaster of `data_dir`: a postgres process of the data directory's
// owner working in it. A stale or forged postmaster.pid never makes pgforge signal another
// process.
bool postmaster_of(pid_t pid, const fs::path& data_dir) {
    std::error_code ec;
    fs::path real = fs::canonical(data_dir, ec);
    if (ec) return false;
    for (pid_t p : programs_working_in(real))
        if (p == pid) return true;
    return false;
}

}  // namespace

bool stop_server_at(const fs::path& data_dir, double timeout) {
    auto pm = read_postmaster_pid(data_dir);
    if (!pm || pm->pid <= 0 || !process_exists(pm->pid) || !postmaster_of(pm->pid, data_dir))
        return false;
    kill(pm->pid, SIGQUIT);
    auto began = Clock::now();
    for (;;) {
        reap_if_exited(pm->pid);  // our child when this process started it
        if (!process_exists(pm->pid)) return true;
        if (ms_since(began) > timeout * 1000) {
            kill(pm->pid, SIGKILL);
            timeout += 5;
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
}

void remove_made_tree(const fs::path& dir) {
    std::error_code ec;
    if (!fs::exists(fs::symlink_status(dir, ec))) return;
    // An initdb cut short may still be writing (its parent died without taking it along);
    // end it and its backends, then remove. A few tries: files may appear while it goes.
    for (int attempt = 0;; ++attempt) {
        for (int round = 0; round < 100; ++round) {
            fs::path real = fs::canonical(dir, ec);
            auto pids = ec ? std::vector<pid_t>{} : programs_working_in(real);
            if (pids.empty()) break;
            for (pid_t pid : pids) kill(pid, SIGKILL);
            for (pid_t pid : pids) reap_if_exited(pid);
            std::this_thread::sleep_for(std::chrono::milliseconds(20));
        }
        ec.clear();
        fs::remove_all(dir, ec);
        if (!ec) return;
        if (attempt == 10) {
            log::warn("cannot remove " + dir.string() + ": " + ec.message());
            return;
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
}

void undo_made(Context& ctx, const std::string& kind, const std::string& target) {
    std::error_code ec;
    if (kind == "inventory entry") {
        InstanceRef ref = parse_instance_ref(target);
        ctx.inventory().remove(ref.version, ref.name);
    } else if (kind == "directory") {
        remove_made_tree(target);
    } else if (kind == "empty directory") {
        if (fs::is_directory(target, ec) && fs::is_empty(target, ec)) fs::remove(target, ec);
    } else if (kind == "server") {
        stop_server_at(target, ctx.settings().stop_timeout);
    }
}

// ---------------------------------------------------------------- commands, fields, setup

void journal_at_once(Context& ctx, const Instance& instance, const std::string& operation, bool ok,
                     const std::string& message, const std::vector<JournalStep>& steps) {
    try {
        auto& inventory = ctx.inventory();
        auto id = inventory.begin_operation(operation, instance.qualified_name());
        inventory.end_operation(id, ok, message, steps);
    } catch (const std::exception& e) {
        log::warn("could not journal " + operation + " on instance " + instance.qualified_name() +
                  ": " + e.what());
    }
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
