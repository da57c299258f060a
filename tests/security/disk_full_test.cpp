// A full file system under the prefix (a small tmpfs, mounted here as root): commands that write
// say "no space left on device" naming the path; commands that only read keep working.
#include <sys/mount.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <string>
#include <vector>

#include "engine/core/error.hpp"
#include "engine/core/settings.hpp"
#include "engine/inventory/inventory.hpp"
#include "tests/support/test_site.hpp"

namespace fs = std::filesystem;
using namespace pgforge;
using pgforge::test::TestSite;

namespace {

// A tmpfs of `size` mounted on a new directory under `parent`, unmounted on the way out.
class SmallFileSystem {
  public:
    SmallFileSystem(const fs::path& parent, const std::string& size) : dir_(parent / "full") {
        fs::create_directories(dir_);
        const std::string options = "size=" + size + ",mode=0755";
        if (::mount("tmpfs", dir_.c_str(), "tmpfs", 0, options.c_str()) != 0)
            throw std::runtime_error("mount tmpfs on " + dir_.string() + ": " +
                                     std::strerror(errno));
    }
    ~SmallFileSystem() { ::umount2(dir_.c_str(), MNT_DETACH); }
    SmallFileSystem(const SmallFileSystem&) = delete;
    SmallFileSystem& operator=(const SmallFileSystem&) = delete;
    const fs::path& dir() const { return dir_; }

    // Writes a file until the file system refuses more.
    void fill() const {
        std::FILE* f = std::fopen((dir_ / "filler").c_str(), "w");
        REQUIRE(f != nullptr);
        std::vector<char> block(65536, 'x');
        while (std::fwrite(block.data(), 1, block.size(), f) == block.size() &&
               std::fflush(f) == 0) {
        }
        std::fclose(f);
        std::FILE* probe = std::fopen((dir_ / "probe").c_str(), "w");
        REQUIRE(probe != nullptr);
        std::fputc('x', probe);
        CHECK(std::fflush(probe) != 0);  // the file system is full
        std::fclose(probe);
        fs::remove(dir_ / "probe");
    }

  private:
    fs::path dir_;
};

Instance recorded(const Settings& s, const std::string& name, int port) {
    Instance i;
    i.name = name;
    i.version = "15";
    assign_instance_paths(s, i);
    i.port = port;
    i.owner = "postgres";
    i.superuser = "postgres";
    i.created_at = "2026-01-01T00:00:00.000Z";
    i.options = "{}";
    return i;
}

}  // namespace

TEST_CASE("on a full file system, reading commands work and writing ones say so",
          "[security][disk-full]") {
    REQUIRE(::geteuid() == 0);
    TestSite site;
    SmallFileSystem tmpfs(site.root(), "2m");
    // Characters that mean something in an SQLite URI, which the read-only open uses.
    const fs::path prefix = tmpfs.dir() / "pre#fix?%41";
    Settings s = site.settings();
    s.prefix = prefix;
    {
        Inventory inventory(s.inventory_file());
        inventory.add(recorded(s, "main", 6001));
        inventory.end_operation(inventory.begin_operation("create", "15/main"), true);
    }
    tmpfs.fill();

    auto cli = [&](std::vector<std::string> args) {
        args.insert(args.begin(), {"--prefix", prefix.string()});
        return site.cli(args);
    };
    const std::vector<std::pair<std::vector<std::string>, std::string>> reads = {
        {{"instance", "list"}, "main"},
        {{"instance", "list", "--json"}, "main"},
        {{"instance", "get", "main"}, "main"},
        {{"instance", "history", "15/main"}, "create  ok"}};
    for (const auto& [args, shown] : reads) {
        auto r = cli(args);
        INFO(args[1] << " exit " << r.status << "\n" << r.out << r.err);
        CHECK(r.status == 0);
        CHECK_THAT(r.out, Catch::Contains(shown));
        CHECK(r.err.empty());
    }
    auto status = cli({"instance", "status", "main"});
    INFO(status.out << status.err);
    CHECK(status.status == 3);  // not running, and said so

    // A write: the journal row of a drop cannot be written.
    auto drop = cli({"instance", "drop", "main"});
    INFO("drop exit " << drop.status << "\n" << drop.out << drop.err);
    CHECK(drop.status == 1);
    CHECK_THAT(drop.err, Catch::Contains("no space left on device"));
    CHECK_THAT(drop.err, Catch::Contains(prefix.string()));

    // The inventory is intact once there is room again.
    fs::remove(tmpfs.dir() / "filler");
    Inventory inventory(s.inventory_file());
    CHECK(inventory.find("15", "main"));

    // Opened while there was room, written once there is none.
    tmpfs.fill();
    try {
        for (int k = 0; k < 1000; ++k)
            inventory.add(recorded(s, "i" + std::to_string(k), 7000 + k));
        FAIL("1000 instances fitted in a full file system");
    } catch (const Error& e) {
        CHECK_THAT(e.what(), Catch::Contains("no space left on device") &&
                                 Catch::Contains(s.inventory_file().string()));
    }
}
