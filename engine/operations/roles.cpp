// The SHA-256 context functions make PBKDF2 2-3 times faster than PKCS5_PBKDF2_HMAC (which
// goes through EVP for every iteration); OpenSSL 3 marks them deprecated but keeps them.
#define OPENSSL_SUPPRESS_DEPRECATED
#include "engine/operations/roles.hpp"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/sha.h>
#include <pwd.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>
#include <thread>

#include "engine/conf/template.hpp"
#include "engine/core/error.hpp"
#include "engine/core/log.hpp"
#include "engine/operations/instances.hpp"
#include "engine/pg/connection.hpp"

namespace fs = std::filesystem;

namespace pgforge::roles {

// ---- SCRAM-SHA-256 --------------------------------------------------------------------------
namespace detail {

namespace {
const char kB64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

constexpr size_t kKeyLen = 32;

std::string hmac_sha256(const std::string& key, std::string_view message) {
    unsigned char out[EVP_MAX_MD_SIZE];
    unsigned int len = 0;
    if (!HMAC(EVP_sha256(), key.data(), static_cast<int>(key.size()),
              reinterpret_cast<const unsigned char*>(message.data()), message.size(), out, &len))
        throw Error(Exit::failure, "HMAC-SHA-256 failed");
    return std::string(reinterpret_cast<char*>(out), len);
}

std::string sha256(const std::string& data) {
    unsigned char out[EVP_MAX_MD_SIZE];
    unsigned int len = 0;
    if (!EVP_Digest(data.data(), data.size(), out, &len, EVP_sha256(), nullptr))
        throw Error(Exit::failure, "SHA-256 failed");
    return std::string(reinterpret_cast<char*>(out), len);
}

struct ScramKeys {
    std::string stored_key, server_key;
};

#ifndef OPENSSL_NO_DEPRECATED_3_0
// HMAC-SHA-256 with the key's inner and outer blocks hashed once: each PBKDF2 iteration is then
// two SHA-256 compressions.
struct HmacKey {
    SHA256_CTX inner, outer;
    explicit HmacKey(const std::string& key) {
        unsigned char k[SHA256_CBLOCK] = {0};
        if (key.size() > SHA256_CBLOCK)
            SHA256(reinterpret_cast<const unsigned char*>(key.data()), key.size(), k);
        else
            std::memcpy(k, key.data(), key.size());
        unsigned char ipad[SHA256_CBLOCK], opad[SHA256_CBLOCK];
        for (size_t j = 0; j < SHA256_CBLOCK; ++j) ipad[j] = k[j] ^ 0x36, opad[j] = k[j] ^ 0x5c;
        SHA256_Init(&inner);
        SHA256_Update(&inner, ipad, sizeof ipad);
        SHA256_Init(&outer);
        SHA256_Update(&outer, opad, sizeof opad);
        OPENSSL_cleanse(k, sizeof k);
        OPENSSL_cleanse(ipad, sizeof ipad);
        OPENSSL_cleanse(opad, sizeof opad);
    }
    ~HmacKey() {
        OPENSSL_cleanse(&inner, sizeof inner);
        OPENSSL_cleanse(&outer, sizeof outer);
    }
    void mac(const unsigned char* message, size_t size, unsigned char* out) const {
        SHA256_CTX c = inner;
        unsigned char h[SHA256_DIGEST_LENGTH];
        SHA256_Update(&c, message, size);
        SHA256_Final(h, &c);
        c = outer;
        SHA256_Update(&c, h, sizeof h);
        SHA256_Final(out, &c);
    }
};

std::string pbkdf2_sha256(const std::string& password, const std::string& salt, int iterations) {
    HmacKey key(password);
    std::string first = salt + std::string("\0\0\0\1", 4);  // block 1: 32 bytes is one block
    unsigned char u[SHA256_DIGEST_LENGTH], out[SHA256_DIGEST_LENGTH];
    key.mac(reinterpret_cast<const unsigned char*>(first.data()), first.size(), u);
    std::memcpy(out, u, sizeof out);
    for (int i = 1; i < iterations; ++i) {
        key.mac(u, sizeof u, u);
        for (size_t j = 0; j < sizeof out; ++j) out[j] ^= u[j];
    }
    std::string result(reinterpret_cast<char*>(out), sizeof out);
    OPENSSL_cleanse(u, sizeof u);
    OPENSSL_cleanse(out, sizeof out);
    return result;
}
#else
std::string pbkdf2_sha256(const std::string& password, const std::string& salt, int iterations) {
    std::string salted(kKeyLen, '\0');
    if (!PKCS5_PBKDF2_HMAC(password.data(), static_cast<int>(password.size()),
                           reinterpret_cast<const unsigned char*>(salt.data()),
                           static_cast<int>(salt.size()), iterations, EVP_sha256(),
                           static_cast<int>(kKeyLen),
                           reinterpret_cast<unsigned char*>(salted.data())))
        throw Error(Exit::failure, "PBKDF2-HMAC-SHA-256 failed");
    return salted;
}
#endif

ScramKeys scram_keys(const std::string& password, const std::string& salt, int iterations) {
    std::string salted = pbkdf2_sha256(password, salt, iterations);
    ScramKeys k{sha256(hmac_sha256(salted, "Client Key")), hmac_sha256(salted, "Server Key")};
    OPENSSL_cleanse(salted.data(), salted.size());
    return k;
}

bool equal_secret(const std::string& a, const std::string& b) {
    return a.size() == b.size() && CRYPTO_memcmp(a.data(), b.data(), a.size()) == 0;
}
}  // namespace

std::string base64_encode(const std::string& bytes) {
    std::string out;
    size_t k = 0;
    for (; k + 2 < bytes.size(); k += 3) {
        unsigned v = (unsigned char)bytes[k] << 16 | (unsigned char)bytes[k + 1] << 8 |
                     (unsigned char)bytes[k + 2];
        out += kB64[v >> 18 & 63];
        out += kB64[v >> 12 & 63];
        out += kB64[v >> 6 & 63];
        out += kB64[v & 63];
    }
    if (k + 1 == bytes.size()) {
        unsigned v = (unsigned char)bytes[k] << 16;
        out += kB64[v >> 18 & 63];
        out += kB64[v >> 12 & 63];
        out += "==";
    } else if (k + 2 == bytes.size()) {
        unsigned v = (unsigned char)bytes[k] << 16 | (unsigned char)bytes[k + 1] << 8;
        out += kB64[v >> 18 & 63];
        out += kB64[v >> 12 & 63];
        out += kB64[v >> 6 & 63];
        out += '=';
    }
    return out;
}

std::optional<std::string> base64_decode(const std::string& text) {
    if (text.size() % 4 != 0) return std::nullopt;
    std::string out;
    for (size_t k = 0; k < text.size(); k += 4) {
        unsigned v = 0;
        int pad = 0;
        for (size_t j = 0; j < 4; ++j) {
            char c = text[k + j];
            unsigned d = 0;
            if (c == '=') {
                // Padding only at the end, in the last two places.
                if (k + 4 != text.size() || j < 2) return std::nullopt;
                ++pad;
            } else {
                if (pad) return std::nullopt;
                const char* p = c ? std::strchr(kB64, c) : nullptr;
                if (!p) return std::nullopt;
                d = static_cast<unsigned>(p - kB64);
            }
            v = v << 6 | d;
        }
        out += static_cast<char>(v >> 16 & 255);
        if (pad < 2) out += static_cast<char>(v >> 8 & 255);
        if (pad < 1) out += static_cast<char>(v & 255);
    }
    return out;
}

std::string scram_verifier(const std::string& password, const std::string& salt, int iterations) {
    ScramKeys k = scram_keys(password, salt, iterations);
    return "SCRAM-SHA-256$" + std::to_string(iterations) + ":" + base64_encode(salt) + "$" +
           base64_encode(k.stored_key) + ":" + base64_encode(k.server_key);
}

bool scram_matches(const std::string& verifier, const std::string& password) {
    // SCRAM-SHA-256$<iterations>:<salt>$<StoredKey>:<ServerKey>
    const std::string prefix = "SCRAM-SHA-256$";
    if (verifier.compare(0, prefix.size(), prefix) != 0) return false;
    std::string rest = verifier.substr(prefix.size());
    auto colon1 = rest.find(':'), dollar = rest.find('$');
    if (colon1 == std::string::npos || dollar == std::string::npos || dollar < colon1) return false;
    auto colon2 = rest.find(':', dollar);
    if (colon2 == std::string::npos) return false;
    std::string iter_text = rest.substr(0, colon1);
    if (iter_text.empty() || iter_text.size() > 9 ||
        !std::all_of(iter_text.begin(), iter_text.end(),
                     [](char c) { return c >= '0' && c <= '9'; }))
        return false;
    int iterations = std::stoi(iter_text);
    auto salt = base64_decode(rest.substr(colon1 + 1, dollar - colon1 - 1));
    auto stored = base64_decode(rest.substr(dollar + 1, colon2 - dollar - 1));
    auto server = base64_decode(rest.substr(colon2 + 1));
    if (iterations < 1 || !salt || salt->empty() || !stored || !server ||
        stored->size() != kKeyLen || server->size() != kKeyLen)
        return false;
    ScramKeys k = scram_keys(password, *salt, iterations);
    return equal_secret(k.stored_key, *stored) && equal_secret(k.server_key, *server);
}

// ---- .pgpass lines --------------------------------------------------------------------------

std::string pgpass_escape(const std::string& field) {
    std::string out;
    for (char c : field) {
        if (c == '\\' || c == ':') out += '\\';
        out += c;
    }
    return out;
}

std::string pgpass_line(const PgpassEntry& e) {
    return pgpass_escape(e.host) + ":" + pgpass_escape(e.port) + ":" + pgpass_escape(e.database) +
           ":" + pgpass_escape(e.user) + ":" + pgpass_escape(e.password);
}

std::optional<PgpassEntry> pgpass_parse(const std::string& line) {
    if (line.empty() || line[0] == '#') return std::nullopt;
    std::string text = line;
    if (!text.empty() && text.back() == '\r') text.pop_back();
    std::vector<std::string> fields(1);
    size_t k = 0;
    // The first four fields end at an unescaped ':'; the password is the rest (as libpq reads it).
    for (; k < text.size() && fields.size() < 5; ++k) {
        char c = text[k];
        if (c == '\\' && k + 1 < text.size()) {
            fields.back() += text[++k];
        } else if (c == ':') {
            fields.emplace_back();
        } else {
            fields.back() += c;
        }
    }
    if (fields.size() < 5) return std::nullopt;
    for (; k < text.size(); ++k) {
        if (text[k] == '\\' && k + 1 < text.size()) ++k;
        fields.back() += text[k];
    }
    return PgpassEntry{fields[0], fields[1], fields[2], fields[3], fields[4]};
}

}  // namespace detail

// ---- ~/.pgpass ------------------------------------------------------------------------------
namespace {

using detail::PgpassEntry;

struct PgpassFile {
    std::vector<std::string> lines;
    bool existed = false;

    static PgpassFile read() {
        PgpassFile f;
        fs::path path = pgpass_file();
        std::error_code ec;
        if (!fs::exists(path, ec)) return f;
        f.existed = true;
        std::istringstream in(read_text_file(path));
        for (std::string line; std::getline(in, line);) f.lines.push_back(line);
        return f;
    }
    void write() const {
        fs::path path = pgpass_file();
        bool blank =
            std::all_of(lines.begin(), lines.end(), [](const std::string& l) { return l.empty(); });
        if (blank) {
            std::error_code ec;
            fs::remove(path, ec);
            if (ec)
                throw Error(Exit::failure, "cannot remove " + path.string() + ": " + ec.message());
            return;
        }
        std::string content;
        for (const auto& l : lines) content += l + "\n";
        write_file_atomically(path, content, nullptr,
                              fs::perms::owner_read | fs::perms::owner_write);
    }
};

bool is_entry_of(const PgpassEntry& e, const Instance& i, const std::string& role) {
    return e.host == i.socket_dir.string() && e.port == std::to_string(i.port) &&
           e.database == "*" && e.user == role;
}

bool pgpass_has(const Instance& i, const std::string& role) {
    for (const auto& line : PgpassFile::read().lines)
        if (auto e = detail::pgpass_parse(line); e && is_entry_of(*e, i, role)) return true;
    return false;
}

// Adds or updates the role's entry; returns whether the file changed (with `write` false:
// whether it would).
bool pgpass_set(const Instance& i, const std::string& role, const std::string& password,
                bool write = true) {
    PgpassFile f = PgpassFile::read();
    std::string wanted =
        detail::pgpass_line({i.socket_dir.string(), std::to_string(i.port), "*", role, password});
    bool found = false, changed = false;
    for (auto& line : f.lines) {
        auto e = detail::pgpass_parse(line);
        if (!e || !is_entry_of(*e, i, role)) continue;
        found = true;
        if (line != wanted) line = wanted, changed = true;
    }
    if (!found) {
        f.lines.push_back(wanted);
        changed = true;
    }
    if (changed && write) f.write();
    return changed;
}

bool pgpass_remove(const Instance& i, const std::string& role, bool write = true) {
    PgpassFile f = PgpassFile::read();
    auto before = f.lines.size();
    std::erase_if(f.lines, [&](const std::string& line) {
        auto e = detail::pgpass_parse(line);
        return e && is_entry_of(*e, i, role);
    });
    if (f.lines.size() == before) return false;
    if (write) f.write();
    return true;
}

}  // namespace

fs::path pgpass_file() {
    const char* home = std::getenv("HOME");
    if (home && *home) return fs::path(home) / ".pgpass";
    if (const passwd* pw = getpwuid(geteuid()); pw && pw->pw_dir)
        return fs::path(pw->pw_dir) / ".pgpass";
    throw Error(Exit::failure, "cannot find the home directory of the current user", "set HOME");
}

bool update_pgpass_port(int old_port, int new_port, const fs::path& socket_dir) {
    PgpassFile f = PgpassFile::read();
    bool changed = false;
    for (auto& line : f.lines) {
        auto e = detail::pgpass_parse(line);
        if (!e || e->port != std::to_string(old_port)) continue;
        if (!socket_dir.empty() && e->host != socket_dir.string()) continue;
        e->port = std::to_string(new_port);
        line = detail::pgpass_line(*e);
        changed = true;
    }
    if (changed) f.write();
    return changed;
}

// ---- queries --------------------------------------------------------------------------------
namespace {

constexpr size_t kMaxNameBytes = 63;

Error role_not_found(const Instance& i, const std::string& name) {
    return Error(Exit::not_found,
                 "role " + name + " does not exist in instance " + i.qualified_name(),
                 "see the roles with: pgforge role list -i " + i.qualified_name());
}

void check_name(const std::string& name, const char* what) {
    if (name.empty()) throw Error(Exit::usage, std::string(what) + " is empty");
    if (name.size() > kMaxNameBytes)
        throw Error(Exit::usage, std::string(what) + " '" + name + "' is longer than 63 bytes",
                    "PostgreSQL would truncate it");
    if (name.find('\0') != std::string::npos)
        throw Error(Exit::usage, std::string(what) + " holds a NUL character");
}

// The role as pg_authid has it. valid_until is printed in UTC so that it reads back the same.
const char* const kRoleColumns =
    "r.rolname, r.rolcanlogin, r.rolsuper, r.rolcreatedb, r.rolcreaterole, r.rolreplication, "
    "r.rolinherit, r.rolconnlimit, "
    "CASE WHEN r.rolvaliduntil IS NULL THEN NULL "
    "WHEN isfinite(r.rolvaliduntil) THEN "
    "to_char(r.rolvaliduntil AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS') || "
    "CASE WHEN date_trunc('second', r.rolvaliduntil) = r.rolvaliduntil THEN '' "
    "ELSE to_char(r.rolvaliduntil AT TIME ZONE 'UTC', '.US') END || 'Z' "
    "ELSE r.rolvaliduntil::text END, "
    "array_to_json(ARRAY(SELECT DISTINCT g.rolname::text FROM pg_auth_members m "
    "JOIN pg_authid g ON g.oid = m.roleid WHERE m.member = r.oid ORDER BY 1))::text";

Role role_from_row(const pg::Row& row) {
    auto b = [&](size_t k) { return row.at(k).value_or("f") == "t"; };
    Role r;
    r.name = row.at(0).value_or("");
    r.login = b(1);
    r.superuser = b(2);
    r.createdb = b(3);
    r.createrole = b(4);
    r.replication = b(5);
    r.inherit = b(6);
    r.connection_limit = std::stoi(row.at(7).value_or("-1"));
    r.valid_until = row.at(8);
    std::vector<std::string> in_roles;
    for (const auto& g : nlohmann::json::parse(row.at(9).value_or("[]")))
        in_roles.push_back(g.get<std::string>());
    r.in_roles = std::move(in_roles);
    return r;
}

struct Current {
    Role role;
    std::optional<std::string> verifier;  // rolpassword
    bool valid_until_same = false;        // stored rolvaliduntil equals the wanted one
    std::optional<bool> password_same;    // the wanted password matches verifier, when known
};

bool looks_like_bad_timestamp(const std::string& message) {
    for (const char* s : {"timestamp", "date/time", "time zone"})
        if (message.find(s) != std::string::npos) return true;
    return false;
}

// The state of each wanted role (nullopt: no such role), in one query.
std::vector<std::optional<Current>> current_states(pg::Connection& c,
                                                   const std::vector<const Role*>& wanted) {
    nlohmann::json w = nlohmann::json::array();
    for (size_t k = 0; k < wanted.size(); ++k)
        w.push_back({{"k", k},
                     {"name", wanted[k]->name},
                     {"valid_until", wanted[k]->valid_until.value_or("")}});
    pg::QueryResult r;
    try {
        r = c.exec(
            std::string("SELECT ") + kRoleColumns +
                ", r.rolpassword, "
                "r.rolvaliduntil IS NOT DISTINCT FROM NULLIF(w.valid_until, '')::timestamptz, "
                "w.k FROM json_to_recordset($1::json) AS w(k int, name text, valid_until text) "
                "JOIN pg_authid r ON r.rolname = w.name",
            {w.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace)});
    } catch (const Error& e) {
        if (!looks_like_bad_timestamp(e.what())) throw;
        // Say which valid_until the server refuses.
        for (const Role* role : wanted) {
            if (!role->valid_until) continue;
            try {
                c.exec("SELECT $1::timestamptz", {*role->valid_until});
            } catch (const Error&) {
                throw Error(Exit::usage,
                            "role " + role->name + ": valid_until '" + *role->valid_until +
                                "' is not a timestamp the server reads",
                            "for example 2030-12-31, '2030-12-31 23:59:59+00' or infinity");
            }
        }
        throw;
    }
    std::vector<std::optional<Current>> out(wanted.size());
    for (const auto& row : r.rows) {
        Current cur;
        cur.role = role_from_row(row);
        cur.verifier = row.at(10);
        cur.valid_until_same = row.at(11).value_or("f") == "t";
        out.at(std::stoul(row.at(12).value_or("0"))) = std::move(cur);
    }
    return out;
}

// Whether each wanted password matches its stored verifier: PBKDF2 with thousands of
// iterations per password, so spread over the machine's cores.
void check_passwords(std::vector<std::optional<Current>>& states,
                     const std::vector<const Role*>& wanted) {
    std::vector<size_t> todo;
    for (size_t k = 0; k < wanted.size(); ++k)
        if (wanted[k]->password && states[k] && states[k]->verifier) todo.push_back(k);
    auto check = [&](size_t k) {
        try {
            states[k]->password_same =
                detail::scram_matches(*states[k]->verifier, *wanted[k]->password);
        } catch (...) {
            // Left unknown: apply checks again, and reports the error.
        }
    };
    size_t workers =
        std::min<size_t>(todo.size(), std::max(1u, std::thread::hardware_concurrency()));
    if (workers <= 1) {
        for (size_t k : todo) check(k);
        return;
    }
    std::atomic<size_t> next{0};
    std::vector<std::thread> threads;
    for (size_t t = 0; t < workers; ++t)
        threads.emplace_back([&] {
            for (size_t n; (n = next++) < todo.size();) check(todo[n]);
        });
    for (auto& t : threads) t.join();
}

std::string json_array(const std::vector<std::string>& names) {
    return nlohmann::json(names).dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

// Throws role_not_found for the first of `names` that is not a role.
void check_roles_exist(pg::Connection& c, const Instance& i,
                       const std::vector<std::string>& names) {
    if (names.empty()) return;
    auto r = c.exec(
        "SELECT x FROM json_array_elements_text($1::json) AS x "
        "WHERE NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = x)",
        {json_array(names)});
    if (!r.rows.empty()) throw role_not_found(i, r.rows[0].at(0).value_or(""));
}

// One statement to run and the same with the password verifier masked, for reports and logs.
struct Statement {
    std::string run, shown;
};

std::string attribute_options(const Role& wanted, const Role* current) {
    std::string o;
    auto flag = [&](const std::optional<bool>& want, const std::optional<bool>& have,
                    const char* yes, const char* no) {
        if (want && (!current || have != want)) o += std::string(" ") + (*want ? yes : no);
    };
    const Role* c = current;
    static const std::optional<bool> none;
    flag(wanted.login, c ? c->login : none, "LOGIN", "NOLOGIN");
    flag(wanted.superuser, c ? c->superuser : none, "SUPERUSER", "NOSUPERUSER");
    flag(wanted.createdb, c ? c->createdb : none, "CREATEDB", "NOCREATEDB");
    flag(wanted.createrole, c ? c->createrole : none, "CREATEROLE", "NOCREATEROLE");
    flag(wanted.replication, c ? c->replication : none, "REPLICATION", "NOREPLICATION");
    flag(wanted.inherit, c ? c->inherit : none, "INHERIT", "NOINHERIT");
    if (wanted.connection_limit && (!c || c->connection_limit != wanted.connection_limit))
        o += " CONNECTION LIMIT " + std::to_string(*wanted.connection_limit);
    return o;
}

void validate(const Role& r) {
    check_name(r.name, "the role name");
    if (r.connection_limit && *r.connection_limit < -1)
        throw Error(Exit::usage,
                    "role " + r.name + ": connection_limit " + std::to_string(*r.connection_limit) +
                        " is below -1",
                    "-1 means no limit");
    if (r.in_roles)
        for (const auto& g : *r.in_roles) {
            check_name(g, "a role in in_roles");
            if (g == r.name)
                throw Error(Exit::usage, "role " + r.name + " cannot be a member of itself");
        }
    if (r.reassign_owned) check_name(*r.reassign_owned, "reassign_owned");
    if (r.reassign_owned && r.drop_owned)
        throw Error(Exit::usage, "give reassign_owned or drop_owned, not both");
    if (r.password && r.password->empty())
        throw Error(Exit::usage, "role " + r.name + ": the password is empty");
    if (r.password && r.password->find('\0') != std::string::npos)
        throw Error(Exit::usage, "role " + r.name + ": the password holds a NUL character");
    if (r.state == State::present && (r.reassign_owned || r.drop_owned))
        throw Error(Exit::usage, "role " + r.name +
                                     ": reassign_owned and drop_owned go with "
                                     "state absent");
}

// Runs the statements, in a transaction when there are several; logs them masked.
void run_all(pg::Connection& c, const std::vector<Statement>& statements, const std::string& role) {
    bool tx = statements.size() > 1;
    if (tx) c.exec("BEGIN");
    try {
        for (const auto& s : statements) {
            log::info("role " + role + ": " + s.shown);
            c.exec(s.run);
        }
        if (tx) c.exec("COMMIT");
    } catch (...) {
        if (tx) {
            try {
                c.exec("ROLLBACK");
            } catch (...) {
            }
        }
        throw;
    }
}

std::string in_database(pg::Connection& c, const std::string& db, const std::string& sql) {
    std::string label = c.quote_identifier(db);
    for (size_t p; (p = label.find("*/")) != std::string::npos;) label.replace(p, 2, "* /");
    return "/* database " + label + " */ " + sql;
}

// REASSIGN OWNED / DROP OWNED in every database that takes connections, then DROP ROLE. In
// check mode, only the statements.
std::vector<std::string> drop_role(pg::Connection& c, const Instance& i, const std::string& name,
                                   const DropOptions& o, bool check = false) {
    std::vector<std::string> shown;
    if (o.reassign_owned) {
        if (*o.reassign_owned == name)
            throw Error(Exit::usage, "cannot reassign what role " + name + " owns to itself");
        if (!check) check_roles_exist(c, i, {*o.reassign_owned});
    }
    if (o.reassign_owned || o.drop_owned) {
        auto dbs = c.exec(
            "SELECT datname FROM pg_database WHERE datallowconn "
            "ORDER BY datname <> 'postgres', datname");
        for (const auto& row : dbs.rows) {
            std::string db = row.at(0).value_or("");
            std::unique_ptr<pg::Connection> other;
            if (db != "postgres" && !check) other = std::make_unique<pg::Connection>(i, db);
            pg::Connection& dc = other ? *other : c;
            std::vector<std::string> sql;
            if (o.reassign_owned)
                sql.push_back("REASSIGN OWNED BY " + dc.quote_identifier(name) + " TO " +
                              dc.quote_identifier(*o.reassign_owned));
            sql.push_back("DROP OWNED BY " + dc.quote_identifier(name));
            for (const auto& s : sql) {
                std::string label = in_database(dc, db, s);
                shown.push_back(label);
                if (check) continue;
                log::info("role " + name + ": " + label);
                dc.exec(s);
            }
        }
    }
    std::string sql = "DROP ROLE " + c.quote_identifier(name);
    if (check) {
        shown.push_back(sql);
        return shown;
    }
    log::info("role " + name + ": " + sql);
    try {
        c.exec(sql);
    } catch (const Error& e) {
        std::string m = e.what();
        if (m.find("depend on it") != std::string::npos)
            throw Error(Exit::conflict, m,
                        "reassign what it owns (--reassign-owned ROLE) or drop it (--drop-owned)");
        throw;
    }
    shown.push_back(sql);
    return shown;
}

class Session {
  public:
    Session(const Instance& i, bool check, pg::Connection* shared = nullptr)
        : instance_(i), conn_(shared ? *shared : own_.emplace(i)), check_(check) {
        // Check mode: should a statement reach the server, it refuses to change anything.
        if (check_) conn_.exec("SET default_transaction_read_only = on");
    }

    // Applies the roles in order. The state of every role is read in one query up front and
    // trusted until something is changed; after that, each role's state is read afresh.
    std::vector<Outcome> apply_all(const std::vector<Role>& roles) {
        std::vector<const Role*> wanted;
        for (const auto& r : roles) wanted.push_back(&r);
        auto states = current_states(conn_, wanted);
        check_passwords(states, wanted);
        std::vector<Outcome> out;
        std::set<std::string> seen;
        bool changed = false;
        for (size_t k = 0; k < roles.size(); ++k) {
            bool fresh = !changed && seen.insert(roles[k].name).second;
            auto cur = fresh ? std::move(states[k]) : current_states(conn_, {&roles[k]}).at(0);
            out.push_back(apply(roles[k], cur));
            if (out.back().result != Result::unchanged) changed = true;
        }
        return out;
    }

    Outcome apply(const Role& wanted, const std::optional<Current>& cur) {
        validate(wanted);
        Outcome out;
        out.name = wanted.name;
        if (wanted.state == State::absent) {
            if (cur) {
                // (drop_role looks in the catalog itself, where check mode's plans are not.)
                if (check_ && wanted.reassign_owned) roles_exist({*wanted.reassign_owned});
                out.statements = drop_role(conn_, instance_, wanted.name,
                                           {wanted.reassign_owned, wanted.drop_owned}, check_);
                out.result = Result::dropped;
                planned_.erase(wanted.name);
                dropped_.insert(wanted.name);
            }
            if (pgpass_remove(instance_, wanted.name, !check_)) {
                out.pgpass_changed = true;
                if (out.result == Result::unchanged) out.result = Result::changed;
            }
            return out;
        }
        // A .pgpass entry needs the password: check before changing anything.
        bool pgpass_wanted = wanted.pgpass.value_or(false);
        if (pgpass_wanted && !wanted.password && !pgpass_has(instance_, wanted.name))
            throw Error(Exit::usage, "role " + wanted.name + ": a .pgpass entry needs the password",
                        "give the password (--password-file F, or password in the description)");

        std::vector<Statement> statements;
        std::string q = conn_.quote_identifier(wanted.name);
        auto password_clause = [&](Statement& s) {
            s.shown += " PASSWORD '***'";
            if (check_) return;  // never run: the password is not even hashed
            std::string v = conn_.encrypt_password(*wanted.password, wanted.name);
            s.run += " PASSWORD " + conn_.quote_literal(v);
            OPENSSL_cleanse(v.data(), v.size());
        };
        if (!cur) {
            std::string o = attribute_options(wanted, nullptr);
            if (wanted.valid_until) o += " VALID UNTIL " + conn_.quote_literal(*wanted.valid_until);
            Statement s{"CREATE ROLE " + q + (o.empty() ? "" : " WITH" + o), ""};
            s.shown = s.run;
            if (wanted.password) {
                if (o.empty()) s.run += " WITH", s.shown += " WITH";
                password_clause(s);
            }
            if (wanted.in_roles && !wanted.in_roles->empty()) {
                std::set<std::string> unique(wanted.in_roles->begin(), wanted.in_roles->end());
                roles_exist({unique.begin(), unique.end()});
                std::string list;
                for (const auto& g : unique)
                    list += (list.empty() ? "" : ", ") + conn_.quote_identifier(g);
                s.run += " IN ROLE " + list;
                s.shown += " IN ROLE " + list;
            }
            statements.push_back(std::move(s));
            out.result = Result::created;
            planned_.insert(wanted.name);
            dropped_.erase(wanted.name);
        } else {
            std::string o = attribute_options(wanted, &cur->role);
            if (wanted.valid_until && !cur->valid_until_same)
                o += " VALID UNTIL " + conn_.quote_literal(*wanted.valid_until);
            Statement s{"ALTER ROLE " + q + " WITH" + o, ""};
            s.shown = s.run;
            bool password_changes =
                wanted.password &&
                !(cur->password_same
                      ? *cur->password_same
                      : cur->verifier && detail::scram_matches(*cur->verifier, *wanted.password));
            if (password_changes) password_clause(s);
            if (!o.empty() || password_changes) statements.push_back(std::move(s));
            if (wanted.in_roles) {
                std::set<std::string> want(wanted.in_roles->begin(), wanted.in_roles->end());
                std::set<std::string> have(cur->role.in_roles->begin(), cur->role.in_roles->end());
                std::vector<std::string> grant, revoke;
                std::set_difference(want.begin(), want.end(), have.begin(), have.end(),
                                    std::back_inserter(grant));
                std::set_difference(have.begin(), have.end(), want.begin(), want.end(),
                                    std::back_inserter(revoke));
                roles_exist(grant);
                auto list = [&](const std::vector<std::string>& names) {
                    std::string l;
                    for (const auto& g : names)
                        l += (l.empty() ? "" : ", ") + conn_.quote_identifier(g);
                    return l;
                };
                if (!grant.empty()) {
                    std::string sql = "GRANT " + list(grant) + " TO " + q;
                    statements.push_back({sql, sql});
                }
                if (!revoke.empty()) {
                    std::string sql = "REVOKE " + list(revoke) + " FROM " + q;
                    statements.push_back({sql, sql});
                }
            }
            if (!statements.empty()) out.result = Result::changed;
        }
        if (!check_) run_all(conn_, statements, wanted.name);
        for (auto& s : statements) {
            OPENSSL_cleanse(s.run.data(), s.run.size());
            out.statements.push_back(std::move(s.shown));
        }

        if (wanted.pgpass) {
            bool changed = false;
            if (!*wanted.pgpass)
                changed = pgpass_remove(instance_, wanted.name, !check_);
            else if (wanted.password)
                changed = pgpass_set(instance_, wanted.name, *wanted.password, !check_);
            if (changed && !check_) {
                log::info("role " + wanted.name + ": " +
                          (*wanted.pgpass ? "wrote its entry in " : "removed its entry from ") +
                          pgpass_file().string());
            }
            if (changed) {
                out.pgpass_changed = true;
                if (out.result == Result::unchanged) out.result = Result::changed;
            }
        }
        log::debug("role " + wanted.name + ": " + std::string(to_string(out.result)));
        return out;
    }

  private:
    // check_roles_exist, where in check mode the roles created earlier in the list exist and
    // those dropped earlier do not.
    void roles_exist(const std::vector<std::string>& names) {
        std::vector<std::string> look;
        for (const auto& n : names) {
            if (planned_.count(n)) continue;
            if (dropped_.count(n)) throw role_not_found(instance_, n);
            look.push_back(n);
        }
        check_roles_exist(conn_, instance_, look);
    }

    const Instance& instance_;
    std::optional<pg::Connection> own_;  // when no session is shared
    pg::Connection& conn_;
    bool check_ = false;
    // In check mode: roles the statements so far would create, and drop.
    std::set<std::string> planned_, dropped_;
};

}  // namespace

// ---- the API --------------------------------------------------------------------------------

Outcome apply(Context&, const Instance& instance, const Role& role, const ApplyOptions& options) {
    validate(role);
    Session s(instance, options.check);
    return s.apply_all({role}).at(0);
}

std::vector<Outcome> apply(Context&, const Instance& instance, const std::vector<Role>& roles,
                           const ApplyOptions& options) {
    for (const auto& r : roles) validate(r);
    std::vector<Outcome> out;
    if (roles.empty()) return out;
    Session s(instance, options.check, options.connection);
    return s.apply_all(roles);
}

bool exists(Context&, const Instance& instance, const std::string& name) {
    pg::Connection c(instance);
    return !c.exec("SELECT 1 FROM pg_roles WHERE rolname = $1", {name}).rows.empty();
}

Role get(Context&, const Instance& instance, const std::string& name) {
    pg::Connection c(instance);
    auto r = c.exec(
        std::string("SELECT ") + kRoleColumns + " FROM pg_authid r WHERE r.rolname = $1", {name});
    if (r.rows.empty()) throw role_not_found(instance, name);
    Role role = role_from_row(r.rows[0]);
    role.pgpass = pgpass_has(instance, name);
    return role;
}

std::vector<Role> ls(Context&, const Instance& instance) {
    pg::Connection c(instance);
    auto r = c.exec(std::string("SELECT ") + kRoleColumns +
                    " FROM pg_authid r WHERE r.rolname !~ '^pg_' ORDER BY r.rolname");
    std::vector<Role> out;
    PgpassFile f = PgpassFile::read();
    for (const auto& row : r.rows) {
        Role role = role_from_row(row);
        role.pgpass = false;
        for (const auto& line : f.lines)
            if (auto e = detail::pgpass_parse(line); e && is_entry_of(*e, instance, role.name))
                role.pgpass = true;
        out.push_back(std::move(role));
    }
    return out;
}

Outcome drop(Context&, const Instance& instance, const std::string& name, const DropOptions& o) {
    check_name(name, "the role name");
    if (o.reassign_owned && o.drop_owned)
        throw Error(Exit::usage, "give --reassign-owned or --drop-owned, not both");
    if (o.reassign_owned) check_name(*o.reassign_owned, "--reassign-owned");
    pg::Connection c(instance);
    if (c.exec("SELECT 1 FROM pg_roles WHERE rolname = $1", {name}).rows.empty())
        throw role_not_found(instance, name);
    Outcome out;
    out.name = name;
    out.result = Result::dropped;
    out.statements = drop_role(c, instance, name, o);
    out.pgpass_changed = pgpass_remove(instance, name);
    return out;
}

}  // namespace pgforge::roles
