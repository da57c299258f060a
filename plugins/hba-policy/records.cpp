#include "records.hpp"

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

bool needs_quotes(std::string_view name) {
    return name.empty() || std::any_of(name.begin(), name.end(), [](char c) {
               return blank(c) || c == ',' || c == '#' || c == '"';
           });
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

Record record_of(const pgforge::sdk::HbaRecord& hba, int position) {
    Record r;
    r.hba = hba;
    r.line = hba.line;
    r.position = position;
    r.type = hba.type;
    r.databases = hba.databases;
    r.users = hba.users;
    r.address = hba.address;
    r.mask = hba.mask;
    r.method = hba.method;
    r.options = hba.options;
    bool keyword = r.address.is("all") || r.address.is("samehost") || r.address.is("samenet");
    if (!r.local() && !keyword && !r.address.quoted) {
        r.network = parse_network(r.address.text);
        if (r.network && !r.mask.empty()) {
            auto prefix = netmask_prefix(r.mask);
            if (prefix) r.network->prefix = *prefix;
        }
    }
    r.text = r.type + " " + write_field(r.databases) + " " + write_field(r.users);
    if (!r.local()) r.text += " " + write_token(r.address) + (r.mask.empty() ? "" : " " + r.mask);
    r.text += " " + r.method;
    for (const auto& [name, value] : r.options)
        r.text += " " + name + "=" + write_token(Token{value, needs_quotes(value)});
    return r;
}

HbaRead hba_read(const std::vector<pgforge::sdk::HbaRecord>& records,
                 const std::vector<pgforge::sdk::HbaProblem>& problems) {
    HbaRead out;
    int position = 0;
    for (const auto& r : records) out.records.push_back(record_of(r, ++position));
    for (const auto& p : problems) out.errors.emplace_back(p.line, p.message);
    return out;
}

Token written_name(std::string_view written) {
    if (written.size() >= 2 && written.front() == '"' && written.back() == '"') {
        std::string text;
        for (size_t k = 1; k + 1 < written.size(); ++k) {
            text += written[k];
            if (written[k] == '"' && k + 2 < written.size() && written[k + 1] == '"') ++k;
        }
        return {text, true};
    }
    return {std::string(written), false};
}

Token role_name(std::string_view role) {
    static const std::set<std::string, std::less<>> keywords = {"all", "sameuser", "samerole",
                                                                "samegroup", "replication"};
    bool quote = keywords.count(role) || (!role.empty() && (role[0] == '+' || role[0] == '@')) ||
                 needs_quotes(role);
    return {std::string(role), quote};
}

}  // namespace hba_policy
