#include "engine/conf/parameters.hpp"

#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <sstream>

#include "engine/conf/pgconf.hpp"
#include "engine/conf/template.hpp"
#include "engine/core/error.hpp"
#include "engine/core/text.hpp"

namespace fs = std::filesystem;

namespace pgforge::conf {
namespace {

// A private directory the server's user can use, removed at the end.
class ScratchDir {
  public:
    explicit ScratchDir(const OsUser& owner) {
        char tmpl[] = "/tmp/pgforge-check-XXXXXX";
        if (!mkdtemp(tmpl)) throw Error(Exit::failure, "cannot create a scratch directory in /tmp");
        path_ = tmpl;
        if (geteuid() == 0 && chown(path_.c_str(), owner.uid, owner.gid) != 0) {
            fs::remove_all(path_);
            throw Error(Exit::failure, "cannot give " + path_.string() + " to " + owner.name);
        }
    }
    ~ScratchDir() {
        std::error_code ec;
        fs::remove_all(path_, ec);
    }
    const fs::path& path() const { return path_; }

  private:
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
    return parse(r.out);
}

const ParameterInfo* ParameterCatalog::find(const std::string& name) const {
    auto it = by_name_.find(to_lower(name));
    return it == by_name_.end() ? nullptr : &it->second;
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
    write_file_atomically(dir.path() / "postgresql.conf", text, &as, fs::perms(0600));
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

}  // namespace pgforge::conf
