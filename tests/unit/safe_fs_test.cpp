// safe_fs: file work that a user who controls a directory cannot redirect. CI runs the unit tests
// as root, and root is the case that matters: these tests assert as root (the user playing the
// directory's owner is `nobody`) and also run, in their plain form, as an ordinary user.
#include "engine/core/safe_fs.hpp"

#include <fcntl.h>
#include <grp.h>
#include <pwd.h>
#include <sys/stat.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <cstring>
#include <fstream>
#include <sstream>
#include <vector>

#include "engine/conf/hba.hpp"
#include "engine/conf/pgconf.hpp"
#include "engine/conf/template.hpp"
#include "engine/core/error.hpp"
#include "engine/pipeline/configure_draft.hpp"
#include "engine/pipeline/pipeline.hpp"
#include "temp_dir.hpp"

namespace fs = std::filesystem;
using namespace pgforge;
using pgforge::test::TempDir;
using pgforge::test::write_text;

namespace {

bool root() {
    return geteuid() == 0;
}

// The user playing the owner of a directory: `nobody` as root, else the running user.
OsUser other_user() {
    const passwd* pw = getpwnam(root() ? "nobody" : "root");
    if (!root()) pw = getpwuid(geteuid());
    REQUIRE(pw != nullptr);
    return lookup_os_user(pw->pw_name);
}

// A directory of that user (0755) inside a root-owned one.
fs::path users_directory(const TempDir& dir, const OsUser& user) {
    fs::permissions(dir.path(), fs::perms(0755));  // the user reaches it
    fs::path d = dir / "users";
    fs::create_directory(d);
    fs::permissions(d, fs::perms(0755));
    if (root()) REQUIRE(chown(d.c_str(), user.uid, user.gid) == 0);
    return d;
}

// A root-only file (0600) as the target of attacks.
fs::path secret_file(const TempDir& dir) {
    fs::path f = dir / "secret";
    write_text(f, "SECRET\n");
    fs::permissions(f, fs::perms(0600));
    return f;
}

struct stat lstat_of(const fs::path& p) {
    struct stat st {};
    REQUIRE(lstat(p.c_str(), &st) == 0);
    return st;
}

std::string read(const fs::path& p) {
    std::ifstream in(p, std::ios::binary);
    std::stringstream b;
    b << in.rdbuf();
    return b.str();
}

}  // namespace

TEST_CASE("safe_fs::run_as runs the body as the user, with the user's groups only", "[unit]") {
    if (!root()) {
        CHECK_THROWS_AS(
            safe_fs::run_as(lookup_os_user("root"), [] { return safe_fs::ChildResult{}; }), Error);
        return;
    }
    OsUser u = other_user();
    TempDir dir("safefs");
    fs::path out = dir / "ids";
    fs::permissions(dir.path(), fs::perms(0777));
    std::string path = out.string();
    // Give this process root's group and `disk` as supplementary groups for the call, so that a
    // child that kept them (no setgroups before setgid/setuid) is seen.
    std::vector<gid_t> saved(static_cast<size_t>(getgroups(0, nullptr)));
    getgroups(static_cast<int>(saved.size()), saved.data());
    const gid_t marked[] = {0, 6};
    REQUIRE(setgroups(2, marked) == 0);
    auto r = safe_fs::run_as(u, [&]() noexcept -> safe_fs::ChildResult {
        int fd = open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL, 0644);
        if (fd < 0) return {errno, 1};
        gid_t groups[64];
        int n = getgroups(64, groups);
        // uid, euid, gid, then whether any supplementary group is root's (0).
        bool root_group = false;
        for (int k = 0; k < n; ++k) root_group = root_group || groups[k] == 0 || groups[k] == 6;
        uid_t ids[4] = {getuid(), geteuid(), getgid(), root_group ? 1u : 0u};
        ssize_t w = write(fd, ids, sizeof ids);
        (void)w;
        close(fd);
        return {};
    });
    REQUIRE(setgroups(saved.size(), saved.data()) == 0);
    REQUIRE(r.error == 0);
    std::string bytes = read(out);
    REQUIRE(bytes.size() == 4 * sizeof(uid_t));
    uid_t ids[4];
    std::memcpy(ids, bytes.data(), sizeof ids);
    CHECK(ids[0] == u.uid);
    CHECK(ids[1] == u.uid);
    CHECK(ids[2] == u.gid);
    CHECK(ids[3] == 0);  // root's groups were dropped (setgroups before setgid/setuid)
    CHECK(lstat_of(out).st_uid == u.uid);
    // Work the user may not do fails in the child and is reported.
    fs::path secret = secret_file(dir);
    std::string s = secret.string();
    auto denied = safe_fs::run_as(u, [&]() noexcept -> safe_fs::ChildResult {
        int fd = open(s.c_str(), O_RDONLY);
        if (fd < 0) return {errno, 7};
        close(fd);
        return {};
    });
    CHECK(denied.error == EACCES);
    CHECK(denied.step == 7);
}

TEST_CASE(
    "safe_fs::write_file in a user's directory writes as that user and never follows a "
    "planted link",
    "[unit]") {
    TempDir dir("safefs");
    OsUser u = other_user();
    fs::path home = users_directory(dir, u);
    fs::path secret = secret_file(dir);
    fs::path file = home / "postgresql.conf";
    write_text(file, "old\n");
    if (root()) REQUIRE(chown(file.c_str(), u.uid, u.gid) == 0);
    // The old fixed temporary name, and a few guesses, point at the secret.
    for (const char* tmp : {"postgresql.conf.pgforge-tmp", ".postgresql.conf.pgforge-tmp"})
        fs::create_symlink(secret, home / tmp);

    write_file_atomically(file, "new\n", &u, fs::perms(0640));
    CHECK(read(file) == "new\n");
    struct stat st = lstat_of(file);
    CHECK(S_ISREG(st.st_mode));
    CHECK((st.st_mode & 07777) == 0640);
    CHECK(st.st_uid == u.uid);
    CHECK(read(secret) == "SECRET\n");
    CHECK(lstat_of(secret).st_uid == geteuid());
    CHECK((lstat_of(secret).st_mode & 07777) == 0600);

    SECTION("the file itself a link to a root file: the link is replaced, the target untouched") {
        fs::remove(file);
        fs::create_symlink(secret, file);
        write_file_atomically(file, "replaced\n", &u, fs::perms(0600));
        CHECK(S_ISREG(lstat_of(file).st_mode));
        CHECK(read(file) == "replaced\n");
        CHECK(read(secret) == "SECRET\n");
    }
    if (root()) {
        SECTION("as root, a file for another user in that user's directory is refused") {
            OsUser r = lookup_os_user("root");
            CHECK_THROWS_WITH(write_file_atomically(file, "x\n", &r, fs::perms(0600)),
                              Catch::Contains("refusing to work on"));
            CHECK(read(file) == "new\n");
        }
        SECTION("as root, the write is the user's: a directory the user cannot write stops it") {
            fs::permissions(home, fs::perms(0555));
            CHECK_THROWS_WITH(
                write_file_atomically(file, "x\n", &u, fs::perms(0600)),
                Catch::Contains("as " + u.name) && Catch::Contains("Permission denied"));
            fs::permissions(home, fs::perms(0755));
            CHECK(read(file) == "new\n");
        }
    }
}

TEST_CASE(
    "safe_fs::write_file in root's directory gives the file to the owner through its "
    "descriptor",
    "[unit]") {
    TempDir dir("safefs");
    OsUser u = other_user();
    fs::path file = dir / "pg_hba.conf";
    fs::create_symlink(secret_file(dir), dir / "pg_hba.conf.pgforge-tmp");
    write_file_atomically(file, "local all all peer\n", &u, fs::perms(0600));
    struct stat st = lstat_of(file);
    CHECK(S_ISREG(st.st_mode));
    CHECK(st.st_uid == (root() ? u.uid : geteuid()));
    CHECK((st.st_mode & 07777) == 0600);
    CHECK(read(dir / "secret") == "SECRET\n");
    CHECK(lstat_of(dir / "secret").st_uid == geteuid());
}

TEST_CASE("safe_fs::make_directory refuses a link where the directory should be", "[unit]") {
    TempDir dir("safefs");
    OsUser u = other_user();
    fs::path home = users_directory(dir, u);
    fs::path target = dir / "roots";
    fs::create_directory(target);
    fs::permissions(target, fs::perms(0700));

    SECTION("in a user's directory") {
        fs::create_symlink(target, home / "log");
        CHECK_THROWS_WITH(
            safe_fs::make_directory(home / "log", u, 0700),
            Catch::Contains(home.string() + "/log") && Catch::Contains("symbolic link"));
    }
    SECTION("in root's directory") {
        fs::create_symlink(target, dir / "15-main");
        CHECK_THROWS_WITH(safe_fs::make_directory(dir / "15-main", u, 0755),
                          Catch::Contains("symbolic link"));
    }
    SECTION("a file where the directory should be") {
        write_text(home / "dumps", "x");
        if (root()) REQUIRE(chown((home / "dumps").c_str(), u.uid, u.gid) == 0);
        CHECK_THROWS_WITH(safe_fs::make_directory(home / "dumps", u, 0700),
                          Catch::Contains("Not a directory"));
    }
    struct stat st = lstat_of(target);
    CHECK(st.st_uid == geteuid());
    CHECK((st.st_mode & 07777) == 0700);

    SECTION("made with its missing parents, owned by the owner, with the mode asked") {
        safe_fs::make_directory(home / "a" / "b", u, 0750);
        struct stat b = lstat_of(home / "a" / "b");
        CHECK(S_ISDIR(b.st_mode));
        CHECK((b.st_mode & 07777) == 0750);
        CHECK(b.st_uid == u.uid);
        safe_fs::make_directory(dir / "run" / "15-main", u, 0755);
        struct stat r = lstat_of(dir / "run" / "15-main");
        CHECK(r.st_uid == (root() ? u.uid : geteuid()));
        CHECK((r.st_mode & 07777) == 0755);
        CHECK(lstat_of(dir / "run").st_uid == geteuid());
    }
}

TEST_CASE("safe_fs reads a user's file with that user's rights", "[unit]") {
    TempDir dir("safefs");
    OsUser u = other_user();
    fs::path home = users_directory(dir, u);
    fs::path secret = secret_file(dir);
    fs::path log = home / "postgresql.log";
    fs::create_symlink(secret, log);
    if (root()) {
        CHECK_THROWS_WITH(safe_fs::read_file(log), Catch::Contains(log.string()) &&
                                                       Catch::Contains("as " + u.name) &&
                                                       Catch::Contains("Permission denied"));
        CHECK_THROWS_WITH(safe_fs::read_tail(log, 100), !Catch::Contains("SECRET"));
        // An include named by the user's file is read as the user, wherever it is.
        fs::path conf = home / "postgresql.conf";
        write_text(conf, "include_if_exists = '" + secret.string() + "'\n");
        CHECK_THROWS_WITH(conf::ConfTree::load(conf),
                          Catch::Contains("Permission denied") && !Catch::Contains("SECRET"));
        // Whether a file exists in a directory the user cannot search is not told either: a
        // missing include_if_exists there fails as an existing one does.
        fs::create_directory(dir / "roots");
        fs::permissions(dir / "roots", fs::perms(0700));
        write_text(dir / "roots" / "there.conf", "x = 1\n");
        for (const char* name : {"there.conf", "nosuch.conf"}) {
            write_text(conf, "include_if_exists = '" + (dir / "roots" / name).string() + "'\n");
            INFO(name);
            CHECK_THROWS_WITH(conf::ConfTree::load(conf), Catch::Contains("Permission denied"));
        }
    }
    fs::remove(log);
    write_text(log, "one\ntwo\nthree\n");
    CHECK(safe_fs::read_file(log) == "one\ntwo\nthree\n");
    CHECK(safe_fs::read_tail(log, 6).value() == "three\n");
    CHECK_FALSE(safe_fs::read_tail(home / "missing", 10).has_value());
    CHECK_THROWS_WITH(safe_fs::read_file(home), Catch::Contains("it is a directory"));
    CHECK_THROWS_WITH(safe_fs::read_file(log, 4), Catch::Contains("larger than"));
}

TEST_CASE("safe_fs::check_trusted_directory refuses a directory another user owns or can write",
          "[unit]") {
    TempDir dir("safefs");
    fs::path run = dir / "run";
    fs::create_directory(run);
    fs::permissions(run, fs::perms(0755));
    CHECK_NOTHROW(safe_fs::check_trusted_directory(run, "run directory"));
    CHECK_NOTHROW(safe_fs::check_trusted_directory(run / "missing", "run directory"));
    fs::permissions(run, fs::perms(0775));
    CHECK_THROWS_WITH(safe_fs::check_trusted_directory(run, "run directory"),
                      Catch::Contains("run directory " + run.string()) &&
                          Catch::Contains("writable by other users"));
    // /tmp (sticky, world-writable) is fine as a parent, not as the directory itself.
    CHECK_THROWS_AS(safe_fs::check_trusted_directory("/tmp", "run directory"), Error);
    if (root()) {
        OsUser u = other_user();
        fs::permissions(run, fs::perms(0755));
        REQUIRE(chown(run.c_str(), u.uid, u.gid) == 0);
        CHECK_THROWS_WITH(safe_fs::check_trusted_directory(run / "15-main", "run directory"),
                          Catch::Contains("belongs to " + u.name));
        // Through a root-owned link to it, too.
        fs::create_symlink(run, dir / "link");
        CHECK_THROWS_AS(safe_fs::check_trusted_directory(dir / "link", "run directory"), Error);
    }
}

TEST_CASE("safe_fs::PrivateDirectory is the owner's, 0700, and goes with what is in it", "[unit]") {
    TempDir dir("safefs");
    OsUser u = other_user();
    fs::path home = users_directory(dir, u);
    fs::path file;
    fs::path made;
    {
        safe_fs::PrivateDirectory p(home, u);
        made = p.path();
        CHECK(made.parent_path() == home);
        CHECK(made.filename().string().rfind(".pgforge-private-", 0) == 0);
        struct stat st = lstat_of(made);
        CHECK(S_ISDIR(st.st_mode));
        CHECK((st.st_mode & 07777) == 0700);
        CHECK(st.st_uid == u.uid);
        file = p.write("pwfile", "secret\n");
        CHECK(read(file) == "secret\n");
        CHECK((lstat_of(file).st_mode & 07777) == 0600);
        CHECK(lstat_of(file).st_uid == u.uid);
    }
    CHECK_FALSE(fs::exists(made));
    // What a killed process left is found by its name and removed.
    fs::path left = home / ".pgforge-private-0123456789ab";
    fs::create_directory(left);
    write_text(left / "pwfile", "secret\n");
    if (root())
        for (const fs::path& p : {left, left / "pwfile"})
            REQUIRE(chown(p.c_str(), u.uid, u.gid) == 0);
    CHECK(safe_fs::PrivateDirectory::remove_leftovers(home, u) == 1);
    CHECK_FALSE(fs::exists(left));
}

TEST_CASE("a plugin's contributed file stays inside <base_dir>/<plugin>/", "[unit]") {
    TempDir dir("safefs");
    OsUser u = other_user();
    Instance i;
    i.name = "main";
    i.version = "15";
    i.base_dir = users_directory(dir, u);
    std::map<fs::path, conf::ConfDocument> docs;
    conf::HbaFile hba = conf::HbaFile::parse("");
    conf::IdentFile ident = conf::IdentFile::parse("");
    ConfigureDraft draft(i, docs, hba, ident, [&](const std::string&) { return fs::path(); });
    draft.begin_contributions("backup");
    for (const char* bad : {"../escape.conf", "a/../../escape.conf", "sub/../../../etc/x", "/etc/x",
                            "..", "", "./x"}) {
        size_t before = draft.conflicts().size();
        draft.add_file(bad, "x\n", 0600);
        INFO("'" << bad << "'");
        CHECK(draft.conflicts().size() == before + 1);
    }
    CHECK(draft.write_files(u).empty());
    CHECK_FALSE(fs::exists(i.base_dir / "escape.conf"));
    CHECK_FALSE(fs::exists(dir / "escape.conf"));

    SECTION("a link on the way is refused, at add and at write") {
        fs::path outside = dir / "outside";
        fs::create_directory(outside);
        fs::create_symlink(outside, i.base_dir / "backup");
        size_t before = draft.conflicts().size();
        draft.add_file("pgbackrest.conf", "x\n", 0600);
        CHECK(draft.conflicts().size() == before + 1);
        CHECK(fs::is_empty(outside));
    }
    SECTION("a good file is written as the owner") {
        draft.add_file("conf.d/pgbackrest.conf", "x\n", 0600);
        fs::create_directories(i.base_dir / "backup");
        if (root()) REQUIRE(chown((i.base_dir / "backup").c_str(), u.uid, u.gid) == 0);
        // A link planted after add_file is found at the write.
        fs::path outside = dir / "outside2";
        fs::create_directory(outside);
        fs::create_symlink(outside, i.base_dir / "backup" / "conf.d");
        CHECK_THROWS_WITH(draft.write_files(u), Catch::Contains("symbolic link"));
        CHECK(fs::is_empty(outside));
        fs::remove(i.base_dir / "backup" / "conf.d");
        auto written = draft.write_files(u);
        REQUIRE(written.size() == 1);
        CHECK(read(written[0]) == "x\n");
        CHECK(lstat_of(written[0]).st_uid == (root() ? u.uid : geteuid()));
    }
}

TEST_CASE("ConfDocument::save writes through a link only where the link's owner could", "[unit]") {
    TempDir dir("safefs");
    OsUser u = other_user();
    fs::path home = users_directory(dir, u);
    fs::path target = dir / "public.conf";
    write_text(target, "port = 5432\n");
    fs::permissions(target, fs::perms(0644));
    fs::path link = home / "postgresql.conf";
    fs::create_symlink(target, link);
    auto doc = conf::ConfDocument::read(link);
    doc.set("work_mem", "1MB");
    if (root()) {
        CHECK_THROWS_WITH(doc.save(), Catch::Contains("refusing to write"));
        CHECK(read(target) == "port = 5432\n");
    } else {
        // The running user owns both: the target is written, the link stays.
        doc.save();
        CHECK(fs::is_symlink(link));
        CHECK(read(target).find("work_mem = 1MB") != std::string::npos);
    }
}
