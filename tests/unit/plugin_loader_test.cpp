// The plugin boundary: manifests, the safety check, the descriptor check, and each fixture that
// breaks one rule, with the message it gets.
#include <catch2/catch.hpp>
#include <cstddef>
#include <fstream>
#include <functional>
#include <iterator>

#include "engine/core/error.hpp"
#include "engine/operations/instances.hpp"
#include "engine/pipeline/pipeline.hpp"
#include "engine/pipeline/plugin_host.hpp"
#include "temp_dir.hpp"

namespace fs = std::filesystem;
using namespace pgforge;
using pgforge::test::TempDir;

namespace {

const fs::path fixtures = PGFORGE_TEST_PLUGIN_DIR;

fs::path manifest_of(const std::string& name) {
    return fixtures / name / (name + ".plugin");
}

std::string load_error(const std::string& name) {
    try {
        LoadedPlugin::load(read_plugin_manifest(manifest_of(name)));
    } catch (const Error& e) {
        return e.what();
    }
    return "";
}

fs::path write_manifest(const TempDir& dir, const std::string& name, const std::string& text) {
    fs::path file = dir / (name + ".plugin");
    std::ofstream(file) << text;
    return file;
}

std::string manifest_error(const TempDir& dir, const std::string& name, const std::string& text) {
    try {
        read_plugin_manifest(write_manifest(dir, name, text));
    } catch (const Error& e) {
        return e.what();
    }
    return "";
}

}  // namespace

TEST_CASE("a good plugin loads: manifest, descriptor, object, hooks") {
    auto m = read_plugin_manifest(manifest_of("recorder"));
    CHECK(m.name == "recorder");
    CHECK(m.sdk_major == 1);
    CHECK(m.priorities.at(sdk::HookPoint::pre_start) == 50);
    CHECK(m.families.count("recorder") == 1);
    CHECK(m.library == fixtures / "recorder" / "recorder.so");
    auto p = LoadedPlugin::load(m);
    CHECK(p->version() == "0.1.0");
    auto commands = p->commands();
    REQUIRE(commands.size() == 3);
    CHECK(commands[0].verb == "echo");
}

TEST_CASE("a plugin built for another SDK major version is refused naming both versions") {
    std::string e = load_error("bad_major");
    CHECK_THAT(e, Catch::Contains("bad_major.so was built for pgforge SDK 2.0, this pgforge has "
                                  "SDK 1.3 (the major versions must be equal)"));
}

TEST_CASE("a plugin needing a newer SDK minor version is refused") {
    CHECK_THAT(load_error("newer_minor"),
               Catch::Contains("needs pgforge SDK 1.4, newer than this pgforge's SDK 1.3"));
}

TEST_CASE("a descriptor smaller than the SDK's is refused before anything is called") {
    CHECK_THAT(load_error("bad_size"),
               Catch::Contains("its descriptor is 12 bytes, SDK 1.3 needs at least 56"));
}

TEST_CASE("a library without the descriptor symbol is refused") {
    CHECK_THAT(
        load_error("no_symbol"),
        Catch::Contains("exports no pgforge_plugin_descriptor_v1 (is it a pgforge plugin?)"));
}

TEST_CASE("a descriptor whose name differs from the manifest is refused") {
    CHECK_THAT(load_error("misnamed"),
               Catch::Contains("calls itself 'someone_else' but its manifest says 'misnamed'"));
}

TEST_CASE("a plugin file or directory writable by others is refused") {
    TempDir dir("plugin-unsafe");
    fs::permissions(dir.path(), fs::perms(0755));
    for (const char* f : {"recorder.so", "recorder.plugin"})
        fs::copy_file(fixtures / "recorder" / f, dir / f);
    auto m = read_plugin_manifest(dir / "recorder.plugin");
    CHECK_NOTHROW(LoadedPlugin::load(m));

    fs::permissions(dir / "recorder.so", fs::perms(0775));
    CHECK_THROWS_WITH(LoadedPlugin::load(m),
                      Catch::Contains("plugin recorder refused: " + (dir / "recorder.so").string() +
                                      " is writable by others than its owner"));
    fs::permissions(dir / "recorder.so", fs::perms(0755));
    fs::permissions(dir.path(), fs::perms(0777));
    CHECK_THROWS_WITH(LoadedPlugin::load(m), Catch::Contains("is writable by others"));
    fs::permissions(dir.path(), fs::perms(0755));
    fs::permissions(dir / "recorder.plugin", fs::perms(0666));
    CHECK_THROWS_WITH(LoadedPlugin::load(m), Catch::Contains("recorder.plugin is writable"));
}

TEST_CASE("manifest errors name the file and the key") {
    TempDir dir("manifest");
    CHECK_THAT(manifest_error(dir, "a", "name = a\nsdk = 1.0\n"),
               Catch::Contains("a.plugin: 'library' is missing"));
    CHECK_THAT(manifest_error(dir, "b", "name = b\nsdk = one\nlibrary = b.so\n"),
               Catch::Contains("sdk 'one' is not MAJOR.MINOR"));
    CHECK_THAT(
        manifest_error(dir, "c", "name = c\nsdk = 1.0\nlibrary = c.so\n[hooks]\npre_fly = 1\n"),
        Catch::Contains("unknown hook point 'pre_fly'"));
    CHECK_THAT(manifest_error(dir, "d",
                              "name = d\nsdk = 1.0\nlibrary = d.so\n[hooks]\npre_start = soon\n"),
               Catch::Contains("priority of pre_start must be a number, not 'soon'"));
    CHECK_THAT(manifest_error(dir, "e", "name = other\nsdk = 1.0\nlibrary = e.so\n"),
               Catch::Contains("declares plugin 'other' but is named e.plugin"));
    // SDK 1.3's points belong to 1.3 plugins: an older plugin is never called there.
    CHECK_THAT(manifest_error(dir, "g",
                              "name = g\nsdk = 1.2\nlibrary = g.so\n[hooks]\npost_promote = 1\n"),
               Catch::Contains("g.plugin: hook point post_promote needs SDK 1.3, the manifest "
                               "says sdk = 1.2"));
    CHECK_NOTHROW(read_plugin_manifest(write_manifest(
        dir, "h", "name = h\nsdk = 1.3\nlibrary = h.so\n[hooks]\npre_promote = 1\n")));
    CHECK_THAT(manifest_error(dir, "f", "name = f\nsdk = 1.0\nlibrary = f.so\ncolour = red\n"),
               Catch::Contains("unknown key 'colour'"));
    CHECK_THAT(manifest_error(dir, "Bad", "name = Bad\nsdk = 1.0\nlibrary = b.so\n"),
               Catch::Contains("name 'Bad' is missing or invalid"));
}

TEST_CASE("check_descriptor: the first fields decide before anything else is read") {
    pgforge_plugin_descriptor d{
        1, 0, sizeof(pgforge_plugin_descriptor), "x", "1", nullptr, nullptr, nullptr, nullptr};
    CHECK_THAT(check_descriptor(&d, "x.so", "x"), Catch::Contains("lacks a name, version, create"));
    CHECK_THAT(check_descriptor(nullptr, "x.so", "x"), Catch::Contains("descriptor is null"));
}

namespace {

Settings site_with(const TempDir& dir, const std::vector<std::string>& enabled,
                   const std::vector<std::string>& required = {}) {
    Settings s;
    s.prefix = dir / "prefix";
    s.plugin_dirs = {fixtures / "recorder", fixtures / "bad_major", fixtures / "recorder_b",
                     fixtures / "stray_commands"};
    s.enabled_plugins = enabled;
    s.required_plugins = required;
    s.sections["recorder_b"]["fail_setup"] = "yes";
    return s;
}

}  // namespace

TEST_CASE("only enabled plugins load; a broken one is left out with its error") {
    TempDir dir("host");
    Context ctx(site_with(dir, {"recorder", "bad_major"}));
    auto& host = ctx.plugins();
    REQUIRE(host.loaded().size() == 1);
    CHECK(host.loaded()[0]->name() == "recorder");
    const PluginRecord* bad = host.record("bad_major");
    REQUIRE(bad);
    CHECK_FALSE(bad->loaded);
    CHECK_THAT(bad->error, Catch::Contains("SDK 2.0"));
    const PluginRecord* off = host.record("recorder_b");
    REQUIRE(off);
    CHECK_FALSE(off->enabled);
}

TEST_CASE("a setup refusal leaves the plugin out, naming its settings section") {
    TempDir dir("host");
    Context ctx(site_with(dir, {"recorder_b"}));
    CHECK(ctx.plugins().loaded().empty());
    CHECK_THAT(ctx.plugins().record("recorder_b")->error,
               Catch::Contains("plugin recorder_b: setup refused by its settings"));
}

TEST_CASE("a broken enabled plugin fails the points its manifest names, unless skipped") {
    TempDir dir("host");
    {
        Context ctx(site_with(dir, {"recorder", "recorder_b"}));
        auto& host = ctx.plugins();
        REQUIRE(host.loaded().size() == 1);
        REQUIRE(host.record("recorder_b")->broken());
        for (auto point : sdk::all_hook_points)
            CHECK_THROWS_WITH(
                host.check_point(point),
                Catch::Contains("plugin recorder_b is enabled but broken, and would "
                                "run at " +
                                std::string(sdk::to_string(point)) +
                                ": plugin recorder_b: setup refused by its settings"));
        CHECK(host.skipped_at(sdk::HookPoint::pre_drop).empty());
    }
    {
        Settings s = site_with(dir, {"recorder", "recorder_b"});
        s.skipped_plugins = {"recorder_b"};
        Context ctx(s);
        auto& host = ctx.plugins();
        CHECK_NOTHROW(host.check_point(sdk::HookPoint::pre_drop));
        CHECK(host.record("recorder_b")->skipped);
        CHECK_FALSE(host.record("recorder_b")->broken());
        REQUIRE(host.skipped_at(sdk::HookPoint::pre_drop).size() == 1);
        CHECK(host.skipped_at(sdk::HookPoint::pre_drop)[0]->manifest.name == "recorder_b");
    }
    {
        // Only the points of its manifest; an unreadable manifest (no library) at every point.
        PluginRecord r;
        r.enabled = true;
        r.manifest.library = "/x.so";
        r.manifest.priorities[sdk::HookPoint::pre_start] = 10;
        CHECK(r.hooks_at(sdk::HookPoint::pre_start));
        CHECK_FALSE(r.hooks_at(sdk::HookPoint::pre_drop));
        r.manifest.library.clear();
        CHECK(r.hooks_at(sdk::HookPoint::pre_drop));
    }
}

TEST_CASE("a required plugin that is missing or broken is fatal (--require-plugin)") {
    TempDir dir("host");
    {
        Context ctx(site_with(dir, {}, {"nosuch"}));
        CHECK_THROWS_WITH(ctx.plugins(),
                          Catch::Contains("required plugin nosuch is not installed"));
    }
    {
        Context ctx(site_with(dir, {}, {"bad_major"}));
        CHECK_THROWS_WITH(ctx.plugins(),
                          Catch::Contains("required plugin bad_major failed to load"));
    }
    {
        // Required means enabled too.
        Context ctx(site_with(dir, {}, {"recorder"}));
        CHECK(ctx.plugins().loaded().size() == 1);
    }
}

TEST_CASE("the first manifest of a name on the search path wins") {
    TempDir dir("host");
    Settings s = site_with(dir, {"recorder"});
    s.plugin_dirs.insert(s.plugin_dirs.begin(), fixtures / "recorder");
    Context ctx(s);
    CHECK(ctx.plugins().records().front().manifest.file == manifest_of("recorder"));
}

TEST_CASE(
    "a plugin's whole path is checked: a shared directory above it is refused unless sticky") {
    TempDir dir("plugin-path");
    fs::permissions(dir.path(), fs::perms(0755));
    const fs::path parent = dir / "parent";
    const fs::path plugins = parent / "plugins";
    fs::create_directories(plugins);
    fs::permissions(parent, fs::perms(0755));
    fs::permissions(plugins, fs::perms(0755));
    for (const char* f : {"recorder.so", "recorder.plugin"})
        fs::copy_file(fixtures / "recorder" / f, plugins / f);
    auto m = read_plugin_manifest(plugins / "recorder.plugin");
    CHECK_NOTHROW(LoadedPlugin::load(m));

    fs::permissions(parent, fs::perms(0777));
    CHECK_THROWS_WITH(LoadedPlugin::load(m),
                      Catch::Contains("plugin recorder refused: " + parent.string() +
                                      " is writable by others than its owner"));
    CHECK_THROWS_WITH(read_plugin_manifest(plugins / "recorder.plugin"),
                      Catch::Contains("plugin manifest refused: " + parent.string()));
    // Sticky (like /tmp): only the owner of plugins/ (root or us) can rename or remove it.
    fs::permissions(parent, fs::perms(01777));
    CHECK_NOTHROW(LoadedPlugin::load(m));
    // The plugin directory itself is never shared, sticky or not.
    fs::permissions(plugins, fs::perms(01777));
    CHECK_THROWS_WITH(
        LoadedPlugin::load(m),
        Catch::Contains("plugin recorder refused: " + plugins.string() + " is writable"));
    fs::permissions(plugins, fs::perms(0755));

    // A symbolic link on the way is followed once, and the real path is what is checked.
    fs::create_directory_symlink(plugins, dir / "link");
    CHECK_NOTHROW(LoadedPlugin::load(read_plugin_manifest(dir / "link" / "recorder.plugin")));
    fs::permissions(parent, fs::perms(0777));
    CHECK_THROWS_WITH(read_plugin_manifest(dir / "link" / "recorder.plugin"),
                      Catch::Contains(parent.string() + " is writable by others"));
}

TEST_CASE(
    "libraries loaded one after another through the same descriptor number are each their "
    "own") {
    // Each library is loaded through /proc/self/fd/N and its descriptor closed after: the next
    // one gets the same N while the first is still loaded.
    auto a = LoadedPlugin::load(read_plugin_manifest(manifest_of("recorder")));
    auto b = LoadedPlugin::load(read_plugin_manifest(manifest_of("recorder_b")));
    auto c = LoadedPlugin::load(read_plugin_manifest(manifest_of("recorder")));
    CHECK(a->name() == "recorder");
    CHECK(b->name() == "recorder_b");
    CHECK(c->name() == "recorder");
}

TEST_CASE("a library the loader refuses is named by its real path, not its descriptor") {
    TempDir dir("plugin-elf");
    fs::permissions(dir.path(), fs::perms(0755));
    write_manifest(dir, "notelf", "name = notelf\nsdk = 1.0\nlibrary = notelf.so\n");
    std::ofstream(dir / "notelf.so") << "not a shared object\n";
    fs::permissions(dir / "notelf.so", fs::perms(0755));
    std::string e;
    try {
        LoadedPlugin::load(read_plugin_manifest(dir / "notelf.plugin"));
    } catch (const Error& x) {
        e = x.what();
    }
    CHECK_THAT(e, Catch::Contains("plugin notelf: cannot load " + (dir / "notelf.so").string() +
                                  ": " + (dir / "notelf.so").string()));
    CHECK_THAT(e, !Catch::Contains("/proc/self/fd"));
}

// ---------------------------------------------------------------- one source of truth

namespace {

// A copy of fixture `name` (library and generated manifest) in `dir`, the manifest edited by
// `edit` as someone editing an installed manifest would; the load error ("" when it loads).
std::string load_edited(const TempDir& dir, const std::string& name,
                        const std::function<std::string(std::string)>& edit) {
    fs::permissions(dir.path(), fs::perms(0755));
    fs::copy_file(fixtures / name / (name + ".so"), dir / (name + ".so"),
                  fs::copy_options::overwrite_existing);
    std::ifstream in(manifest_of(name));
    std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    write_manifest(dir, name, edit(text));
    try {
        LoadedPlugin::load(read_plugin_manifest(dir / (name + ".plugin")));
    } catch (const Error& e) {
        return e.what();
    }
    return "";
}

std::string replaced(std::string text, const std::string& from, const std::string& to) {
    auto at = text.find(from);
    REQUIRE(at != std::string::npos);
    return text.replace(at, from.size(), to);
}

}  // namespace

TEST_CASE("pgforge_add_plugin: the generated manifest says what the descriptor says") {
    auto m = read_plugin_manifest(manifest_of("follower"));
    CHECK(m.version == "0.1.0");
    CHECK(m.summary == "test fixture (GOOD)");
    CHECK(m.priorities == std::map<sdk::HookPoint, int>{{sdk::HookPoint::pre_start, 10}});
    CHECK(m.order.at(sdk::HookPoint::pre_start).after ==
          std::vector<std::string>{"recorder", "not_installed"});
    CHECK(m.families.count("follower") == 1);
    auto p = LoadedPlugin::load(m);
    CHECK(p->version() == "0.1.0");
}

TEST_CASE("a library whose code says another version than its manifest is refused naming both") {
    CHECK_THAT(load_error("wrong_version"),
               Catch::Contains("plugin wrong_version: its library " +
                               (fixtures / "wrong_version" / "wrong_version.so").string() +
                               " says version '9.9.9', its manifest " +
                               manifest_of("wrong_version").string() + " says '0.1.0'"));
}

TEST_CASE("a manifest that disagrees with its library on a hook point is refused naming both") {
    TempDir dir("manifest-edited");
    // Unchanged, it loads.
    CHECK(load_edited(dir, "follower", [](std::string t) { return t; }).empty());
    // A point the code handles, left out of the manifest (the drop guard that silently went).
    CHECK_THAT(load_edited(dir, "recorder",
                           [](std::string t) { return replaced(t, "pre_drop = 50\n", ""); }),
               Catch::Contains("plugin recorder: its library " + (dir / "recorder.so").string() +
                               " says hook pre_drop '50', its manifest " +
                               (dir / "recorder.plugin").string() + " says '(not handled)'"));
    // A point the code does not declare, added to the manifest.
    CHECK_THAT(load_edited(dir, "follower",
                           [](std::string t) {
                               return replaced(t, "[hooks]\n", "[hooks]\npost_drop = 10\n");
                           }),
               Catch::Contains("says hook post_drop '(not handled)', its manifest " +
                               (dir / "follower.plugin").string() + " says '10'"));
    // Another priority, another order.
    CHECK_THAT(load_edited(dir, "follower",
                           [](std::string t) { return replaced(t, "= 10 after", "= 20 after"); }),
               Catch::Contains("says hook pre_start '10 after=recorder,not_installed', its "
                               "manifest " +
                               (dir / "follower.plugin").string() +
                               " says '20 after=recorder,not_installed'"));
    CHECK_THAT(
        load_edited(dir, "follower",
                    [](std::string t) { return replaced(t, " after=recorder,not_installed", ""); }),
        Catch::Contains("says hook pre_start '10 after=recorder,not_installed', its "
                        "manifest " +
                        (dir / "follower.plugin").string() + " says '10'"));
    // And the version.
    CHECK_THAT(load_edited(
                   dir, "follower",
                   [](std::string t) { return replaced(t, "version = 0.1.0", "version = 9.9.9"); }),
               Catch::Contains("says version '0.1.0', its manifest " +
                               (dir / "follower.plugin").string() + " says '9.9.9'"));
}

TEST_CASE("a 1.0 plugin with a hand-written manifest loads when it agrees with its descriptor") {
    auto p = LoadedPlugin::load(read_plugin_manifest(manifest_of("legacy")));
    CHECK(p->name() == "legacy");
    CHECK(p->version() == "0.1.0");
    TempDir dir("manifest-legacy");
    // Its descriptor carries no hook points: the manifest says which (as in 1.0).
    CHECK(load_edited(dir, "legacy", [](std::string t) {
              return replaced(t, "post_start = 50\n", "post_drop = 70\n");
          }).empty());
    // Its version must still be the code's.
    CHECK_THAT(load_edited(
                   dir, "legacy",
                   [](std::string t) { return replaced(t, "version = 0.1.0", "version = 0.2.0"); }),
               Catch::Contains("says version '0.1.0', its manifest " +
                               (dir / "legacy.plugin").string() + " says '0.2.0'"));
    // A manifest without a version says nothing to disagree with.
    CHECK(load_edited(dir, "legacy", [](std::string t) {
              return replaced(t, "version = 0.1.0\n", "");
          }).empty());
}

TEST_CASE("manifest order constraints: errors name the file, the point and the word") {
    TempDir dir("manifest-order");
    const std::string head = "sdk = 1.0\nlibrary = x.so\n[hooks]\n";
    auto m = read_plugin_manifest(write_manifest(
        dir, "g", "name = g\n" + head + "post_start = 950 after=backup,monitoring before=x\n"));
    CHECK(m.priorities.at(sdk::HookPoint::post_start) == 950);
    CHECK(m.order.at(sdk::HookPoint::post_start) == HookOrder{{"backup", "monitoring"}, {"x"}});
    CHECK_THAT(manifest_error(dir, "a", "name = a\n" + head + "post_start = 950 later=x\n"),
               Catch::Contains("a.plugin: post_start: 'later=x' is not after=PLUGIN,... or "
                               "before=PLUGIN,..."));
    CHECK_THAT(manifest_error(dir, "b", "name = b\n" + head + "post_start = 950 after=\n"),
               Catch::Contains("b.plugin: post_start: 'after=' names no plugin"));
    CHECK_THAT(manifest_error(dir, "c", "name = c\n" + head + "post_start = 950 after=Bad\n"),
               Catch::Contains("'after=Bad' names an invalid plugin 'Bad'"));
    CHECK_THAT(manifest_error(dir, "d", "name = d\n" + head + "pre_drop = 1 before=x,d\n"),
               Catch::Contains("d.plugin: pre_drop: 'before=x,d' names the plugin itself"));
    CHECK_THAT(manifest_error(dir, "e", "name = e\n" + head + "pre_drop = after=x\n"),
               Catch::Contains("priority of pre_drop must be a number, not 'after=x'"));
}

TEST_CASE("a descriptor's hook list that is not pgforge_add_plugin's syntax is refused") {
    PluginManifest m;
    m.name = "x";
    m.version = "1";
    m.file = "x.plugin";
    m.library = "x.so";
    pgforge_plugin_descriptor d{};
    d.struct_size = sizeof d;
    d.version = "1";
    for (auto [hooks, why] : std::vector<std::pair<const char*, const char*>>{
             {"pre_fly:1", "hook 'pre_fly:1' names no hook point"},
             {"pre_start", "hook 'pre_start' has no priority"},
             {"pre_start:1 pre_start:2", "hook 'pre_start:2' is there twice"},
             {"pre_start:1:later=x", "'later=x' is not after=PLUGIN"}}) {
        d.hooks = hooks;
        CHECK_THROWS_WITH(check_manifest_agrees(&d, m), Catch::Contains(why));
    }
    // A 1.1 descriptor that ends before the field (built against an early 1.1 header) is not
    // read past its end.
    d.struct_size = offsetof(pgforge_plugin_descriptor, hooks);
    CHECK(check_manifest_agrees(&d, m).empty());
    d.struct_size = sizeof d;
    d.hooks = "";
    CHECK(check_manifest_agrees(&d, m).empty());
    d.hooks = "post_init:5";
    CHECK_THAT(check_manifest_agrees(&d, m),
               Catch::Contains("says hook post_init '5', its manifest x.plugin says '(not "
                               "handled)'"));
}

TEST_CASE("a plugin whose code adds a command family its manifest omits is broken, naming both") {
    TempDir dir("host");
    Context ctx(site_with(dir, {"recorder", "stray_commands"}));
    REQUIRE(ctx.plugins().loaded().size() == 1);
    const PluginRecord* stray = ctx.plugins().record("stray_commands");
    REQUIRE(stray);
    CHECK(stray->broken());
    CHECK_THAT(stray->error,
               Catch::Contains("plugin stray_commands: its library adds command 'stray_commands "
                               "echo', its manifest " +
                               manifest_of("stray_commands").string() +
                               " says its command families are 'more, other'"));
}
