#include "policy.hpp"

#include <algorithm>
#include <cctype>
#include <map>
#include <set>

namespace hba_policy {
namespace {

std::string trim(std::string_view s) {
    size_t b = s.find_first_not_of(" \t\r");
    if (b == std::string_view::npos) return "";
    size_t e = s.find_last_not_of(" \t\r");
    return std::string(s.substr(b, e - b + 1));
}

std::string lower(std::string s) {
    for (char& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    return s;
}

// Items of a list value, split at blanks and commas outside double quotes; quotes are kept (the
// items are pg_hba.conf tokens).
std::vector<std::string> split_list(std::string_view value) {
    std::vector<std::string> items;
    std::string item;
    bool quoted = false;
    for (char c : value) {
        if (c == '"') quoted = !quoted;
        if (!quoted && (c == ',' || c == ' ' || c == '\t')) {
            if (!item.empty()) items.push_back(item);
            item.clear();
            continue;
        }
        item += c;
    }
    if (!item.empty()) items.push_back(item);
    return items;
}

// A trailing " # comment" outside double quotes goes.
std::string strip_comment(std::string_view value) {
    bool quoted = false;
    for (size_t k = 0; k < value.size(); ++k) {
        if (value[k] == '"') quoted = !quoted;
        if (!quoted && (value[k] == '#' || value[k] == ';') &&
            (k == 0 || value[k - 1] == ' ' || value[k - 1] == '\t'))
            return trim(value.substr(0, k));
    }
    return trim(value);
}

const std::set<std::string> kMethods = {"trust", "reject", "md5",   "password", "scram-sha-256",
                                        "gss",   "sspi",   "ident", "peer",     "pam",
                                        "ldap",  "radius", "cert"};
const std::set<std::string> kHostTypes = {"host", "hostssl", "hostnossl", "hostgssenc",
                                          "hostnogssenc"};

const char* scope_name(Scope s) {
    switch (s) {
        case Scope::off:
            return "off";
        case Scope::host:
            return "host";
        case Scope::all:
            return "all";
    }
    return "?";
}

// The method a record authenticates with: ident on a local line is peer.
std::string effective_method(const Record& r) {
    return r.local() && r.method == "ident" ? "peer" : r.method;
}

bool special_database(const Token& t) {
    return t.is("sameuser") || t.is("samerole") || t.is("samegroup") ||
           (!t.quoted && !t.text.empty() && t.text[0] == '@');
}

bool special_user(const Token& t) {
    return !t.quoted && !t.text.empty() && (t.text[0] == '+' || t.text[0] == '@');
}

bool database_covers(const Token& rec, const Token& req) {
    if (req.is("replication")) return rec.is("replication");
    if (rec.is("replication")) return false;
    if (rec.is("all")) return true;
    if (req.is("all") || special_database(rec) || special_database(req)) return false;
    return rec.text == req.text;
}

bool database_intersects(const Token& rec, const Token& req) {
    if (req.is("replication")) return rec.is("replication");
    if (rec.is("replication")) return false;
    if (rec.is("all") || req.is("all") || special_database(rec) || special_database(req))
        return true;
    return rec.text == req.text;
}

bool user_covers(const Token& rec, const Token& req) {
    if (rec.is("all")) return true;
    if (req.is("all") || special_user(rec) || special_user(req)) return false;
    return rec.text == req.text;
}

bool user_intersects(const Token& rec, const Token& req) {
    return rec.is("all") || req.is("all") || special_user(rec) || special_user(req) ||
           rec.text == req.text;
}

template <typename Test>
bool field_covers(const Field& rec, const Field& req, Test covers) {
    return std::all_of(req.begin(), req.end(), [&](const Token& q) {
        return std::any_of(rec.begin(), rec.end(), [&](const Token& r) { return covers(r, q); });
    });
}

template <typename Test>
bool field_intersects(const Field& rec, const Field& req, Test intersects) {
    return std::any_of(req.begin(), req.end(), [&](const Token& q) {
        return std::any_of(rec.begin(), rec.end(),
                           [&](const Token& r) { return intersects(r, q); });
    });
}

bool type_intersects(const Record& rec, const Record& req) {
    if (rec.local() || req.local()) return rec.local() && req.local();
    auto opposite = [](const std::string& a, const std::string& b) {
        return (a == "hostssl" && b == "hostnossl") || (a == "hostgssenc" && b == "hostnogssenc");
    };
    return !opposite(rec.type, req.type) && !opposite(req.type, rec.type);
}

bool type_covers(const Record& rec, const Record& req) {
    return rec.type == req.type || (rec.type == "host" && !req.local());
}

bool address_covers(const Record& rec, const Record& req) {
    if (req.local()) return true;
    if (rec.address.is("all")) return true;
    if (req.address.is("samehost") || req.address.is("samenet") || req.address.is("all"))
        return rec.address.is(req.address.text);
    return rec.network && req.network && rec.network->contains(*req.network);
}

// Host names, samehost and samenet are not compared with networks: they are taken as not
// overlapping them.
bool address_intersects(const Record& rec, const Record& req) {
    if (req.local()) return true;
    if (rec.address.is("all") || req.address.is("all")) return true;
    if (rec.network && req.network) return rec.network->overlaps(*req.network);
    return !rec.network && !req.network && rec.address.text == req.address.text &&
           rec.address.quoted == req.address.quoted;
}

// The method and the options the requirement asks for.
bool agrees(const Record& rec, const Record& req) {
    if (effective_method(rec) != effective_method(req)) return false;
    for (const auto& [name, value] : req.options)
        if (rec.option(name) != value) return false;
    return true;
}

struct Decision {
    const Record* record = nullptr;  // the record that decides, if any
    bool granted = false;
};

// PostgreSQL takes the first record that matches a connection. The requirement is granted when,
// in file order, a record covering all of its connections comes before any record that takes
// some of them with another method or without the options asked for.
Decision decide(const Record& req, const std::vector<Record>& records) {
    for (const Record& rec : records) {
        if (!type_intersects(rec, req) || !address_intersects(rec, req) ||
            !field_intersects(rec.databases, req.databases, database_intersects) ||
            !field_intersects(rec.users, req.users, user_intersects))
            continue;
        if (!agrees(rec, req)) return {&rec, false};
        if (type_covers(rec, req) && address_covers(rec, req) &&
            field_covers(rec.databases, req.databases, database_covers) &&
            field_covers(rec.users, req.users, user_covers))
            return {&rec, true};
    }
    return {};
}

std::string join(const std::vector<std::string>& items, const char* sep) {
    std::string out;
    for (size_t k = 0; k < items.size(); ++k) out += (k ? sep : "") + items[k];
    return out;
}

Scope parse_scope(const std::string& value, const std::string& where) {
    if (value == "off" || value == "no" || value == "false") return Scope::off;
    if (value == "host") return Scope::host;
    if (value == "all") return Scope::all;
    throw PolicyError(where + ": '" + value + "' is not one of host, all, off");
}

}  // namespace

bool Evaluation::has(std::string_view kind) const {
    return std::any_of(violations.begin(), violations.end(),
                       [&](const Violation& v) { return v.kind == kind; });
}

Policy default_policy() {
    Policy p;
    p.source = "(default)";
    return p;
}

Policy parse_policy(std::string_view text, const std::string& source) {
    Policy p;
    p.source = source;
    std::set<std::string> sections;
    std::set<std::string> keys;          // of the current section
    std::string section;                 // "" before the first, "never", or a requirement's
    std::map<size_t, std::string> maps;  // requirement index -> map, when given
    int number = 0;
    size_t at = 0;
    while (at <= text.size()) {
        size_t end = text.find('\n', at);
        std::string line =
            trim(text.substr(at, end == std::string_view::npos ? text.npos : end - at));
        at = end == std::string_view::npos ? text.size() + 1 : end + 1;
        ++number;
        std::string where = "policy " + source + " line " + std::to_string(number);
        if (line.empty() || line[0] == '#' || line[0] == ';') continue;
        if (line[0] == '[') {
            if (line.back() != ']') throw PolicyError(where + ": a section header ends with ']'");
            std::vector<std::string> words = split_list(line.substr(1, line.size() - 2));
            if (words.empty()) throw PolicyError(where + ": empty section name");
            std::string kind = lower(words[0]);
            std::string label;
            for (size_t k = 1; k < words.size(); ++k) label += (k > 1 ? " " : "") + words[k];
            section = label.empty() ? kind : kind + " " + label;
            if (!sections.insert(section).second)
                throw PolicyError(where + ": section [" + section + "] appears twice");
            keys.clear();
            if (kind == "never") {
                if (!label.empty())
                    throw PolicyError(where + ": [never] takes no label (there is one)");
                continue;
            }
            Requirement r;
            r.section = section;
            r.line = number;
            if (kind == "local") {
                r.type = "local";
                r.users = {"${superuser}"};
                r.databases = {"all"};
                r.method = "peer";
            } else if (kind == "host") {
                r.type = "host";
                r.users = {"all"};
                r.databases = {"all"};
                r.method = "scram-sha-256";
            } else if (kind == "replication") {
                r.type = "host";
                r.users = {"all"};
                r.databases = {"replication"};
                r.method = "scram-sha-256";
            } else {
                throw PolicyError(where + ": unknown section [" + section +
                                  "] (sections: [local], [host], [replication], each with an "
                                  "optional label, and [never])");
            }
            p.requirements.push_back(std::move(r));
            continue;
        }
        auto eq = line.find('=');
        if (eq == std::string::npos)
            throw PolicyError(where + ": expected KEY = VALUE or [SECTION], not '" + line + "'");
        std::string key = lower(trim(line.substr(0, eq)));
        std::string value = strip_comment(line.substr(eq + 1));
        if (section.empty())
            throw PolicyError(where + ": '" + key + "' comes before any [section]");
        if (!keys.insert(key).second)
            throw PolicyError(where + ": '" + key + "' is given twice in [" + section + "]");
        where += " ([" + section + "] " + key + ")";
        if (section == "never") {
            if (key == "trust")
                p.trust = parse_scope(value, where);
            else if (key == "password")
                p.password = parse_scope(value, where);
            else if (key == "md5")
                p.md5 = parse_scope(value, where);
            else if (key == "open") {
                if (value == "reject-only")
                    p.open_reject_only = true;
                else if (value == "off" || value == "no" || value == "false")
                    p.open_reject_only = false;
                else
                    throw PolicyError(where + ": '" + value + "' is not reject-only or off");
            } else if (key == "methods") {
                for (const auto& m : split_list(value)) {
                    if (!kMethods.count(m))
                        throw PolicyError(where + ": unknown authentication method '" + m + "'");
                    p.forbidden_methods.push_back(m);
                }
            } else {
                throw PolicyError(where +
                                  ": unknown key (in [never]: trust, password, md5, "
                                  "open, methods)");
            }
            continue;
        }
        Requirement& r = p.requirements.back();
        std::string kind = section.substr(0, section.find(' '));
        auto list = [&]() {
            auto items = split_list(value);
            if (items.empty()) throw PolicyError(where + ": the list is empty");
            for (const auto& item : items)
                if (item.find("${") != std::string::npos && item != "${superuser}" &&
                    item != "${owner}")
                    throw PolicyError(where + ": '" + item +
                                      "': only ${superuser} and ${owner} are replaced");
            return items;
        };
        if (key == "users") {
            r.users = list();
        } else if (key == "databases" && kind != "replication") {
            r.databases = list();
        } else if ((key == "networks" || key == "hosts") && kind != "local") {
            r.networks = list();
            for (auto& n : r.networks) {
                if (n == "all" || n == "samehost" || n == "samenet") continue;
                auto net = parse_network(n);
                if (!net)
                    throw PolicyError(where + ": '" + n +
                                      "' is not an IP address or network (10.0.0.0/8, "
                                      "2001:db8::/32), all, samehost or samenet");
                // A lone address is that one host.
                if (n.find('/') == std::string::npos) n += "/" + std::to_string(net->prefix);
            }
        } else if (key == "method") {
            if (!kMethods.count(value))
                throw PolicyError(where + ": unknown authentication method '" + value + "'");
            r.method = value;
        } else if (key == "map") {
            maps[p.requirements.size() - 1] = value;
        } else if (key == "options") {
            for (const auto& o : split_list(value)) {
                if (o.find('=') == std::string::npos || o[0] == '=')
                    throw PolicyError(where + ": '" + o + "' is not NAME=VALUE");
                r.options.push_back(o);
            }
        } else if (key == "place") {
            if (value != "first" && value != "last")
                throw PolicyError(where + ": '" + value + "' is not first or last");
            r.first = value == "first";
        } else if (key == "type" && kind != "local") {
            if (!kHostTypes.count(value))
                throw PolicyError(where + ": '" + value +
                                  "' is not host, hostssl, hostnossl, hostgssenc or hostnogssenc");
            r.type = value;
        } else {
            throw PolicyError(
                where + ": unknown key (in [" + kind + "]: " +
                (kind == "local" ? std::string("users, databases, method, map, options, place")
                 : kind == "host"
                     ? std::string("networks, databases, users, method, type, options, place")
                     : std::string("hosts, users, method, type, options, place")) +
                ")");
        }
    }
    for (size_t k = 0; k < p.requirements.size(); ++k) {
        Requirement& r = p.requirements[k];
        std::string where =
            "policy " + source + " line " + std::to_string(r.line) + " ([" + r.section + "])";
        if (r.type != "local" && r.networks.empty())
            throw PolicyError(where + ": say which addresses: " +
                              (r.section.rfind("replication", 0) == 0 ? "hosts" : "networks") +
                              " = 10.0.0.0/8, ...");
        auto m = maps.find(k);
        bool mapped_method = r.method == "peer" || r.method == "ident";
        if (m != maps.end() && !m->second.empty() && !mapped_method)
            throw PolicyError(where + ": map applies to peer and ident only");
        // Local peer goes through pgforge's ident map unless the policy says otherwise: that is
        // how the OS owner and root connect as the superuser.
        std::string map = m != maps.end() ? m->second : (mapped_method ? "pgforge" : "");
        if (!map.empty()) r.options.insert(r.options.begin(), "map=" + map);
    }
    return p;
}

std::vector<Required> required_records(const Policy& policy, const Names& names) {
    std::vector<Required> out;
    for (const Requirement& r : policy.requirements) {
        auto expand = [&](const std::vector<std::string>& items) {
            Field done;
            for (const auto& item : items) {
                Token t = item == "${superuser}" ? role_name(names.superuser)
                          : item == "${owner}"   ? role_name(names.owner)
                                                 : written_name(item);
                if (std::find(done.begin(), done.end(), t) == done.end()) done.push_back(t);
            }
            return done;
        };
        std::string where = "policy " + policy.source + " line " + std::to_string(r.line) + " ([" +
                            r.section + "])";
        std::vector<std::string> addresses = r.networks;
        if (r.type == "local") addresses = {""};
        for (const auto& address : addresses) {
            pgforge::sdk::HbaRecord hba;
            hba.type = r.type;
            hba.databases = expand(r.databases);
            hba.users = expand(r.users);
            if (!address.empty()) hba.address = written_name(address);
            hba.method = r.method;
            for (const auto& o : r.options) {
                auto eq = o.find('=');
                hba.options.emplace_back(o.substr(0, eq), o.substr(eq + 1));
            }
            Record record = record_of(hba);
            for (const auto* field : {&record.databases, &record.users})
                for (const Token& t : *field)
                    if (t.text.empty())
                        throw PolicyError(where + ": the record '" + record.text +
                                          "' is not valid: an empty name");
            auto broken = broken_rules(policy, record);
            if (!broken.empty())
                throw PolicyError(where + ": requires '" + record.text + "', which " +
                                  broken.front().first + " forbids");
            out.push_back({"[" + r.section + "]", std::move(record), r.first});
        }
    }
    return out;
}

std::vector<std::pair<std::string, std::string>> broken_rules(const Policy& p, const Record& r) {
    std::vector<std::pair<std::string, std::string>> out;
    std::string method = effective_method(r);
    auto method_rule = [&](const char* name, Scope scope) {
        if (method != name || scope == Scope::off || (scope == Scope::host && r.local())) return;
        out.emplace_back(std::string("[never] ") + name + " = " + scope_name(scope),
                         std::string(name) + " authentication" +
                             (scope == Scope::host ? " on a non-local line (allowed on local "
                                                     "lines only)"
                                                   : " (allowed on no line)"));
    };
    method_rule("trust", p.trust);
    method_rule("password", p.password);
    method_rule("md5", p.md5);
    for (const auto& m : p.forbidden_methods)
        if (method == m)
            out.emplace_back("[never] methods = " + join(p.forbidden_methods, ", "),
                             m + " authentication (allowed on no line)");
    if (p.open_reject_only && !r.local() && method != "reject" &&
        (r.address.is("all") || (r.network && r.network->everything())))
        out.emplace_back("[never] open = reject-only",
                         "every address (" + r.address.text + (r.mask.empty() ? "" : " " + r.mask) +
                             ") with " + method + " (a record for all addresses may only reject)");
    return out;
}

Evaluation evaluate(const Policy& policy, const HbaRead& hba,
                    const std::vector<Required>& required) {
    Evaluation e;
    for (const auto& [line, why] : hba.errors)
        e.violations.push_back({"invalid", line, 0, "", "", "pg_hba.conf syntax",
                                why + " (the server refuses this file)"});
    for (const Record& r : hba.records)
        for (auto& [rule, reason] : broken_rules(policy, r))
            e.violations.push_back({"forbidden", r.line, r.position, r.text, "", rule, reason});
    for (const Required& q : required) {
        Decision d = decide(q.record, hba.records);
        RequiredStatus s{q.rule, q.record.text, "missing", 0, ""};
        if (d.record) {
            s.line = d.record->line;
            s.text = d.record->text;
            s.status = d.granted ? "present" : "shadowed";
        }
        if (s.status == "missing")
            e.violations.push_back(
                {"missing", 0, 0, "", q.record.text, q.rule, "no record grants these connections"});
        else if (s.status == "shadowed")
            e.violations.push_back({"shadowed", d.record->line, d.record->position, d.record->text,
                                    q.record.text, q.rule,
                                    "line " + std::to_string(d.record->line) +
                                        " takes some of these connections first, by " +
                                        d.record->method +
                                        (effective_method(*d.record) == effective_method(q.record)
                                             ? " without the options asked for"
                                             : "")});
        e.required.push_back(std::move(s));
    }
    return e;
}

std::string describe(const Violation& v) {
    std::string line = "line " + std::to_string(v.line);
    if (v.kind == "forbidden")
        return line + ": " + v.text + ": " + v.reason + " [rule " + v.rule + "]";
    if (v.kind == "missing")
        return "missing: " + v.record + ": " + v.reason + " [rule " + v.rule + "]";
    if (v.kind == "shadowed")
        return "shadowed: " + v.record + ": " + v.reason + " (" + v.text + ") [rule " + v.rule +
               "]";
    return line + ": " + v.reason;
}

}  // namespace hba_policy
