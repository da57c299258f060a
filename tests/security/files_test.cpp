// Attacks on pgforge's file handling by the instance owner (the `postgres` account) or another
// ordinary user, replayed against pgforge running as root (issue 10, "What was seen" 1 to 3).
// Each attack aims at a root-owned decoy tree; the tree is snapshotted (type, owner, mode,
// content of everything in it) before and after, and must not change. The command either
// refuses with a clear message or does its job without following the planted link.
#include <pwd.h>
#include <sys/stat.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <cstdlib>
#include <fstream>
#include <map>
#include <sstream>

#include "engine/conf/template.hpp"
#include "engine/operations/instances.hpp"
#include "tests/support/test_site.hpp"

namespace fs = std::filesystem;
using namespace pgforge;
using pgforge::test::TestSite;

namespace {

const std::string kSecret = "root_only_token = 'ROOT-SECRET-7f3a9c'\n";
const std::string kSecretMark = "ROOT-SECRET-7f3a9c";

// A root-owned tree that no attack may touch: a 0600 file, a 0644 file, a 0700 directory with a
// 0600 file in it.
class Decoy {
  public:
    Decoy() {
        char tmpl[] = "/tmp/pgforge-decoy-XXXXXX";
        REQUIRE(mkdtemp(tmpl) != nullptr);
        root_ = tmpl;
        chmod(root_.c_str(), 0755);
        put(root_ / "secret", kSecret, 0600);
        put(root_ / "public.conf", "public_value = 1\n", 0644);
        fs::create_directory(root_ / "private");
        chmod((root_ / "private").c_str(), 0700);
        put(root_ / "private" / "inner", kSecret, 0600);
        before_ = snapshot();
    }
    ~Decoy() {
        std::error_code ec;
        fs::remove_all(root_, ec);
    }
    fs::path operator/(const std::string& name) const { return root_ / name; }

    // Type, owner, group, mode and content of each entry, not following links.
    std::map<std::string, std::string> snapshot() const {
        std::map<std::string, std::string> out;
        auto add = [&](const fs::path& p) {
            struct stat st {};
            if (lstat(p.c_str(), &st) != 0) {
                out[p.string()] = "missing";
                return;
            }
            std::ostringstream d;
            d << (S_ISDIR(st.st_mode)   ? "dir"
                  : S_ISLNK(st.st_mode) ? "link"
                                        : "file")
              << " uid " << st.st_uid << " gid " << st.st_gid << " mode " << std::oct
              << (st.st_mode & 07777);
            if (S_ISREG(st.st_mode)) {
                std::ifstream in(p, std::ios::binary);
                std::stringstream b;
                b << in.rdbuf();
                d << " content " << b.str();
            }
            out[p.string()] = d.str();
        };
        add(root_);
        for (const auto& e : fs::recursive_directory_iterator(root_)) add(e.path());
        return out;
    }
    bool unchanged() const {
        auto now = snapshot();
        for (const auto& [path, was] : before_)
            if (now[path] != was) UNSCOPED_INFO(path << ": was " << was << ", now " << now[path]);
        return now == before_;
    }

  private:
    static void put(const fs::path& p, const std::string& text, mode_t mode) {
        std::ofstream(p) << text;
        chmod(p.c_str(), mode);
    }
    fs::path root_;
    std::map<std::string, std::string> before_;
};

int shell(const std::string& command) {
    return std::system(command.c_str());
}

std::string quote(const std::string& s) {
    std::string out = "'";
    for (char c : s) out += c == '\'' ? std::string("'\\''") : std::string(1, c);
    return out + "'";
}

// Runs a shell command as `user` (the attacker).
void as_user(const std::string& user, const std::string& command) {
    INFO("as " << user << ": " << command);
    REQUIRE(shell("runuser -u " + user + " -- sh -c " + quote(command)) == 0);
}

void plant_link(const std::string& user, const fs::path& target, const fs::path& link) {
    as_user(user, "ln -s " + quote(target.string()) + " " + quote(link.string()));
}

// An ordinary user that is neither root nor the instance owner, made if missing.
std::string mallory() {
    const std::string name = "pgforge-mallory";
    if (!getpwnam(name.c_str()))
        REQUIRE(shell("useradd --system --no-create-home --shell /usr/sbin/nologin " + name +
                      " >/dev/null 2>&1") == 0);
    return name;
}

struct Site {
    TestSite site;
    Instance instance;
    explicit Site(bool start = true) {
        REQUIRE(getuid() == 0);
        std::vector<std::string> args = {"instance", "create", "sec"};
        if (!start) args.insert(args.end(), {"--state", "stopped"});
        auto out = site.cli(args);
        INFO(out.err);
        REQUIRE(out.status == 0);
        Context ctx(site.settings());
        instance = instances::get(ctx, "sec");
    }
    TestSite::Output cli(std::vector<std::string> args) const { return site.cli(std::move(args)); }
};

std::string read(const fs::path& p) {
    std::ifstream in(p, std::ios::binary);
    std::stringstream b;
    b << in.rdbuf();
    return b.str();
}

bool is_link(const fs::path& p) {
    std::error_code ec;
    return fs::is_symlink(p, ec);
}

}  // namespace

TEST_CASE("attack 1: a planted temporary-file link does not give a root file to postgres",
          "[security][files]") {
    Decoy decoy;
    Site s;
    const fs::path conf = s.instance.data_dir / "postgresql.conf";
    const fs::path hba = s.instance.data_dir / "pg_hba.conf";
    plant_link("postgres", decoy / "secret", conf.string() + ".pgforge-tmp");
    plant_link("postgres", decoy / "public.conf", hba.string() + ".pgforge-tmp");

    auto set = s.cli({"conf", "set", "-i", "sec", "work_mem=12MB"});
    INFO(set.err);
    CHECK(set.status == 0);
    auto add = s.cli({"hba", "add", "-i", "sec", "host", "all", "all", "10.1.0.0/16", "reject"});
    INFO(add.err);
    CHECK(add.status == 0);

    CHECK(decoy.unchanged());
    CHECK_FALSE(is_link(conf));
    CHECK_FALSE(is_link(hba));
    CHECK(read(conf).find("work_mem = 12MB") != std::string::npos);
    CHECK(read(hba).find("10.1.0.0/16") != std::string::npos);
    struct stat st {};
    REQUIRE(stat(conf.c_str(), &st) == 0);
    CHECK(st.st_uid == getpwnam("postgres")->pw_uid);
}

TEST_CASE("attack 1: postgresql.conf replaced by a link to a root file is refused, not written",
          "[security][files]") {
    Decoy decoy;
    Site s;
    const fs::path conf = s.instance.data_dir / "postgresql.conf";
    as_user("postgres", "rm " + quote(conf.string()));
    plant_link("postgres", decoy / "public.conf", conf);

    auto set = s.cli({"conf", "set", "-i", "sec", "work_mem=12MB"});
    INFO(set.err);
    CHECK(set.status != 0);
    // Refused either by the configure's file set (a link in a target's place) or by the writer
    // (a file of another user in the owner's place): both name the link.
    CHECK((set.err.find("refusing to") != std::string::npos ||
           set.err.find("is a symbolic link") != std::string::npos));
    CHECK(decoy.unchanged());
}

TEST_CASE("attack 1: an include of a root file planted by the owner is not written as root",
          "[security][files]") {
    Decoy decoy;
    Site s(false);
    // A root-owned file the server may read (0644 in a 0755 directory) that sets a parameter.
    char tmpl[] = "/tmp/pgforge-rootconf-XXXXXX";
    REQUIRE(mkdtemp(tmpl) != nullptr);
    const fs::path dir = tmpl;
    chmod(dir.c_str(), 0755);
    const fs::path root_conf = dir / "shared.conf";
    std::ofstream(root_conf) << "work_mem = 4MB\n";
    chmod(root_conf.c_str(), 0644);
    const fs::path conf = s.instance.data_dir / "postgresql.conf";
    as_user("postgres", "printf \"include '%s'\\n\" " + quote(root_conf.string()) + " >> " +
                            quote(conf.string()));
    const std::string conf_before = read(conf);

    auto set = s.cli({"conf", "set", "-i", "sec", "work_mem=12MB"});
    INFO(set.err);
    CHECK(set.status != 0);
    CHECK(set.err.find(root_conf.string()) != std::string::npos);
    CHECK(set.err.find("instance's owner") != std::string::npos);
    CHECK(read(root_conf) == "work_mem = 4MB\n");
    struct stat st {};
    REQUIRE(stat(root_conf.c_str(), &st) == 0);
    CHECK(st.st_uid == 0);
    CHECK(read(conf) == conf_before);
    CHECK(decoy.unchanged());
    std::error_code ec;
    fs::remove_all(dir, ec);
}

TEST_CASE("attack 3: instance list does not print a root-only file linked as PG_VERSION",
          "[security][files]") {
    Decoy decoy;
    Site s(false);
    const fs::path version = s.instance.data_dir / "PG_VERSION";
    as_user("postgres", "rm " + quote(version.string()));
    plant_link("postgres", decoy / "secret", version);
    for (const char* format : {"--json", "--log-level=info"}) {
        auto list = s.cli({"instance", "list", format});
        INFO(list.out << list.err);
        CHECK(list.out.find(kSecretMark) == std::string::npos);
        CHECK(list.err.find(kSecretMark) == std::string::npos);
    }
    CHECK(decoy.unchanged());
}

TEST_CASE("attack 1: conf set --file on another user's file is done as that user",
          "[security][files]") {
    Decoy decoy;
    TestSite site;
    const std::string user = mallory();
    const fs::path home = site.root() / "mallory";
    fs::create_directory(home);
    struct passwd* pw = getpwnam(user.c_str());
    REQUIRE(chown(home.c_str(), pw->pw_uid, pw->pw_gid) == 0);
    const fs::path file = home / "app.conf";
    as_user(user, "printf 'port = 5432\\n' > " + quote(file.string()));
    plant_link(user, decoy / "secret", file.string() + ".pgforge-tmp");

    SECTION("through a planted temporary-file link") {
        auto out = site.cli({"conf", "set", "--file", file.string(), "work_mem=64MB"});
        INFO(out.err);
        CHECK(out.status == 0);
        CHECK(decoy.unchanged());
        CHECK_FALSE(is_link(file));
        CHECK(read(file).find("work_mem = 64MB") != std::string::npos);
        struct stat st {};
        REQUIRE(stat(file.c_str(), &st) == 0);
        CHECK(st.st_uid == pw->pw_uid);
    }
    SECTION("through the file itself replaced by a link to a root file") {
        as_user(user, "rm " + quote(file.string()));
        plant_link(user, decoy / "public.conf", file);
        auto out = site.cli({"conf", "set", "--file", file.string(), "work_mem=64MB"});
        INFO(out.err);
        CHECK(out.status != 0);
        CHECK(out.err.find("refusing to") != std::string::npos);
        CHECK(decoy.unchanged());
    }
    SECTION("hba add --file through a planted temporary-file link") {
        const fs::path hba = home / "pg_hba.conf";
        as_user(user, "printf 'local all all peer\\n' > " + quote(hba.string()));
        plant_link(user, decoy / "public.conf", hba.string() + ".pgforge-tmp");
        auto out = site.cli(
            {"hba", "add", "--file", hba.string(), "host", "all", "all", "10.1.0.0/16", "reject"});
        INFO(out.err);
        CHECK(out.status == 0);
        CHECK(decoy.unchanged());
        struct stat st {};
        REQUIRE(stat(hba.c_str(), &st) == 0);
        CHECK(st.st_uid == pw->pw_uid);
    }
}

TEST_CASE("attack 2: a log directory replaced by a link to a root directory is not taken over",
          "[security][files]") {
    Decoy decoy;
    Site s;
    REQUIRE(s.cli({"instance", "stop", "sec"}).status == 0);
    const fs::path log_dir = s.instance.log_file.parent_path();
    as_user("postgres", "rm -rf " + quote(log_dir.string()));
    plant_link("postgres", decoy / "private", log_dir);

    auto out = s.cli({"instance", "start", "sec"});
    CHECK(out.status != 0);
    CHECK(out.err.find(log_dir.string()) != std::string::npos);
    CHECK(out.err.find("symbolic link") != std::string::npos);
    CHECK(decoy.unchanged());
}

TEST_CASE("attack 2: a dumps directory replaced by a link to a root directory is not taken over",
          "[security][files]") {
    Decoy decoy;
    Site s;
    const fs::path dumps = s.instance.base_dir / "dumps";
    plant_link("postgres", decoy / "private", dumps);

    auto out = s.cli({"database", "dump", "postgres", "-i", "sec"});
    CHECK(out.status != 0);
    CHECK(out.err.find("symbolic link") != std::string::npos);
    CHECK(decoy.unchanged());
}

TEST_CASE("attack 2: a run directory of another user is refused, its links not followed",
          "[security][files]") {
    Decoy decoy;
    Site s;
    REQUIRE(s.cli({"instance", "stop", "sec"}).status == 0);
    const fs::path run_dir = s.instance.socket_dir.parent_path();
    fs::remove_all(run_dir);
    fs::create_directory(run_dir);
    struct passwd* pw = getpwnam("postgres");
    REQUIRE(chown(run_dir.c_str(), pw->pw_uid, pw->pw_gid) == 0);
    plant_link("postgres", decoy / "private", s.instance.socket_dir);

    auto out = s.cli({"instance", "start", "sec"});
    CHECK(out.status != 0);
    CHECK(out.err.find("run directory " + run_dir.string()) != std::string::npos);
    CHECK(out.err.find("belongs to postgres") != std::string::npos);
    CHECK(decoy.unchanged());
}

TEST_CASE("attack 3: instance logs does not print a root-only file linked as the log",
          "[security][files]") {
    Decoy decoy;
    Site s;
    REQUIRE(s.cli({"instance", "stop", "sec"}).status == 0);
    as_user("postgres", "rm -f " + quote(s.instance.log_file.string()));
    plant_link("postgres", decoy / "secret", s.instance.log_file);

    for (const char* lines : {"50", "0"}) {
        auto out = s.cli({"instance", "logs", "sec", "--lines", lines});
        INFO("--lines " << lines << ": " << out.err);
        CHECK(out.status != 0);
        CHECK(out.out.find(kSecretMark) == std::string::npos);
        CHECK(out.err.find(kSecretMark) == std::string::npos);
        CHECK(out.err.find("Permission denied") != std::string::npos);
    }
    // Nor does a failed start, which shows the end of the log.
    auto start = s.cli({"instance", "start", "sec"});
    CHECK(start.out.find(kSecretMark) == std::string::npos);
    CHECK(start.err.find(kSecretMark) == std::string::npos);
    CHECK(decoy.unchanged());
}

TEST_CASE("attack 3: conf show does not follow include_if_exists into a root-only file",
          "[security][files]") {
    Decoy decoy;
    Site s;
    const fs::path conf = s.instance.data_dir / "postgresql.conf";
    as_user("postgres", "printf \"include_if_exists = '%s'\\ninclude = '%s'\\n\" " +
                            quote((decoy / "secret").string()) + " " +
                            quote((decoy / "private" / "inner").string()) + " >> " +
                            quote(conf.string()));

    for (std::vector<std::string> args :
         {std::vector<std::string>{"conf", "show", "-i", "sec"},
          std::vector<std::string>{"conf", "show", "-i", "sec", "root_only_token"},
          std::vector<std::string>{"conf", "show", "--file", conf.string()},
          std::vector<std::string>{"conf", "set", "-i", "sec", "work_mem=12MB"}}) {
        auto out = s.cli(args);
        INFO(args[1] << ": " << out.err);
        CHECK(out.status != 0);
        CHECK(out.out.find(kSecretMark) == std::string::npos);
        CHECK(out.err.find(kSecretMark) == std::string::npos);
        CHECK(out.err.find("Permission denied") != std::string::npos);
    }
    CHECK(decoy.unchanged());
}

TEST_CASE("the superuser password file lives in a private directory and goes with the call",
          "[security][files]") {
    TestSite site;
    const fs::path pw = site.root() / "pw";
    std::ofstream(pw) << "s3cret-Pw\n";
    chmod(pw.c_str(), 0600);
    auto out = site.cli({"instance", "create", "pw", "--state", "stopped",
                         "--superuser-password-file", pw.string()});
    INFO(out.err);
    REQUIRE(out.status == 0);
    Context ctx(site.settings());
    Instance i = instances::get(ctx, "pw");
    for (const auto& e : fs::recursive_directory_iterator(i.base_dir)) {
        std::string name = e.path().filename().string();
        CHECK(name.find(".pgforge-private-") == std::string::npos);
        CHECK(name != ".pwfile");
        if (e.is_regular_file()) CHECK(read(e.path()).find("s3cret-Pw") == std::string::npos);
    }
}

TEST_CASE("a prefix another user owns is refused before anything is done in it",
          "[security][files]") {
    TestSite site;
    const fs::path prefix = site.root() / "prefix";
    fs::create_directory(prefix);
    struct passwd* pw = getpwnam("postgres");
    REQUIRE(chown(prefix.c_str(), pw->pw_uid, pw->pw_gid) == 0);
    for (std::vector<std::string> args : {std::vector<std::string>{"instance", "create", "x"},
                                          std::vector<std::string>{"instance", "list"}}) {
        auto out = site.cli(args);
        INFO(args[1] << ": " << out.err);
        CHECK(out.status != 0);
        CHECK(out.err.find("prefix " + prefix.string() + " belongs to postgres") !=
              std::string::npos);
    }
    CHECK(fs::is_empty(prefix));
}

TEST_CASE("a dump replaced by a link to a root file is not listed", "[security][files]") {
    Decoy decoy;
    Site s;
    auto dumped = s.cli({"database", "dump", "postgres", "-i", "sec", "--json"});
    INFO(dumped.err);
    REQUIRE(dumped.status == 0);
    const fs::path dumps = s.instance.base_dir / "dumps";
    fs::path file;
    for (const auto& e : fs::directory_iterator(dumps)) file = e.path();
    REQUIRE(!file.empty());
    as_user("postgres", "mv " + quote(file.string()) + " " + quote(file.string() + ".moved"));
    plant_link("postgres", decoy / "secret", file);
    auto listed = s.cli({"database", "dumps", "-i", "sec", "--json"});
    INFO(listed.err);
    CHECK(listed.status == 0);
    CHECK(listed.out.find(file.filename().string()) == std::string::npos);
    CHECK(decoy.unchanged());
}
