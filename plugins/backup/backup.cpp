// The backup plugin: pgBackRest for each instance, with nothing shared between instances.
//
// Each instance gets its own stanza (default VERSION-NAME, "15-main"), its own pgBackRest
// configuration file (<base_dir>/backup/pgbackrest.conf, 0600), its own lock, log and spool
// directories beside it, and its own repository (<repository>/<stanza>). Configuring an instance
// turns WAL archiving on with an archive_command that names that file and stanza; the first
// start creates the stanza and checks that archiving works. Commands: backup create, list,
// restore (point in time too), expire. Dropping an instance that has backups is refused unless
// `instance drop --purge-backups` is given; the stanza and its repository go with the instance.
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <nlohmann/json.hpp>
#include <pgforge/options.hpp>
#include <pgforge/plugin.hpp>
#include <sstream>
#include <thread>

namespace {

using namespace pgforge::sdk;
namespace fs = std::filesystem;
using json = nlohmann::ordered_json;

// ---------------------------------------------------------------- small helpers

std::string trim(std::string s) {
    while (!s.empty() && (s.back() == '\n' || s.back() == ' ' || s.back() == '\r')) s.pop_back();
    size_t b = 0;
    while (b < s.size() && (s[b] == '\n' || s[b] == ' ')) ++b;
    return s.substr(b);
}

bool starts_with(std::string_view s, std::string_view p) {
    return s.substr(0, p.size()) == p;
}

// A word for sh -c: as it is when it is plain, else in single quotes.
std::string shell_word(const std::string& s) {
    bool plain = !s.empty();
    for (char c : s)
        if (!(std::isalnum(static_cast<unsigned char>(c)) ||
              std::string_view("_-./:=+,@").find(c) != std::string_view::npos))
            plain = false;
    if (plain) return s;
    std::string out = "'";
    for (char c : s) out += c == '\'' ? std::string("'\\''") : std::string(1, c);
    return out + "'";
}

// A standby (standby.signal in its data directory) archives nothing and has no stanza until it is
// promoted.
bool is_standby(const Instance& i) {
    std::error_code ec;
    return fs::exists(i.data_dir() / "standby.signal", ec);
}

// The server replaces %p, %f and %% in archive_command: a literal % must be doubled.
std::string archive_escape(const std::string& s) {
    std::string out;
    for (char c : s) out += c == '%' ? std::string("%%") : std::string(1, c);
    return out;
}

bool is_count(const std::string& v) {
    if (v.empty() || v.size() > 7) return false;
    for (char c : v)
        if (c < '0' || c > '9') return false;
    return std::stol(v) >= 1;
}

std::string utc_time(long long epoch) {
    if (epoch <= 0) return "";
    time_t t = static_cast<time_t>(epoch);
    tm parts{};
    gmtime_r(&t, &parts);
    char buf[40];
    strftime(buf, sizeof buf, "%Y-%m-%d %H:%M:%S+00", &parts);
    return buf;
}

std::string human_size(unsigned long long bytes) {
    const char* units[] = {"B", "kB", "MB", "GB", "TB"};
    double v = static_cast<double>(bytes);
    int u = 0;
    while (v >= 1024 && u < 4) {
        v /= 1024;
        ++u;
    }
    char buf[32];
    if (u == 0)
        snprintf(buf, sizeof buf, "%llu B", bytes);
    else
        snprintf(buf, sizeof buf, "%.1f %s", v, units[u]);
    return buf;
}

std::optional<std::string> read_file(const fs::path& p) {
    std::ifstream in(p, std::ios::binary);
    if (!in) return std::nullopt;
    std::ostringstream s;
    s << in.rdbuf();
    return s.str();
}

// Makes `dir` and its missing parents as pgforge's own user, 0755, for the repository's root:
// the per-instance directory below it is then made owned by the instance owner.
bool make_shared_parent(const fs::path& dir, std::string& error) {
    std::error_code ec;
    if (fs::is_directory(dir, ec)) return true;
    std::vector<fs::path> missing;
    for (fs::path p = dir; !p.empty() && !fs::exists(p, ec); p = p.parent_path()) {
        missing.push_back(p);
        if (p == p.parent_path()) break;
    }
    for (auto it = missing.rbegin(); it != missing.rend(); ++it) {
        if (::mkdir(it->c_str(), 0755) != 0 && errno != EEXIST) {
            error = "cannot create " + it->string() + ": " + std::strerror(errno);
            return false;
        }
        ::chmod(it->c_str(), 0755);
    }
    return true;
}

// ---------------------------------------------------------------- settings

// The [backup] section of the site settings file.
struct Options {
    std::string program;       // pgbackrest, an absolute path
    fs::path repository_root;  // each instance's repository is <root>/<stanza>
    std::string retention_full = "2";
    std::string retention_diff;
    std::string compression;  // empty: pgBackRest's default
    int recovery_timeout = 600;
    std::map<std::string, std::string> stanzas;  // "15/main" -> "prod"
};

const char* const kCompressions[] = {"none", "gz", "bz2", "lz4", "zst"};

fs::path find_on_path(const std::string& name) {
    if (name.find('/') != std::string::npos) return name;
    const char* path = std::getenv("PATH");
    std::string p = path && *path ? path : "/usr/local/bin:/usr/bin:/bin";
    p += ":/usr/bin:/bin";
    std::stringstream in(p);
    for (std::string dir; std::getline(in, dir, ':');) {
        if (dir.empty()) continue;
        fs::path candidate = fs::path(dir) / name;
        if (::access(candidate.c_str(), X_OK) == 0) return candidate;
    }
    return {};
}

bool valid_stanza(const std::string& s) {
    if (s.empty() || s.size() > 64 || s[0] == '.') return false;
    for (char c : s)
        if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_' || c == '.'))
            return false;
    return true;
}

std::optional<Options> read_options(const Context& ctx, std::string& error) {
    Options o;
    for (const auto& [key, value] : ctx.settings()) {
        if (key == "pgbackrest") {
            o.program = value;
        } else if (key == "repository") {
            if (value.empty() || value[0] != '/') {
                error = "[backup] repository must be an absolute path, not '" + value + "'";
                return std::nullopt;
            }
            o.repository_root = fs::path(value).lexically_normal();
        } else if (key == "retention_full" || key == "retention_diff") {
            if (!is_count(value)) {
                error = "[backup] " + key + " must be a count of backups (1 or more), not '" +
                        value + "'";
                return std::nullopt;
            }
            (key == "retention_full" ? o.retention_full : o.retention_diff) = value;
        } else if (key == "compression") {
            bool known = false;
            for (const char* c : kCompressions) known = known || value == c;
            if (!known) {
                error =
                    "[backup] compression must be none, gz, bz2, lz4 or zst, not '" + value + "'";
                return std::nullopt;
            }
            o.compression = value;
        } else if (key == "recovery_timeout") {
            if (!is_count(value)) {
                error =
                    "[backup] recovery_timeout must be seconds (1 or more), not '" + value + "'";
                return std::nullopt;
            }
            o.recovery_timeout = std::stoi(value);
        } else if (starts_with(key, "stanza.")) {
            if (!valid_stanza(value)) {
                error = "[backup] " + key + ": stanza '" + value +
                        "' may only contain letters, digits, '-', '_' and '.' (no '/')";
                return std::nullopt;
            }
            o.stanzas[key.substr(7)] = value;
        } else {
            error = "[backup] unknown key '" + key +
                    "' (known: repository, retention_full, retention_diff, compression, "
                    "recovery_timeout, pgbackrest, stanza.VERSION/NAME)";
            return std::nullopt;
        }
    }
    if (o.program.empty()) o.program = "pgbackrest";
    fs::path found = find_on_path(o.program);
    if (found.empty() || ::access(found.c_str(), X_OK) != 0) {
        error = "pgBackRest (" + o.program +
                ") is not installed or not executable: install the pgbackrest package, or set "
                "[backup] pgbackrest = PATH";
        return std::nullopt;
    }
    o.program = found.string();
    if (o.repository_root.empty()) o.repository_root = ctx.prefix() / "backups";
    return o;
}

// ---------------------------------------------------------------- one instance's layout

struct Layout {
    std::string stanza;
    fs::path dir;         // <base_dir>/backup
    fs::path config;      // <dir>/pgbackrest.conf
    fs::path lock;        // <dir>/lock
    fs::path log;         // <dir>/log
    fs::path spool;       // <dir>/spool
    fs::path repository;  // <repository>/<stanza>
};

Layout layout_for(const Instance& i, const std::string& stanza, const fs::path& repository) {
    Layout l;
    l.stanza = stanza;
    l.dir = i.base_dir() / "backup";
    l.config = l.dir / "pgbackrest.conf";
    l.lock = l.dir / "lock";
    l.log = l.dir / "log";
    l.spool = l.dir / "spool";
    l.repository = repository;
    return l;
}

// The layout the instance was configured with (kept in its state), if it was.
std::optional<Layout> configured_layout(const Context& ctx) {
    if (!ctx.instance()) return std::nullopt;
    auto stanza = ctx.state("stanza");
    auto repository = ctx.state("repository");
    if (!stanza || !repository) return std::nullopt;
    return layout_for(*ctx.instance(), *stanza, *repository);
}

std::string config_text(const Instance& i, const Layout& l, const Options& o) {
    std::string t;
    t += "# pgBackRest configuration of instance " + i.qualified_name() +
         ", written by pgforge's backup plugin.\n";
    t += "# Rewritten on each configure: change [backup] in pgforge's settings file instead.\n";
    t += "[global]\n";
    t += "repo1-path=" + l.repository.string() + "\n";
    t += "repo1-retention-full=" + o.retention_full + "\n";
    if (!o.retention_diff.empty()) t += "repo1-retention-diff=" + o.retention_diff + "\n";
    if (!o.compression.empty()) t += "compress-type=" + o.compression + "\n";
    t += "lock-path=" + l.lock.string() + "\n";
    t += "log-path=" + l.log.string() + "\n";
    t += "spool-path=" + l.spool.string() + "\n";
    t += "start-fast=y\n";
    t += "\n[" + l.stanza + "]\n";
    t += "pg1-path=" + i.data_dir().string() + "\n";
    t += "pg1-port=" + std::to_string(i.port()) + "\n";
    t += "pg1-socket-path=" + i.socket_dir().string() + "\n";
    t += "pg1-user=" + i.superuser() + "\n";
    return t;
}

std::string archive_command(const Layout& l, const Options& o) {
    return archive_escape(shell_word(o.program) + " " +
                          shell_word("--config=" + l.config.string()) + " " +
                          shell_word("--stanza=" + l.stanza)) +
           " archive-push %p";
}

// ---------------------------------------------------------------- running pgBackRest

// What went wrong, in pgBackRest's own words.
std::string failure(const RunResult& r) {
    if (!r.started) return "cannot run pgbackrest: " + r.error;
    if (r.timed_out) return "pgbackrest timed out";
    std::string text = trim(r.err);
    if (text.empty()) text = trim(r.out);
    if (text.empty()) return "pgbackrest exited with status " + std::to_string(r.exit_code);
    return text;
}

RunResult pgbackrest(Context& ctx, const Options& o, const fs::path& config,
                     const std::string& stanza, const std::string& command,
                     const std::vector<std::string>& extra = {}, double timeout = 0) {
    std::vector<std::string> argv = {o.program, "--config=" + config.string(), "--stanza=" + stanza,
                                     command};
    argv.insert(argv.end(), extra.begin(), extra.end());
    RunOptions ro;
    ro.timeout = timeout;
    return ctx.run(argv, ro);
}

bool ensure_directories(Context& ctx, const Layout& l, std::string& error) {
    for (const fs::path& d : {l.lock, l.log, l.spool})
        if (!ctx.make_directory(d, 0700, error)) return false;
    return true;
}

bool ensure_repository(Context& ctx, const Layout& l, std::string& error) {
    if (!make_shared_parent(l.repository.parent_path(), error)) return false;
    return ctx.make_directory(l.repository, 0700, error);
}

// One backup as pgBackRest's info lists it.
struct BackupSet {
    std::string label, type, prior;
    long long start = 0, stop = 0;
    unsigned long long size = 0, delta = 0, repository_size = 0, repository_delta = 0;
    std::string wal_start, wal_stop, lsn_start, lsn_stop;
    bool error = false;
};

json to_json(const BackupSet& b) {
    return {{"label", b.label},
            {"type", b.type},
            {"start", utc_time(b.start)},
            {"stop", utc_time(b.stop)},
            {"size", b.size},
            {"delta", b.delta},
            {"repository_size", b.repository_size},
            {"repository_delta", b.repository_delta},
            {"wal_start", b.wal_start},
            {"wal_stop", b.wal_stop},
            {"lsn_start", b.lsn_start},
            {"lsn_stop", b.lsn_stop},
            {"prior", b.prior.empty() ? json(nullptr) : json(b.prior)},
            {"error", b.error}};
}

std::string string_at(const nlohmann::json& j, const char* a, const char* b) {
    if (!j.contains(a) || !j[a].is_object() || !j[a].contains(b) || !j[a][b].is_string()) return "";
    return j[a][b].get<std::string>();
}

// The backups of the instance's stanza, oldest first; nullopt with the reason in `error`.
std::optional<std::vector<BackupSet>> list_backups(Context& ctx, const Options& o, const Layout& l,
                                                   std::string& error) {
    RunResult r = pgbackrest(ctx, o, l.config, l.stanza, "info", {"--output=json"}, 120);
    if (!r.ok()) {
        error = failure(r);
        return std::nullopt;
    }
    auto j = nlohmann::json::parse(r.out, nullptr, false);
    if (j.is_discarded() || !j.is_array()) {
        error = "pgbackrest info printed no JSON: " + trim(r.out);
        return std::nullopt;
    }
    std::vector<BackupSet> out;
    for (const auto& stanza : j) {
        if (!stanza.is_object() || stanza.value("name", "") != l.stanza) continue;
        if (!stanza.contains("backup") || !stanza["backup"].is_array()) continue;
        for (const auto& b : stanza["backup"]) {
            BackupSet x;
            x.label = b.value("label", "");
            x.type = b.value("type", "");
            if (b.contains("prior") && b["prior"].is_string()) x.prior = b["prior"];
            if (b.contains("timestamp") && b["timestamp"].is_object()) {
                x.start = b["timestamp"].value("start", 0LL);
                x.stop = b["timestamp"].value("stop", 0LL);
            }
            if (b.contains("info") && b["info"].is_object()) {
                x.size = b["info"].value("size", 0ULL);
                x.delta = b["info"].value("delta", 0ULL);
                if (b["info"].contains("repository") && b["info"]["repository"].is_object()) {
                    x.repository_size = b["info"]["repository"].value("size", 0ULL);
                    x.repository_delta = b["info"]["repository"].value("delta", 0ULL);
                }
            }
            x.wal_start = string_at(b, "archive", "start");
            x.wal_stop = string_at(b, "archive", "stop");
            x.lsn_start = string_at(b, "lsn", "start");
            x.lsn_stop = string_at(b, "lsn", "stop");
            x.error = b.value("error", false);
            out.push_back(std::move(x));
        }
    }
    return out;
}

// stanza-create, then check (a WAL switch that must reach the repository). A repository this
// call made is removed again when either fails.
bool create_stanza(Context& ctx, const Options& o, const Layout& l, std::string& error) {
    const std::string who = "instance " + ctx.instance()->qualified_name();
    std::error_code ec;
    bool repository_existed = fs::exists(l.repository, ec) && !fs::is_empty(l.repository, ec);
    if (!ensure_directories(ctx, l, error) || !ensure_repository(ctx, l, error)) {
        error = who + ": " + error;
        return false;
    }
    auto undo = [&] {
        if (!repository_existed) fs::remove_all(l.repository, ec);
    };
    ctx.progress("creating stanza " + l.stanza + " in " + l.repository.string());
    RunResult r = pgbackrest(ctx, o, l.config, l.stanza, "stanza-create", {}, 300);
    if (!r.ok()) {
        undo();
        error = who + ": pgbackrest stanza-create failed: " + failure(r);
        return false;
    }
    ctx.progress("checking that WAL archiving reaches the repository");
    r = pgbackrest(ctx, o, l.config, l.stanza, "check", {}, 300);
    if (!r.ok()) {
        undo();
        error = who + ": pgbackrest check (WAL archiving) failed: " + failure(r);
        return false;
    }
    ctx.set_state("stanza_created", "1");
    ctx.log(LogLevel::info, who + ": stanza " + l.stanza + " created, WAL archiving works");
    return true;
}

bool stanza_created(const Context& ctx) {
    return ctx.state("stanza_created").value_or("") == "1";
}

// ---------------------------------------------------------------- command lines

// `--name value` or `--name=value`; the rest are errors.
struct Args {
    std::map<std::string, std::string> values;
    std::string error;
};

Args parse_args(const std::vector<std::string>& args, const std::vector<std::string>& known) {
    Args a;
    for (size_t k = 0; k < args.size(); ++k) {
        std::string arg = args[k];
        if (!starts_with(arg, "--")) {
            a.error = "unexpected argument '" + arg + "'";
            return a;
        }
        std::string name = arg.substr(2), value;
        bool has_value = false;
        if (auto eq = name.find('='); eq != std::string::npos) {
            value = name.substr(eq + 1);
            name = name.substr(0, eq);
            has_value = true;
        }
        if (std::find(known.begin(), known.end(), name) == known.end()) {
            a.error = "unknown option '--" + name + "'";
            return a;
        }
        if (!has_value) {
            if (k + 1 >= args.size()) {
                a.error = "--" + name + " needs a value";
                return a;
            }
            value = args[++k];
        }
        if (value.empty()) {
            a.error = "--" + name + " needs a value";
            return a;
        }
        a.values[name] = value;
    }
    return a;
}

void print_table(CommandContext& ctx, const std::vector<std::vector<std::string>>& rows) {
    std::vector<size_t> widths;
    for (const auto& r : rows)
        for (size_t c = 0; c < r.size(); ++c) {
            if (widths.size() <= c) widths.push_back(0);
            widths[c] = std::max(widths[c], r[c].size());
        }
    for (const auto& r : rows) {
        std::string line;
        for (size_t c = 0; c < r.size(); ++c) {
            line += r[c];
            if (c + 1 < r.size()) line += std::string(widths[c] - r[c].size() + 2, ' ');
        }
        ctx.out(trim(line) + "\n");
    }
}

// ---------------------------------------------------------------- the plugin

class Backup final : public Plugin {
  public:
    Result setup(Context& ctx) override {
        std::string error;
        if (!read_options(ctx, error)) return Result::refuse(error);
        return Result::proceed();
    }

    Result on_hook(HookContext& ctx) override {
        std::string error;
        auto o = read_options(ctx, error);
        if (!o) return Result::refuse(error);
        switch (ctx.point()) {
            case declared<HookPoint::pre_configure>():
                return configure(ctx, *o);
            case declared<HookPoint::post_configure>():
                if (auto l = configured_layout(ctx); l && ctx.outcome().ok)
                    if (!ensure_directories(ctx, *l, error)) return Result::refuse(error);
                return Result::proceed();
            case declared<HookPoint::post_start>():
                return after_start(ctx, *o);
            case declared<HookPoint::pre_drop>():
                return before_drop(ctx, *o);
            case declared<HookPoint::post_drop>():
                return after_drop(ctx, *o);
            case declared<HookPoint::post_promote>():
                return after_promote(ctx, *o);
            default:
                return Result::proceed();
        }
    }

    std::vector<Command> commands() const override {
        return {
            {"backup", "create", "-i NAME [--type full|diff|incr]",
             "take a backup of a running instance (pgBackRest's default type: incr, full when "
             "there is none)",
             true},
            {"backup", "list", "-i NAME [--json]",
             "the instance's backups: label, type, start and stop time, size, WAL range", true},
            {"backup", "restore", "-i NAME [--label L] [--time T]",
             "restore a stopped instance: the latest backup and all archived WAL, a backup as it "
             "was (--label), or the state at a time (--time)",
             true},
            {"backup", "expire", "-i NAME [--label L]",
             "remove backups beyond the retention (or backup L) and the WAL only they need", true},
        };
    }

    std::vector<Flag> flags() const override {
        return {{"instance drop", "purge-backups",
                 "also delete the instance's backups and WAL archive (backup plugin)"}};
    }

    int run_command(const Command& command, CommandContext& ctx) override {
        std::string error;
        auto o = read_options(ctx, error);
        if (!o) {
            ctx.err("backup: " + error + "\n");
            return 1;
        }
        const Instance& i = *ctx.instance();
        auto l = configured_layout(ctx);
        std::error_code ec;
        if (!l || !fs::exists(l->config, ec)) {
            ctx.err("backup: instance " + i.qualified_name() +
                    " has no pgBackRest configuration yet: it was made before the backup "
                    "plugin was enabled\nhint: pgforge instance reload " +
                    i.qualified_name() + " writes it, then pgforge instance restart " +
                    i.qualified_name() + " turns archiving on\n");
            return 1;
        }
        if (command.verb == "create" && is_standby(i)) {
            ctx.err("backup: instance " + i.qualified_name() +
                    " is a standby: its WAL is its primary's, archived there\nhint: back up the "
                    "primary (pgforge backup create -i PRIMARY, see pgforge instance get " +
                    i.qualified_name() +
                    "); once promoted, this instance archives and is backed "
                    "up under its own stanza\n");
            return 1;
        }
        if (command.verb == "create") return create(ctx, *o, *l);
        if (command.verb == "list") return list(ctx, *o, *l);
        if (command.verb == "restore") return restore(ctx, *o, *l);
        if (command.verb == "expire") return expire(ctx, *o, *l);
        return 2;
    }

    std::vector<Field> describe(Context& ctx) override {
        auto l = configured_layout(ctx);
        if (!l) return {};
        std::vector<Field> f = {{"stanza", l->stanza},
                                {"repository", l->repository.string()},
                                {"config", l->config.string()}};
        if (!stanza_created(ctx)) {
            f.push_back({"backups", "none (stanza not created yet: start the instance)"});
            return f;
        }
        std::string error;
        auto o = read_options(ctx, error);
        if (!o) return f;
        auto backups = list_backups(ctx, *o, *l, error);
        if (!backups)
            f.push_back({"backups", "unknown: " + error});
        else if (backups->empty())
            f.push_back({"backups", "none"});
        else
            f.push_back({"backups", std::to_string(backups->size()) + ", newest " +
                                        backups->back().label + " (" +
                                        utc_time(backups->back().stop) + ")"});
        return f;
    }

  private:
    // ------------------------------------------------------------ hooks

    Result configure(HookContext& ctx, const Options& o) {
        Configuration* c = ctx.configuration();
        if (!c) return Result::proceed();  // a reload: nothing to contribute
        const Instance& i = *ctx.instance();
        // The stanza and the repository are chosen once, at the first configure, and kept: the
        // instance's option backup.stanza (SDK 1.2), else [backup] stanza.VERSION/NAME, else
        // VERSION-NAME.
        std::optional<std::string> wanted;
        if (auto* options = find<InstanceOptions>(ctx)) wanted = options->option("stanza");
        auto stanza = ctx.state("stanza");
        if (stanza && wanted && *wanted != *stanza)
            return Result::refuse("instance " + i.qualified_name() + " has the stanza '" + *stanza +
                                  "' since its first configure, not '" + *wanted +
                                  "': a stanza is not renamed (its repository and archive are "
                                  "under that name); set the option backup.stanza back to '" +
                                  *stanza + "', or remove it");
        if (!stanza) {
            auto chosen = o.stanzas.find(i.qualified_name());
            stanza = wanted                      ? *wanted
                     : chosen != o.stanzas.end() ? chosen->second
                                                 : i.version() + "-" + i.name();
            if (!valid_stanza(*stanza))
                return Result::refuse("stanza '" + *stanza + "' of instance " + i.qualified_name() +
                                      " is not a valid stanza name");
        }
        auto repository = ctx.state("repository");
        if (!repository) repository = (o.repository_root / *stanza).string();
        if (!ctx.set_state("stanza", *stanza) || !ctx.set_state("repository", *repository))
            return Result::refuse("cannot record the stanza of instance " + i.qualified_name() +
                                  " in the inventory");
        Layout l = layout_for(i, *stanza, *repository);

        auto mode = c->parameter("archive_mode");
        // A standby archives nothing until it is promoted (archive_mode on, never always): its
        // primary archives that WAL already, and it is not archived twice.
        c->set_parameter("archive_mode",
                         mode && *mode == "always" && !is_standby(i) ? "always" : "on");
        auto level = c->parameter("wal_level");
        if (!level || (*level != "logical" && *level != "replica"))
            c->set_parameter("wal_level", "replica");
        c->set_parameter("archive_command", archive_command(l, o));
        c->add_file("pgbackrest.conf", config_text(i, l, o), 0600);
        return Result::proceed();
    }

    Result after_start(HookContext& ctx, const Options& o) {
        if (!ctx.outcome().ok) return Result::proceed();
        auto l = configured_layout(ctx);
        std::error_code ec;
        if (!l) return Result::proceed();
        if (!fs::exists(l->config, ec)) {
            ctx.log(LogLevel::warning, "instance " + ctx.instance()->qualified_name() + " has no " +
                                           l->config.string() +
                                           " yet: no stanza until a configure writes it");
            return Result::proceed();
        }
        if (ctx.state("recovering")) {
            Result r = wait_for_recovery(ctx, o);
            ctx.erase_state("recovering");
            if (r.refused()) return r;
        }
        if (stanza_created(ctx)) return Result::proceed();
        // pgBackRest makes a stanza from a primary: a standby's is made when it is promoted.
        if (is_standby(*ctx.instance())) return Result::proceed();
        const bool repository_existed =
            fs::exists(l->repository, ec) && !fs::is_empty(l->repository, ec);
        std::string error;
        if (!create_stanza(ctx, o, *l, error)) return Result::refuse(error);
        // If the operation fails after this (a later handler refuses the create), the stanza
        // and a repository made for it go too.
        ctx.on_undo("stanza " + l->stanza,
                    [repository = l->repository, repository_existed](Context& undo) {
                        undo.erase_state("stanza_created");
                        std::error_code ignored;
                        if (!repository_existed) fs::remove_all(repository, ignored);
                    });
        return Result::proceed();
    }

    // A promoted standby archives from now on, with the archive_command of its stanza: a
    // standby given its primary's stanza (pgBackRest's practice: one stanza per cluster, the
    // primary archiving) goes on in the same repository on its new timeline; one with a stanza
    // of its own gets it made here. Either way pgBackRest's check must see WAL reach the
    // repository, or the promote reports it (the promotion itself stands).
    Result after_promote(HookContext& ctx, const Options& o) {
        if (!ctx.outcome().ok) return Result::proceed();
        auto l = configured_layout(ctx);
        std::error_code ec;
        if (!l || !fs::exists(l->config, ec)) {
            ctx.log(LogLevel::warning, "instance " + ctx.instance()->qualified_name() +
                                           " was promoted but has no pgBackRest configuration: "
                                           "it does not archive (pgforge instance reload " +
                                           ctx.instance()->qualified_name() + " writes it)");
            return Result::proceed();
        }
        std::string error;
        if (!stanza_created(ctx)) {
            // stanza-create accepts a stanza that exists with this cluster's system identifier.
            if (!create_stanza(ctx, o, *l, error)) return Result::refuse(error);
            return Result::proceed();
        }
        if (!ensure_directories(ctx, *l, error)) return Result::refuse(error);
        ctx.progress("checking that WAL archiving reaches the repository");
        RunResult r = pgbackrest(ctx, o, l->config, l->stanza, "check", {}, 300);
        if (!r.ok())
            return Result::refuse("instance " + ctx.instance()->qualified_name() +
                                  ": pgbackrest check (WAL archiving) failed after the "
                                  "promotion: " +
                                  failure(r));
        ctx.log(LogLevel::info, "instance " + ctx.instance()->qualified_name() +
                                    " archives to stanza " + l->stanza + " as a primary");
        return Result::proceed();
    }

    // After a restore, the server replays WAL up to its target, then promotes itself: the
    // start is over only then.
    Result wait_for_recovery(HookContext& ctx, const Options& o) {
        const Instance& i = *ctx.instance();
        ctx.progress("waiting for recovery to reach its target");
        auto until = std::chrono::steady_clock::now() + std::chrono::seconds(o.recovery_timeout);
        std::string last_error;
        while (std::chrono::steady_clock::now() < until) {
            QueryResult q = ctx.query("SELECT pg_is_in_recovery()");
            if (q.ok && !q.rows.empty() && q.rows[0][0].value_or("") == "f") {
                ctx.log(LogLevel::info,
                        "instance " + i.qualified_name() + " finished recovery and accepts writes");
                return Result::proceed();
            }
            if (!q.ok) {
                last_error = q.error;
                if (!i.running())
                    return Result::refuse(
                        "instance " + i.qualified_name() + " stopped during recovery (" +
                        last_error + "): see its log, pgforge instance logs " + i.qualified_name());
            }
            std::this_thread::sleep_for(std::chrono::milliseconds(100));
        }
        ctx.log(LogLevel::warning,
                "instance " + i.qualified_name() + " is still recovering after " +
                    std::to_string(o.recovery_timeout) +
                    " s; it goes on in the background (see pgforge instance logs " +
                    i.qualified_name() + ")");
        return Result::proceed();
    }

    Result before_drop(HookContext& ctx, const Options& o) {
        auto l = configured_layout(ctx);
        if (!l || !stanza_created(ctx) || ctx.flag("purge-backups")) return Result::proceed();
        const std::string name = ctx.instance()->qualified_name();
        std::string error;
        auto backups = list_backups(ctx, o, *l, error);
        if (!backups)
            return Result::refuse("cannot tell whether instance " + name + " has backups (" +
                                  error + "); pgforge instance drop " + name +
                                  " --purge-backups drops it and deletes its repository " +
                                  l->repository.string());
        if (backups->empty()) return Result::proceed();
        return Result::refuse("instance " + name + " has " + std::to_string(backups->size()) +
                              " backup(s) in " + l->repository.string() + " (newest " +
                              backups->back().label +
                              "); to delete them with the instance: pgforge instance drop " + name +
                              " --purge-backups");
    }

    // The instance's files are gone: its stanza and repository go too (pre_drop made sure there
    // are no backups, or that --purge-backups was given). pgBackRest still wants a configuration
    // and a lock directory for stop and stanza-delete: they are made inside the repository.
    Result after_drop(HookContext& ctx, const Options& o) {
        auto l = configured_layout(ctx);
        if (!l) return Result::proceed();
        const Instance& i = *ctx.instance();
        std::error_code ec;
        if (!fs::exists(l->repository, ec)) return Result::proceed();
        if (stanza_created(ctx)) {
            Layout tmp = *l;
            tmp.dir = l->repository / ".pgforge-drop";
            tmp.config = tmp.dir / "pgbackrest.conf";
            tmp.lock = tmp.dir / "lock";
            tmp.log = tmp.dir / "log";
            tmp.spool = tmp.dir / "spool";
            std::string error;
            if (ctx.make_directory(tmp.dir, 0700, error) && ensure_directories(ctx, tmp, error) &&
                ctx.write_file(tmp.config, config_text(i, tmp, o), 0600, error)) {
                ctx.progress("deleting stanza " + l->stanza);
                RunResult r = pgbackrest(ctx, o, tmp.config, l->stanza, "stop", {}, 120);
                if (r.ok())
                    r = pgbackrest(ctx, o, tmp.config, l->stanza, "stanza-delete", {"--force"},
                                   600);
                if (!r.ok())
                    ctx.log(LogLevel::warning, "pgbackrest stanza-delete of " + l->stanza +
                                                   " failed (" + failure(r) +
                                                   "); removing its repository anyway");
            } else {
                ctx.log(LogLevel::warning, "cannot prepare stanza-delete: " + error);
            }
        }
        fs::remove_all(l->repository, ec);
        if (ec)
            ctx.log(LogLevel::warning,
                    "cannot remove repository " + l->repository.string() + ": " + ec.message());
        else
            ctx.log(LogLevel::info, "removed repository " + l->repository.string() +
                                        " of instance " + i.qualified_name());
        return Result::proceed();
    }

    // ------------------------------------------------------------ commands

    int create(CommandContext& ctx, const Options& o, const Layout& l) {
        const Instance& i = *ctx.instance();
        Args a = parse_args(ctx.args(), {"type"});
        if (!a.error.empty()) {
            ctx.err("backup create: " + a.error +
                    "\nusage: pgforge backup create -i NAME "
                    "[--type full|diff|incr]\n");
            return 2;
        }
        std::vector<std::string> extra;
        std::string type = a.values.count("type") ? a.values["type"] : "";
        if (!type.empty()) {
            if (type != "full" && type != "diff" && type != "incr") {
                ctx.err("backup create: --type must be full, diff or incr, not '" + type + "'\n");
                return 2;
            }
            extra.push_back("--type=" + type);
        }
        if (!i.running()) {
            ctx.err("backup: instance " + i.qualified_name() +
                    " is not running; a backup needs it up\nhint: pgforge instance start " +
                    i.qualified_name() + "\n");
            return 3;
        }
        std::string error;
        if (!ensure_directories(ctx, l, error)) {
            ctx.err("backup: " + error + "\n");
            return 1;
        }
        if (!stanza_created(ctx) && !create_stanza(ctx, o, l, error)) {
            ctx.err("backup: " + error + "\n");
            return 1;
        }
        ctx.progress((type.empty() ? std::string("backup") : type + " backup") + " of " +
                     i.qualified_name() + " into " + l.repository.string());
        RunResult r = pgbackrest(ctx, o, l.config, l.stanza, "backup", extra);
        if (!r.ok()) {
            ctx.err("backup: backup of instance " + i.qualified_name() + " failed: " + failure(r) +
                    "\n");
            return 1;
        }
        auto backups = list_backups(ctx, o, l, error);
        if (!backups || backups->empty()) {
            ctx.err("backup: the backup of " + i.qualified_name() +
                    " ran, but pgbackrest info does not show it: " + error + "\n");
            return 1;
        }
        const BackupSet& b = backups->back();
        if (ctx.json()) {
            ctx.out(to_json(b).dump(2) + "\n");
        } else {
            ctx.out("backup " + b.label + " (" + b.type + ") of " + i.qualified_name() + ": " +
                    human_size(b.size) + ", " + human_size(b.repository_size) +
                    " in the repository, WAL " + b.wal_start + " to " + b.wal_stop + "\n");
        }
        return 0;
    }

    int list(CommandContext& ctx, const Options& o, const Layout& l) {
        if (!ctx.args().empty()) {
            ctx.err("backup list: unexpected argument '" + ctx.args()[0] +
                    "'\nusage: pgforge backup list -i NAME [--json]\n");
            return 2;
        }
        std::vector<BackupSet> backups;
        if (stanza_created(ctx)) {
            std::string error;
            auto got = list_backups(ctx, o, l, error);
            if (!got) {
                ctx.err("backup: cannot list the backups of instance " +
                        ctx.instance()->qualified_name() + ": " + error + "\n");
                return 1;
            }
            backups = std::move(*got);
        }
        if (ctx.json()) {
            json arr = json::array();
            for (const auto& b : backups) arr.push_back(to_json(b));
            ctx.out(arr.dump(2) + "\n");
            return 0;
        }
        if (backups.empty()) {
            ctx.err("no backups of instance " + ctx.instance()->qualified_name() + "\n");
            return 0;
        }
        std::vector<std::vector<std::string>> rows = {
            {"LABEL", "TYPE", "START", "STOP", "SIZE", "REPOSITORY", "WAL START", "WAL STOP"}};
        for (const auto& b : backups)
            rows.push_back({b.label, b.type, utc_time(b.start), utc_time(b.stop),
                            human_size(b.size), human_size(b.repository_size), b.wal_start,
                            b.wal_stop});
        print_table(ctx, rows);
        return 0;
    }

    int restore(CommandContext& ctx, const Options& o, const Layout& l) {
        const Instance& i = *ctx.instance();
        const std::string name = i.qualified_name();
        Args a = parse_args(ctx.args(), {"label", "time"});
        if (!a.error.empty()) {
            ctx.err("backup restore: " + a.error +
                    "\nusage: pgforge backup restore -i NAME [--label L] [--time T]\n");
            return 2;
        }
        if (i.running()) {
            ctx.err("backup: instance " + name +
                    " is running; a restore replaces its data directory\nhint: stop it first: "
                    "pgforge instance stop " +
                    name + "\n");
            return 5;
        }
        std::string error;
        std::vector<BackupSet> backups;
        if (stanza_created(ctx)) {
            auto got = list_backups(ctx, o, l, error);
            if (!got) {
                ctx.err("backup: cannot list the backups of instance " + name + ": " + error +
                        "\n");
                return 1;
            }
            backups = std::move(*got);
        }
        if (backups.empty()) {
            ctx.err("backup: instance " + name +
                    " has no backup to restore\nhint: pgforge backup create -i " + name + "\n");
            return 4;
        }
        std::vector<std::string> extra;
        std::string label = a.values.count("label") ? a.values["label"] : "";
        std::string target = a.values.count("time") ? a.values["time"] : "";
        if (!label.empty()) {
            bool found = false;
            for (const auto& b : backups) found = found || b.label == label;
            if (!found) {
                ctx.err("backup: instance " + name + " has no backup " + label +
                        "\nhint: see pgforge backup list -i " + name + "\n");
                return 4;
            }
            extra.push_back("--set=" + label);
        }
        if (!target.empty()) {
            extra.insert(extra.end(),
                         {"--type=time", "--target=" + target, "--target-action=promote"});
        } else if (!label.empty()) {
            // The backup as it was: recovery stops as soon as the data is consistent.
            extra.insert(extra.end(), {"--type=immediate", "--target-action=promote"});
        }
        std::error_code ec;
        const fs::path data = i.data_dir();
        if (fs::exists(data / "PG_VERSION", ec)) {
            extra.push_back("--delta");
        } else if (!ctx.make_directory(data, 0700, error)) {
            ctx.err("backup: " + error + "\n");
            return 1;
        }
        if (!ensure_directories(ctx, l, error)) {
            ctx.err("backup: " + error + "\n");
            return 1;
        }
        // The configuration pgforge manages stays as it is now, not as it was in the backup.
        struct Kept {
            fs::path path;
            std::string text;
            unsigned mode;
        };
        std::vector<Kept> kept;
        for (const char* file : {"postgresql.conf", "pg_hba.conf", "pg_ident.conf"}) {
            fs::path p = data / file;
            struct stat st {};
            auto text = read_file(p);
            if (text && ::stat(p.c_str(), &st) == 0)
                kept.push_back({p, *text, static_cast<unsigned>(st.st_mode & 07777)});
        }
        ctx.progress("restoring " + name + " from " +
                     (label.empty() ? "the latest backup" : label) +
                     (target.empty() ? "" : " to " + target));
        RunResult r = pgbackrest(ctx, o, l.config, l.stanza, "restore", extra);
        bool restored = r.ok();
        for (const auto& k : kept)
            if (!ctx.write_file(k.path, k.text, k.mode, error))
                ctx.err("backup: cannot put back " + k.path.string() + ": " + error + "\n");
        if (!restored) {
            ctx.err("backup: restore of instance " + name + " failed: " + failure(r) + "\n");
            return 1;
        }
        ctx.set_state("recovering", "1");
        std::string what = "instance " + name + " restored from " +
                           (label.empty() ? "the latest backup" : "backup " + label);
        if (!target.empty())
            what += ", recovering to " + target;
        else if (label.empty())
            what += ", recovering all archived WAL";
        if (ctx.json())
            ctx.out(json({{"instance", name},
                          {"label", label.empty() ? json(nullptr) : json(label)},
                          {"time", target.empty() ? json(nullptr) : json(target)},
                          {"restored", true}})
                        .dump(2) +
                    "\n");
        else
            ctx.out(what + "; start it to replay WAL: pgforge instance start " + name + "\n");
        return 0;
    }

    int expire(CommandContext& ctx, const Options& o, const Layout& l) {
        const std::string name = ctx.instance()->qualified_name();
        Args a = parse_args(ctx.args(), {"label"});
        if (!a.error.empty()) {
            ctx.err("backup expire: " + a.error +
                    "\nusage: pgforge backup expire -i NAME [--label L]\n");
            return 2;
        }
        if (!stanza_created(ctx)) {
            ctx.err("backup: instance " + name + " has no backups\n");
            return 0;
        }
        std::string error;
        if (!ensure_directories(ctx, l, error)) {
            ctx.err("backup: " + error + "\n");
            return 1;
        }
        std::vector<std::string> extra;
        if (a.values.count("label")) extra.push_back("--set=" + a.values["label"]);
        ctx.progress("expiring backups of " + name);
        RunResult r = pgbackrest(ctx, o, l.config, l.stanza, "expire", extra);
        if (!r.ok()) {
            ctx.err("backup: expire on instance " + name + " failed: " + failure(r) + "\n");
            return 1;
        }
        auto backups = list_backups(ctx, o, l, error);
        if (!backups) {
            ctx.err("backup: cannot list the backups of instance " + name + ": " + error + "\n");
            return 1;
        }
        if (ctx.json()) {
            json arr = json::array();
            for (const auto& b : *backups) arr.push_back(to_json(b));
            ctx.out(arr.dump(2) + "\n");
        } else {
            std::string labels;
            for (const auto& b : *backups) labels += (labels.empty() ? "" : ", ") + b.label;
            ctx.out("instance " + name + ": " + std::to_string(backups->size()) +
                    " backup(s) kept" + (labels.empty() ? "" : ": " + labels) + "\n");
        }
        return 0;
    }
};

}  // namespace

PGFORGE_PLUGIN(Backup);
