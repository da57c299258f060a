// The manifest of an interrupted configuration change lives in the data directory, which the
// instance's owner (postgres) can write. A manifest the owner plants must never make root
// write a file: only one root wrote itself is trusted.
#include <sys/stat.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <fstream>

#include "engine/conf/file_set.hpp"
#include "engine/conf/template.hpp"
#include "engine/core/error.hpp"
#include "engine/operations/instances.hpp"
#include "tests/support/test_site.hpp"

namespace fs = std::filesystem;
using namespace pgforge;
using pgforge::test::TestSite;

namespace {

struct Decoy {
    fs::path path;
    struct stat before {};
    explicit Decoy(const fs::path& p) : path(p) {
        std::ofstream(path) << "root's own\n";
        REQUIRE(chmod(path.c_str(), 0600) == 0);
        REQUIRE(stat(path.c_str(), &before) == 0);
    }
    void check_untouched() const {
        struct stat now {};
        REQUIRE(lstat(path.c_str(), &now) == 0);
        CHECK(S_ISREG(now.st_mode));
        CHECK(now.st_uid == 0);
        CHECK((now.st_mode & 07777) == 0600);
        CHECK(read_text_file(path) == "root's own\n");
    }
};

// A manifest in pgforge's format asking to put `target` back with the owner's content, owner
// and a world-writable mode.
std::string forged_manifest(const fs::path& target, const OsUser& owner) {
    std::string content = "postgres's now\n";
    std::string staged = ".pgforge-stage-0000000000000000";
    return "pgforge-configure 1\n1\n" + std::to_string(target.string().size()) + "\n" +
           target.string() + "\n" + std::to_string(staged.size()) + "\n" + staged + "\n1\n" +
           std::to_string(owner.uid) + "\n" + std::to_string(owner.gid) + "\n438\n" +
           std::to_string(content.size()) + "\n" + content + "\n";
}

}  // namespace

TEST_CASE("a configuration manifest planted by the owner is refused and writes nothing",
          "[security][conf]") {
    REQUIRE(geteuid() == 0);
    TestSite site;
    REQUIRE(site.cli({"instance", "create", "victim"}).status == 0);
    Context ctx(site.settings());
    Instance i = instances::get(ctx, "victim");
    OsUser owner = lookup_os_user("postgres");
    Decoy decoy(site.root() / "root-decoy");
    const fs::path manifest = conf::FileSet::manifest_path(i.data_dir);
    const std::string hba_before = read_text_file(i.data_dir / "pg_hba.conf");

    SECTION("a file of the owner's") {
        std::ofstream(manifest) << forged_manifest(decoy.path, owner);
        REQUIRE(chown(manifest.c_str(), owner.uid, owner.gid) == 0);
        REQUIRE(chmod(manifest.c_str(), 0600) == 0);
    }
    SECTION("a link to a file of root's") {
        fs::path elsewhere = site.root() / "root-manifest";
        std::ofstream(elsewhere) << forged_manifest(decoy.path, owner);
        REQUIRE(chmod(elsewhere.c_str(), 0600) == 0);
        fs::create_symlink(elsewhere, manifest);
        REQUIRE(lchown(manifest.c_str(), owner.uid, owner.gid) == 0);
    }
    for (const auto& args : std::vector<std::vector<std::string>>{
             {"conf", "set", "-i", "victim", "work_mem=12MB"},
             {"hba", "add", "-i", "victim", "host", "all", "all", "10.5.0.0/16", "trust"}}) {
        auto out = site.cli(args);
        CHECK(out.status == static_cast<int>(Exit::failure));
        CHECK(out.err.find(".pgforge-configure") != std::string::npos);
    }
    decoy.check_untouched();
    CHECK(read_text_file(i.data_dir / "pg_hba.conf") == hba_before);
}
