// The hba policy: what pg_hba.conf must allow (required records) and what it must never hold,
// read from an INI file (docs/plugins/hba-policy.md), and its evaluation against a pg_hba.conf.
#pragma once

#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "records.hpp"

namespace hba_policy {

// A policy file that cannot be used; the message names the file and line.
struct PolicyError : std::runtime_error {
    using std::runtime_error::runtime_error;
};

// Where a method rule of [never] applies.
enum class Scope { off, host, all };

// One [local ...], [host ...] or [replication ...] section.
struct Requirement {
    std::string section;                 // "host office"
    int line = 0;                        // of the section header in the policy file
    std::string type;                    // local, host, hostssl, ...
    std::vector<std::string> databases;  // pg_hba.conf tokens as written; may hold ${superuser}
    std::vector<std::string> users;
    std::vector<std::string> networks;  // empty for local
    std::string method;
    std::vector<std::string> options;  // name=value
    bool first = true;                 // added before every other record (else after)
};

struct Policy {
    std::string source;  // the file, or "(default)"
    std::vector<Requirement> requirements;
    Scope trust = Scope::host;
    Scope password = Scope::host;
    Scope md5 = Scope::off;
    bool open_reject_only = true;                // 0.0.0.0/0, ::/0, all: reject only
    std::vector<std::string> forbidden_methods;  // on every line
};

// What ${superuser} and ${owner} stand for.
struct Names {
    std::string superuser;
    std::string owner;
};

// A record the policy requires on one instance.
struct Required {
    std::string rule;  // "[host office]"
    Record record;     // its text is what configure adds
    bool first = true;
};

// A required record and where it stands in a pg_hba.conf.
struct RequiredStatus {
    std::string rule;
    std::string record;
    std::string status;  // present, missing, shadowed
    int line = 0;        // present: the record that grants it; shadowed: the one that wins
    std::string text;    // that record
};

struct Violation {
    std::string kind;    // forbidden, missing, shadowed, invalid
    int line = 0;        // pg_hba.conf line (forbidden, shadowed, invalid)
    int position = 0;    // record number (forbidden, shadowed), as `hba list` numbers them
    std::string text;    // that line's record (forbidden, shadowed)
    std::string record;  // the required record (missing, shadowed)
    std::string rule;    // "[never] trust = host", "[host office]", "pg_hba.conf syntax"
    std::string reason;  // one sentence
};

struct Evaluation {
    std::vector<RequiredStatus> required;
    std::vector<Violation> violations;
    std::vector<std::string> warnings;

    bool ok() const { return violations.empty(); }
    bool has(std::string_view kind) const;
};

// The policy when the site names no file: the [never] defaults and nothing required.
Policy default_policy();
// Throws PolicyError naming `source` and the line.
Policy parse_policy(std::string_view text, const std::string& source);
// The records the policy requires of an instance; throws PolicyError (a required record that
// is not valid pg_hba.conf, or that a [never] rule forbids).
std::vector<Required> required_records(const Policy& policy, const Names& names);
// The never rules one record breaks: (rule, reason).
std::vector<std::pair<std::string, std::string>> broken_rules(const Policy& policy,
                                                              const Record& record);
// How a pg_hba.conf stands with the policy.
Evaluation evaluate(const Policy& policy, const HbaRead& hba,
                    const std::vector<Required>& required);

// One line of text per violation: "line 8: host all all 0.0.0.0/0 trust: ... ([never] ...)".
std::string describe(const Violation& v);

}  // namespace hba_policy
