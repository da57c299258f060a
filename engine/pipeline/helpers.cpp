#include "engine/pipeline/helpers.hpp"

#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <fstream>
#include <iterator>
#include <nlohmann/json.hpp>
#include <set>
#include <thread>

#include "engine/core/error.hpp"
#include "engine/core/log.hpp"
#include "engine/core/safe_fs.hpp"
#include "engine/core/settings.hpp"
#include "engine/core/text.hpp"
#include "engine/driver/ports.hpp"

namespace pgforge {
namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;
using json = nlohmann::json;

Clock::time_point after(double seconds) {
    return Clock::now() + std::chrono::milliseconds(static_cast<long>(seconds * 1000));
}

// Gone for good: no process, or a zombie whose other threads have exited too (a zombie leader
// whose threads still run keeps the process's files, its listening socket among them).
bool ended(long pid) {
    reap_if_exited(static_cast<pid_t>(pid));
    if (process_exists(static_cast<pid_t>(pid))) return false;
    std::error_code ec;
    auto tasks = fs::directory_iterator("/proc/" + std::to_string(pid) + "/task", ec);
    return ec || std::distance(fs::begin(tasks), fs::end(tasks)) <= 1;
}

bool wait_ended(long pid, double seconds) {
    auto until = after(seconds);
    while (!ended(pid)) {
        if (Clock::now() >= until) return false;
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    return true;
}

// The helper's process group (spawn_detached starts a session), else the process alone.
int signal_helper(long pid, int sig) {
    if (::kill(-static_cast<pid_t>(pid), sig) == 0) return 0;
    if (::kill(static_cast<pid_t>(pid), sig) == 0) return 0;
    return errno == ESRCH ? 0 : errno;
}

// The log's size and what it got since `offset` (its last 2000 bytes), read with the rights of
// whoever controls it (safe_fs): the owner's log replaced by a link to a root-only file is not
// read by root into a message.
std::uintmax_t log_size(const fs::path& file) {
    try {
        struct stat st {};
        if (auto fd = safe_fs::open_for_reading(file, true); fd && ::fstat(fd->get(), &st) == 0)
            return static_cast<std::uintmax_t>(st.st_size);
    } catch (const std::exception&) {
    }
    return 0;
}

std::string log_since(const fs::path& file, std::uintmax_t offset) {
    try {
        auto fd = safe_fs::open_for_reading(file, true);
        struct stat st {};
        if (!fd || ::fstat(fd->get(), &st) != 0) return {};
        const auto size = static_cast<std::uintmax_t>(st.st_size);
        const std::uintmax_t keep = 4096;
        std::uintmax_t from = std::max(offset, size > keep ? size - keep : 0);
        if (::lseek(fd->get(), static_cast<off_t>(from), SEEK_SET) < 0) return {};
        return tail_text(safe_fs::read_rest(fd->get(), file, 1 << 20), 2000);
    } catch (const std::exception&) {
        return {};
    }
}

// Removed through the directory's checked descriptor: a link the owner planted on the way never
// makes root remove a file elsewhere. A directory that is gone or refused keeps nothing to remove.
void remove_pid_file(const fs::path& file) {
    try {
        safe_fs::Fd dir = safe_fs::open_directory(file.parent_path());
        ::unlinkat(dir.get(), file.filename().c_str(), 0);
    } catch (const std::exception& e) {
        log::debug("cannot remove " + file.string() + ": " + e.what());
    }
}

std::string fnv1a(const std::string& text) {
    std::uint64_t h = 1469598103934665603ull;
    for (unsigned char c : text) {
        h ^= c;
        h *= 1099511628211ull;
    }
    char out[17];
    std::snprintf(out, sizeof out, "%016llx", static_cast<unsigned long long>(h));
    return out;
}

std::string seconds_text(double s) {
    char out[32];
    std::snprintf(out, sizeof out, "%g", s);
    return out;
}

// The plugin's state and its "helpers" object, read and written whole.
json load_state(const HelperScope& s) {
    auto j = json::parse(s.inventory->plugin_state(s.instance, s.plugin), nullptr, false);
    if (!j.is_object()) j = json::object();
    if (!j.contains("helpers") || !j["helpers"].is_object()) j["helpers"] = json::object();
    return j;
}

void save_state(const HelperScope& s, const json& j) {
    s.inventory->set_plugin_state(s.instance, s.plugin, j.dump());
}

template <class T>
T field(const json& record, const char* key, T fallback) {
    auto it = record.find(key);
    if (it == record.end() || it->is_null()) return fallback;
    try {
        return it->get<T>();
    } catch (const std::exception&) {
        return fallback;
    }
}

}  // namespace

bool helper_alive(long pid, const std::string& identity) {
    if (pid <= 1) return false;
    reap_if_exited(static_cast<pid_t>(pid));
    return process_exists(static_cast<pid_t>(pid)) && !process_gone(pid, identity);
}

HelperScope helper_scope(const Settings& settings, Inventory& inventory, const Instance& instance,
                         const std::string& plugin) {
    HelperScope s;
    s.inventory = &inventory;
    s.instance = instance;
    s.plugin = plugin;
    if (::geteuid() == 0) s.owner = lookup_os_user(instance.owner);
    s.ports_lock = settings.prefix / "locks" / "ports.lock";
    s.lock_timeout = settings.lock_timeout;
    return s;
}

std::string HelperSupervisor::who(std::string_view name) const {
    return "helper " + std::string(name) + " of " + s_.instance.qualified_name() + " (plugin " +
           s_.plugin + ")";
}

std::string HelperSupervisor::hash(const sdk::HelperSpec& spec) const {
    if (!spec.config_hash.empty()) return spec.config_hash;
    std::string all = "argv";
    for (const auto& a : spec.argv) all += '\0' + a;
    all += "\nenv";
    for (const auto& e : spec.env) all += '\0' + e;
    all += "\ncwd\0" + spec.cwd.string() + "\nport\0" + std::to_string(spec.port) + "\nlog\0" +
           spec.log_file.string();
    return fnv1a(all);
}

int HelperSupervisor::reserve_port(std::string_view name, int low, int high) {
    try {
        json state = load_state(s_);
        json& record = state["helpers"][std::string(name)];
        if (!record.is_object()) record = json::object();
        int mine = field<int>(record, "port", 0);
        if (mine && mine >= low && mine <= high) return mine;
        FileLock lock(s_.ports_lock, std::chrono::milliseconds(long(s_.lock_timeout * 1000)),
                      "port choice");
        if (mine) {  // outside the range now: given back first
            record.erase("port");
            save_state(s_, state);
        }
        auto taken = s_.inventory->ports();
        auto reserved = s_.inventory->plugin_ports();
        std::set<int> used(taken.begin(), taken.end());
        used.insert(reserved.begin(), reserved.end());
        for (int p = std::max(low, 1024); p <= std::min(high, 65535); ++p) {
            if (used.count(p) || !port_is_free(p)) continue;
            record["port"] = p;
            save_state(s_, state);
            return p;
        }
    } catch (const std::exception& e) {
        log::warn("cannot reserve a port for " + who(name) + ": " + e.what());
    }
    return 0;
}

void HelperSupervisor::release_port(std::string_view name) {
    try {
        json state = load_state(s_);
        auto it = state["helpers"].find(std::string(name));
        if (it == state["helpers"].end() || !it->is_object() || !it->contains("port")) return;
        it->erase("port");
        save_state(s_, state);
    } catch (const std::exception& e) {
        log::warn("cannot give back the port of " + who(name) + ": " + e.what());
    }
}

sdk::HelperStatus HelperSupervisor::status(std::string_view name) {
    sdk::HelperStatus st;
    try {
        json state = load_state(s_);
        auto it = state["helpers"].find(std::string(name));
        if (it == state["helpers"].end() || !it->is_object()) return st;
        st.port = field<int>(*it, "port", 0);
        long pid = field<long>(*it, "pid", 0);
        if (pid && helper_alive(pid, field<std::string>(*it, "process", ""))) {
            st.running = true;
            st.pid = pid;
            st.config_hash = field<std::string>(*it, "hash", "");
        }
    } catch (const std::exception& e) {
        log::warn("cannot read the state of " + who(name) + ": " + e.what());
    }
    return st;
}

bool HelperSupervisor::stop(std::string_view name, double timeout, std::string& error) {
    try {
        json state = load_state(s_);
        auto it = state["helpers"].find(std::string(name));
        if (it == state["helpers"].end() || !it->is_object()) return true;
        json& record = *it;
        long pid = field<long>(record, "pid", 0);
        if (pid && helper_alive(pid, field<std::string>(record, "process", ""))) {
            if (s_.progress) s_.progress(s_.plugin + ": stopping " + std::string(name));
            if (int e = signal_helper(pid, SIGTERM)) {
                error = "cannot stop " + who(name) + " (pid " + std::to_string(pid) +
                        "): " + std::strerror(e) + "; run pgforge as root or as " +
                        s_.instance.owner;
                return false;
            }
            if (!wait_ended(pid, timeout)) {
                log::warn(who(name) + " (pid " + std::to_string(pid) + ") did not stop within " +
                          seconds_text(timeout) + " s: killed");
                signal_helper(pid, SIGKILL);
                if (!wait_ended(pid, 5)) {
                    error = who(name) + " (pid " + std::to_string(pid) + ") survives SIGKILL";
                    return false;
                }
            }
            log::info("stopped " + who(name) + " (pid " + std::to_string(pid) + ")");
        }
        if (auto pid_file = field<std::string>(record, "pid_file", ""); !pid_file.empty())
            remove_pid_file(pid_file);
        for (const char* key : {"pid", "process", "hash", "pid_file", "started_at"})
            record.erase(key);
        save_state(s_, state);
        return true;
    } catch (const std::exception& e) {
        error = "cannot stop " + who(name) + ": " + e.what();
        return false;
    }
}

sdk::HelperResult HelperSupervisor::ensure(std::string_view name, const sdk::HelperSpec& spec,
                                           bool restart) {
    sdk::HelperResult r;
    using Failure = sdk::HelperResult::Failure;
    auto fail = [&](Failure f, std::string message) {
        r.ok = false;
        r.failure = f;
        r.message = std::move(message);
        return r;
    };
    if (name.empty() || spec.argv.empty() || spec.log_file.empty())
        return fail(Failure::cannot_start,
                    "a helper needs a name, a program and a log file (plugin " + s_.plugin + ")");
    std::string h = hash(spec);
    sdk::HelperStatus now = status(name);
    if (now.running) {
        if (!restart && now.config_hash == h) {
            log::debug(who(name) + " runs with this configuration (pid " + std::to_string(now.pid) +
                       "): left alone");
            r.ok = true;
            r.pid = now.pid;
            return r;
        }
        log::info(restart ? "restarting " + who(name)
                          : who(name) + ": its configuration changed, restarting it");
        std::string why;
        if (!stop(name, spec.stop_timeout, why)) return fail(Failure::cannot_stop, why);
        r.restarted = true;
    }
    if (spec.port && !port_is_free(spec.port)) {
        r.holder = port_holder(spec.port);
        return fail(Failure::port_in_use,
                    "port " + std::to_string(spec.port) + " on 127.0.0.1, reserved for " +
                        who(name) + ", is in use by " +
                        (r.holder.empty() ? std::string("another program") : r.holder));
    }

    Command c;
    c.argv = spec.argv;
    if (auto found = find_on_path(c.argv[0]); !found.empty()) c.argv[0] = found.string();
    if (s_.owner) c.as = &*s_.owner;
    c.env = spec.env;
    c.cwd = spec.cwd.empty() ? spec.log_file.parent_path() : spec.cwd;
    if (c.cwd.empty()) c.cwd = "/";
    std::uintmax_t offset = log_size(spec.log_file);
    if (s_.progress)
        s_.progress(s_.plugin + ": starting " + std::string(name) +
                    (spec.port ? " on 127.0.0.1:" + std::to_string(spec.port) : ""));
    pid_t pid = 0;
    std::string started_at = utc_timestamp();
    try {
        pid = spawn_detached(c, spec.log_file);
    } catch (const std::exception& e) {
        if (s_.record)
            s_.record(
                {"run", s_.plugin + ": " + describe(c) + " &", started_at, 0, "failed", e.what()});
        return fail(Failure::cannot_start, "cannot start " + who(name) + ": " + e.what());
    }
    if (s_.record)
        s_.record({"run", s_.plugin + ": " + describe(c) + " &", started_at, 0, "ok",
                   "pid " + std::to_string(pid)});
    r.pid = pid;
    r.started = true;

    // Recorded before anything else can fail, so that a later run can always stop it.
    try {
        json state = load_state(s_);
        json& record = state["helpers"][std::string(name)];
        if (!record.is_object()) record = json::object();
        record["pid"] = pid;
        record["process"] = process_identity(pid);
        record["hash"] = h;
        record["started_at"] = started_at;
        if (spec.port) record["port"] = spec.port;
        if (!spec.pid_file.empty()) record["pid_file"] = spec.pid_file.string();
        save_state(s_, state);
        if (!spec.pid_file.empty())
            safe_fs::write_file(spec.pid_file, std::to_string(pid) + "\n",
                                s_.owner ? &*s_.owner : nullptr, 0644);
    } catch (const std::exception& e) {
        signal_helper(pid, SIGKILL);
        wait_ended(pid, 5);
        std::string ignored;
        stop(name, spec.stop_timeout, ignored);
        return fail(Failure::cannot_start, "cannot record " + who(name) + " (pid " +
                                               std::to_string(pid) + "): " + e.what() +
                                               "; it was stopped");
    }

    // Started: it listens on its port within start_timeout, or (without a port) still runs a
    // moment after its exec.
    auto until = after(spec.port ? spec.start_timeout : 0.05);
    while (true) {
        if (ended(pid)) {
            std::string said = log_since(spec.log_file, offset);
            std::string ignored;
            stop(name, spec.stop_timeout, ignored);
            return fail(Failure::exited, who(name) + " exited" +
                                             (spec.port ? " before it listened" : "") +
                                             (said.empty() ? "" : ":\n" + said) +
                                             "\n(log: " + spec.log_file.string() + ")");
        }
        if (spec.port && port_listening(spec.port)) break;
        if (Clock::now() >= until) {
            if (!spec.port) break;
            std::string ignored;
            stop(name, spec.stop_timeout, ignored);
            return fail(Failure::not_listening,
                        who(name) + " does not listen on 127.0.0.1:" + std::to_string(spec.port) +
                            " after " + seconds_text(spec.start_timeout) + " s: stopped; see " +
                            spec.log_file.string());
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    log::info(who(name) + " started (pid " + std::to_string(pid) + ")" +
              (spec.port ? ", listening on 127.0.0.1:" + std::to_string(spec.port) : ""));
    r.ok = true;
    return r;
}

}  // namespace pgforge
