// pg_hba.conf as records, read by the engine's own parser (the one `pgforge hba` uses, which
// follows PostgreSQL 15's hba.c): a plugin never tokenizes the file itself.
//
//   sdk::HbaConfiguration, at pre_configure, from the Configuration:
//       auto* hba = sdk::find<sdk::HbaConfiguration>(*ctx.configuration());
//     the records pg_hba.conf will have once this configure is written, and contributions as
//     records (not text).
//   sdk::HbaFileReader, from any context that has an instance (hook, command, describe):
//       auto* file = sdk::find<sdk::HbaFileReader>(ctx);
//     the records of the instance's pg_hba.conf as it is on disk, and the lines the server would
//     refuse.
//
// Both are versioned interfaces (interface_name, interface_version): frozen once released, with
// the structs below; find<> gives nullptr where the engine does not offer them.
#pragma once

#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "pgforge/plugin.hpp"

namespace pgforge::sdk {

// One name of a field (a database, a user, the address): its text without quotes, and whether
// it was written in double quotes. A quoted keyword ("all") is a plain name; an unquoted +name
// is a group, an unquoted @name a file inclusion.
struct HbaName {
    std::string text{};
    bool quoted = false;

    // The unquoted keyword (all, replication, sameuser, samehost, ...).
    bool is(std::string_view keyword) const { return !quoted && text == keyword; }
    bool operator==(const HbaName&) const = default;
};

// One pg_hba.conf record (every member has a default: designated initializers may leave any
// out).
struct HbaRecord {
    std::string type{};  // local, host, hostssl, hostnossl, hostgssenc, hostnogssenc
    std::vector<HbaName> databases{};
    std::vector<HbaName> users{};
    HbaName address{};   // empty for local: an IP address or range, a host name, all, samehost...
    std::string mask{};  // a separate netmask (10.0.0.0 255.0.0.0), or empty
    std::string method{};
    std::vector<std::pair<std::string, std::string>> options{};  // name=value, in order
    int line = 0;  // the 1-based line the record starts on; 0 for a record not from a file

    bool local() const { return type == "local"; }
    bool operator==(const HbaRecord&) const = default;
};

// A line the server would refuse.
struct HbaProblem {
    int line = 0;
    std::string message{};
};

// pg_hba.conf as this configure will write it (reached with find<> from the Configuration).
class HbaConfiguration {
  public:
    static constexpr const char* interface_name = "pgforge.hba_configuration";
    static constexpr unsigned interface_version = 1;

    // The records, in file order, with the line each will start on once the file is written:
    // the user's change and every contribution so far (text or record) included.
    virtual std::vector<HbaRecord> hba_records() const = 0;
    // Adds a record (its `line` is ignored) at `place` unless a record of the same meaning is
    // there already. An invalid record (checked as the server checks it) is not added: false,
    // with the reason in `error`, and the configure fails naming the plugin.
    virtual bool add_hba_record(const HbaRecord& record, HbaPlace place, std::string& error) = 0;

  protected:
    ~HbaConfiguration() = default;
};

// The instance's pg_hba.conf as it is on disk (reached with find<> from a context that has an
// instance).
class HbaFileReader {
  public:
    static constexpr const char* interface_name = "pgforge.hba_file_reader";
    static constexpr unsigned interface_version = 1;

    // Reads the file: its valid records in order, and each line the server would refuse in
    // `problems`. False with the reason in `error` when the file cannot be read.
    virtual bool read_hba(std::vector<HbaRecord>& records, std::vector<HbaProblem>& problems,
                          std::string& error) = 0;

  protected:
    ~HbaFileReader() = default;
};

}  // namespace pgforge::sdk
