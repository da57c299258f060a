#include "engine/driver/installations.hpp"

#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cstdlib>
#include <cstring>
#include <set>
#include <sstream>

#include "engine/core/error.hpp"
#include "engine/core/process.hpp"

namespace fs = std::filesystem;

namespace pgforge {
namespace {

bool executable(const fs::path& p) {
    return access(p.c_str(), X_OK) == 0;
}

ProcessResult run_program(std::vector<std::string> argv) {
    Command c;
    c.argv = std::move(argv);
    return run_process(c);
}

std::string trim(std::string s) {
    auto b = s.find_first_not_of(" \t\r\n");
    auto e = s.find_last_not_of(" \t\r\n");
    return b == std::string::npos ? "" : s.substr(b, e - b + 1);
}

void candidates_in(const fs::path& parent, const std::string& prefix, const std::string& suffix,
                   std::vector<fs::path>& out) {
    std::error_code ec;
    for (const auto& entry : fs::directory_iterator(parent, ec)) {
        std::string n = entry.path().filename().string();
        if (n.rfind(prefix, 0) == 0) out.push_back(entry.path() / suffix);
    }
}

}  // namespace

VersionInfo parse_version(const std::string& text) {
    // "PostgreSQL 15.18 (Debian ...)", "postgres (PostgreSQL) 9.6.24", "PostgreSQL 17beta2"
    auto fail = [&] {
        return Error(Exit::failure, "cannot read a PostgreSQL version from '" + trim(text) + "'");
    };
    size_t at = text.find("PostgreSQL");
    if (at == std::string::npos) throw fail();
    at += 10;
    if (at < text.size() && text[at] == ')') ++at;
    while (at < text.size() && text[at] == ' ') ++at;
    auto number = [&](int& into) {
        size_t begin = at;
        while (at < text.size() && std::isdigit(static_cast<unsigned char>(text[at]))) ++at;
        if (at == begin) return false;
        into = std::stoi(text.substr(begin, at - begin));
        return true;
    };
    VersionInfo v;
    if (!number(v.major)) throw fail();
    if (at < text.size() && text[at] == '.') {
        ++at;
        number(v.minor);
        if (v.major < 10 && at < text.size() && text[at] == '.') {
            ++at;
            number(v.patch);
        }
    }
    v.state = "final";
    for (const char* state : {"devel", "beta", "rc"}) {
        if (text.compare(at, std::strlen(state), state) == 0) {
            v.state = state;
            at += std::strlen(state);
            number(v.level);
        }
    }
    return v;
}

void parse_pg_config(const std::string& output, Installation& into) {
    std::istringstream in(output);
    std::string line;
    while (std::getline(in, line)) {
        auto eq = line.find(" = ");
        if (eq == std::string::npos) continue;
        std::string key = line.substr(0, eq);
        std::string value = trim(line.substr(eq + 3));
        std::transform(key.begin(), key.end(), key.begin(), ::tolower);
        if (key == "configure") {
            // '--with-openssl' '--prefix=/usr' ...: each option in single quotes.
            for (size_t open = value.find('\''); open != std::string::npos;) {
                size_t close = value.find('\'', open + 1);
                if (close == std::string::npos) break;
                std::string opt = value.substr(open + 1, close - open - 1);
                open = value.find('\'', close + 1);
                if (opt.rfind("--", 0) != 0) continue;
                auto eq = opt.find('=');
                std::string name = opt.substr(2, eq == std::string::npos ? eq : eq - 2);
                std::replace(name.begin(), name.end(), '-', '_');
                into.configure_options[name] =
                    eq == std::string::npos ? "true" : opt.substr(eq + 1);
            }
            into.ssl = into.configure_options.count("with_openssl") ||
                       into.configure_options.count("with_ssl");
        } else if (key == "version") {
            into.version = value;
        } else if (key.find("dir") != std::string::npos || key == "pgxs") {
            into.paths[key] = value;
        }
    }
}

std::vector<Installation> find_installations(const Settings& settings) {
    std::vector<fs::path> bindirs = settings.bindirs;
    candidates_in("/usr/lib/postgresql", "", "bin", bindirs);
    candidates_in("/usr", "pgsql-", "bin", bindirs);
    bindirs.emplace_back("/usr/local/pgsql/bin");
    // pg_config on PATH names its bindir.
    if (fs::path pg_config = find_on_path("pg_config"); !pg_config.empty()) {
        auto r = run_program({pg_config.string(), "--bindir"});
        if (r.ok()) bindirs.emplace_back(trim(r.out));
    }

    std::vector<Installation> found;
    std::set<fs::path> seen;
    for (const auto& dir : bindirs) {
        std::error_code ec;
        fs::path canonical = fs::canonical(dir, ec);
        if (ec || seen.count(canonical) || !executable(canonical / "postgres") ||
            !executable(canonical / "initdb"))
            continue;
        seen.insert(canonical);
        Installation inst;
        inst.bindir = canonical;
        auto r = run_program({(canonical / "postgres").string(), "--version"});
        if (!r.ok()) continue;
        inst.version = trim(r.out);
        inst.version_info = parse_version(inst.version);
        found.push_back(std::move(inst));
    }
    std::stable_sort(found.begin(), found.end(), [](const auto& a, const auto& b) {
        const auto &x = a.version_info, &y = b.version_info;
        return std::tie(x.major, x.minor, x.patch) > std::tie(y.major, y.minor, y.patch);
    });
    return found;
}

void describe(Installation& inst) {
    fs::path pg_config = inst.bindir / "pg_config";
    if (!executable(pg_config)) return;
    auto r = run_program({pg_config.string()});
    if (r.ok()) parse_pg_config(r.out, inst);
}

Installation select_installation(const Settings& settings, const std::string& requested) {
    std::string wanted = requested;
    if (wanted.empty())
        if (const char* e = std::getenv("PGFORGE_POSTGRES_VERSION")) wanted = e;
    if (wanted.empty()) wanted = settings.postgres_version;
    // Packaged layouts name the major version in the path: no need to run anything.
    if (!wanted.empty() && settings.bindirs.empty()) {
        for (fs::path dir : {fs::path("/usr/lib/postgresql") / wanted / "bin",
                             fs::path("/usr/pgsql-" + wanted) / "bin"}) {
            if (executable(dir / "postgres") && executable(dir / "initdb")) {
                Installation inst;
                inst.bindir = dir;
                inst.version_info.major = std::stoi(wanted);
                inst.version_info.state = "final";
                return inst;
            }
        }
    }
    auto all = find_installations(settings);
    if (all.empty())
        throw Error(Exit::not_found, "no PostgreSQL installation found",
                    "install one (apt-get install postgresql-15) or name its bindir in the "
                    "settings file ([postgresql] bindir = ...)");
    if (wanted.empty()) return all.front();
    std::string have;
    for (const auto& i : all) {
        if (i.major() == wanted) return i;
        have += (have.empty() ? "" : ", ") + i.major();
    }
    throw Error(Exit::not_found, "PostgreSQL " + wanted + " is not installed (found: " + have + ")",
                "install postgresql-" + wanted + " or choose one of the versions found");
}

}  // namespace pgforge
