// hba_file and ident_file name the files hba list and ident list read: the instance owner
// pointing them at a file only root can read must not get it printed by pgforge running as root.
#include <sys/stat.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <cstdlib>
#include <fstream>

#include "engine/operations/instances.hpp"
#include "tests/support/test_site.hpp"

namespace fs = std::filesystem;
using namespace pgforge;
using pgforge::test::TestSite;

namespace {

const std::string kMark = "ROOT-SECRET-hba-51e0";

std::string quote(const std::string& s) {
    std::string out = "'";
    for (char c : s) out += c == '\'' ? std::string("'\\''") : std::string(1, c);
    return out + "'";
}

// A root-only file whose lines an hba listing would print as invalid records.
struct Secret {
    fs::path dir, file;
    Secret() {
        char tmpl[] = "/tmp/pgforge-authdecoy-XXXXXX";
        REQUIRE(mkdtemp(tmpl) != nullptr);
        dir = tmpl;
        chmod(dir.c_str(), 0755);
        file = dir / "secret";
        std::ofstream(file) << "root:" << kMark << ":19000:0:99999:7:::\n";
        chmod(file.c_str(), 0600);
    }
    ~Secret() {
        std::error_code ec;
        fs::remove_all(dir, ec);
    }
};

}  // namespace

TEST_CASE("attack: hba_file or ident_file pointed at a root-only file is not read by root",
          "[security][files]") {
    REQUIRE(getuid() == 0);
    Secret secret;
    TestSite site;
    REQUIRE(site.cli({"instance", "create", "auth", "--state", "stopped"}).status == 0);
    Context ctx(site.settings());
    Instance i = instances::get(ctx, "auth");
    const std::string setting = GENERATE(std::string("hba_file"), std::string("ident_file"));
    // The owner's own edit of its postgresql.conf.
    const std::string line = setting + " = '" + secret.file.string() + "'";
    REQUIRE(std::system(("runuser -u postgres -- sh -c " +
                         quote("printf '%s\\n' " + quote(line) + " >> " +
                               quote((i.data_dir / "postgresql.conf").string())))
                            .c_str()) == 0);
    const std::string verb = setting == "hba_file" ? "hba" : "ident";
    for (const char* format : {"--json", "--log-level=info"}) {
        auto out = site.cli({format, verb, "list", "-i", "auth"});
        INFO(setting << " " << format << ": " << out.out << out.err);
        CHECK(out.status != 0);
        CHECK(out.out.find(kMark) == std::string::npos);
        CHECK(out.err.find(kMark) == std::string::npos);
        CHECK(out.err.find(secret.file.string()) != std::string::npos);  // says which file
    }
}
