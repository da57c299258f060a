#include "engine/inventory/inventory.hpp"

#include <sqlite3.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <catch2/catch.hpp>
#include <cctype>
#include <cerrno>
#include <cstdlib>
#include <fstream>
#include <iterator>
#include <optional>
#include <system_error>
#include <thread>

#include "engine/core/error.hpp"

namespace fs = std::filesystem;
using namespace std::chrono_literals;
using pgforge::Error;
using pgforge::Exit;
using pgforge::FileLock;
using pgforge::Instance;
using pgforge::Inventory;

namespace {

class TempDir {
  public:
    TempDir() {
        std::string name = "/tmp/pgforge-inventory-XXXXXX";
        if (!::mkdtemp(name.data())) throw std::system_error(errno, std::generic_category());
        path_ = name;
    }
    ~TempDir() {
        std::error_code ignored;
        fs::remove_all(path_, ignored);
    }
    TempDir(const TempDir&) = delete;
    TempDir& operator=(const TempDir&) = delete;

    const fs::path& path() const { return path_; }

  private:
    fs::path path_;
};

Instance make_instance(const std::string& version, const std::string& name, int port) {
    Instance instance;
    instance.version = version;
    instance.name = name;
    instance.base_dir = "/srv/pgforge/" + version + "/" + name;
    instance.data_dir = instance.base_dir / "data";
    instance.wal_dir = "/wal/" + version + "/" + name;
    instance.socket_dir = "/run/pgforge";
    instance.log_file = instance.base_dir / "log" / "postgresql.log";
    instance.port = port;
    instance.owner = "postgres";
    instance.superuser = "admin";
    instance.created_at = "2026-11-22T04:19:45.123Z";
    instance.options = R"({"encoding":"UTF8"})";
    return instance;
}

template <typename F>
std::optional<Error> error_from(F&& action) {
    try {
        action();
    } catch (const Error& error) {
        return error;
    }
    return std::nullopt;
}

// Raw access, to build databases the way older (or newer) releases left them.
class RawDatabase {
  public:
    explicit RawDatabase(const fs::path& file) {
        if (sqlite3_open(file.c_str(), &db_) != SQLITE_OK) throw std::runtime_error("open");
    }
    ~RawDatabase() { sqlite3_close(db_); }
    RawDatabase(const RawDatabase&) = delete;
    RawDatabase& operator=(const RawDatabase&) = delete;

    void exec(const std::string& sql) {
        char* error = nullptr;
        if (sqlite3_exec(db_, sql.c_str(), nullptr, nullptr, &error) != SQLITE_OK) {
            const std::string message = error ? error : "?";
            sqlite3_free(error);
            throw std::runtime_error(message);
        }
    }
    long long count(const std::string& sql) {
        sqlite3_stmt* stmt = nullptr;
        if (sqlite3_prepare_v2(db_, sql.c_str(), -1, &stmt, nullptr) != SQLITE_OK)
            throw std::runtime_error(sqlite3_errmsg(db_));
        const long long n = sqlite3_step(stmt) == SQLITE_ROW ? sqlite3_column_int64(stmt, 0) : -1;
        sqlite3_finalize(stmt);
        return n;
    }

  private:
    sqlite3* db_ = nullptr;
};

// The schema as release 1 wrote it: a fixture, so it must not follow later migrations.
const char* const schema_version_1 = R"sql(
CREATE TABLE instances (
    version    TEXT NOT NULL,
    name       TEXT NOT NULL,
    base_dir   TEXT NOT NULL,
    data_dir   TEXT NOT NULL,
    wal_dir    TEXT NOT NULL DEFAULT '',
    socket_dir TEXT NOT NULL,
    log_file   TEXT NOT NULL,
    port       INTEGER NOT NULL,
    owner      TEXT NOT NULL,
    superuser  TEXT NOT NULL,
    created_at TEXT NOT NULL,
    options    TEXT NOT NULL DEFAULT '{}',
    PRIMARY KEY (version, name)
);
CREATE TABLE journal (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    operation  TEXT NOT NULL,
    instance   TEXT NOT NULL,
    started_at TEXT NOT NULL,
    ended_at   TEXT NOT NULL DEFAULT '',
    outcome    TEXT NOT NULL DEFAULT '',
    message    TEXT NOT NULL DEFAULT '',
    pid        INTEGER NOT NULL
);
CREATE INDEX journal_instance ON journal (instance);
PRAGMA user_version = 1;
)sql";

double seconds_since(std::chrono::steady_clock::time_point start) {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

}  // namespace

TEST_CASE("a new inventory has the current schema version", "[inventory]") {
    TempDir dir;
    const fs::path file = dir.path() / "nested" / "deeper" / "inventory.sqlite";
    Inventory inventory(file);
    CHECK(fs::exists(file));
    CHECK((fs::status(file.parent_path()).permissions() & fs::perms::others_write) ==
          fs::perms::none);
    CHECK(Inventory::current_schema_version() >= 2);
    CHECK(inventory.schema_version() == Inventory::current_schema_version());
    CHECK(inventory.list().empty());
}

TEST_CASE("an inventory in a directory that cannot be created names the path", "[inventory]") {
    TempDir dir;
    std::ofstream(dir.path() / "not-a-directory") << "x";
    const fs::path file = dir.path() / "not-a-directory" / "inventory.sqlite";
    const auto error = error_from([&] { Inventory inventory(file); });
    REQUIRE(error);
    CHECK(error->code() == Exit::failure);
    CHECK_THAT(error->what(), Catch::Contains((dir.path() / "not-a-directory").string()));
}

namespace {

std::string contents(const fs::path& file) {
    std::ifstream in(file, std::ios::binary);
    return std::string(std::istreambuf_iterator<char>(in), {});
}

// An inventory that is refused as damaged, with the way out, and left exactly as it was.
void require_refused_as_damaged(const fs::path& file, const std::string& why) {
    const std::string before = contents(file);
    const fs::path wal = file.string() + "-wal";
    const bool had_wal = fs::exists(wal);
    const std::string wal_before = had_wal ? contents(wal) : "";
    for (int attempt = 0; attempt < 2; ++attempt) {  // and again: nothing was made meanwhile
        const auto error = error_from([&] { Inventory inventory(file); });
        REQUIRE(error);
        CHECK(error->code() == Exit::failure);
        CHECK_THAT(error->what(),
                   Catch::StartsWith("inventory " + file.string() + " is damaged: ") &&
                       Catch::Contains(why));
        CHECK_THAT(error->hint(), Catch::Contains("restore it from a copy") &&
                                      Catch::Contains("move it away") &&
                                      Catch::Contains("mv " + file.string() + "* ") &&
                                      Catch::Contains("pgforge instance adopt"));
    }
    CHECK(contents(file) == before);
    // A log that was there is as it was; one the check opened holds nothing.
    if (had_wal)
        CHECK(contents(wal) == wal_before);
    else
        CHECK((!fs::exists(wal) || fs::file_size(wal) == 0));
}

int mode_of(const fs::path& file) {
    struct stat st {};
    REQUIRE(::lstat(file.c_str(), &st) == 0);
    return static_cast<int>(st.st_mode & 07777);
}

}  // namespace

TEST_CASE("a file that is not a database is refused, naming the file", "[inventory]") {
    TempDir dir;
    const fs::path file = dir.path() / "inventory.sqlite";
    std::ofstream(file) << std::string(4096, 'x');
    require_refused_as_damaged(file, "not an SQLite database");
}

TEST_CASE("an empty inventory file is damage, never a new inventory", "[inventory]") {
    TempDir dir;
    const fs::path file = dir.path() / "inventory.sqlite";
    std::ofstream{file};
    require_refused_as_damaged(file, "it is empty (0 bytes)");
    CHECK(fs::file_size(file) == 0);
}

TEST_CASE("an inventory failing PRAGMA quick_check is refused", "[inventory]") {
    TempDir dir;
    const fs::path file = dir.path() / "inventory.sqlite";
    {
        Inventory inventory(file);
        for (int k = 0; k < 200; ++k)
            inventory.add(make_instance("15", "i" + std::to_string(k), 6000 + k));
    }
    // The inventory keeps its write-ahead log; a plain connection's close moves it all into the
    // database file (and removes it), so that the damage below is what the inventory reads.
    {
        RawDatabase checkpoint(file);
        checkpoint.exec("PRAGMA wal_checkpoint(TRUNCATE)");
    }
    REQUIRE_FALSE(fs::exists(file.string() + "-wal"));
    REQUIRE(fs::file_size(file) > 3 * 4096);
    {
        // Page 2 and on are b-tree pages; the header (page 1) stays valid.
        std::fstream f(file, std::ios::in | std::ios::out | std::ios::binary);
        f.seekp(4096 + 8);
        const std::string garbage(2 * 4096, '\x5a');
        f.write(garbage.data(), static_cast<std::streamsize>(garbage.size()));
    }
    require_refused_as_damaged(file, "quick_check");
}

TEST_CASE("an SQLite database that is not an inventory is not migrated over", "[inventory]") {
    TempDir dir;
    const fs::path file = dir.path() / "inventory.sqlite";
    {
        RawDatabase other(file);
        other.exec("CREATE TABLE notes (x); INSERT INTO notes VALUES ('keep me')");
    }
    require_refused_as_damaged(file, "no pgforge schema version");
    RawDatabase untouched(file);
    CHECK(untouched.count("SELECT count(*) FROM notes") == 1);
}

TEST_CASE("a write-ahead log without its inventory is refused", "[inventory]") {
    TempDir dir;
    const fs::path file = dir.path() / "inventory.sqlite";
    std::ofstream(file.string() + "-wal") << "frames of the lost database";
    const auto error = error_from([&] { Inventory inventory(file); });
    REQUIRE(error);
    CHECK_THAT(error->what(), Catch::Contains("is damaged") && Catch::Contains("-wal"));
    CHECK_FALSE(fs::exists(file));
}

TEST_CASE("the inventory, its -wal and -shm and the lock files are private", "[inventory]") {
    TempDir dir;
    const fs::path file = dir.path() / "inventory.sqlite";
    const mode_t old_umask = ::umask(022);
    {
        Inventory inventory(file);
        inventory.add(make_instance("15", "main", 5433));
        CHECK(mode_of(file) == 0600);
        CHECK(mode_of(file.string() + "-wal") == 0600);
        CHECK(mode_of(file.string() + "-shm") == 0600);
    }
    {
        // What an older pgforge left: 0644, tightened on the next open.
        ::chmod(file.c_str(), 0644);
        Inventory inventory(file);
        CHECK(mode_of(file) == 0600);
        CHECK(inventory.find("15", "main"));
    }
    const fs::path locks = dir.path() / "locks";
    {
        FileLock lock(locks / "15-main.lock", 200ms, "instance 15/main");
        CHECK(mode_of(locks) == 0700);
        CHECK(mode_of(locks / "15-main.lock") == 0600);
    }
    ::chmod(locks.c_str(), 0755);
    ::chmod((locks / "15-main.lock").c_str(), 0644);
    { FileLock lock(locks / "15-main.lock", 200ms, "instance 15/main"); }
    CHECK(mode_of(locks) == 0700);
    CHECK(mode_of(locks / "15-main.lock") == 0600);
    ::umask(old_umask);
    // No temporary file is left beside a new inventory.
    for (const auto& entry : fs::directory_iterator(dir.path()))
        CHECK(entry.path().filename().string().find(".new-") == std::string::npos);
}

TEST_CASE("PRAGMA quick_check costs little on an inventory with a long journal", "[inventory]") {
    TempDir dir;
    const fs::path file = dir.path() / "inventory.sqlite";
    {
        Inventory inventory(file);
        for (int k = 0; k < 30; ++k)
            inventory.add(make_instance("15", "i" + std::to_string(k), 6000 + k));
        RawDatabase raw(file);
        raw.exec(
            "WITH RECURSIVE n(k) AS (SELECT 1 UNION ALL SELECT k + 1 FROM n WHERE k < 20000) "
            "INSERT INTO journal (operation, instance, started_at, ended_at, outcome, pid) "
            "SELECT 'start', '15/i' || (k % 30), '2026-11-22T04:19:45.123Z', "
            "'2026-11-22T04:19:46.123Z', 'ok', 42 FROM n");
    }
    const auto began = std::chrono::steady_clock::now();
    for (int k = 0; k < 10; ++k) {
        Inventory inventory(file);
        CHECK(inventory.list().size() == 30);
    }
    const double each = seconds_since(began) / 10;
    INFO("open + check + list: " << each * 1000 << " ms");
    CHECK(each < 0.05);
}

TEST_CASE("add then find returns every field", "[inventory]") {
    TempDir dir;
    Inventory inventory(dir.path() / "inventory.sqlite");
    const Instance added = make_instance("15", "main", 5433);
    inventory.add(added);

    const auto found = inventory.find("15", "main");
    REQUIRE(found);
    CHECK(found->version == added.version);
    CHECK(found->name == added.name);
    CHECK(found->base_dir == added.base_dir);
    CHECK(found->data_dir == added.data_dir);
    CHECK(found->wal_dir == added.wal_dir);
    CHECK(found->socket_dir == added.socket_dir);
    CHECK(found->log_file == added.log_file);
    CHECK(found->port == added.port);
    CHECK(found->owner == added.owner);
    CHECK(found->superuser == added.superuser);
    CHECK(found->created_at == added.created_at);
    CHECK(found->options == added.options);

    CHECK_FALSE(inventory.find("16", "main"));
    CHECK_FALSE(inventory.find("15", "other"));
}

TEST_CASE("values with quotes are stored as they are", "[inventory]") {
    TempDir dir;
    Inventory inventory(dir.path() / "inventory.sqlite");
    Instance instance = make_instance("15", "main", 5433);
    instance.options = R"({"comment":"it's a '); DROP TABLE instances; --"})";
    inventory.add(instance);
    REQUIRE(inventory.find("15", "main"));
    CHECK(inventory.find("15", "main")->options == instance.options);
}

TEST_CASE("adding the same instance twice is a conflict", "[inventory]") {
    TempDir dir;
    Inventory inventory(dir.path() / "inventory.sqlite");
    inventory.add(make_instance("15", "main", 5433));
    const auto error = error_from([&] { inventory.add(make_instance("15", "main", 5434)); });
    REQUIRE(error);
    CHECK(error->code() == Exit::conflict);
    CHECK(std::string(error->what()) == "instance 15/main is already in the inventory");
    CHECK_FALSE(error->hint().empty());
    // The same name under another version is a different instance.
    CHECK_NOTHROW(inventory.add(make_instance("16", "main", 5434)));
    CHECK(inventory.find("15", "main")->port == 5433);
}

TEST_CASE("update replaces the recorded fields", "[inventory]") {
    TempDir dir;
    Inventory inventory(dir.path() / "inventory.sqlite");
    inventory.add(make_instance("15", "main", 5433));
    Instance changed = make_instance("15", "main", 6000);
    changed.options = "{}";
    inventory.update(changed);
    CHECK(inventory.find("15", "main")->port == 6000);
    CHECK(inventory.find("15", "main")->options == "{}");

    const auto error = error_from([&] { inventory.update(make_instance("15", "nope", 1)); });
    REQUIRE(error);
    CHECK(error->code() == Exit::not_found);
}

TEST_CASE("list filters by version and orders versions numerically", "[inventory]") {
    TempDir dir;
    Inventory inventory(dir.path() / "inventory.sqlite");
    inventory.add(make_instance("15", "main", 5433));
    inventory.add(make_instance("9", "zeta", 5434));
    inventory.add(make_instance("9", "alpha", 5435));
    inventory.add(make_instance("16", "main", 5436));

    std::vector<std::string> all;
    for (const auto& instance : inventory.list()) all.push_back(instance.qualified_name());
    CHECK(all == std::vector<std::string>{"9/alpha", "9/zeta", "15/main", "16/main"});

    std::vector<std::string> nines;
    for (const auto& instance : inventory.list("9")) nines.push_back(instance.qualified_name());
    CHECK(nines == std::vector<std::string>{"9/alpha", "9/zeta"});

    CHECK(inventory.list("14").empty());

    std::vector<std::string> mains;
    for (const auto& instance : inventory.find_by_name("main"))
        mains.push_back(instance.qualified_name());
    CHECK(mains == std::vector<std::string>{"15/main", "16/main"});
}

TEST_CASE("remove says whether there was something to remove", "[inventory]") {
    TempDir dir;
    Inventory inventory(dir.path() / "inventory.sqlite");
    inventory.add(make_instance("15", "main", 5433));
    CHECK_FALSE(inventory.remove("15", "unknown"));
    CHECK_FALSE(inventory.remove("16", "main"));
    CHECK(inventory.remove("15", "main"));
    CHECK_FALSE(inventory.find("15", "main"));
    CHECK_FALSE(inventory.remove("15", "main"));
}

TEST_CASE("ports lists every recorded port", "[inventory]") {
    TempDir dir;
    Inventory inventory(dir.path() / "inventory.sqlite");
    CHECK(inventory.ports().empty());
    inventory.add(make_instance("15", "main", 5440));
    inventory.add(make_instance("16", "main", 5433));
    auto ports = inventory.ports();
    std::sort(ports.begin(), ports.end());
    CHECK(ports == std::vector<int>{5433, 5440});
}

TEST_CASE("the journal records begin and end with pid and outcome, newest first", "[inventory]") {
    TempDir dir;
    Inventory inventory(dir.path() / "inventory.sqlite");
    const auto create = inventory.begin_operation("create", "15/main");
    inventory.end_operation(create, true);
    const auto start = inventory.begin_operation("start", "15/main");
    inventory.end_operation(start, false, "the server did not start");
    const auto stop = inventory.begin_operation("stop", "16/main");

    const auto entries = inventory.journal();
    REQUIRE(entries.size() == 3);
    CHECK(entries[0].id == stop);
    CHECK(entries[0].operation == "stop");
    CHECK(entries[0].instance == "16/main");
    CHECK(entries[0].ended_at.empty());
    CHECK(entries[0].outcome.empty());
    CHECK(entries[0].pid == ::getpid());

    CHECK(entries[1].id == start);
    CHECK(entries[1].outcome == "failed");
    CHECK(entries[1].message == "the server did not start");
    CHECK_FALSE(entries[1].ended_at.empty());

    CHECK(entries[2].id == create);
    CHECK(entries[2].operation == "create");
    CHECK(entries[2].outcome == "ok");
    CHECK(entries[2].message.empty());
    CHECK(entries[2].started_at <= entries[2].ended_at);
    CHECK(entries[2].pid == ::getpid());

    const auto of_main = inventory.journal("15/main");
    REQUIRE(of_main.size() == 2);
    CHECK(of_main[0].operation == "start");
    CHECK(of_main[1].operation == "create");

    const auto newest = inventory.journal("", 1);
    REQUIRE(newest.size() == 1);
    CHECK(newest[0].operation == "stop");
}

TEST_CASE("a version 1 inventory is migrated and keeps its rows", "[inventory]") {
    TempDir dir;
    const fs::path file = dir.path() / "inventory.sqlite";
    {
        RawDatabase old(file);
        old.exec(schema_version_1);
        old.exec(
            "INSERT INTO instances VALUES ('15', 'main', '/b', '/b/data', '', '/run', "
            "'/b/log', 5433, 'postgres', 'postgres', '2025-01-01T00:00:00.000Z', '{}')");
        old.exec(
            "INSERT INTO journal (operation, instance, started_at, pid) VALUES "
            "('create', '15/main', '2025-01-01T00:00:00.000Z', 42)");
    }
    {
        Inventory inventory(file);
        CHECK(inventory.schema_version() == Inventory::current_schema_version());
        const auto found = inventory.find("15", "main");
        REQUIRE(found);
        CHECK(found->data_dir == "/b/data");
        CHECK(found->port == 5433);
        REQUIRE(inventory.journal().size() == 1);
        CHECK(inventory.journal()[0].pid == 42);
    }
    RawDatabase migrated(file);
    CHECK(migrated.count("SELECT count(*) FROM sqlite_master WHERE name = 'plugin_config'") == 1);
    CHECK(migrated.count("PRAGMA user_version") == Inventory::current_schema_version());
}

TEST_CASE("plugin configuration goes away with its instance", "[inventory]") {
    TempDir dir;
    const fs::path file = dir.path() / "inventory.sqlite";
    {
        Inventory inventory(file);
        inventory.add(make_instance("15", "main", 5433));
    }
    {
        RawDatabase raw(file);
        raw.exec("INSERT INTO plugin_config VALUES ('15', 'main', 'backup', '{}')");
    }
    {
        Inventory inventory(file);
        CHECK(inventory.remove("15", "main"));
    }
    RawDatabase raw(file);
    CHECK(raw.count("SELECT count(*) FROM plugin_config") == 0);
}

TEST_CASE("an inventory with a newer schema is refused", "[inventory]") {
    TempDir dir;
    const fs::path file = dir.path() / "inventory.sqlite";
    const int newer = Inventory::current_schema_version() + 1;
    {
        RawDatabase future(file);
        future.exec("CREATE TABLE something (x)");
        future.exec("PRAGMA user_version = " + std::to_string(newer));
    }
    const auto error = error_from([&] { Inventory inventory(file); });
    REQUIRE(error);
    CHECK(error->code() == Exit::failure);
    CHECK(std::string(error->what()) ==
          "inventory " + file.string() + " has schema version " + std::to_string(newer) +
              ", newer than this pgforge supports (" +
              std::to_string(Inventory::current_schema_version()) + ")");
    CHECK(error->hint() == "upgrade pgforge");
    RawDatabase untouched(file);
    CHECK(untouched.count("PRAGMA user_version") == newer);
}

TEST_CASE("the inventory survives being reopened", "[inventory]") {
    TempDir dir;
    const fs::path file = dir.path() / "inventory.sqlite";
    {
        Inventory inventory(file);
        inventory.add(make_instance("15", "main", 5433));
        inventory.end_operation(inventory.begin_operation("create", "15/main"), true);
    }
    Inventory reopened(file);
    CHECK(reopened.schema_version() == Inventory::current_schema_version());
    REQUIRE(reopened.find("15", "main"));
    CHECK(reopened.find("15", "main")->port == 5433);
    REQUIRE(reopened.journal().size() == 1);
    CHECK(reopened.journal()[0].outcome == "ok");
}

TEST_CASE("utc_timestamp is ISO 8601 UTC with milliseconds", "[inventory]") {
    const std::string stamp = pgforge::utc_timestamp();
    // Shape of 2026-11-22T04:19:45.123Z: 'd' for a digit, anything else literally.
    const std::string shape = "dddd-dd-ddTdd:dd:dd.dddZ";
    REQUIRE(stamp.size() == shape.size());
    for (std::size_t i = 0; i < shape.size(); ++i) {
        INFO(stamp << " at " << i);
        if (shape[i] == 'd') {
            CHECK(std::isdigit(static_cast<unsigned char>(stamp[i])));
        } else {
            CHECK(stamp[i] == shape[i]);
        }
    }
    CHECK(stamp.substr(0, 2) == "20");
}

TEST_CASE("a second lock on the same file in this process times out as busy", "[inventory]") {
    TempDir dir;
    const fs::path file = dir.path() / "locks" / "15-main.lock";
    std::optional<FileLock> first;
    first.emplace(file, 1s, "instance 15/main");
    CHECK(fs::exists(file));

    const auto started = std::chrono::steady_clock::now();
    const auto error = error_from([&] { FileLock second(file, 200ms, "instance 15/main"); });
    const double waited = seconds_since(started);
    REQUIRE(error);
    CHECK(error->code() == Exit::busy);
    CHECK_THAT(error->what(), Catch::StartsWith("instance 15/main is busy: "));
    CHECK_THAT(error->what(), Catch::Contains("(pid " + std::to_string(::getpid()) + ")"));
    CHECK_THAT(error->what(), Catch::EndsWith(file.string()));
    CHECK(error->hint() == "wait for it to finish, or retry");
    CHECK(waited >= 0.19);
    CHECK(waited < 2.0);

    first.reset();
    CHECK(fs::exists(file));
    CHECK_NOTHROW(FileLock(file, 200ms, "instance 15/main"));
}

TEST_CASE("a lock held by another process times out as busy, then succeeds once released",
          "[inventory]") {
    TempDir dir;
    const fs::path file = dir.path() / "15-main.lock";
    std::optional<FileLock> held;
    held.emplace(file, 1s, "instance 15/main");

    // The child reports through its exit status only: Catch must not run in two processes.
    auto try_in_child = [&](std::chrono::milliseconds timeout) {
        const pid_t child = ::fork();
        REQUIRE(child >= 0);
        if (child == 0) {
            int status = 0;
            try {
                FileLock lock(file, timeout, "instance 15/main");
            } catch (const Error& error) {
                status = static_cast<int>(error.code());
            } catch (...) {
                status = 100;
            }
            ::_exit(status);
        }
        return child;
    };
    auto exit_status = [](pid_t child) {
        int status = 0;
        while (::waitpid(child, &status, 0) < 0 && errno == EINTR) {
        }
        return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
    };

    auto started = std::chrono::steady_clock::now();
    CHECK(exit_status(try_in_child(300ms)) == static_cast<int>(Exit::busy));
    const double waited = seconds_since(started);
    CHECK(waited >= 0.29);
    CHECK(waited < 3.0);

    // Released while the child waits: the child gets the lock well before its timeout.
    started = std::chrono::steady_clock::now();
    const pid_t waiter = try_in_child(10s);
    std::this_thread::sleep_for(200ms);
    held.reset();
    CHECK(exit_status(waiter) == 0);
    CHECK(seconds_since(started) < 5.0);
}
