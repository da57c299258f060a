// A small pg_hba.conf reader for the hba-policy plugin: PostgreSQL 15's tokenizer (fields
// separated by blanks, lists by commas, double quotes, '#' comments, backslash line
// continuation), records with the line they start on, and IP networks to compare addresses.
// It reads; it never writes (the engine owns the file).
#pragma once

#include <array>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace hba_policy {

// One name of a list field, unquoted; `quoted` tells whether it was written in double quotes
// (a quoted keyword such as "all" is a plain name).
struct Token {
    std::string text;
    bool quoted = false;

    // An unquoted keyword (all, replication, samehost, ...).
    bool is(std::string_view keyword) const { return !quoted && text == keyword; }
};

using Field = std::vector<Token>;

// An IPv4 or IPv6 network: address and prefix length. `prefix` is -1 for a netmask that is not
// contiguous (it cannot be compared, and is treated as overlapping everything).
struct Network {
    int family = 0;  // AF_INET or AF_INET6
    std::array<unsigned char, 16> bytes{};
    int prefix = 0;

    bool contains(const Network& other) const;
    bool overlaps(const Network& other) const;
    bool everything() const { return prefix == 0; }  // 0.0.0.0/0, ::/0
};

// An address ("10.0.0.0/8", "::1/128", "192.0.2.1" alone means /32) as a network.
std::optional<Network> parse_network(std::string_view text);
// A netmask ("255.255.0.0") as a prefix length; -1 when it is not contiguous, nullopt when it
// is not an address.
std::optional<int> netmask_prefix(std::string_view text);

struct Record {
    int line = 0;      // 1-based number of the record's first line
    int position = 0;  // 1-based among records (as `pgforge hba list` numbers them)
    std::string text;  // the record, fields joined by one blank, comments left out
    std::string type;  // local, host, hostssl, hostnossl, hostgssenc, hostnogssenc
    Field databases;
    Field users;
    Token address;                   // empty for local
    std::string mask;                // a separate netmask, or empty
    std::optional<Network> network;  // the address as an IP network, when it is one
    std::string method;
    std::vector<std::pair<std::string, std::string>> options;

    bool local() const { return type == "local"; }
    std::optional<std::string> option(std::string_view name) const;
};

struct HbaRead {
    std::vector<Record> records;
    std::vector<std::pair<int, std::string>> errors;    // line, what is wrong
    std::vector<std::pair<int, std::string>> warnings;  // line, what was ignored
};

// Reads pg_hba.conf text. A line that is not a valid record becomes an error with its number;
// include directives are skipped with a warning.
HbaRead read_hba(std::string_view text);

// A name written for pg_hba.conf: in double quotes when it needs them (blanks, commas, '#',
// quotes, or a keyword spelled as a plain name).
std::string hba_quote(std::string_view name, bool keyword_allowed = false);

}  // namespace hba_policy
