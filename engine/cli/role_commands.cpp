// role commands: create, alter, apply (a YAML or JSON description), get, list, drop on an
// instance (-i NAME). Passwords come from a file or a terminal prompt, never from argv.
#include <termios.h>
#include <unistd.h>

#include <iostream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "engine/cli/command.hpp"
#include "engine/core/input.hpp"
#include "engine/core/text.hpp"
#include "engine/operations/role_manifest.hpp"
#include "engine/operations/roles.hpp"
#include "engine/pipeline/pipeline.hpp"

namespace fs = std::filesystem;
using json = nlohmann::ordered_json;

namespace pgforge::cli {
namespace {

using roles::Role;

json outcome_json(const roles::Outcome& o) {
    return {{"name", o.name},
            {"result", std::string(roles::to_string(o.result))},
            {"statements", o.statements}};
}

// `diff`: each outcome's statements follow it, one per line. `check`: a last line says that
// nothing was done.
int report(Invocation& inv, const std::vector<roles::Outcome>& outcomes, bool as_array,
           bool diff = false, bool check = false) {
    if (inv.json) {
        json j = json::array();
        for (const auto& o : outcomes) j.push_back(outcome_json(o));
        inv.out << (as_array ? j : j.at(0)).dump(2) << "\n";
    } else if (!inv.quiet) {
        for (const auto& o : outcomes) {
            inv.out << "role " << escape_control(o.name) << ": " << roles::to_string(o.result)
                    << "\n";
            if (diff) {
                print_statements(inv.out, o.statements);
                if (o.pgpass_changed)
                    inv.out << "  -- ~/.pgpass entry of role " << escape_control(o.name)
                            << (check ? " would be written\n" : " written\n");
            }
        }
        if (check) inv.out << "check: nothing was changed\n";
    }
    return 0;
}

// ---- passwords ------------------------------------------------------------------------------

std::string password_from_file(const std::string& file) {
    return read_secret_line(file, "password file");
}

// Restores the terminal's echo however the prompt ends.
class EchoOff {
  public:
    EchoOff() {
        if (tcgetattr(STDIN_FILENO, &old_) != 0) return;
        termios quiet = old_;
        quiet.c_lflag &= ~static_cast<tcflag_t>(ECHO);
        quiet.c_lflag |= ECHONL;
        active_ = tcsetattr(STDIN_FILENO, TCSAFLUSH, &quiet) == 0;
    }
    ~EchoOff() {
        if (active_) tcsetattr(STDIN_FILENO, TCSAFLUSH, &old_);
    }
    EchoOff(const EchoOff&) = delete;
    EchoOff& operator=(const EchoOff&) = delete;

  private:
    termios old_{};
    bool active_ = false;
};

std::string password_from_prompt(Invocation& inv, const std::string& role) {
    if (!isatty(STDIN_FILENO))
        throw Error(Exit::usage, "cannot prompt for a password: standard input is not a terminal",
                    "give --password-file F instead");
    std::string first, second;
    {
        EchoOff quiet;
        inv.err << "Password for role " << role << ": " << std::flush;
        std::getline(std::cin, first);
        inv.err << "Enter it again: " << std::flush;
        std::getline(std::cin, second);
    }
    if (first != second) throw Error(Exit::usage, "the passwords do not match");
    if (first.empty()) throw Error(Exit::usage, "the password is empty");
    return first;
}

std::optional<std::string> password_option(Invocation& inv, const std::string& role) {
    auto file = inv.opt<std::string>("password-file");
    bool prompt = inv.flag("password-prompt");
    if (file && prompt) throw Error(Exit::usage, "give --password-file or --password-prompt");
    if (file) return password_from_file(*file);
    if (prompt) return password_from_prompt(inv, role);
    return std::nullopt;
}

// ---- options --------------------------------------------------------------------------------

void instance_option(po::options_description& d) {
    d.add_options()("instance,i", po::value<std::string>(), "the instance (NAME or VERSION/NAME)");
}

void password_options(po::options_description& d) {
    // clang-format off
    d.add_options()
        ("password-file", po::value<std::string>(), "file whose first line is the role's password")
        ("password-prompt,W", po::bool_switch(), "ask for the password (standard input must be a terminal)")
        ("pgpass", po::bool_switch(), "keep an entry for the role in ~/.pgpass");
    // clang-format on
}

struct FlagHelp {
    const char* name;
    const char* yes;
    const char* no;
};
const FlagHelp kFlags[] = {
    {"login", "may log in", "may not log in"},
    {"superuser", "is a superuser", "is not a superuser"},
    {"createdb", "may create databases", "may not create databases"},
    {"createrole", "may create roles", "may not create roles"},
    {"replication", "may stream replication", "may not stream replication"},
    {"inherit", "has the privileges of the roles it is a member of (the default)",
     "does not inherit the privileges of its roles"},
};

void attribute_options(po::options_description& d, bool negations) {
    instance_option(d);
    password_options(d);
    for (const auto& f : kFlags) {
        d.add_options()(f.name, po::bool_switch(), (std::string("the role ") + f.yes).c_str());
        if (negations || std::string(f.name) == "inherit")
            d.add_options()((std::string("no-") + f.name).c_str(), po::bool_switch(),
                            (std::string("the role ") + f.no).c_str());
    }
    // clang-format off
    d.add_options()
        ("connection-limit", po::value<int>(), "at most N connections (-1: no limit)")
        ("valid-until", po::value<std::string>(), "the password expires then (a timestamp, or infinity)")
        ("in-role", po::value<std::vector<std::string>>()->composing(),
         "member of exactly these roles (repeat the option)");
    // clang-format on
    if (negations) d.add_options()("no-in-role", po::bool_switch(), "member of no role");
}

void create_options(po::options_description& d) {
    attribute_options(d, false);
}
void alter_options(po::options_description& d) {
    attribute_options(d, true);
}

void apply_options(po::options_description& d) {
    instance_option(d);
    password_options(d);
    // clang-format off
    d.add_options()
        ("file,f", po::value<std::string>(), "the description (YAML or JSON; - for stdin)")
        ("check", po::bool_switch(), "say what would change and the statements that would run; change nothing")
        ("diff", po::bool_switch(), "print the SQL (run, or with --check that would run)");
    // clang-format on
}

void drop_options(po::options_description& d) {
    instance_option(d);
    // clang-format off
    d.add_options()
        ("reassign-owned", po::value<std::string>(), "give what the role owns to this role first")
        ("drop-owned", po::bool_switch(), "drop what the role owns first");
    // clang-format on
}

// ---- commands -------------------------------------------------------------------------------

Instance target(Invocation& inv) {
    auto name = inv.opt<std::string>("instance");
    if (!name)
        throw Error(Exit::usage, "no instance", "name the instance with -i NAME (or VERSION/NAME)");
    return instances::get(inv.ctx(), *name);
}

std::string one_name(Invocation& inv) {
    std::string name = inv.arg(0, "role name");
    if (inv.positional.size() > 1)
        throw Error(Exit::usage, "one role at a time: unexpected '" + inv.positional[1] + "'");
    return name;
}

Role role_from_options(Invocation& inv, const std::string& name) {
    Role r;
    r.name = name;
    std::optional<bool>* fields[] = {&r.login,      &r.superuser,   &r.createdb,
                                     &r.createrole, &r.replication, &r.inherit};
    for (size_t k = 0; k < std::size(kFlags); ++k) {
        std::string no = std::string("no-") + kFlags[k].name;
        bool yes = inv.flag(kFlags[k].name);
        bool not_ = inv.flag(no.c_str());
        if (yes && not_)
            throw Error(Exit::usage,
                        std::string("give --") + kFlags[k].name + " or --" + no + ", not both");
        if (yes) *fields[k] = true;
        if (not_) *fields[k] = false;
    }
    r.connection_limit = inv.opt<int>("connection-limit");
    if (r.connection_limit) check_at_least(*r.connection_limit, -1, "--connection-limit");
    r.valid_until = inv.opt<std::string>("valid-until");
    auto in = inv.opt<std::vector<std::string>>("in-role");
    if (in && inv.vm.count("no-in-role") && inv.flag("no-in-role"))
        throw Error(Exit::usage, "give --in-role or --no-in-role, not both");
    if (in) r.in_roles = *in;
    if (inv.vm.count("no-in-role") && inv.flag("no-in-role"))
        r.in_roles = std::vector<std::string>{};
    if (inv.flag("pgpass")) r.pgpass = true;
    r.password = password_option(inv, name);
    return r;
}

// What the journal keeps of role changes: the statements (passwords shown as '***'), and a
// line for a ~/.pgpass written.
std::vector<std::string> statements_of(const std::vector<roles::Outcome>& outcomes) {
    std::vector<std::string> out;
    for (const auto& o : outcomes) {
        out.insert(out.end(), o.statements.begin(), o.statements.end());
        if (o.pgpass_changed) out.push_back("-- ~/.pgpass entry of role " + o.name + " written");
    }
    return out;
}

roles::Outcome journaled_apply(Invocation& inv, const Instance& i, const std::string& operation,
                               const Role& r) {
    roles::Outcome out;
    journal_change(inv.ctx(), i, operation, [&] {
        out = roles::apply(inv.ctx(), i, r);
        return statements_of({out});
    });
    return out;
}

int role_create(Invocation& inv) {
    std::string name = one_name(inv);
    Instance i = target(inv);
    Role r = role_from_options(inv, name);
    if (roles::exists(inv.ctx(), i, name))
        throw Error(Exit::conflict,
                    "role " + name + " already exists in instance " + i.qualified_name(),
                    "change it with: pgforge role alter -i " + i.qualified_name() + " NAME ...");
    return report(inv, {journaled_apply(inv, i, "role create " + name, r)}, false);
}

int role_alter(Invocation& inv) {
    std::string name = one_name(inv);
    Instance i = target(inv);
    Role r = role_from_options(inv, name);
    if (!roles::exists(inv.ctx(), i, name))
        throw Error(Exit::not_found,
                    "role " + name + " does not exist in instance " + i.qualified_name(),
                    "create it with: pgforge role create -i " + i.qualified_name() + " NAME ...");
    return report(inv, {journaled_apply(inv, i, "role alter " + name, r)}, false);
}

int role_apply(Invocation& inv) {
    auto file = inv.opt<std::string>("file");
    if (!file) throw Error(Exit::usage, "no description", "give -f FILE (YAML or JSON), or -f -");
    if (!inv.positional.empty())
        throw Error(Exit::usage, "unexpected '" + inv.positional[0] + "'",
                    "the role is described in the file given with -f");
    if (*file == "-" && inv.flag("password-prompt"))
        throw Error(Exit::usage,
                    "cannot prompt for a password while reading the description "
                    "from standard input",
                    "give --password-file F");
    bool many = false;
    std::vector<Role> list = roles::read_descriptions(*file, many);
    bool password_given = inv.opt<std::string>("password-file") || inv.flag("password-prompt");
    if (password_given && list.size() != 1)
        throw Error(Exit::usage, "--password-file and --password-prompt go with one role");
    if (password_given) list[0].password = password_option(inv, list[0].name);
    if (inv.flag("pgpass"))
        for (auto& r : list) r.pgpass = true;
    Instance i = target(inv);
    std::vector<roles::Outcome> outcomes;
    if (inv.flag("check")) {  // nothing is changed: nothing to journal
        outcomes = roles::apply(inv.ctx(), i, list, {.check = true});
        return report(inv, outcomes, many, inv.flag("diff"), true);
    }
    journal_change(inv.ctx(), i, "role apply", [&] {
        outcomes = roles::apply(inv.ctx(), i, list);
        return statements_of(outcomes);
    });
    return report(inv, outcomes, many, inv.flag("diff"));
}

int role_get(Invocation& inv) {
    std::string name = one_name(inv);
    Instance i = target(inv);
    Role r = roles::get(inv.ctx(), i, name);
    if (inv.json)
        inv.out << roles::description_json(r) << "\n";
    else
        inv.out << roles::description_yaml(r);
    return 0;
}

int role_list(Invocation& inv) {
    Instance i = target(inv);
    auto all = roles::ls(inv.ctx(), i);
    if (inv.json) {
        json j = json::array();
        for (const auto& r : all) j.push_back(json::parse(roles::description_json(r)));
        inv.out << j.dump(2) << "\n";
        return 0;
    }
    auto yn = [](const std::optional<bool>& v) { return v.value_or(false) ? "yes" : "no"; };
    std::vector<std::vector<std::string>> rows = {
        {"NAME", "LOGIN", "SUPERUSER", "CREATEDB", "CREATEROLE", "REPLICATION", "INHERIT",
         "CONNLIMIT", "VALID UNTIL", "MEMBER OF", "PGPASS"}};
    for (const auto& r : all) {
        std::string member_of;
        for (const auto& g : r.in_roles.value_or(std::vector<std::string>{}))
            member_of += (member_of.empty() ? "" : ",") + g;
        rows.push_back({r.name, yn(r.login), yn(r.superuser), yn(r.createdb), yn(r.createrole),
                        yn(r.replication), yn(r.inherit),
                        std::to_string(r.connection_limit.value_or(-1)), r.valid_until.value_or(""),
                        member_of, yn(r.pgpass)});
    }
    print_table(inv.out, rows);
    return 0;
}

int role_drop(Invocation& inv) {
    std::string name = one_name(inv);
    Instance i = target(inv);
    roles::DropOptions o;
    o.reassign_owned = inv.opt<std::string>("reassign-owned");
    o.drop_owned = inv.flag("drop-owned");
    roles::Outcome out;
    journal_change(inv.ctx(), i, "role drop " + name, [&] {
        out = roles::drop(inv.ctx(), i, name, o);
        return statements_of({out});
    });
    return report(inv, {out}, false);
}

const std::vector<CommandSpec> kRoleCommands = {
    {"role", "create", "NAME",
     "create a role (--login, --superuser, ..., --in-role R, --password-file F, --pgpass)",
     create_options, role_create},
    {"role", "alter", "NAME", "change the attributes, memberships or password of a role",
     alter_options, role_alter},
    {"role", "apply", "-f FILE",
     "make roles as described (YAML or JSON): created, changed, dropped or unchanged",
     apply_options, role_apply},
    {"role", "get", "NAME", "a role's description (the format apply reads)", instance_option,
     role_get},
    {"role", "list", "", "roles of an instance", instance_option, role_list},
    {"role", "drop", "NAME", "drop a role (--reassign-owned ROLE or --drop-owned first)",
     drop_options, role_drop},
};

}  // namespace

const std::vector<CommandSpec>& role_commands() {
    return kRoleCommands;
}

}  // namespace pgforge::cli
