#include "engine/conf/hba.hpp"

#include <netdb.h>
#include <sys/socket.h>

#include <algorithm>
#include <array>
#include <cctype>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <initializer_list>

#include "engine/core/error.hpp"

namespace pgforge::conf {

namespace {

constexpr const char* kHbaDocs =
    "see https://www.postgresql.org/docs/15/auth-pg-hba-conf.html for the record format";
constexpr const char* kIdentDocs =
    "see https://www.postgresql.org/docs/15/auth-username-maps.html for the entry format";

// ---------------------------------------------------------------------------------------------
// Tokenizer: PostgreSQL 15's tokenize_auth_file / next_field_expand / next_token, minus the
// expansion of @file inclusions.

struct Token {
    std::string text;     // unquoted
    bool quoted = false;  // a double quote came before any character (PostgreSQL's initial_quote)
};
using Field = std::vector<Token>;

// A check failed; callers add where (file and line, or the command line) and throw Error.
struct Invalid {
    std::string message;
    std::string hint;
};

[[noreturn]] void fail(std::string message, std::string hint = {}) {
    throw Invalid{std::move(message), std::move(hint)};
}

// pg_isblank(): what separates tokens.
bool is_blank(char c) {
    return c == ' ' || c == '\t' || c == '\r';
}

// One token starting at `pos`; false when the line (or the part before a comment) has no more.
// `hash_is_text`: a # outside quotes is part of the token instead of starting a comment (a word
// of the command line is one field: a comment there can only be a mistake, and would silently
// drop the rest of the name).
bool next_token(std::string_view line, size_t& pos, Token& out, bool& terminating_comma,
                bool hash_is_text = false) {
    out = Token{};
    terminating_comma = false;
    bool in_quote = false, was_quote = false, saw_quote = false;
    while (pos < line.size() && (is_blank(line[pos]) || line[pos] == ',')) ++pos;
    while (pos < line.size() && (!is_blank(line[pos]) || in_quote)) {
        char c = line[pos];
        if (c == '#' && !in_quote && !hash_is_text) {
            pos = line.size();
            break;
        }
        if (c == ',' && !in_quote) {
            terminating_comma = true;
            break;  // the comma stays; the next call skips it
        }
        if (c != '"' || was_quote) out.text += c;
        if (in_quote && c == '"')
            was_quote = !was_quote;
        else
            was_quote = false;
        if (c == '"') {
            in_quote = !in_quote;
            saw_quote = true;
            if (out.text.empty()) out.quoted = true;
        }
        ++pos;
    }
    return saw_quote || !out.text.empty();
}

std::vector<Field> tokenize(std::string_view line, bool hash_is_text = false) {
    std::vector<Field> fields;
    size_t pos = 0;
    while (pos < line.size()) {
        Field field;
        Token token;
        bool comma = false;
        do {
            if (!next_token(line, pos, token, comma, hash_is_text)) break;
            field.push_back(std::move(token));
        } while (comma);
        if (!field.empty()) fields.push_back(std::move(field));
    }
    return fields;
}

bool is_include(const Token& t) {
    return !t.quoted && t.text.size() > 1 && t.text[0] == '@';
}

// A logical line: physical lines joined by backslash continuations, as PostgreSQL reads them.
struct LogicalLine {
    size_t begin = 0, end = 0;  // byte range in the text, line ends included
    int first_line = 0;
    std::string content;  // continuations joined, line end stripped
};

std::vector<LogicalLine> split_lines(std::string_view text) {
    std::vector<LogicalLine> lines;
    size_t pos = 0;
    int line_no = 1;
    while (pos < text.size()) {
        LogicalLine l;
        l.begin = pos;
        l.first_line = line_no;
        size_t last_backslash = 0;
        int physical = 0;
        while (pos < text.size()) {
            size_t nl = text.find('\n', pos);
            size_t end = nl == std::string_view::npos ? text.size() : nl + 1;
            l.content.append(text.substr(pos, end - pos));
            pos = end;
            ++physical;
            // pg_strip_crlf() on the whole buffer, then a continuation check that needs the
            // backslash past the previous one.
            while (!l.content.empty() && (l.content.back() == '\n' || l.content.back() == '\r'))
                l.content.pop_back();
            if (l.content.size() > last_backslash && l.content.back() == '\\') {
                l.content.pop_back();
                last_backslash = l.content.size();
                continue;
            }
            break;
        }
        l.end = pos;
        line_no += physical;
        lines.push_back(std::move(l));
    }
    return lines;
}

// The line end new lines get: CRLF if the file's first line ends so, else LF.
std::string line_end_of(std::string_view text) {
    size_t nl = text.find('\n');
    return nl != std::string_view::npos && nl > 0 && text[nl - 1] == '\r' ? "\r\n" : "\n";
}

// Makes `text` end where a new line can start without being read as part of the previous one:
// a line end if missing, and an empty line after a last line that ends in a continuation.
void terminate_last_line(std::string& text, const std::string& eol) {
    if (text.empty()) return;
    if (text.back() != '\n') text += eol;
    std::string probe = text + "x";
    if (split_lines(probe).back().begin != text.size()) text += eol;
}

std::string where(const std::filesystem::path& origin, int line) {
    return (origin.empty() ? std::string("line ") : origin.string() + ":") + std::to_string(line);
}

void reject_nul(std::string_view text, const std::filesystem::path& origin) {
    size_t nul = text.find('\0');
    if (nul == std::string_view::npos) return;
    int line = 1 + static_cast<int>(std::count(text.begin(), text.begin() + nul, '\n'));
    throw Error(Exit::usage, where(origin, line) + ": NUL byte in the file",
                "PostgreSQL misreads lines containing NUL bytes; remove it");
}

// ---------------------------------------------------------------------------------------------
// Quoting for new lines.

bool needs_quotes(std::string_view s) {
    if (s.empty()) return true;
    return std::any_of(s.begin(), s.end(), [](char c) {
        return is_blank(c) || c == ',' || c == '#' || c == '"' || c == '\n';
    });
}

std::string in_quotes(std::string_view s) {
    std::string out = "\"";
    for (char c : s) {
        if (c == '"') out += '"';
        out += c;
    }
    return out + "\"";
}

// Writes a token so that it reads back as `text` with the given quoted flag, or with the same
// meaning: a name that needs quotes but starts with @, + or / keeps its first character outside
// them so that it stays an inclusion / group / regular expression.
std::string write_token(const std::string& text, bool was_quoted) {
    if (was_quoted) return in_quotes(text);
    if (!needs_quotes(text)) return text;
    if (text.size() > 1 && (text[0] == '@' || text[0] == '+' || text[0] == '/'))
        return text.substr(0, 1) + in_quotes(std::string_view(text).substr(1));
    return in_quotes(text);
}

std::string write_list(const std::vector<std::string>& names, const std::vector<bool>& flags) {
    std::string out;
    for (size_t i = 0; i < names.size(); ++i) {
        if (i) out += ',';
        out += write_token(names[i], i < flags.size() && flags[i]);
    }
    return out;
}

std::string column(const std::string& s, size_t width) {
    return s.size() < width ? s + std::string(width - s.size(), ' ') : s + " ";
}

// ---------------------------------------------------------------------------------------------
// pg_hba.conf records: parse_hba_line() and parse_hba_auth_opt() of PostgreSQL 15.

constexpr std::array<const char*, 6> kTypes = {"local",     "host",       "hostssl",
                                               "hostnossl", "hostgssenc", "hostnogssenc"};
constexpr std::array<const char*, 14> kMethods = {
    "trust", "reject", "scram-sha-256", "md5",    "password", "gss", "sspi",
    "ident", "peer",   "ldap",          "radius", "cert",     "pam", "bsd"};

template <size_t N>
bool one_of(const std::string& s, const std::array<const char*, N>& words) {
    return std::any_of(words.begin(), words.end(), [&](const char* w) { return s == w; });
}

template <size_t N>
std::string listing(const std::array<const char*, N>& words) {
    std::string out;
    for (size_t i = 0; i < N; ++i)
        out += (i ? (i + 1 == N ? " or " : ", ") : "") + std::string(words[i]);
    return out;
}

const Token& single(const Field& f, const char* what, const char* multiple_hint) {
    if (f.size() > 1)
        fail(std::string("multiple values specified for ") + what + " (\"" + f[0].text + "\", \"" +
                 f[1].text + "\", ...)",
             multiple_hint);
    if (is_include(f[0]))
        fail("@file inclusion is not supported in the " + std::string(what) + " field: \"" +
                 f[0].text + "\"",
             "write the value itself");
    return f[0];
}

// getaddrinfo(AI_NUMERICHOST) as PostgreSQL calls it: 0 and the family, or the EAI_ code.
int numeric_address(const std::string& s, int& family) {
    addrinfo hints{};
    hints.ai_flags = AI_NUMERICHOST;
    hints.ai_family = AF_UNSPEC;
    addrinfo* res = nullptr;
    int rc = ::getaddrinfo(s.empty() ? nullptr : s.c_str(), nullptr, &hints, &res);
    if (rc == 0 && !res) return EAI_FAIL;
    if (rc == 0) {
        family = res->ai_family;
        ::freeaddrinfo(res);
    }
    return rc;
}

bool valid_cidr_length(const std::string& bits_text, int family) {
    const char* begin = bits_text.c_str();
    char* end = nullptr;
    errno = 0;
    long bits = std::strtol(begin, &end, 10);
    if (*begin == '\0' || *end != '\0') return false;
    if (family == AF_INET) return bits >= 0 && bits <= 32;
    if (family == AF_INET6) return bits >= 0 && bits <= 128;
    return false;
}

void require_method(const std::string& option, const std::string& method,
                    std::initializer_list<const char*> methods, const char* described) {
    for (const char* m : methods)
        if (method == m) return;
    fail("authentication option \"" + option + "\" is only valid for authentication methods " +
             described,
         "remove it, or use one of those methods");
}

bool starts_with_nocase(const std::string& s, std::string_view prefix) {
    if (s.size() < prefix.size()) return false;
    for (size_t i = 0; i < prefix.size(); ++i)
        if (std::tolower(static_cast<unsigned char>(s[i])) != prefix[i]) return false;
    return true;
}

void check_option(const HbaRecord& r, const std::string& method, const std::string& name,
                  const std::string& value) {
    static const std::array<const char*, 12> ldap_options = {
        "ldapurl",          "ldaptls",    "ldapscheme",     "ldapserver",
        "ldapport",         "ldapbinddn", "ldapbindpasswd", "ldapsearchattribute",
        "ldapsearchfilter", "ldapbasedn", "ldapprefix",     "ldapsuffix"};
    if (name == "map") {
        require_method(name, method, {"ident", "peer", "gss", "sspi", "cert"},
                       "ident, peer, gssapi, sspi, and cert");
    } else if (name == "clientcert") {
        if (r.type != "hostssl")
            fail("clientcert can only be configured for \"hostssl\" rows",
                 "use hostssl, or remove the option");
        if (value == "verify-ca") {
            if (method == "cert")
                fail(
                    "clientcert can only be set to \"verify-full\" when using \"cert\" "
                    "authentication");
        } else if (value != "verify-full") {
            fail("invalid value for clientcert: \"" + value + "\"", "use verify-full or verify-ca");
        }
    } else if (name == "clientname") {
        if (r.type != "hostssl")
            fail("clientname can only be configured for \"hostssl\" rows",
                 "use hostssl, or remove the option");
        if (value != "CN" && value != "DN")
            fail("invalid value for clientname: \"" + value + "\"", "use CN or DN");
    } else if (name == "pamservice" || name == "pam_use_hostname") {
        require_method(name, method, {"pam"}, "pam");
    } else if (one_of(name, ldap_options)) {
        require_method(name, method, {"ldap"}, "ldap");
        if (name == "ldapport" && std::atoi(value.c_str()) == 0)
            fail("invalid LDAP port number: \"" + value + "\"");
        // An ldapscheme other than ldap or ldaps is only logged by PostgreSQL 15, not refused.
        if (name == "ldapurl" && !starts_with_nocase(value, "ldap://") &&
            !starts_with_nocase(value, "ldaps://"))
            fail("could not parse LDAP URL \"" + value + "\"",
                 "write ldap://host[:port]/basedn[?attribute[?scope[?filter]]]");
    } else if (name == "krb_realm" || name == "include_realm") {
        require_method(name, method, {"gss", "sspi"}, "gssapi and sspi");
    } else if (name == "compat_realm" || name == "upn_username") {
        require_method(name, method, {"sspi"}, "sspi");
    } else if (name == "radiusservers" || name == "radiussecrets" || name == "radiusidentifiers" ||
               name == "radiusports") {
        require_method(name, method, {"radius"}, "radius");
    } else {
        fail("unrecognized authentication option name: \"" + name + "\"",
             "a comma separates options: write a value containing one in double quotes, e.g. "
             "ldapbasedn=\"dc=example,dc=net\"; " +
                 std::string(kHbaDocs));
    }
}

// The DN part of ldap://host:port/DN?..., which sets ldapbasedn.
bool ldap_url_has_basedn(const std::string& url) {
    size_t scheme = url.find("://");
    if (scheme == std::string::npos) return false;
    size_t slash = url.find('/', scheme + 3);
    if (slash == std::string::npos) return false;
    size_t end = url.find('?', slash);
    return (end == std::string::npos ? url.size() : end) > slash + 1;
}

void check_method_options(const HbaRecord& r, const std::string& method) {
    auto has = [&](const char* name) {
        return std::any_of(r.options.begin(), r.options.end(),
                           [&](const auto& o) { return o.first == name; });
    };
    if (method == "ldap") {
        bool basedn = has("ldapbasedn");
        for (const auto& [n, v] : r.options)
            if (n == "ldapurl" && ldap_url_has_basedn(v)) basedn = true;
        if (has("ldapprefix") || has("ldapsuffix")) {
            if (basedn || has("ldapbinddn") || has("ldapbindpasswd") ||
                has("ldapsearchattribute") || has("ldapsearchfilter"))
                fail(
                    "cannot use ldapbasedn, ldapbinddn, ldapbindpasswd, ldapsearchattribute, "
                    "ldapsearchfilter, or ldapurl together with ldapprefix",
                    "use either simple bind (ldapprefix/ldapsuffix) or search+bind");
        } else if (!basedn) {
            fail(
                "authentication method \"ldap\" requires argument \"ldapbasedn\", "
                "\"ldapprefix\", or \"ldapsuffix\" to be set");
        }
        if (has("ldapsearchattribute") && has("ldapsearchfilter"))
            fail("cannot use ldapsearchattribute together with ldapsearchfilter");
    } else if (method == "radius") {
        for (const char* required : {"radiusservers", "radiussecrets"})
            if (!has(required))
                fail(std::string("authentication method \"radius\" requires argument \"") +
                     required + "\" to be set");
    }
}

HbaRecord hba_record(const std::vector<Field>& f) {
    HbaRecord r;
    const Token& type =
        single(f[0], "connection type", "Specify exactly one connection type per line.");
    if (!one_of(type.text, kTypes))
        fail("unknown connection type \"" + type.text + "\"", "use " + listing(kTypes));
    r.type = type.text;
    const bool local = r.type == "local";

    if (f.size() < 2) fail("missing the database field (end of line after the connection type)");
    for (const Token& t : f[1]) {
        r.databases.push_back(t.text);
        r.databases_quoted.push_back(t.quoted);
    }
    if (f.size() < 3) fail("missing the user field (end of line after the databases)");
    for (const Token& t : f[2]) {
        r.users.push_back(t.text);
        r.users_quoted.push_back(t.quoted);
    }

    size_t next = 3;
    if (!local) {
        if (f.size() < 4)
            fail("missing the address field (end of line after the users)",
                 "give an IP address range (10.0.0.0/8), a host name, all, samehost or samenet");
        const Token& a = single(f[3], "host address", "Specify one address range per line.");
        r.address = a.text;
        r.address_quoted = a.quoted;
        next = 4;
        bool keyword =
            !a.quoted && (a.text == "all" || a.text == "samehost" || a.text == "samenet");
        if (!keyword) {
            size_t slash = a.text.find('/');
            std::string host = a.text.substr(0, slash);
            int family = 0;
            int rc = numeric_address(host, family);
            bool hostname = rc == EAI_NONAME;
            if (rc != 0 && !hostname)
                fail("invalid IP address \"" + host + "\": " + ::gai_strerror(rc));
            if (slash != std::string::npos) {
                if (hostname)
                    fail("bad address \"" + a.text +
                             "\": specifying both host name and CIDR mask is invalid",
                         "an IP range is written ADDRESS/LENGTH, e.g. 10.0.0.0/8 or fd00::/8");
                if (!valid_cidr_length(a.text.substr(slash + 1), family))
                    fail("bad address \"" + a.text + "\": invalid CIDR mask",
                         family == AF_INET6 ? "an IPv6 prefix length is 0 to 128"
                                            : "an IPv4 prefix length is 0 to 32");
            } else if (!hostname) {
                if (f.size() < 5)
                    fail("missing the netmask after IP address \"" + a.text + "\"",
                         "Specify an address range in CIDR notation, or provide a separate "
                         "netmask.");
                const Token& m = single(f[4], "netmask", "Specify one netmask per line.");
                int mask_family = 0;
                int mrc = numeric_address(m.text, mask_family);
                if (mrc != 0) fail("invalid IP mask \"" + m.text + "\": " + ::gai_strerror(mrc));
                if (mask_family != family)
                    fail("IP address \"" + a.text + "\" and mask \"" + m.text + "\" do not match",
                         "use an IPv4 mask with an IPv4 address and an IPv6 mask with IPv6");
                r.mask = m.text;
                next = 5;
            }
        }
    }

    if (f.size() <= next)
        fail("missing the authentication method (end of line after the " +
                 std::string(local       ? "users"
                             : next == 5 ? "netmask"
                                         : "address") +
                 ")",
             "add one of " + listing(kMethods));
    const Token& m =
        single(f[next], "authentication type", "Specify exactly one authentication type per line.");
    if (!one_of(m.text, kMethods))
        fail("unknown authentication method \"" + m.text + "\"", "use " + listing(kMethods));
    r.method = m.text;
    const std::string method = local && r.method == "ident" ? "peer" : r.method;
    if (local && method == "gss") fail("gssapi authentication is not supported on local sockets");
    if (!local && method == "peer")
        fail("peer authentication is only supported on local sockets",
             "use peer with local records; ident, scram-sha-256 or cert over TCP");
    if (r.type != "hostssl" && method == "cert")
        fail("cert authentication is only supported on hostssl connections", "use hostssl");

    for (size_t i = next + 1; i < f.size(); ++i) {
        for (const Token& t : f[i]) {
            if (is_include(t))
                fail("@file inclusion is not supported among options: \"" + t.text + "\"");
            size_t eq = t.text.find('=');
            if (eq == std::string::npos)
                fail("option without =: \"" + t.text +
                         "\" (authentication options are written name=value)",
                     "e.g. map=mymap or clientcert=verify-full");
            std::string name = t.text.substr(0, eq), value = t.text.substr(eq + 1);
            check_option(r, method, name, value);
            r.options.emplace_back(std::move(name), std::move(value));
        }
    }
    check_method_options(r, method);
    return r;
}

bool quote_matters_database(const std::string& s) {
    return s == "all" || s == "sameuser" || s == "samerole" || s == "samegroup" ||
           s == "replication" || (s.size() > 1 && (s[0] == '@' || s[0] == '/'));
}

bool quote_matters_user(const std::string& s) {
    return s == "all" || (s.size() > 1 && (s[0] == '@' || s[0] == '+' || s[0] == '/'));
}

bool same_names(const std::vector<std::string>& a, const std::vector<bool>& aq,
                const std::vector<std::string>& b, const std::vector<bool>& bq,
                bool (*matters)(const std::string&)) {
    if (a.size() != b.size()) return false;
    for (size_t i = 0; i < a.size(); ++i) {
        if (a[i] != b[i]) return false;
        bool qa = i < aq.size() && aq[i], qb = i < bq.size() && bq[i];
        if (qa != qb && matters(a[i])) return false;
    }
    return true;
}

std::optional<std::string> cidr_of(const std::string& address, const std::string& mask) {
    if (mask.empty()) return std::nullopt;
    addrinfo hints{};
    hints.ai_flags = AI_NUMERICHOST;
    hints.ai_family = AF_UNSPEC;
    addrinfo* res = nullptr;
    if (::getaddrinfo(mask.c_str(), nullptr, &hints, &res) != 0 || !res) return std::nullopt;
    const unsigned char* bytes = nullptr;
    size_t n = 0;
    if (res->ai_family == AF_INET) {
        bytes = reinterpret_cast<const unsigned char*>(
            &reinterpret_cast<const sockaddr_in*>(res->ai_addr)->sin_addr);
        n = 4;
    } else if (res->ai_family == AF_INET6) {
        bytes = reinterpret_cast<const unsigned char*>(
            &reinterpret_cast<const sockaddr_in6*>(res->ai_addr)->sin6_addr);
        n = 16;
    }
    int bits = 0;
    bool contiguous = bytes != nullptr, zeros = false;
    for (size_t i = 0; contiguous && i < n * 8; ++i) {
        bool one = bytes[i / 8] & (0x80 >> (i % 8));
        if (one && zeros) contiguous = false;
        if (one) ++bits;
        if (!one) zeros = true;
    }
    ::freeaddrinfo(res);
    if (!contiguous) return std::nullopt;
    return address + "/" + std::to_string(bits);
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// HbaRecord

std::string HbaRecord::to_line() const {
    std::string s = column(type, 8) + column(write_list(databases, databases_quoted), 16) +
                    column(write_list(users, users_quoted), 16);
    if (type != "local" || !address.empty()) {
        std::string a = write_token(address, address_quoted);
        if (!mask.empty()) a += " " + write_token(mask, false);
        s += column(a, 24);
    } else {
        s += std::string(24, ' ');
    }
    s += method;
    for (const auto& [name, value] : options) {
        s += ' ';
        s += write_token(name, false);
        s += '=';
        // A value ending in a backslash at the end of the line would continue it: quote it.
        bool quote = !value.empty() && (needs_quotes(value) || value.back() == '\\');
        s += quote ? in_quotes(value) : value;
    }
    return s;
}

bool HbaRecord::same_as(const HbaRecord& o) const {
    bool address_quote_matters = address == "all" || address == "samehost" ||
                                 address == "samenet" || (address.size() > 1 && address[0] == '@');
    return type == o.type && address == o.address && mask == o.mask && method == o.method &&
           options == o.options && (address_quoted == o.address_quoted || !address_quote_matters) &&
           same_names(databases, databases_quoted, o.databases, o.databases_quoted,
                      quote_matters_database) &&
           same_names(users, users_quoted, o.users, o.users_quoted, quote_matters_user);
}

HbaRecord HbaRecord::parse_fields(const std::vector<std::string>& words) {
    std::vector<Field> fields;
    for (size_t i = 0; i < words.size(); ++i) {
        const std::string& w = words[i];
        if (w.find_first_of(std::string_view("\n\r\0", 3)) != std::string::npos)
            throw Error(Exit::usage,
                        "invalid record: field " + std::to_string(i + 1) +
                            " contains a line end or a NUL byte",
                        "pg_hba.conf cannot hold them, even in quotes: remove them");
        // A # is part of the name here; the record is written with the name in quotes.
        std::vector<Field> got = tokenize(w, true);
        if (got.empty())
            throw Error(Exit::usage, "invalid record: field " + std::to_string(i + 1) + " is empty",
                        "quote names with spaces, commas or # in double quotes, as in "
                        "pg_hba.conf: '\"my db\"'");
        if (got.size() > 1)
            throw Error(Exit::usage,
                        "invalid record: field " + std::to_string(i + 1) + " (" + w +
                            ") is several fields: it contains unquoted spaces",
                        "quote the name in double quotes as in pg_hba.conf, e.g. '" + in_quotes(w) +
                            "', or give each field as its own word");
        fields.push_back(std::move(got[0]));
    }
    if (fields.empty())
        throw Error(Exit::usage, "invalid record: no fields",
                    "give TYPE DATABASE USER [ADDRESS [MASK]] METHOD [OPTIONS]");
    try {
        return hba_record(fields);
    } catch (const Invalid& e) {
        throw Error(Exit::usage, "invalid record: " + e.message,
                    e.hint.empty() ? std::string(kHbaDocs) : e.hint);
    }
}

// ---------------------------------------------------------------------------------------------
// HbaFile

HbaFile HbaFile::parse(std::string_view text, std::filesystem::path origin) {
    reject_nul(text, origin);
    HbaFile file;
    file.origin_ = std::move(origin);
    for (LogicalLine& l : split_lines(text)) {
        Chunk c;
        c.raw = std::string(text.substr(l.begin, l.end - l.begin));
        std::vector<Field> fields = tokenize(l.content);
        if (!fields.empty()) {
            try {
                c.record = hba_record(fields);
            } catch (const Invalid& e) {
                throw Error(Exit::usage, where(file.origin_, l.first_line) + ": " + e.message,
                            e.hint.empty() ? std::string(kHbaDocs) : e.hint);
            }
            c.record->line = l.first_line;
            file.record_chunks_.push_back(file.chunks_.size());
        }
        file.chunks_.push_back(std::move(c));
    }
    return file;
}

std::vector<HbaLine> list_hba_lines(std::string_view text) {
    std::vector<HbaLine> out;
    for (LogicalLine& l : split_lines(text)) {
        HbaLine line;
        line.line = l.first_line;
        line.text = l.content;
        if (l.content.find('\0') != std::string::npos) {
            line.error = "NUL byte in the line";
            out.push_back(std::move(line));
            continue;
        }
        std::vector<Field> fields = tokenize(l.content);
        if (fields.empty()) continue;
        try {
            line.record = hba_record(fields);
            line.record->line = l.first_line;
        } catch (const Invalid& e) {
            line.error = e.message;
        }
        out.push_back(std::move(line));
    }
    return out;
}

HbaReading read_hba_records(std::string_view text) {
    HbaReading out;
    for (HbaLine& l : list_hba_lines(text)) {
        if (l.record)
            out.records.push_back(std::move(*l.record));
        else
            out.invalid.emplace_back(l.line, std::move(l.error));
    }
    return out;
}

std::string HbaFile::print() const {
    std::string out;
    for (const Chunk& c : chunks_) out += c.raw;
    return out;
}

std::vector<HbaRecord> HbaFile::records() const {
    std::vector<HbaRecord> out;
    out.reserve(record_chunks_.size());
    for (size_t i : record_chunks_) out.push_back(*chunks_[i].record);
    return out;
}

std::vector<size_t> HbaFile::find(const Match& m) const {
    std::vector<size_t> out;
    for (size_t i = 0; i < record_chunks_.size(); ++i) {
        const HbaRecord& r = *chunks_[record_chunks_[i]].record;
        if (m.type && r.type != *m.type) continue;
        if (m.method && r.method != *m.method) continue;
        if (m.database &&
            std::find(r.databases.begin(), r.databases.end(), *m.database) == r.databases.end())
            continue;
        if (m.user && std::find(r.users.begin(), r.users.end(), *m.user) == r.users.end()) continue;
        if (m.address && r.address != *m.address && cidr_of(r.address, r.mask) != *m.address)
            continue;
        out.push_back(i);
    }
    return out;
}

namespace {

std::string describe(const HbaFile::Match& m) {
    std::string out;
    auto add = [&](const char* name, const std::optional<std::string>& v) {
        if (v) out += (out.empty() ? "" : ", ") + std::string(name) + " " + *v;
    };
    add("type", m.type);
    add("database", m.database);
    add("user", m.user);
    add("address", m.address);
    add("method", m.method);
    return out.empty() ? "any record" : out;
}

}  // namespace

void HbaFile::insert(size_t index, const HbaRecord& r) {
    if (index > record_chunks_.size())
        throw Error(Exit::usage,
                    "cannot insert before record " + std::to_string(index + 1) + ": there are " +
                        std::to_string(record_chunks_.size()) + " records",
                    "insert at most at the end");
    insert_at_chunk(index < record_chunks_.size() ? record_chunks_[index] : chunks_.size(), r);
}

void HbaFile::insert_at_chunk(size_t at, const HbaRecord& r) {
    std::string line = r.to_line();
    if (line.find_first_of(std::string_view("\n\r\0", 3)) != std::string::npos)
        throw Error(Exit::usage, "invalid record: a field contains a line end or a NUL byte",
                    "pg_hba.conf cannot hold them, even in quotes: remove them");
    // The new line must read back as the record: this validates it as PostgreSQL would.
    HbaFile alone;
    try {
        alone = parse(line);
    } catch (const Error& e) {
        std::string what = e.what();
        if (what.rfind("line 1: ", 0) == 0) what = what.substr(8);
        throw Error(Exit::usage, "invalid record: " + what, e.hint());
    }
    if (alone.size() != 1 || !alone.records()[0].same_as(r))
        throw Error(Exit::usage, "invalid record: it cannot be written as one pg_hba.conf line",
                    "check the quoting of names");

    std::string eol = line_end_of(print());
    std::string before, after;
    for (size_t i = 0; i < chunks_.size(); ++i) (i < at ? before : after) += chunks_[i].raw;
    // Every logical line but the last ends itself; the last may lack its line end or continue.
    terminate_last_line(before, eol);
    *this = parse(before + line + eol + after, origin_);
}

void HbaFile::insert_before(const Match& m, const HbaRecord& r) {
    std::vector<size_t> found = find(m);
    if (found.empty())
        throw Error(Exit::not_found, "no pg_hba.conf record matches " + describe(m),
                    "check the selection, or append the record");
    insert(found.front(), r);
}

void HbaFile::insert_after(const Match& m, const HbaRecord& r) {
    std::vector<size_t> found = find(m);
    if (found.empty())
        throw Error(Exit::not_found, "no pg_hba.conf record matches " + describe(m),
                    "check the selection, or append the record");
    insert_at_chunk(record_chunks_[found.back()] + 1, r);
}

void HbaFile::append(const HbaRecord& r) {
    insert_at_chunk(chunks_.size(), r);
}

size_t HbaFile::remove(const Match& m) {
    std::vector<size_t> found = find(m);
    if (found.empty()) return 0;
    std::vector<bool> drop(chunks_.size(), false);
    for (size_t i : found) drop[record_chunks_[i]] = true;
    std::string text;
    for (size_t i = 0; i < chunks_.size(); ++i)
        if (!drop[i]) text += chunks_[i].raw;
    *this = parse(text, origin_);
    return found.size();
}

void HbaFile::remove_at(size_t index) {
    if (index >= record_chunks_.size())
        throw Error(Exit::usage,
                    "no record " + std::to_string(index + 1) + ": there are " +
                        std::to_string(record_chunks_.size()),
                    "records are numbered from 1");
    std::string text;
    for (size_t i = 0; i < chunks_.size(); ++i)
        if (i != record_chunks_[index]) text += chunks_[i].raw;
    *this = parse(text, origin_);
}

// ---------------------------------------------------------------------------------------------
// pg_ident.conf

namespace {

IdentEntry ident_entry(const std::vector<Field>& f) {
    auto one = [&](size_t i, const char* what) -> const std::string& {
        if (f.size() <= i)
            fail(std::string("missing the ") + what + " (end of line)",
                 "an entry is MAPNAME SYSTEM-USERNAME PG-USERNAME");
        if (f[i].size() > 1)
            fail(std::string("multiple values in the ") + what + " field (\"" + f[i][0].text +
                     "\", \"" + f[i][1].text + "\", ...)",
                 "write one name per field; quote names containing commas");
        return f[i][0].text;
    };
    IdentEntry e;
    e.map = one(0, "map name");
    e.system_user = one(1, "system user name");
    e.pg_user = one(2, "PostgreSQL user name");
    return e;
}

std::string write_ident_token(const std::string& s, bool last) {
    if (needs_quotes(s) || (s.size() > 1 && s[0] == '@') ||
        (last && !s.empty() && s.back() == '\\'))
        return in_quotes(s);
    return s;
}

bool same_entry(const IdentEntry& a, const IdentEntry& b) {
    return a.map == b.map && a.system_user == b.system_user && a.pg_user == b.pg_user;
}

}  // namespace

std::string IdentEntry::to_line() const {
    return column(write_ident_token(map, false), 16) +
           column(write_ident_token(system_user, false), 24) + write_ident_token(pg_user, true);
}

IdentFile IdentFile::parse(std::string_view text, std::filesystem::path origin) {
    reject_nul(text, origin);
    IdentFile file;
    file.origin_ = std::move(origin);
    for (LogicalLine& l : split_lines(text)) {
        Chunk c;
        c.raw = std::string(text.substr(l.begin, l.end - l.begin));
        std::vector<Field> fields = tokenize(l.content);
        if (!fields.empty()) {
            try {
                c.entry = ident_entry(fields);
            } catch (const Invalid& e) {
                throw Error(Exit::usage, where(file.origin_, l.first_line) + ": " + e.message,
                            e.hint.empty() ? std::string(kIdentDocs) : e.hint);
            }
            c.entry->line = l.first_line;
        }
        file.chunks_.push_back(std::move(c));
    }
    return file;
}

std::string IdentFile::print() const {
    std::string out;
    for (const Chunk& c : chunks_) out += c.raw;
    return out;
}

std::vector<IdentEntry> IdentFile::entries() const {
    std::vector<IdentEntry> out;
    for (const Chunk& c : chunks_)
        if (c.entry) out.push_back(*c.entry);
    return out;
}

bool IdentFile::add(const IdentEntry& e) {
    for (const Chunk& c : chunks_)
        if (c.entry && same_entry(*c.entry, e)) return false;
    std::string line = e.to_line();
    if (line.find_first_of(std::string_view("\n\r\0", 3)) != std::string::npos)
        throw Error(Exit::usage, "invalid ident entry: a name contains a line end or a NUL byte",
                    "pg_ident.conf cannot hold them, even in quotes: remove them");
    std::vector<Field> fields = tokenize(line);
    bool same = false;
    try {
        same = fields.size() == 3 && same_entry(ident_entry(fields), e);
    } catch (const Invalid&) {
    }
    if (!same)
        throw Error(Exit::usage, "invalid ident entry: it cannot be written as one line",
                    kIdentDocs);
    std::string text = print();
    std::string eol = line_end_of(text);
    terminate_last_line(text, eol);
    *this = parse(text + line + eol, origin_);
    return true;
}

size_t IdentFile::remove(const std::optional<std::string>& map,
                         const std::optional<std::string>& system_user,
                         const std::optional<std::string>& pg_user) {
    size_t removed = 0;
    std::string text;
    for (const Chunk& c : chunks_) {
        if (c.entry && (!map || c.entry->map == *map) &&
            (!system_user || c.entry->system_user == *system_user) &&
            (!pg_user || c.entry->pg_user == *pg_user)) {
            ++removed;
            continue;
        }
        text += c.raw;
    }
    if (removed) *this = parse(text, origin_);
    return removed;
}

}  // namespace pgforge::conf
