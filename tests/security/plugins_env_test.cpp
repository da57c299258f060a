// Planted plugins and site hooks, and root's environment, against pgforge running as root: an
// unprivileged user (pgforge-mallory) owns or can write a directory on the way, or swaps names
// while pgforge checks and loads; root's secrets must not reach what runs as the owner.
#include <fcntl.h>
#include <grp.h>
#include <signal.h>
#include <stdio.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <chrono>
#include <cstdlib>
#include <fstream>

#include "engine/core/error.hpp"
#include "engine/core/process.hpp"
#include "engine/operations/instances.hpp"
#include "engine/pg/postmaster_pid.hpp"
#include "engine/pipeline/handlers.hpp"
#include "engine/pipeline/pipeline.hpp"
#include "engine/pipeline/plugin_host.hpp"
#include "tests/support/test_site.hpp"
#include "tests/unit/fake_driver.hpp"
#include "tests/unit/temp_dir.hpp"

namespace fs = std::filesystem;
using namespace pgforge;
using pgforge::test::ScopedEnv;
using pgforge::test::TempDir;
using pgforge::test::TestSite;
using pgforge::test::write_text;

namespace {

const fs::path fixtures = PGFORGE_TEST_PLUGIN_DIR;
const fs::path planted_library = fixtures / "planted" / "planted.so";

// The attacker: an ordinary OS user, made when missing.
OsUser mallory() {
    if (std::system("id pgforge-mallory >/dev/null 2>&1") != 0)
        REQUIRE(std::system("useradd --system --no-create-home --shell /usr/sbin/nologin "
                            "pgforge-mallory") == 0);
    return lookup_os_user("pgforge-mallory");
}

void chown_to(const fs::path& p, const OsUser& u) {
    REQUIRE(::lchown(p.c_str(), u.uid, u.gid) == 0);
}

// A root-owned 0755 directory under /tmp for one test.
struct Base {
    TempDir dir{"security-plugins"};
    Base() { fs::permissions(dir.path(), fs::perms(0755)); }
    fs::path operator/(const std::string& name) const { return dir / name; }
};

fs::path make_dir(const fs::path& d, fs::perms mode) {
    fs::create_directories(d);
    fs::permissions(d, mode);
    return d;
}

// The recorder fixture copied into `dir` (root-owned, 0755).
void copy_recorder(const fs::path& dir) {
    for (const char* f : {"recorder.so", "recorder.plugin"}) {
        fs::copy_file(fixtures / "recorder" / f, dir / f, fs::copy_options::overwrite_existing);
        fs::permissions(dir / f, fs::perms(0755));
    }
}

std::string load_error(const fs::path& manifest) {
    try {
        LoadedPlugin::load(read_plugin_manifest(manifest));
    } catch (const Error& e) {
        return e.what();
    }
    return "";
}

bool skip_unless_root() {
    if (geteuid() == 0) return false;
    WARN("security tests need root: skipped");
    return true;
}

// One load as one pgforge run does it, in a process of its own (a library loaded once stays
// known to the dynamic loader by its name in that process): 0 loaded, 1 refused.
int load_in_child(const fs::path& manifest) {
    pid_t pid = fork();
    if (pid < 0) return -1;
    if (pid == 0) {
        try {
            LoadedPlugin::load(read_plugin_manifest(manifest));
            _exit(0);
        } catch (...) {
            _exit(1);
        }
    }
    int status = 0;
    waitpid(pid, &status, 0);
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

// Exchanges two names in a loop, as `as` (nullptr: root), until killed.
pid_t start_swapping(const fs::path& a, const fs::path& b, const OsUser* as) {
    pid_t pid = fork();
    if (pid != 0) return pid;
    if (as && (setgroups(0, nullptr) != 0 || setgid(as->gid) != 0 || setuid(as->uid) != 0))
        _exit(1);
    for (;;) renameat2(AT_FDCWD, a.c_str(), AT_FDCWD, b.c_str(), RENAME_EXCHANGE);
}

void stop(pid_t pid) {
    kill(pid, SIGKILL);
    waitpid(pid, nullptr, 0);
}

std::string slurp(const fs::path& file) {
    std::ifstream in(file, std::ios::binary);
    return std::string((std::istreambuf_iterator<char>(in)), {});
}

}  // namespace

TEST_CASE("a plugin whose library or manifest another user owns is refused") {
    if (skip_unless_root()) return;
    OsUser m = mallory();
    Base base;
    fs::path dir = make_dir(base / "plugins", fs::perms(0755));
    copy_recorder(dir);
    CHECK(load_error(dir / "recorder.plugin") == "");

    chown_to(dir / "recorder.so", m);
    CHECK_THAT(load_error(dir / "recorder.plugin"),
               Catch::Contains("plugin recorder refused: " + (dir / "recorder.so").string() +
                               " is owned by uid " + std::to_string(m.uid) +
                               ", neither root nor the current user"));
    chown_to(dir / "recorder.so", lookup_os_user("root"));
    chown_to(dir / "recorder.plugin", m);
    CHECK_THAT(load_error(dir / "recorder.plugin"),
               Catch::Contains((dir / "recorder.plugin").string() + " is owned by uid " +
                               std::to_string(m.uid)));
}

TEST_CASE("a plugin directory with a directory above it that another user can change is refused") {
    if (skip_unless_root()) return;
    OsUser m = mallory();
    Base base;

    // Owned by the attacker (who can rename what is in it).
    fs::path owned = make_dir(base / "owned", fs::perms(0755));
    chown_to(owned, m);
    copy_recorder(make_dir(owned / "plugins", fs::perms(0755)));
    CHECK_THAT(load_error(owned / "plugins" / "recorder.plugin"),
               Catch::Contains(owned.string() + " is owned by uid " + std::to_string(m.uid)));

    // Writable by the attacker's group.
    fs::path shared = make_dir(base / "shared", fs::perms(0775));
    REQUIRE(::chown(shared.c_str(), 0, m.gid) == 0);
    fs::permissions(shared, fs::perms(0775));
    copy_recorder(make_dir(shared / "plugins", fs::perms(0755)));
    CHECK_THAT(load_error(shared / "plugins" / "recorder.plugin"),
               Catch::Contains(shared.string() + " is writable by others than its owner"));

    // Sticky and world-writable above (like /tmp), root's directory below: safe.
    fs::path sticky = make_dir(base / "sticky", fs::perms(01777));
    copy_recorder(make_dir(sticky / "plugins", fs::perms(0755)));
    CHECK(load_error(sticky / "plugins" / "recorder.plugin") == "");
    // ... but not when the entry below is the attacker's.
    fs::path theirs = make_dir(sticky / "theirs", fs::perms(0755));
    copy_recorder(make_dir(theirs / "plugins", fs::perms(0755)));
    chown_to(theirs, m);
    CHECK_THAT(load_error(theirs / "plugins" / "recorder.plugin"),
               Catch::Contains(theirs.string() + " is owned by uid " + std::to_string(m.uid)));
}

TEST_CASE("names swapped while a plugin is checked and loaded never load a planted library") {
    if (skip_unless_root()) return;
    OsUser m = mallory();
    REQUIRE(fs::exists(planted_library));
    Base base;
    const fs::path marker = base / "planted-ran";
    ScopedEnv marker_env("PGFORGE_TEST_PLANTED_MARKER", marker.string());
    const auto each = std::chrono::milliseconds(2500);

    SECTION("the attacker swaps a directory in a directory it owns") {
        // owned/plugins: root's good plugin; owned/evil: the attacker's, with the planted
        // library under the plugin's name. The attacker exchanges the two names in a loop.
        fs::path owned = make_dir(base / "owned", fs::perms(0755));
        fs::path good = make_dir(owned / "plugins", fs::perms(0755));
        copy_recorder(good);
        fs::path evil = make_dir(owned / "evil", fs::perms(0755));
        fs::copy_file(fixtures / "recorder" / "recorder.plugin", evil / "recorder.plugin");
        fs::copy_file(planted_library, evil / "recorder.so");
        fs::permissions(evil / "recorder.so", fs::perms(0755));
        for (const auto& p : {owned, evil, evil / "recorder.plugin", evil / "recorder.so"})
            chown_to(p, m);

        pid_t attacker = start_swapping(good, evil, &m);
        REQUIRE(attacker > 0);
        int tries = 0, loaded = 0;
        auto until = std::chrono::steady_clock::now() + each;
        while (std::chrono::steady_clock::now() < until && !fs::exists(marker)) {
            ++tries;
            if (load_in_child(good / "recorder.plugin") == 0) ++loaded;
        }
        stop(attacker);
        INFO(tries << " tries, " << loaded << " loaded");
        CHECK_FALSE(fs::exists(marker));
        CHECK(tries > 100);  // the race ran
    }

    SECTION("the library is swapped between its check and its load") {
        // A trusted directory (root's, 0755) where the names recorder.so and planted.so (the
        // attacker's file) are exchanged in a loop: only the descriptor check can tell.
        fs::path dir = make_dir(base / "plugins", fs::perms(0755));
        copy_recorder(dir);
        fs::copy_file(planted_library, dir / "planted.so");
        fs::permissions(dir / "planted.so", fs::perms(0755));
        chown_to(dir / "planted.so", m);
        pid_t swapper = start_swapping(dir / "recorder.so", dir / "planted.so", nullptr);
        REQUIRE(swapper > 0);
        int tries = 0, loaded = 0, refused = 0;
        auto until = std::chrono::steady_clock::now() + each;
        while (std::chrono::steady_clock::now() < until && !fs::exists(marker)) {
            ++tries;
            int r = load_in_child(dir / "recorder.plugin");
            loaded += r == 0;
            refused += r == 1;
        }
        stop(swapper);
        INFO(tries << " tries, " << loaded << " loaded, " << refused << " refused");
        CHECK_FALSE(fs::exists(marker));
        CHECK(tries > 100);  // the race ran, both names were seen
        CHECK(loaded > 0);
        CHECK(refused > 0);
    }
}

TEST_CASE("site hooks under a directory another user can change are refused") {
    if (skip_unless_root()) return;
    OsUser m = mallory();
    Base base;
    fs::path owned = make_dir(base / "owned", fs::perms(0755));
    chown_to(owned, m);
    fs::path hooks = make_dir(owned / "hooks", fs::perms(0755));
    fs::path point = make_dir(hooks / "pre_start.d", fs::perms(0755));
    write_text(point / "check", "#!/bin/sh\nexit 0\n");
    fs::permissions(point / "check", fs::perms(0755));

    Settings s;
    s.config_dir = base / "nowhere";
    s.hook_dirs = {hooks};
    CHECK_THROWS_WITH(find_site_hooks(s, sdk::HookPoint::pre_start),
                      Catch::Contains("site hooks refused: " + owned.string() +
                                      " is owned by uid " + std::to_string(m.uid)));

    // The same hooks in a directory of root's are found; a hook file of the attacker's is not.
    fs::path safe = make_dir(base / "safe", fs::perms(0755));
    fs::rename(hooks, safe / "hooks");
    s.hook_dirs = {safe / "hooks"};
    CHECK(find_site_hooks(s, sdk::HookPoint::pre_start).size() == 1);
    chown_to(safe / "hooks" / "pre_start.d" / "check", m);
    CHECK_THROWS_WITH(
        find_site_hooks(s, sdk::HookPoint::pre_start),
        Catch::Contains("site hook refused: " +
                        (safe / "hooks" / "pre_start.d" / "check").string() + " is owned by uid"));
}

TEST_CASE("a site hook swapped between its check and its run never runs the planted script") {
    if (skip_unless_root()) return;
    OsUser m = mallory();
    Base base;
    fs::path out = make_dir(base / "out", fs::perms(0777));
    const fs::path marker = out / "planted-ran";
    fs::path point = make_dir(base / "hooks" / "pre_start.d", fs::perms(0755));
    fs::permissions(base / "hooks", fs::perms(0755));
    write_text(point / "check", "#!/bin/sh\nexit 0\n");
    fs::permissions(point / "check", fs::perms(0755));
    // The attacker's script, under a name site hooks skip; the two names are exchanged in a loop
    // (in root's directory: only the check of the descriptor that runs can tell them apart).
    write_text(point / "planted.disabled", "#!/bin/sh\n: > " + marker.string() + "\n");
    fs::permissions(point / "planted.disabled", fs::perms(0755));
    chown_to(point / "planted.disabled", m);
    write_text(base / "settings.ini", "prefix = " + (base / "prefix").string() +
                                          "\nrun_dir = " + (base / "run").string() +
                                          "\n[postgresql]\nport_min = 47000\nport_max = "
                                          "47999\n[hooks]\ndir = " +
                                          (base / "hooks").string() + "\n");
    SettingsOverrides o;
    o.settings_file = base / "settings.ini";
    pgforge::test::FakeDriver::Log driver;
    Context ctx(load_settings(o), std::make_unique<pgforge::test::FakeDriver>(driver));
    instances::CreateOptions create;
    create.name = "hooked";
    Instance i = instances::create(ctx, create);
    instances::stop(ctx, i);

    pid_t swapper = start_swapping(point / "check", point / "planted.disabled", nullptr);
    REQUIRE(swapper > 0);
    int tries = 0, started = 0, refused = 0;
    auto until = std::chrono::steady_clock::now() + std::chrono::milliseconds(2500);
    while (std::chrono::steady_clock::now() < until && !fs::exists(marker)) {
        ++tries;
        try {
            instances::start(ctx, i);
            ++started;
            instances::stop(ctx, i);
        } catch (const Error&) {
            ++refused;
        }
    }
    stop(swapper);
    INFO(tries << " tries, " << started << " started, " << refused << " refused");
    CHECK_FALSE(fs::exists(marker));
    CHECK(tries > 20);  // the race ran, both names were seen
    CHECK(started > 0);
    CHECK(refused > 0);
}

TEST_CASE("root's environment reaches neither the server nor a site hook") {
    if (skip_unless_root()) return;
    TestSite site;
    OsUser postgres = lookup_os_user("postgres");
    // Where the hook (run as postgres) leaves what it was given.
    fs::path dumps = make_dir(site.root() / "dumps", fs::perms(0700));
    chown_to(dumps, postgres);
    fs::path hooks = make_dir(site.root() / "hooks", fs::perms(0755));
    fs::path point = make_dir(hooks / "post_start.d", fs::perms(0755));
    write_text(point / "dump-env", "#!/bin/sh\nenv > " + (dumps / "hook.env").string() + "\n");
    fs::permissions(point / "dump-env", fs::perms(0755));
    site.add_settings("[hooks]\ndir = " + hooks.string() + "\n");

    // pgforge itself (the CLI), with secrets in its environment as root's shell would have them.
    auto pgforge = [&](std::vector<std::string> args) {
        Command c;
        c.argv = {PGFORGE_CLI_PATH, "--settings", site.settings_file().string()};
        c.argv.insert(c.argv.end(), args.begin(), args.end());
        c.env = {"PGPASSWORD=secret-password-4711", "SOME_TOKEN=secret-token-4711",
                 "PGOPTIONS=-c work_mem=secret-4711", "LANG=C.UTF-8"};
        c.timeout = 120;
        return run_process(c);
    };
    auto created = pgforge({"instance", "create", "leak"});
    INFO(created.out << created.err);
    REQUIRE(created.ok());
    fs::remove(dumps / "hook.env");
    auto restarted = pgforge({"instance", "restart", "leak"});
    INFO(restarted.out << restarted.err);
    REQUIRE(restarted.ok());

    Context ctx(site.settings());
    Instance i = instances::get(ctx, "leak");
    auto pm = read_postmaster_pid(i.data_dir);
    REQUIRE(pm);
    std::string environ = slurp("/proc/" + std::to_string(pm->pid) + "/environ");
    for (char& ch : environ)
        if (ch == '\0') ch = '\n';
    INFO("postmaster environment:\n" << environ);
    CHECK(environ.find("secret") == std::string::npos);
    CHECK(environ.find(std::string("PATH=") + default_path + "\n") != std::string::npos);
    CHECK(environ.find("HOME=" + postgres.home.string() + "\n") != std::string::npos);
    CHECK(environ.find("USER=postgres\n") != std::string::npos);
    CHECK(environ.find("LANG=C.UTF-8\n") != std::string::npos);

    // instance exec: the instance's variables and the terminal's, not the caller's secrets.
    Command exec;
    exec.argv = {PGFORGE_CLI_PATH,
                 "--settings",
                 site.settings_file().string(),
                 "instance",
                 "exec",
                 "leak",
                 "--",
                 "env"};
    exec.env = {"PGPASSWORD=secret-password-4711", "SOME_TOKEN=secret-token-4711",
                "TERM=xterm-4711"};
    exec.timeout = 60;
    auto shell = run_process(exec);
    INFO("instance exec environment:\n" << shell.out << shell.err);
    REQUIRE(shell.ok());
    CHECK(shell.out.find("secret") == std::string::npos);
    CHECK(shell.out.find("TERM=xterm-4711\n") != std::string::npos);
    CHECK(shell.out.find("PGPORT=" + std::to_string(i.port) + "\n") != std::string::npos);
    CHECK(shell.out.find("PGHOST=" + i.socket_dir.string() + "\n") != std::string::npos);

    std::string hook = slurp(dumps / "hook.env");
    INFO("site hook environment:\n" << hook);
    REQUIRE_FALSE(hook.empty());
    CHECK(hook.find("secret") == std::string::npos);
    for (const std::string& expected :
         {"PGDATA=" + i.data_dir.string(), "PGPORT=" + std::to_string(i.port),
          "PGHOST=" + i.socket_dir.string(), "PGUSER=" + i.superuser,
          std::string("PGFORGE_HOOK=post_start"), std::string("PGFORGE_OPERATION=restart"),
          "PGFORGE_INSTANCE=" + i.qualified_name(), "HOME=" + postgres.home.string()})
        CHECK(hook.find(expected + "\n") != std::string::npos);
}
