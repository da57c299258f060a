#include "engine/conf/parameters.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cmath>
#include <filesystem>
#include <set>
#include <sstream>

#include "engine/conf/pgconf.hpp"
#include "engine/conf/template.hpp"
#include "engine/core/error.hpp"
#include "engine/core/text.hpp"

namespace fs = std::filesystem;

namespace pgforge::conf {
namespace {

// A private directory the server's user can use, removed at the end. It stays root's (0700)
// while pgforge writes into it, so that nobody can plant a link there; hand_over() then gives
// it and what it holds to the server's user.
class ScratchDir {
  public:
    explicit ScratchDir(const OsUser& owner) : owner_(owner) {
        char tmpl[] = "/tmp/pgforge-check-XXXXXX";
        if (!mkdtemp(tmpl)) throw Error(Exit::failure, "cannot create a scratch directory in /tmp");
        path_ = tmpl;
    }
    ~ScratchDir() {
        std::error_code ec;
        fs::remove_all(path_, ec);
    }
    const fs::path& path() const { return path_; }
    void write(const fs::path& relative, const std::string& content) {
        fs::path file = path_ / relative;
        fs::create_directories(file.parent_path());
        write_file_atomically(file, content, nullptr, fs::perms(0600));
    }
    void hand_over() {
        if (geteuid() != 0) return;
        auto give = [&](const fs::path& p) {
            if (fchownat(AT_FDCWD, p.c_str(), owner_.uid, owner_.gid, AT_SYMLINK_NOFOLLOW) != 0)
                throw Error(Exit::failure, "cannot give " + p.string() + " to " + owner_.name);
        };
        for (const auto& entry : fs::recursive_directory_iterator(path_)) give(entry.path());
        give(path_);
    }

  private:
    OsUser owner_;
    fs::path path_;
};

// "2026-11-22 04:45:20.405 GMT [14785] LOG:  message" -> "message" (HINT: kept as "hint: ...")
std::string server_message(const std::string& line) {
    for (const char* level : {"LOG:  ", "FATAL:  ", "ERROR:  ", "HINT:  ", "DETAIL:  "}) {
        auto at = line.find(level);
        if (at == std::string::npos) continue;
        std::string text = line.substr(at + std::string(level).size());
        if (std::string(level) == "HINT:  ") return "  " + text;
        if (std::string(level) == "DETAIL:  ") return "  " + text;
        return text;
    }
    return line;
}

}  // namespace

std::string change_effect(const ParameterInfo& p) {
    return p.context == "postmaster" ? "restart" : "reload";
}

ParameterCatalog ParameterCatalog::parse(const std::string& output) {
    ParameterCatalog c;
    std::istringstream in(output);
    for (std::string line; std::getline(in, line);) {
        std::vector<std::string> f;
        std::istringstream fields(line);
        for (std::string field; std::getline(fields, field, '\t');) f.push_back(field);
        if (f.size() < 4) continue;
        f.resize(9);
        ParameterInfo p{f[0], f[1], f[2], f[3], f[4], f[5], f[6], f[7]};
        c.by_name_[to_lower(p.name)] = std::move(p);
    }
    return c;
}

ParameterCatalog ParameterCatalog::describe(const Installation& installation, const OsUser& as) {
    Command cmd;
    cmd.argv = {installation.program("postgres").string(), "--describe-config"};
    cmd.as = &as;
    auto r = run_process(cmd);
    if (!r.ok())
        throw Error(Exit::failure, "postgres --describe-config failed: " + r.err,
                    "check the installation in " + installation.bindir.string());
    ParameterCatalog c = parse(r.out);
    c.installation_ = installation;
    c.as_ = as;
    return c;
}

const ParameterInfo* ParameterCatalog::find(const std::string& name) const {
    const std::string key = to_lower(name);
    auto it = by_name_.find(key);
    if (it != by_name_.end()) return &it->second;
    if (!installation_) return nullptr;
    auto asked = asked_.find(key);
    if (asked == asked_.end()) {
        ask({name});
        asked = asked_.find(key);
    }
    return asked != asked_.end() && asked->second ? &*asked->second : nullptr;
}

void ParameterCatalog::check_settable(const std::string& name) const {
    if (name.find('.') != std::string::npos) return;  // custom parameter of an extension
    const ParameterInfo* p = find(name);
    if (!p) {
        std::string best;
        size_t best_d = 4;
        for (const auto& [key, info] : by_name_) {
            size_t d = edit_distance(to_lower(name), key);
            if (d < best_d) best = info.name, best_d = d;
        }
        throw Error(Exit::usage, "unknown configuration parameter '" + name + "'",
                    best.empty() ? "see the parameters with: postgres --describe-config"
                                 : "did you mean '" + best + "'?");
    }
    if (p->context == "internal")
        throw Error(Exit::usage, "parameter '" + p->name + "' cannot be changed",
                    "it is fixed when PostgreSQL is built or the cluster is initialised");
}

namespace {

struct ServerAnswer {
    bool ok = false;
    std::string out, err;
};

ServerAnswer postgres_c(const Installation& installation, const OsUser& as, const fs::path& dir,
                        const std::string& name) {
    Command cmd;
    cmd.as = &as;
    cmd.argv = {installation.program("postgres").string(), "-D", dir.string(), "-C", name};
    // Its messages are read: untranslated.
    cmd.env = {"PGDATA", "PGOPTIONS", "LC_ALL=C", "LANG=C", "LANGUAGE"};
    auto r = run_process(cmd);
    return {r.ok(), r.out, r.err};
}

// The names a `postgres -C` run's messages say `pattern` of: pattern is what precedes the
// quoted name ("unrecognized configuration parameter \"").
std::set<std::string> named_in(const std::string& err, const std::string& pattern) {
    std::set<std::string> out;
    for (size_t at = 0; (at = err.find(pattern, at)) != std::string::npos;) {
        at += pattern.size();
        size_t end = err.find('"', at);
        if (end == std::string::npos) break;
        out.insert(to_lower(err.substr(at, end - at)));
        at = end;
    }
    return out;
}

}  // namespace

void ParameterCatalog::ask(const std::vector<std::string>& names) const {
    if (!installation_ || !as_) return;
    std::vector<std::string> todo;  // lowercase, each once
    for (const auto& name : names) {
        std::string key = to_lower(name);
        if (key.find('.') != std::string::npos || !is_valid_name(key) || by_name_.count(key) ||
            asked_.count(key) || std::find(todo.begin(), todo.end(), key) != todo.end())
            continue;
        todo.push_back(key);
    }
    if (todo.empty()) return;
    // Each name set to '' in a scratch postgresql.conf: the server first checks every name
    // (and stops there when one is unknown), then every value (a type's refusal of '' still
    // says the name exists; an internal parameter "cannot be changed").
    auto run = [&](const std::vector<std::string>& keys) {
        ScratchDir dir(*as_);
        std::string text;
        for (const auto& key : keys) text += key + " = ''\n";
        dir.write("postgresql.conf", text);
        dir.hand_over();
        ServerAnswer a = postgres_c(*installation_, *as_, dir.path(), "port");
        if (!a.ok && a.err.find("contains errors") == std::string::npos)
            throw Error(Exit::failure,
                        "postgres -C of " + installation_->bindir.string() + " failed: " + a.err,
                        "check the installation in " + installation_->bindir.string());
        return a;
    };
    ServerAnswer first = run(todo);
    const std::string unknown_pattern = "unrecognized configuration parameter \"";
    const std::string internal_pattern = "parameter \"";
    std::set<std::string> unknown = named_in(first.err, unknown_pattern);
    std::vector<std::string> known;
    for (const auto& key : todo)
        if (!unknown.count(key)) known.push_back(key);
    std::string values_err = first.err;
    if (!unknown.empty() && !known.empty()) values_err = run(known).err;
    std::set<std::string> internal;
    for (const auto& key : named_in(values_err, internal_pattern))
        if (values_err.find("parameter \"" + key + "\" cannot be changed") != std::string::npos)
            internal.insert(key);
    for (const auto& key : todo) {
        if (unknown.count(key)) {
            asked_[key] = std::nullopt;
            continue;
        }
        ParameterInfo p;
        p.name = key;
        p.context = internal.count(key) ? "internal" : "";
        p.description = "not listed by postgres --describe-config";
        p.unlisted = true;
        asked_[key] = std::move(p);
    }
}

namespace {

// Runs `postgres -D dir -C name`, which reads the configuration files of `dir` with the
// server's own parser and exits; returns the server's complaints, empty when it accepts them.
std::string server_complaints(const Installation& installation, const OsUser& as,
                              const fs::path& dir, const std::string& name) {
    Command cmd;
    cmd.as = &as;
    cmd.argv = {installation.program("postgres").string(), "-D", dir.string(), "-C", name};
    cmd.env = {"PGDATA", "PGOPTIONS"};
    auto r = run_process(cmd);
    if (r.ok()) return {};
    std::string messages;
    std::istringstream in(r.err);
    for (std::string line; std::getline(in, line);) {
        if (line.find("skipping missing configuration file") != std::string::npos ||
            line.find("contains errors") != std::string::npos || line.empty())
            continue;
        messages += (messages.empty() ? "" : "\n") + server_message(line);
    }
    return messages.empty() ? r.err : messages;
}

}  // namespace

void validate_values(const Installation& installation, const OsUser& as,
                     const std::map<std::string, std::string>& values) {
    if (values.empty()) return;
    ScratchDir dir(as);
    std::string text;
    for (const auto& [name, value] : values) text += name + " = " + format_value(value) + "\n";
    dir.write("postgresql.conf", text);
    dir.hand_over();
    std::string messages = server_complaints(installation, as, dir.path(), values.begin()->first);
    if (messages.empty()) return;
    // The scratch file's name means nothing to the user.
    for (size_t at;
         (at = messages.find(" in file \"" + (dir.path() / "postgresql.conf").string())) !=
         std::string::npos;) {
        size_t end = messages.find('\n', at);
        messages.erase(at, (end == std::string::npos ? messages.size() : end) - at);
    }
    throw Error(Exit::usage, "the server refuses: " + messages, "nothing was written");
}

std::string check_data_directory(const Installation& installation, const OsUser& as,
                                 const fs::path& data_dir) {
    return server_complaints(installation, as, data_dir, "port");
}

namespace {

long number(const std::map<std::string, std::string>& values, const std::string& name) {
    auto it = values.find(name);
    if (it == values.end()) return 0;
    try {
        return std::stol(it->second);
    } catch (const std::exception&) {
        return 0;
    }
}

// A size as `postgres -C` prints it, in the parameter's base unit ("80" for 80MB; "1GB" and
// "512kB" are read too), in MB; -1 when it cannot tell.
double megabytes(const std::map<std::string, std::string>& values, const std::string& name) {
    auto it = values.find(name);
    if (it == values.end()) return -1;
    const std::string& v = it->second;
    size_t digits = 0;
    while (digits < v.size() && std::isdigit(static_cast<unsigned char>(v[digits]))) ++digits;
    if (digits == 0 || digits > 15) return -1;
    double n = std::stod(v.substr(0, digits));
    std::string unit = v.substr(digits);
    if (unit == "kB") return n / 1024;
    if (unit == "MB" || unit.empty()) return n;
    if (unit == "GB") return n * 1024;
    if (unit == "TB") return n * 1024 * 1024;
    return -1;
}

std::string text(const std::map<std::string, std::string>& values, const std::string& name) {
    auto it = values.find(name);
    return it == values.end() ? std::string() : to_lower(it->second);
}

}  // namespace

const std::vector<std::string>& start_time_parameters() {
    static const std::vector<std::string> names = {"max_connections",
                                                   "superuser_reserved_connections",
                                                   "wal_level",
                                                   "archive_mode",
                                                   "max_wal_senders",
                                                   "autovacuum_max_workers",
                                                   "max_worker_processes",
                                                   "min_wal_size",
                                                   "max_wal_size"};
    return names;
}

std::string start_time_conflicts(const std::map<std::string, std::string>& values) {
    std::vector<std::string> out;
    const long connections = number(values, "max_connections");
    const long reserved = number(values, "superuser_reserved_connections");
    const long senders = number(values, "max_wal_senders");
    const std::string wal_level = text(values, "wal_level");
    const std::string archive_mode = text(values, "archive_mode");
    if (values.count("max_connections") && values.count("superuser_reserved_connections") &&
        reserved >= connections)
        out.push_back("superuser_reserved_connections (" + std::to_string(reserved) +
                      ") must be less than max_connections (" + std::to_string(connections) +
                      "): lower superuser_reserved_connections or raise max_connections");
    if (wal_level == "minimal" && !archive_mode.empty() && archive_mode != "off")
        out.push_back("archive_mode = " + archive_mode +
                      " cannot be used with wal_level = minimal: set archive_mode = off, or "
                      "wal_level = replica");
    if (wal_level == "minimal" && senders > 0)
        out.push_back("wal_level = minimal requires max_wal_senders = 0 (it is " +
                      std::to_string(senders) +
                      "): set max_wal_senders = 0 as well, or wal_level = replica");
    // MAX_BACKENDS: the backend slots the server makes must fit its 18-bit process numbers.
    const long backends = connections + number(values, "autovacuum_max_workers") + 1 +
                          number(values, "max_worker_processes") + senders;
    if (backends > 0x3FFFF)
        out.push_back(
            "max_connections + autovacuum_max_workers + max_worker_processes + "
            "max_wal_senders + 1 is " +
            std::to_string(backends) + ", more than the server's limit of " +
            std::to_string(0x3FFFF) + " processes: lower max_connections");
    // ReadControlFile: both WAL sizes must hold two segments of the cluster's size.
    const double segment = megabytes(values, "wal_segment_size");
    for (const char* name : {"min_wal_size", "max_wal_size"}) {
        const double size = megabytes(values, name);
        if (segment <= 0 || size < 0 || std::floor(size / segment) >= 2) continue;
        std::string shown = values.at(name);
        if (shown.find_first_not_of("0123456789") == std::string::npos) shown += "MB";
        out.push_back(std::string(name) + " (" + shown +
                      ") must be at least twice wal_segment_size (" +
                      values.at("wal_segment_size") + "): set " + name + " to " +
                      std::to_string(static_cast<long>(2 * segment)) + "MB or more");
    }
    std::string joined;
    for (const auto& line : out) joined += (joined.empty() ? "" : "\n") + line;
    return joined;
}

std::string check_start_settings(const Installation& installation, const OsUser& as,
                                 const fs::path& data_dir,
                                 const std::map<fs::path, std::string>& files) {
    ScratchDir dir(as);
    const fs::path base = data_dir.lexically_normal();
    for (const auto& [file, content] : files) {
        fs::path relative = file.lexically_normal().lexically_relative(base);
        if (relative.empty() || *relative.begin() == "..") {
            // Read from where it is, unless it changed: then the copy cannot show the change.
            if (read_text_file(file) != content) return {};
            continue;
        }
        dir.write(relative, content);
    }
    dir.hand_over();
    std::map<std::string, std::string> values;
    for (const auto& name : start_time_parameters()) {
        Command cmd;
        cmd.as = &as;
        cmd.argv = {installation.program("postgres").string(), "-D", dir.path().string(), "-C",
                    name};
        cmd.env = {"PGDATA", "PGOPTIONS"};
        auto r = run_process(cmd);
        if (!r.ok()) return {};  // the check after writing reports what the parser says
        std::string value = r.out;
        while (!value.empty() && (value.back() == '\n' || value.back() == '\r')) value.pop_back();
        values[name] = value;
    }
    // The WAL segment size is fixed by initdb: pg_control has it.
    Command control;
    control.as = &as;
    control.argv = {installation.program("pg_controldata").string(), "-D", data_dir.string()};
    control.env = {"LC_ALL=C", "LANG=C", "LANGUAGE"};
    auto c = run_process(control);
    const std::string label = "Bytes per WAL segment:";
    size_t at = c.ok() ? c.out.find(label) : std::string::npos;
    if (at != std::string::npos) {
        try {
            long bytes = std::stol(c.out.substr(at + label.size()));
            if (bytes >= 1024 * 1024)
                values["wal_segment_size"] = std::to_string(bytes >> 20) + "MB";
        } catch (const std::exception&) {
        }
    }
    return start_time_conflicts(values);
}

}  // namespace pgforge::conf
