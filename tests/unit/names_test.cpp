// Instance names and references: what a user may type after `pgforge instance VERB`.
#include <catch2/catch.hpp>
#include <string>

#include "engine/core/error.hpp"
#include "engine/core/settings.hpp"

using pgforge::check_instance_name;
using pgforge::Error;
using pgforge::Exit;
using pgforge::parse_instance_ref;

namespace {

// Runs `f`, expecting Error(Exit::usage) whose message contains `needle`.
template <typename F>
void require_usage_error(F&& f, const std::string& needle) {
    try {
        f();
        FAIL("no error was thrown; expected one naming '" << needle << "'");
    } catch (const Error& e) {
        CHECK(e.code() == Exit::usage);
        CHECK_THAT(e.what(), Catch::Contains(needle));
    }
}

}  // namespace

TEST_CASE("check_instance_name accepts lowercase letters, digits and underscores", "[unit]") {
    CHECK_NOTHROW(check_instance_name("main"));
    CHECK_NOTHROW(check_instance_name("app_1"));
    CHECK_NOTHROW(check_instance_name("0"));
    CHECK_NOTHROW(check_instance_name("_"));
}

TEST_CASE("check_instance_name accepts a name of exactly 63 characters", "[unit]") {
    CHECK_NOTHROW(check_instance_name(std::string(63, 'a')));
}

TEST_CASE("check_instance_name rejects an empty name as a usage error", "[unit]") {
    require_usage_error([] { check_instance_name(""); }, "instance name ''");
}

TEST_CASE("check_instance_name rejects a name of 64 characters, naming it", "[unit]") {
    const std::string name(64, 'a');
    require_usage_error([&] { check_instance_name(name); }, name);
}

TEST_CASE("check_instance_name rejects characters outside a-z, 0-9 and _, naming the name",
          "[unit]") {
    const char* name = GENERATE("Main", "MAIN", "app-1", "15/main", "my app", "caf\xc3\xa9",
                                "main.", "main\n", "ma\tin");
    INFO("name: " << name);
    require_usage_error([&] { check_instance_name(name); }, name);
}

TEST_CASE("parse_instance_ref reads a bare name with no version", "[unit]") {
    auto ref = parse_instance_ref("main");
    CHECK(ref.name == "main");
    CHECK(ref.version.empty());
}

TEST_CASE("parse_instance_ref reads VERSION/NAME", "[unit]") {
    auto ref = parse_instance_ref("15/main");
    CHECK(ref.version == "15");
    CHECK(ref.name == "main");

    auto old = parse_instance_ref("9/legacy_db");
    CHECK(old.version == "9");
    CHECK(old.name == "legacy_db");
}

TEST_CASE("parse_instance_ref rejects a version that is not a number", "[unit]") {
    require_usage_error([] { parse_instance_ref("abc/main"); }, "abc/main");
}

TEST_CASE("parse_instance_ref rejects an empty version before the slash", "[unit]") {
    require_usage_error([] { parse_instance_ref("/main"); }, "/main");
}

TEST_CASE("parse_instance_ref rejects an empty name after the slash", "[unit]") {
    require_usage_error([] { parse_instance_ref("15/"); }, "instance name ''");
}

TEST_CASE("parse_instance_ref applies the name rules to the name part", "[unit]") {
    require_usage_error([] { parse_instance_ref("15/Main"); }, "Main");
    require_usage_error([] { parse_instance_ref("15/main/extra"); }, "main/extra");
}

TEST_CASE("parse_instance_ref rejects an empty reference", "[unit]") {
    require_usage_error([] { parse_instance_ref(""); }, "instance name ''");
}
