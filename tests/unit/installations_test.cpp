// PostgreSQL installations: reading `postgres --version` and `pg_config`, and choosing one.
// The installations used here are fakes (shell scripts that print a version): nothing runs a
// real server.
#include "engine/driver/installations.hpp"

#include <algorithm>
#include <catch2/catch.hpp>
#include <filesystem>
#include <string>
#include <vector>

#include "engine/core/error.hpp"
#include "temp_dir.hpp"

namespace fs = std::filesystem;
using pgforge::Error;
using pgforge::Exit;
using pgforge::Installation;
using pgforge::parse_pg_config;
using pgforge::parse_version;
using pgforge::Settings;
using pgforge::VersionInfo;
using pgforge::test::ScopedEnv;
using pgforge::test::TempDir;
using pgforge::test::write_text;

namespace {

// pg_config (no arguments) as Debian 12's postgresql-15 prints it.
const std::string kPgConfig15 =
    "BINDIR = /usr/lib/postgresql/15/bin\n"
    "DOCDIR = /usr/share/doc/postgresql-doc-15\n"
    "HTMLDIR = /usr/share/doc/postgresql-doc-15\n"
    "INCLUDEDIR = /usr/include/postgresql\n"
    "PKGINCLUDEDIR = /usr/include/postgresql\n"
    "INCLUDEDIR-SERVER = /usr/include/postgresql/15/server\n"
    "LIBDIR = /usr/lib/x86_64-linux-gnu\n"
    "PKGLIBDIR = /usr/lib/postgresql/15/lib\n"
    "LOCALEDIR = /usr/share/locale\n"
    "MANDIR = /usr/share/postgresql/15/man\n"
    "SHAREDIR = /usr/share/postgresql/15\n"
    "SYSCONFDIR = /etc/postgresql-common\n"
    "PGXS = /usr/lib/postgresql/15/lib/pgxs/src/makefiles/pgxs.mk\n"
    "CONFIGURE =  '--build=x86_64-linux-gnu' '--prefix=/usr' "
    "'--includedir=${prefix}/include' '--disable-option-checking' '--with-tcl' "
    "'--with-openssl' '--with-libxml' '--with-extra-version= (Debian 15.18-0+deb12u1)' "
    "'--enable-nls' '--enable-debug' '--disable-rpath' '--with-uuid=e2fs' "
    "'--with-pgport=5432' 'AWK=mawk' 'MKDIR_P=/bin/mkdir -p' "
    "'CFLAGS=-g -O2 -fstack-protector-strong -Wformat -Werror=format-security' "
    "'LDFLAGS=-Wl,-z,relro -Wl,-z,now' '--with-icu' '--with-llvm' "
    "'LLVM_CONFIG=/usr/bin/llvm-config-14' '--with-lz4' '--with-zstd' "
    "'build_alias=x86_64-linux-gnu' 'CPPFLAGS=-Wdate-time -D_FORTIFY_SOURCE=2'\n"
    "CC = gcc\n"
    "CPPFLAGS = -Wdate-time -D_FORTIFY_SOURCE=2 -D_GNU_SOURCE -I/usr/include/libxml2\n"
    "CFLAGS = -Wall -Wmissing-prototypes -Wpointer-arith -g -O2\n"
    "CFLAGS_SL = -fPIC\n"
    "LDFLAGS = -Wl,-z,relro -Wl,-z,now -Wl,--as-needed\n"
    "LDFLAGS_EX = \n"
    "LDFLAGS_SL = \n"
    "LIBS = -lpgcommon -lpgport -lselinux -lzstd -llz4 -lxslt -lxml2 -lpam -lssl -lcrypto -lz\n"
    "VERSION = PostgreSQL 15.18 (Debian 15.18-0+deb12u1)\n";

// A directory holding `postgres` (printing `version_line` for --version) and `initdb`.
fs::path fake_bindir(const TempDir& dir, const std::string& label,
                     const std::string& version_line) {
    fs::path bin = dir / label / "bin";
    write_text(bin / "postgres", "#!/bin/sh\necho '" + version_line + "'\n");
    write_text(bin / "initdb", "#!/bin/sh\nexit 0\n");
    for (const char* program : {"postgres", "initdb"})
        fs::permissions(bin / program, fs::perms::owner_all | fs::perms::group_read |
                                           fs::perms::group_exec | fs::perms::others_read |
                                           fs::perms::others_exec);
    return bin;
}

Settings settings_with_bindirs(std::vector<fs::path> bindirs) {
    Settings s;
    s.prefix = "/nonexistent/pgforge-unit";
    s.run_dir = "/nonexistent/pgforge-unit-run";
    s.bindirs = std::move(bindirs);
    return s;
}

}  // namespace

TEST_CASE("parse_version reads a packaged release with its distribution suffix", "[unit]") {
    VersionInfo v = parse_version("PostgreSQL 15.18 (Debian 15.18-0+deb12u1)");
    CHECK(v.major == 15);
    CHECK(v.minor == 18);
    CHECK(v.patch == 0);
    CHECK(v.state == "final");
    CHECK(v.level == 0);
}

TEST_CASE("parse_version reads what `postgres --version` prints", "[unit]") {
    VersionInfo v = parse_version("postgres (PostgreSQL) 16.2\n");
    CHECK(v.major == 16);
    CHECK(v.minor == 2);
    CHECK(v.state == "final");
}

TEST_CASE("parse_version reads a beta with its number", "[unit]") {
    VersionInfo v = parse_version("PostgreSQL 17beta2");
    CHECK(v.major == 17);
    CHECK(v.minor == 0);
    CHECK(v.state == "beta");
    CHECK(v.level == 2);
}

TEST_CASE("parse_version reads a release candidate with its number", "[unit]") {
    VersionInfo v = parse_version("PostgreSQL 16rc1");
    CHECK(v.major == 16);
    CHECK(v.state == "rc");
    CHECK(v.level == 1);
}

TEST_CASE("parse_version reads a development snapshot", "[unit]") {
    VersionInfo v = parse_version("PostgreSQL 18devel");
    CHECK(v.major == 18);
    CHECK(v.minor == 0);
    CHECK(v.state == "devel");
    CHECK(v.level == 0);
}

TEST_CASE("parse_version reads a pre-10 version as major, minor and patch", "[unit]") {
    VersionInfo v = parse_version("postgres (PostgreSQL) 9.6.24");
    CHECK(v.major == 9);
    CHECK(v.minor == 6);
    CHECK(v.patch == 24);
    CHECK(v.state == "final");
}

TEST_CASE("parse_version rejects text that holds no PostgreSQL version", "[unit]") {
    const char* text = GENERATE("", "garbage", "postgres: command not found", "MySQL 8.0.36",
                                "PostgreSQL version unknown");
    INFO("text: '" << text << "'");
    try {
        parse_version(text);
        FAIL("parse_version accepted '" << text << "'");
    } catch (const Error& e) {
        CHECK(e.code() == Exit::failure);
        CHECK_THAT(e.what(), Catch::Contains("version"));
    }
}

TEST_CASE("parse_pg_config keeps pg_config's directories, keyed in lowercase", "[unit]") {
    Installation inst;
    parse_pg_config(kPgConfig15, inst);
    CHECK(inst.paths["bindir"] == "/usr/lib/postgresql/15/bin");
    CHECK(inst.paths["libdir"] == "/usr/lib/x86_64-linux-gnu");
    CHECK(inst.paths["sharedir"] == "/usr/share/postgresql/15");
    CHECK(inst.paths["includedir-server"] == "/usr/include/postgresql/15/server");
    CHECK(inst.paths["pgxs"] == "/usr/lib/postgresql/15/lib/pgxs/src/makefiles/pgxs.mk");
    // Compiler flags and libraries are not paths.
    CHECK(inst.paths.count("cc") == 0);
    CHECK(inst.paths.count("cflags") == 0);
    CHECK(inst.paths.count("libs") == 0);
}

TEST_CASE("parse_pg_config normalises configure options", "[unit]") {
    Installation inst;
    parse_pg_config(kPgConfig15, inst);
    const auto& opts = inst.configure_options;
    CHECK(opts.at("with_openssl") == "true");
    CHECK(opts.at("enable_debug") == "true");
    CHECK(opts.at("prefix") == "/usr");
    CHECK(opts.at("includedir") == "${prefix}/include");
    CHECK(opts.at("with_uuid") == "e2fs");
    CHECK(opts.at("with_pgport") == "5432");
    CHECK(opts.at("with_extra_version") == " (Debian 15.18-0+deb12u1)");
    CHECK(opts.at("with_zstd") == "true");
    // Variables given to configure (AWK=mawk, CFLAGS=...) are not options.
    CHECK(opts.count("AWK") == 0);
    CHECK(opts.count("CFLAGS") == 0);
    CHECK(opts.count("build_alias") == 0);
}

TEST_CASE("parse_pg_config reads the version and whether SSL was built in", "[unit]") {
    Installation inst;
    parse_pg_config(kPgConfig15, inst);
    CHECK(inst.version == "PostgreSQL 15.18 (Debian 15.18-0+deb12u1)");
    CHECK(inst.ssl);
}

TEST_CASE("parse_pg_config sees SSL in the --with-ssl=openssl of PostgreSQL 14 and later",
          "[unit]") {
    Installation inst;
    parse_pg_config("CONFIGURE =  '--prefix=/opt/pg16' '--with-ssl=openssl'\n", inst);
    CHECK(inst.configure_options.at("with_ssl") == "openssl");
    CHECK(inst.ssl);
}

TEST_CASE("parse_pg_config reports no SSL when configure had none", "[unit]") {
    Installation inst;
    parse_pg_config("BINDIR = /opt/pg/bin\nCONFIGURE =  '--prefix=/opt/pg' '--enable-debug'\n",
                    inst);
    CHECK_FALSE(inst.ssl);
    CHECK(inst.paths.at("bindir") == "/opt/pg/bin");
    CHECK(inst.version.empty());
}

TEST_CASE("find_installations reads the version of a bindir named in the settings", "[unit]") {
    TempDir dir("inst");
    fs::path bin = fake_bindir(dir, "pg99", "postgres (PostgreSQL) 99.1");
    auto found = pgforge::find_installations(settings_with_bindirs({bin}));
    auto it = std::find_if(found.begin(), found.end(),
                           [&](const Installation& i) { return i.bindir == fs::canonical(bin); });
    REQUIRE(it != found.end());
    CHECK(it->version == "postgres (PostgreSQL) 99.1");
    CHECK(it->version_info.major == 99);
    CHECK(it->version_info.minor == 1);
    CHECK(it->major() == "99");
}

TEST_CASE("find_installations ignores a bindir without initdb", "[unit]") {
    TempDir dir("inst");
    fs::path bin = fake_bindir(dir, "pg98", "postgres (PostgreSQL) 98.1");
    fs::remove(bin / "initdb");
    for (const auto& i : pgforge::find_installations(settings_with_bindirs({bin})))
        CHECK(i.bindir != fs::canonical(bin));
}

TEST_CASE("select_installation picks the installation of the requested major version", "[unit]") {
    TempDir dir("inst");
    fs::path bin = fake_bindir(dir, "pg99", "postgres (PostgreSQL) 99.1");
    Installation inst = pgforge::select_installation(settings_with_bindirs({bin}), "99");
    CHECK(inst.bindir == fs::canonical(bin));
    CHECK(inst.major() == "99");
}

TEST_CASE("select_installation of a version that is not installed is not_found, naming it",
          "[unit]") {
    TempDir dir("inst");
    fs::path bin = fake_bindir(dir, "pg99", "postgres (PostgreSQL) 99.1");
    ScopedEnv no_env_version("PGFORGE_POSTGRES_VERSION", std::nullopt);
    try {
        pgforge::select_installation(settings_with_bindirs({bin}), "999");
        FAIL("select_installation found a PostgreSQL 999");
    } catch (const Error& e) {
        CHECK(e.code() == Exit::not_found);
        CHECK_THAT(e.what(), Catch::Contains("999"));
        // ... and says what does exist, newest first.
        CHECK_THAT(e.what(), Catch::Contains("found: 99"));
    }
}
