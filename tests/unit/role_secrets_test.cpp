// The pieces of roles that need no server: SCRAM-SHA-256 verifiers (as libpq makes them) and
// ~/.pgpass lines (as libpq reads them).
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <sys/stat.h>

#include <catch2/catch.hpp>
#include <filesystem>

#include "engine/conf/template.hpp"
#include "engine/operations/roles.hpp"
#include "temp_dir.hpp"

namespace fs = std::filesystem;
using namespace pgforge::roles;
using pgforge::test::ScopedEnv;
using pgforge::test::TempDir;
using pgforge::test::write_text;

namespace {
// Made by libpq 15's PQencryptPasswordConn(conn, password, "alice", "scram-sha-256").
const std::string kPassword = "correct horse:battery\\staple";
const std::string kVerifier =
    "SCRAM-SHA-256$4096:I7MSl7Iy3sBG6PkUvJ413g==$VOrr9Sipag08mN+2z1+cKkqBemWDBUBfjLvc3sui0oY=:"
    "XTOjhhAU9ZYZdNa0VwLfK6447h13fO5yZa624lvzXgA=";
}  // namespace

TEST_CASE("base64 round-trips and refuses what is not base64", "[unit][role]") {
    for (const std::string& s :
         std::vector<std::string>{"", "a", "ab", "abc", "abcd", std::string("\0\xff\x10", 3)})
        CHECK(detail::base64_decode(detail::base64_encode(s)) == s);
    CHECK(detail::base64_encode("pencil") == "cGVuY2ls");
    CHECK_FALSE(detail::base64_decode("abc"));
    CHECK_FALSE(detail::base64_decode("ab=c"));
    CHECK_FALSE(detail::base64_decode("a==="));
    CHECK_FALSE(detail::base64_decode("ab!d"));
}

TEST_CASE("a SCRAM verifier made by libpq matches its password and no other", "[unit][role]") {
    CHECK(detail::scram_matches(kVerifier, kPassword));
    CHECK_FALSE(detail::scram_matches(kVerifier, kPassword + " "));
    CHECK_FALSE(detail::scram_matches(kVerifier, "correct horse"));
    // Recomputed with the same salt and iterations, it is the same text.
    auto salt = detail::base64_decode("I7MSl7Iy3sBG6PkUvJ413g==");
    REQUIRE(salt);
    CHECK(detail::scram_verifier(kPassword, *salt, 4096) == kVerifier);
}

TEST_CASE("SCRAM keys agree with OpenSSL's PBKDF2 for long and short passwords and salts",
          "[unit][role]") {
    auto reference = [](const std::string& password, const std::string& salt, int iterations) {
        unsigned char salted[32], client[32], stored[32], server[32];
        unsigned int len = 0;
        REQUIRE(PKCS5_PBKDF2_HMAC(password.data(), static_cast<int>(password.size()),
                                  reinterpret_cast<const unsigned char*>(salt.data()),
                                  static_cast<int>(salt.size()), iterations, EVP_sha256(), 32,
                                  salted));
        HMAC(EVP_sha256(), salted, 32, reinterpret_cast<const unsigned char*>("Client Key"), 10,
             client, &len);
        HMAC(EVP_sha256(), salted, 32, reinterpret_cast<const unsigned char*>("Server Key"), 10,
             server, &len);
        EVP_Digest(client, 32, stored, &len, EVP_sha256(), nullptr);
        return "SCRAM-SHA-256$" + std::to_string(iterations) + ":" + detail::base64_encode(salt) +
               "$" + detail::base64_encode(std::string(reinterpret_cast<char*>(stored), 32)) + ":" +
               detail::base64_encode(std::string(reinterpret_cast<char*>(server), 32));
    };
    for (size_t n : {1, 8, 55, 63, 64, 65, 200})
        for (size_t s : {1, 16, 60}) {
            std::string password(n, 'p'), salt(s, '\x5a');
            password[0] = static_cast<char>(n);
            CHECK(detail::scram_verifier(password, salt, 7) == reference(password, salt, 7));
        }
    CHECK(detail::scram_verifier("x", "salt", 1) == reference("x", "salt", 1));
}

TEST_CASE("anything but a well-formed SCRAM verifier never matches", "[unit][role]") {
    for (const std::string& v : std::vector<std::string>{
             std::string(""), std::string("md5a3556571e93b0d20722ba62be61e8c2d"),
             std::string("SCRAM-SHA-256$"), std::string("SCRAM-SHA-256$4096:$:"),
             std::string("SCRAM-SHA-256$x:I7MSl7Iy3sBG6PkUvJ413g==$a:b"),
             std::string("SCRAM-SHA-256$0:I7MSl7Iy3sBG6PkUvJ413g==$") +
                 "VOrr9Sipag08mN+2z1+cKkqBemWDBUBfjLvc3sui0oY=:" +
                 "XTOjhhAU9ZYZdNa0VwLfK6447h13fO5yZa624lvzXgA=",
             kVerifier.substr(0, kVerifier.size() - 4)})
        CHECK_FALSE(detail::scram_matches(v, kPassword));
}

TEST_CASE(".pgpass fields are escaped as libpq reads them", "[unit][role]") {
    detail::PgpassEntry e{"/run/pg:x", "5432", "*", "a\\b:c", "p:w\\d"};
    std::string line = detail::pgpass_line(e);
    CHECK(line == "/run/pg\\:x:5432:*:a\\\\b\\:c:p\\:w\\\\d");
    auto back = detail::pgpass_parse(line);
    REQUIRE(back);
    CHECK(back->host == e.host);
    CHECK(back->user == e.user);
    CHECK(back->password == e.password);
    // libpq takes the rest of the line as the password, unescaped colons included.
    auto rest = detail::pgpass_parse("h:1:*:u:a:b");
    REQUIRE(rest);
    CHECK(rest->password == "a:b");
    CHECK_FALSE(detail::pgpass_parse("# h:1:*:u:p"));
    CHECK_FALSE(detail::pgpass_parse("h:1:*"));
    CHECK_FALSE(detail::pgpass_parse(""));
}

TEST_CASE("update_pgpass_port moves entries of one port and keeps the rest", "[unit][role]") {
    TempDir home("pgpass");
    ScopedEnv env("HOME", home.path().string());
    CHECK(pgpass_file() == home / ".pgpass");
    CHECK_FALSE(update_pgpass_port(5432, 5433));  // no file: nothing to do
    CHECK_FALSE(fs::exists(home / ".pgpass"));
    write_text(home / ".pgpass",
               "# mine\n/run/a:5432:*:alice:s\\:1\n/run/b:5432:*:bob:s2\nlocalhost:6000:*:x:y\n");
    fs::permissions(home / ".pgpass", fs::perms::owner_read | fs::perms::owner_write);
    CHECK(update_pgpass_port(5432, 5433, "/run/a"));
    CHECK(pgforge::read_text_file(home / ".pgpass") ==
          "# mine\n/run/a:5433:*:alice:s\\:1\n/run/b:5432:*:bob:s2\nlocalhost:6000:*:x:y\n");
    CHECK(update_pgpass_port(5432, 5434));
    CHECK(pgforge::read_text_file(home / ".pgpass") ==
          "# mine\n/run/a:5433:*:alice:s\\:1\n/run/b:5434:*:bob:s2\nlocalhost:6000:*:x:y\n");
    struct stat st {};
    REQUIRE(stat((home / ".pgpass").c_str(), &st) == 0);
    CHECK((st.st_mode & 0777) == 0600);
}
