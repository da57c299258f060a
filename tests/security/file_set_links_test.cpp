// A configure's file set works as root in directories of the instance's owner: a directory on a
// file's path that the owner turned into a link (before the command, or between reading the
// files and writing them) must not take root's writes into another user's or root's directory.
#include <pwd.h>
#include <sys/stat.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <cstdlib>
#include <fstream>

#include "engine/conf/file_set.hpp"
#include "engine/core/error.hpp"
#include "engine/core/process.hpp"

namespace fs = std::filesystem;
using namespace pgforge;
using pgforge::conf::FileSet;

namespace {

void put(const fs::path& file, const std::string& text, mode_t mode) {
    std::ofstream(file, std::ios::binary) << text;
    REQUIRE(::chmod(file.c_str(), mode) == 0);
}

std::string read(const fs::path& file) {
    std::ifstream in(file, std::ios::binary);
    return std::string((std::istreambuf_iterator<char>(in)), {});
}

// <tmp>/root-decoy (root's, 0755, a 0644 file in it) and <tmp>/data (postgres's, 0700).
struct Place {
    fs::path base, decoy, data;
    OsUser owner = lookup_os_user("postgres");
    Place() {
        char tmpl[] = "/tmp/pgforge-fileset-links-XXXXXX";
        REQUIRE(mkdtemp(tmpl) != nullptr);
        base = tmpl;
        REQUIRE(::chmod(base.c_str(), 0755) == 0);
        decoy = base / "root-decoy";
        fs::create_directory(decoy);
        REQUIRE(::chmod(decoy.c_str(), 0755) == 0);
        put(decoy / "public.conf", "public_value = 1\n", 0644);
        data = base / "data";
        fs::create_directory(data);
        REQUIRE(::chown(data.c_str(), owner.uid, owner.gid) == 0);
        REQUIRE(::chmod(data.c_str(), 0700) == 0);
    }
    ~Place() {
        std::error_code ec;
        fs::remove_all(base, ec);
    }
    // The owner's link `data/NAME` to the decoy (lchown: the link is the owner's).
    void link(const std::string& name) {
        fs::create_directory_symlink(decoy, data / name);
        REQUIRE(::lchown((data / name).c_str(), owner.uid, owner.gid) == 0);
    }
    void decoy_unchanged() {
        std::vector<std::string> names;
        for (const auto& e : fs::directory_iterator(decoy)) names.push_back(e.path().filename());
        CHECK(names == std::vector<std::string>{"public.conf"});
        CHECK(read(decoy / "public.conf") == "public_value = 1\n");
        struct stat st {};
        REQUIRE(::stat((decoy / "public.conf").c_str(), &st) == 0);
        CHECK(st.st_uid == 0);
        CHECK((st.st_mode & 07777) == 0644);
    }
};

}  // namespace

TEST_CASE("a file set does not write through a directory link the owner planted",
          "[security][file_set]") {
    REQUIRE(geteuid() == 0);
    Place p;
    p.link("conf.d");
    FileSet set(p.data);
    // An include the owner named: one that exists behind the link, and a new one.
    SECTION("an existing file behind the link") {
        CHECK_THROWS_AS(
            [&] {
                set.add(p.data / "conf.d" / "public.conf", "public_value = 2\n", &p.owner,
                        fs::perms(0600));
                set.apply();
            }(),
            Error);
    }
    SECTION("a new file behind the link") {
        CHECK_THROWS_AS(
            [&] {
                set.add(p.data / "conf.d" / "new.conf", "x = 1\n", &p.owner, fs::perms(0600));
                set.apply();
            }(),
            Error);
    }
    p.decoy_unchanged();
}

TEST_CASE("a file set does not follow a directory swapped for a link after the files were read",
          "[security][file_set]") {
    REQUIRE(geteuid() == 0);
    Place p;
    fs::create_directory(p.data / "conf.d");
    REQUIRE(::chown((p.data / "conf.d").c_str(), p.owner.uid, p.owner.gid) == 0);
    put(p.data / "conf.d" / "public.conf", "public_value = 1\n", 0644);
    REQUIRE(::chown((p.data / "conf.d" / "public.conf").c_str(), p.owner.uid, p.owner.gid) == 0);
    FileSet set(p.data);
    set.add(p.data / "conf.d" / "public.conf", "public_value = 2\n", &p.owner, fs::perms(0600));
    // The owner moves the directory away and puts a link in its place.
    fs::rename(p.data / "conf.d", p.data / "conf.d.moved");
    p.link("conf.d");
    CHECK_THROWS_AS(set.apply(), Error);
    p.decoy_unchanged();
    // Nothing was left half-applied in the owner's directory either.
    CHECK(read(p.data / "conf.d.moved" / "public.conf") == "public_value = 1\n");
}
