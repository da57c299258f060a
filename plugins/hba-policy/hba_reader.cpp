#include "hba_reader.hpp"

#include <arpa/inet.h>
#include <sys/socket.h>

#include <algorithm>
#include <cctype>
#include <set>

namespace hba_policy {
namespace {

bool blank(char c) {
    return c == ' ' || c == '\t' || c == '\r' || c == '\n' || c == '\f' || c == '\v';
}

// PostgreSQL 15's next_token(): skips blanks and commas, then reads up to an unquoted blank
// or comma; '#' outside quotes ends the line; "" inside quotes is a literal quote. Returns
// false when the line has no more tokens.
bool next_token(std::string_view line, size_t& at, Token& token, bool& terminating_comma) {
    token = {};
    terminating_comma = false;
    while (at < line.size() && (blank(line[at]) || line[at] == ',')) ++at;
    bool in_quote = false, was_quote = false, saw_quote = false;
    while (at < line.size() && (!blank(line[at]) || in_quote)) {
        char c = line[at];
        if (c == '#' && !in_quote) {
            at = line.size();
            break;
        }
        if (c == ',' && !in_quote) {
            terminating_comma = true;
            ++at;
            break;
        }
        if (c != '"' || was_quote) token.text += c;
        if (in_quote && c == '"')
            was_quote = !was_quote;
        else
            was_quote = false;
        if (c == '"') {
            in_quote = !in_quote;
            saw_quote = true;
            if (token.text.empty()) token.quoted = true;
        }
        ++at;
    }
    return saw_quote || !token.text.empty();
}

// The fields of one logical line (next_field_expand() without @file expansion).
std::vector<Field> fields_of(std::string_view line) {
    std::vector<Field> fields;
    size_t at = 0;
    while (at < line.size()) {
        Field field;
        Token t;
        bool comma = false;
        do {
            if (!next_token(line, at, t, comma)) break;
            field.push_back(t);
        } while (comma);
        if (field.empty()) break;
        fields.push_back(std::move(field));
    }
    return fields;
}

std::string write_token(const Token& t) {
    if (!t.quoted) return t.text;
    std::string out = "\"";
    for (char c : t.text) out += c == '"' ? std::string("\"\"") : std::string(1, c);
    return out + "\"";
}

std::string write_field(const Field& f) {
    std::string out;
    for (size_t k = 0; k < f.size(); ++k) out += (k ? "," : "") + write_token(f[k]);
    return out;
}

const std::set<std::string> kTypes = {"local",     "host",       "hostssl",
                                      "hostnossl", "hostgssenc", "hostnogssenc"};
const std::set<std::string> kMethods = {"trust", "reject", "md5",   "password", "scram-sha-256",
                                        "gss",   "sspi",   "ident", "peer",     "pam",
                                        "ldap",  "radius", "cert"};

// One record from its fields; throws a message (std::string) saying what is wrong.
Record record_of(const std::vector<Field>& fields) {
    Record r;
    size_t k = 0;
    auto single = [&](const char* what) -> const Token& {
        if (k >= fields.size()) throw std::string("end of line before the ") + what;
        if (fields[k].size() != 1) throw std::string("several values given for the ") + what;
        return fields[k++][0];
    };
    r.type = single("connection type").text;
    if (!kTypes.count(r.type)) throw "invalid connection type '" + r.type + "'";
    if (k >= fields.size()) throw std::string("end of line before the database");
    r.databases = fields[k++];
    if (k >= fields.size()) throw std::string("end of line before the user");
    r.users = fields[k++];
    if (!r.local()) {
        r.address = single("address");
        const std::string& a = r.address.text;
        bool keyword = r.address.is("all") || r.address.is("samehost") || r.address.is("samenet");
        if (!keyword) {
            bool cidr = a.find('/') != std::string::npos;
            r.network = parse_network(a);
            if (cidr && !r.network) throw "invalid IP address range '" + a + "'";
            if (!cidr && r.network) {
                // An address alone takes a netmask in the next field.
                const Token& m = single("netmask");
                r.mask = m.text;
                auto mask_net = parse_network(r.mask);
                auto prefix = netmask_prefix(r.mask);
                if (!mask_net || !prefix || mask_net->family != r.network->family)
                    throw "invalid netmask '" + r.mask + "'";
                r.network->prefix = *prefix;
            }
        }
    }
    r.method = single("authentication method").text;
    if (!kMethods.count(r.method)) throw "invalid authentication method '" + r.method + "'";
    for (; k < fields.size(); ++k)
        for (const Token& t : fields[k]) {
            auto eq = t.text.find('=');
            if (eq == std::string::npos || eq == 0)
                throw "authentication option '" + t.text + "' is not in name=value format";
            r.options.emplace_back(t.text.substr(0, eq), t.text.substr(eq + 1));
        }
    r.text = r.type + " " + write_field(r.databases) + " " + write_field(r.users);
    if (!r.local()) r.text += " " + write_token(r.address) + (r.mask.empty() ? "" : " " + r.mask);
    r.text += " " + r.method;
    for (const auto& [name, value] : r.options) {
        Token v{value, value.empty() || std::any_of(value.begin(), value.end(), [](char c) {
                           return blank(c) || c == ',' || c == '#' || c == '"';
                       })};
        r.text += " " + name + "=" + write_token(v);
    }
    return r;
}

bool same_bits(const Network& a, const Network& b, int bits) {
    for (int i = 0; i < bits; ++i) {
        int byte = i / 8, shift = 7 - i % 8;
        if (((a.bytes[byte] >> shift) & 1) != ((b.bytes[byte] >> shift) & 1)) return false;
    }
    return true;
}

}  // namespace

bool Network::contains(const Network& other) const {
    if (family != other.family || prefix < 0 || other.prefix < 0) return false;
    return prefix <= other.prefix && same_bits(*this, other, prefix);
}

bool Network::overlaps(const Network& other) const {
    if (family != other.family) return false;
    if (prefix < 0 || other.prefix < 0) return true;
    return same_bits(*this, other, std::min(prefix, other.prefix));
}

std::optional<Network> parse_network(std::string_view text) {
    std::string s(text);
    std::string address = s, length;
    if (auto slash = s.find('/'); slash != std::string::npos) {
        address = s.substr(0, slash);
        length = s.substr(slash + 1);
        if (length.empty() || length.size() > 3 ||
            !std::all_of(length.begin(), length.end(),
                         [](char c) { return std::isdigit(static_cast<unsigned char>(c)); }))
            return std::nullopt;
    }
    Network n;
    if (inet_pton(AF_INET, address.c_str(), n.bytes.data()) == 1) {
        n.family = AF_INET;
        n.prefix = 32;
    } else if (inet_pton(AF_INET6, address.c_str(), n.bytes.data()) == 1) {
        n.family = AF_INET6;
        n.prefix = 128;
    } else {
        return std::nullopt;
    }
    if (!length.empty()) {
        int l = std::stoi(length);
        if (l > n.prefix) return std::nullopt;
        n.prefix = l;
    }
    return n;
}

std::optional<int> netmask_prefix(std::string_view text) {
    if (text.find('/') != std::string_view::npos) return std::nullopt;
    auto n = parse_network(text);
    if (!n) return std::nullopt;
    int bits = n->family == AF_INET ? 32 : 128, ones = 0;
    bool zero_seen = false;
    for (int i = 0; i < bits; ++i) {
        bool one = (n->bytes[i / 8] >> (7 - i % 8)) & 1;
        if (one && zero_seen) return -1;
        if (one)
            ++ones;
        else
            zero_seen = true;
    }
    return ones;
}

std::optional<std::string> Record::option(std::string_view name) const {
    for (const auto& [n, v] : options)
        if (n == name) return v;
    return std::nullopt;
}

HbaRead read_hba(std::string_view text) {
    HbaRead out;
    size_t at = 0;
    int number = 0;
    int position = 0;
    while (at < text.size()) {
        // A logical line: physical lines joined while one ends in a backslash.
        std::string line;
        int first = number + 1;
        while (at < text.size()) {
            size_t end = text.find('\n', at);
            std::string_view physical =
                text.substr(at, end == std::string_view::npos ? std::string_view::npos : end - at);
            at = end == std::string_view::npos ? text.size() : end + 1;
            ++number;
            while (!physical.empty() && physical.back() == '\r') physical.remove_suffix(1);
            if (!physical.empty() && physical.back() == '\\') {
                line += physical.substr(0, physical.size() - 1);
                continue;
            }
            line += physical;
            break;
        }
        std::vector<Field> fields = fields_of(line);
        if (fields.empty()) continue;
        const Token& first_token = fields[0][0];
        if (fields[0].size() == 1 && !first_token.quoted &&
            (first_token.text == "include" || first_token.text == "include_if_exists" ||
             first_token.text == "include_dir")) {
            out.warnings.emplace_back(first, "'" + first_token.text +
                                                 "' directive not followed (PostgreSQL 15 has "
                                                 "none; the server refuses the line)");
            continue;
        }
        try {
            Record r = record_of(fields);
            r.line = first;
            r.position = ++position;
            out.records.push_back(std::move(r));
        } catch (const std::string& why) {
            out.errors.emplace_back(first, why);
        }
    }
    return out;
}

std::string hba_quote(std::string_view name, bool keyword_allowed) {
    static const std::set<std::string, std::less<>> keywords = {"all", "sameuser", "samerole",
                                                                "samegroup", "replication"};
    bool needs = name.empty() || (!keyword_allowed && keywords.count(name)) ||
                 (!keyword_allowed && (name[0] == '+' || name[0] == '@')) ||
                 std::any_of(name.begin(), name.end(),
                             [](char c) { return blank(c) || c == ',' || c == '#' || c == '"'; });
    if (!needs) return std::string(name);
    return write_token(Token{std::string(name), true});
}

}  // namespace hba_policy
