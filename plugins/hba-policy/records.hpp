// pg_hba.conf records as the hba policy compares them: the engine's records
// (pgforge/hba.hpp, read by the engine's own parser) with their position among records, their
// text for messages, and their address as an IP network.
#pragma once

#include <array>
#include <optional>
#include <pgforge/hba.hpp>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace hba_policy {

// One name of a field; `is(keyword)` for an unquoted keyword.
using Token = pgforge::sdk::HbaName;
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
    pgforge::sdk::HbaRecord hba;  // as the engine gives it (or as the policy requires it)
    int line = 0;                 // 1-based number of the record's first line
    int position = 0;             // 1-based among records (as `pgforge hba list` numbers them)
    std::string text;             // the record, fields joined by one blank
    std::string type;             // local, host, hostssl, hostnossl, hostgssenc, hostnogssenc
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

// One record (position 0: not from a file).
Record record_of(const pgforge::sdk::HbaRecord& hba, int position = 0);

struct HbaRead {
    std::vector<Record> records;
    std::vector<std::pair<int, std::string>> errors;  // line, what the server would refuse
};

// The records the engine read (from the draft of a configure, or from the file on disk).
HbaRead hba_read(const std::vector<pgforge::sdk::HbaRecord>& records,
                 const std::vector<pgforge::sdk::HbaProblem>& problems = {});

// A name as the policy writes it ("sales", "\"my db\"", ${superuser} replaced) as a field name:
// double quotes taken away (the name is then quoted); a role name that would read as a keyword,
// a group or an inclusion is quoted.
Token written_name(std::string_view written);
Token role_name(std::string_view role);

}  // namespace hba_policy
