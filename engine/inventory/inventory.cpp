#include "engine/inventory/inventory.hpp"

#include <fcntl.h>
#include <signal.h>
#include <sqlite3.h>
#include <sys/stat.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <fstream>
#include <sstream>
#include <string_view>
#include <system_error>

#include "engine/core/error.hpp"

namespace fs = std::filesystem;

namespace pgforge {

namespace {

// Each entry is applied once, in order; PRAGMA user_version counts how many have been.
// Never edit an entry that has shipped: add a new one.
constexpr std::array<const char*, 6> migrations = {
    // 1: instances and the journal of operations.
    R"sql(
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
)sql",
    // 2: per-instance plugin configuration, gone with its instance.
    R"sql(
CREATE TABLE plugin_config (
    version TEXT NOT NULL,
    name    TEXT NOT NULL,
    plugin  TEXT NOT NULL,
    config  TEXT NOT NULL DEFAULT '{}',
    PRIMARY KEY (version, name, plugin),
    FOREIGN KEY (version, name) REFERENCES instances (version, name) ON DELETE CASCADE
);
)sql",
    // 3: what each operation did: its engine steps, plugin handlers, site hooks, programs.
    R"sql(
CREATE TABLE journal_steps (
    operation_id INTEGER NOT NULL REFERENCES journal (id) ON DELETE CASCADE,
    seq          INTEGER NOT NULL,
    kind         TEXT NOT NULL,
    name         TEXT NOT NULL,
    started_at   TEXT NOT NULL,
    duration_ms  REAL NOT NULL,
    outcome      TEXT NOT NULL,
    message      TEXT NOT NULL DEFAULT '',
    PRIMARY KEY (operation_id, seq)
);
)sql",
    // 4: which process ran an operation (boot and start time with the pid: a pid is reused), so
    // that a later command knows an unfinished one is dead; finding those is quick.
    R"sql(
ALTER TABLE journal ADD COLUMN process TEXT NOT NULL DEFAULT '';
CREATE INDEX journal_unfinished ON journal (instance) WHERE ended_at = '';
)sql",
    // 5: per-instance options of plugins (SDK 1.2), set by the user, gone with the instance.
    R"sql(
CREATE TABLE plugin_options (
    version TEXT NOT NULL,
    name    TEXT NOT NULL,
    plugin  TEXT NOT NULL,
    key     TEXT NOT NULL,
    value   TEXT NOT NULL,
    PRIMARY KEY (version, name, plugin, key),
    FOREIGN KEY (version, name) REFERENCES instances (version, name) ON DELETE CASCADE
);
)sql",
    // 6: replication and lineage: a standby's role, upstream and slot; what an upgrade came from.
    R"sql(
ALTER TABLE instances ADD COLUMN role TEXT NOT NULL DEFAULT 'primary';
ALTER TABLE instances ADD COLUMN upstream TEXT NOT NULL DEFAULT '';
ALTER TABLE instances ADD COLUMN slot TEXT NOT NULL DEFAULT '';
ALTER TABLE instances ADD COLUMN upgraded_from TEXT NOT NULL DEFAULT '';
)sql",
};

// SQLite knows which file a connection is on, so the Inventory does not have to remember it.
std::string file_of(sqlite3* db) {
    const char* file = sqlite3_db_filename(db, "main");
    return file ? file : "";
}

// What to do about an inventory that cannot be trusted: never written over by pgforge.
std::string damaged_hint(const std::string& file) {
    return "pgforge will not write over it: restore it from a copy, or move it away with its -wal "
           "and -shm files if any (mv " +
           file +
           "* SOMEWHERE/), after which pgforge starts a new, empty inventory; the instances "
           "stay on disk, listed as 'not in inventory' (running ones keep running: stop them as "
           "their owner with pg_ctl -D DATA_DIR stop). `pgforge instance adopt` will re-record "
           "running instances once it exists";
}

[[noreturn]] void damaged(const std::string& file, const std::string& why) {
    throw Error(Exit::failure, "inventory " + file + " is damaged: " + why, damaged_hint(file));
}

// `message` defaults to SQLite's message for the last failure on `db`.
[[noreturn]] void fail(sqlite3* db, std::string message = {}) {
    if (message.empty()) message = sqlite3_errmsg(db);
    const std::string file = file_of(db);
    std::string hint;
    switch (sqlite3_errcode(db) & 0xff) {
        case SQLITE_READONLY:
            // Opened read-only only when the file system was full (Inventory::open_read_only).
            if (sqlite3_db_readonly(db, "main") == 1) {
                message = "no space left on device: cannot write (" + message + ")";
                hint = "free space on the file system of " + file + ", then retry";
                break;
            }
            // WAL mode needs the -wal and -shm files beside the database, even to read.
            hint = "check that " + file + " and its directory are writable by this user";
            break;
        case SQLITE_BUSY:
        case SQLITE_LOCKED:
            hint = "another pgforge process is using the inventory; retry";
            break;
        case SQLITE_CORRUPT:
        case SQLITE_NOTADB:
            damaged(file, message);
        case SQLITE_FULL:
            message = "no space left on device (" + message + ")";
            hint = "free space on the file system of " + file + ", then retry";
            break;
        case SQLITE_IOERR:
            if (sqlite3_system_errno(db) == ENOSPC) {
                message = "no space left on device (" + message + ")";
                hint = "free space on the file system of " + file + ", then retry";
            }
            break;
        default:
            break;
    }
    throw Error(Exit::failure, "inventory " + file + ": " + message, hint);
}

class Statement {
  public:
    Statement(sqlite3* db, std::string_view sql) : db_(db) {
        if (sqlite3_prepare_v2(db, sql.data(), static_cast<int>(sql.size()), &stmt_, nullptr) !=
            SQLITE_OK)
            fail(db);
    }
    ~Statement() { sqlite3_finalize(stmt_); }
    Statement(const Statement&) = delete;
    Statement& operator=(const Statement&) = delete;

    Statement& bind(int index, const std::string& value) {
        // Transient: callers often bind temporaries such as path::string().
        check(sqlite3_bind_text(stmt_, index, value.data(), static_cast<int>(value.size()),
                                SQLITE_TRANSIENT));
        return *this;
    }
    Statement& bind(int index, std::int64_t value) {
        check(sqlite3_bind_int64(stmt_, index, value));
        return *this;
    }
    Statement& bind(int index, double value) {
        check(sqlite3_bind_double(stmt_, index, value));
        return *this;
    }

    // True while there is a row to read.
    bool step() {
        const int rc = step_code();
        if (rc == SQLITE_ROW) return true;
        if (rc == SQLITE_DONE) return false;
        fail(db_);
    }
    // The raw result, for callers that turn one particular failure into a better error.
    int step_code() { return sqlite3_step(stmt_); }

    std::string text(int column) const {
        const auto* p = reinterpret_cast<const char*>(sqlite3_column_text(stmt_, column));
        return p ? std::string(p, static_cast<std::size_t>(sqlite3_column_bytes(stmt_, column)))
                 : std::string();
    }
    std::int64_t integer(int column) const { return sqlite3_column_int64(stmt_, column); }
    double real(int column) const { return sqlite3_column_double(stmt_, column); }
    // For reuse with new bindings.
    void reset() {
        sqlite3_reset(stmt_);
        sqlite3_clear_bindings(stmt_);
    }

  private:
    void check(int rc) const {
        if (rc != SQLITE_OK) fail(db_);
    }

    sqlite3* db_;
    sqlite3_stmt* stmt_ = nullptr;
};

// For fixed scripts only (migrations, transaction control): nothing in them comes from outside.
void exec(sqlite3* db, const std::string& sql) {
    char* error = nullptr;
    if (sqlite3_exec(db, sql.c_str(), nullptr, nullptr, &error) != SQLITE_OK) {
        const std::string message = error ? error : "";
        sqlite3_free(error);
        fail(db, message);
    }
}

// Commits on this connection skip their sync while it lives (synchronous = NORMAL), then sync
// again (FULL). Such a commit is written to the write-ahead log all the same, so a kill -9 keeps
// it; only a power loss can lose it, and only until the next synced commit, whose sync of the
// log covers every frame before it.
class UnsyncedCommits {
  public:
    explicit UnsyncedCommits(sqlite3* db) : db_(db) { exec(db_, "PRAGMA synchronous = NORMAL"); }
    ~UnsyncedCommits() {
        sqlite3_exec(db_, "PRAGMA synchronous = FULL", nullptr, nullptr, nullptr);
    }
    UnsyncedCommits(const UnsyncedCommits&) = delete;
    UnsyncedCommits& operator=(const UnsyncedCommits&) = delete;

  private:
    sqlite3* db_;
};

// Runs `body` in one write transaction (one sync of the write-ahead log, none when `synced` is
// false), rolled back if it throws.
template <typename Body>
void in_transaction(sqlite3* db, Body&& body, bool synced = true) {
    std::optional<UnsyncedCommits> unsynced;
    if (!synced) unsynced.emplace(db);
    exec(db, "BEGIN IMMEDIATE");
    try {
        body();
        exec(db, "COMMIT");
    } catch (...) {
        sqlite3_exec(db, "ROLLBACK", nullptr, nullptr, nullptr);
        throw;
    }
}

int user_version(sqlite3* db) {
    Statement statement(db, "PRAGMA user_version");
    return statement.step() ? static_cast<int>(statement.integer(0)) : 0;
}

constexpr const char* instance_columns =
    "version, name, base_dir, data_dir, wal_dir, socket_dir, log_file, port, owner, superuser, "
    "created_at, options, role, upstream, slot, upgraded_from";

// Binds the fields in the order of instance_columns, starting at parameter 1.
void bind_instance(Statement& statement, const Instance& instance) {
    statement.bind(1, instance.version)
        .bind(2, instance.name)
        .bind(3, instance.base_dir.string())
        .bind(4, instance.data_dir.string())
        .bind(5, instance.wal_dir.string())
        .bind(6, instance.socket_dir.string())
        .bind(7, instance.log_file.string())
        .bind(8, std::int64_t{instance.port})
        .bind(9, instance.owner)
        .bind(10, instance.superuser)
        .bind(11, instance.created_at)
        .bind(12, instance.options)
        .bind(13, instance.role)
        .bind(14, instance.upstream)
        .bind(15, instance.slot)
        .bind(16, instance.upgraded_from);
}

Instance read_instance(const Statement& statement) {
    Instance instance;
    instance.version = statement.text(0);
    instance.name = statement.text(1);
    instance.base_dir = statement.text(2);
    instance.data_dir = statement.text(3);
    instance.wal_dir = statement.text(4);
    instance.socket_dir = statement.text(5);
    instance.log_file = statement.text(6);
    instance.port = static_cast<int>(statement.integer(7));
    instance.owner = statement.text(8);
    instance.superuser = statement.text(9);
    instance.created_at = statement.text(10);
    instance.options = statement.text(11);
    instance.role = statement.text(12);
    instance.upstream = statement.text(13);
    instance.slot = statement.text(14);
    instance.upgraded_from = statement.text(15);
    return instance;
}

std::vector<Instance> read_instances(Statement& statement) {
    std::vector<Instance> instances;
    while (statement.step()) instances.push_back(read_instance(statement));
    return instances;
}

std::string select_instances(std::string_view where) {
    // Versions are text ("9.6", "15"); CAST orders them as numbers, the text breaks ties.
    return std::string("SELECT ") + instance_columns + " FROM instances WHERE " +
           std::string(where) + " ORDER BY CAST(version AS INTEGER), version, name";
}

}  // namespace

namespace {

bool out_of_space(sqlite3* db) {
    return (sqlite3_errcode(db) & 0xff) == SQLITE_FULL || sqlite3_system_errno(db) == ENOSPC;
}

// Not a string compare of the whole header: the first 16 bytes are SQLite's magic.
constexpr char sqlite_magic[] = "SQLite format 3";  // with its NUL, 16 bytes

// The inventory, its -wal and -shm are private to their owner (the journal holds what was done
// to each instance). Files made by an older pgforge (0644) are tightened on the next open.
void make_private(const fs::path& file) {
    for (const std::string suffix : {"", "-wal", "-shm"}) {
        const std::string path = file.string() + suffix;
        struct stat st {};
        if (::lstat(path.c_str(), &st) == 0 && S_ISREG(st.st_mode) && (st.st_mode & 077) != 0 &&
            st.st_uid == ::geteuid())
            ::chmod(path.c_str(), 0600);
    }
}

// Before SQLite sees the file: SQLite would take an empty or missing file for a new database
// and create one over it.
void check_file(const fs::path& file, const struct stat& st) {
    if (!S_ISREG(st.st_mode)) damaged(file.string(), "it is not a regular file");
    if (st.st_size == 0) damaged(file.string(), "it is empty (0 bytes)");
    const int fd = ::open(file.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0)
        throw Error(Exit::failure,
                    "cannot open inventory " + file.string() + ": " + std::strerror(errno),
                    "check that it is readable by this user");
    char header[sizeof sqlite_magic] = {};
    const ssize_t n = ::pread(fd, header, sizeof header, 0);
    ::close(fd);
    if (n != static_cast<ssize_t>(sizeof header) ||
        std::memcmp(header, sqlite_magic, sizeof header) != 0)
        damaged(file.string(), "it is not an SQLite database");
}

// Whole-database consistency (b-trees, page use; not index contents): a few milliseconds on an
// inventory of thousands of journal rows.
void quick_check(sqlite3* db) {
    Statement statement(db, "PRAGMA quick_check(1)");
    const std::string result = statement.step() ? statement.text(0) : std::string("no result");
    if (result != "ok") damaged(file_of(db), "PRAGMA quick_check: " + result);
}

// A database with tables but no schema version is someone else's: never migrated over.
void check_ownership(sqlite3* db) {
    if (user_version(db) != 0) return;
    Statement statement(db, "SELECT count(*) FROM sqlite_master");
    if (statement.step() && statement.integer(0) != 0)
        damaged(file_of(db), "it holds tables but no pgforge schema version");
}

sqlite3* open_database(const fs::path& file) {
    sqlite3* db = nullptr;
    // No SQLITE_OPEN_CREATE: the file exists (checked or just made), and a file that vanishes
    // meanwhile is an error, not a new inventory.
    const int rc = sqlite3_open_v2(file.c_str(), &db, SQLITE_OPEN_READWRITE, nullptr);
    if (rc != SQLITE_OK) {
        std::string message =
            "inventory " + file.string() + ": " + (db ? sqlite3_errmsg(db) : sqlite3_errstr(rc));
        sqlite3_close(db);
        throw Error(Exit::failure, message, "check that it is readable by this user");
    }
    sqlite3_extended_result_codes(db, 1);
    // Before anything else: even switching to WAL may have to wait for another process.
    sqlite3_busy_timeout(db, 5000);
    return db;
}

// Every commit syncs the write-ahead log (FULL; UnsyncedCommits relaxes it for rows that only
// tell the story). The log outlives the process: closing does not checkpoint it into the
// database file and remove it, which cost four syncs per command (the new log's directory and
// header, the log before the checkpoint, the database after it). Checkpoints run when the log
// reaches kCheckpointPages pages (a dozen operations), which also bounds what the next process
// reads to rebuild the log's index on open.
constexpr int kCheckpointPages = 100;

void keep_write_ahead_log(sqlite3* db) {
    exec(db, "PRAGMA synchronous = FULL");
    exec(db, "PRAGMA wal_autocheckpoint = " + std::to_string(kCheckpointPages));
    if (sqlite3_db_config(db, SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE, 1, nullptr) != SQLITE_OK) fail(db);
}

void make_parent(const fs::path& file) {
    if (auto error = make_directories(file.parent_path())) {
        throw Error(Exit::failure,
                    "cannot create directory " + file.parent_path().string() + " for inventory " +
                        file.string() + ": " + error.message(),
                    "check the permissions of its parent directories");
    }
}

}  // namespace

// A new inventory is made whole beside its place (0600, WAL, migrated) and linked into it, so
// that the name never shows an empty or half-made database: an empty file there is damage.
void Inventory::create_new(const fs::path& file) {
    make_parent(file);
    const fs::path dir = file.parent_path().empty() ? fs::path(".") : file.parent_path();
    struct stat st {};
    if (::lstat((file.string() + "-wal").c_str(), &st) == 0)
        damaged(file.string(),
                "it is missing but its write-ahead log " + file.string() + "-wal is there");
    const fs::path temporary = file.string() + ".new-" + std::to_string(::getpid()) + "-" +
                               std::to_string(::time(nullptr));
    const int fd =
        ::open(temporary.c_str(), O_CREAT | O_EXCL | O_WRONLY | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (fd < 0) {
        const int error = errno;
        throw Error(Exit::failure,
                    "cannot create inventory " + file.string() + " (" + temporary.string() +
                        "): " + std::strerror(error),
                    error == ENOSPC ? "free space on the file system of " + dir.string()
                                    : "check that " + dir.string() + " is writable by this user");
    }
    ::close(fd);
    try {
        db_ = open_database(temporary);
        exec(db_, "PRAGMA journal_mode=WAL");
        migrate();
        // Closing checkpoints the WAL into the file and removes the -wal and -shm files.
        if (sqlite3_close(db_) != SQLITE_OK) fail(db_);
        db_ = nullptr;
        // link, not rename: a concurrent first command that got there first keeps its inventory.
        if (::link(temporary.c_str(), file.c_str()) != 0 && errno != EEXIST) {
            const int error = errno;
            throw Error(Exit::failure,
                        "cannot create inventory " + file.string() + ": " + std::strerror(error),
                        "check that " + dir.string() + " is writable by this user");
        }
        const int dfd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (dfd >= 0) {
            ::fsync(dfd);
            ::close(dfd);
        }
    } catch (...) {
        if (db_) sqlite3_close(db_);
        db_ = nullptr;
        ::unlink(temporary.c_str());
        throw;
    }
    ::unlink(temporary.c_str());
}

Inventory::Inventory(const fs::path& file) {
    struct stat st {};
    if (::lstat(file.c_str(), &st) != 0) {
        if (errno != ENOENT)
            throw Error(Exit::failure,
                        "cannot open inventory " + file.string() + ": " + std::strerror(errno),
                        "check the permissions of its directory");
        create_new(file);
        if (::lstat(file.c_str(), &st) != 0)
            throw Error(Exit::failure, "inventory " + file.string() +
                                           " vanished as it was made: " + std::strerror(errno));
    }
    check_file(file, st);
    make_private(file);
    db_ = open_database(file);
    try {
        // First: a database refused below is closed without a checkpoint, exactly as it was.
        keep_write_ahead_log(db_);
        quick_check(db_);
        check_ownership(db_);
        exec(db_, "PRAGMA journal_mode=WAL");
        exec(db_, "PRAGMA foreign_keys=ON");
        migrate();
    } catch (const Error&) {
        const bool full = out_of_space(db_);
        sqlite3_close(db_);
        db_ = nullptr;
        if (!full) throw;
        // Reading needs the shared-memory index beside the database (-shm), which a full file
        // system cannot grow: read without it, so that list, get, status and history keep
        // working. Writes then fail with "no space left on device" (see fail()).
        open_read_only(file);
    } catch (...) {
        sqlite3_close(db_);
        db_ = nullptr;
        throw;
    }
}

void Inventory::open_read_only(const fs::path& file) {
    struct stat wal {};
    const bool wal_in_use = ::stat((file.string() + "-wal").c_str(), &wal) == 0 && wal.st_size > 0;
    // With a write-ahead log holding changes, its existing index is used as it is; with none,
    // the database file alone is the whole inventory and is read as immutable.
    std::string uri = "file:";
    for (char c : file.string()) {
        // The characters a URI path gives a meaning to.
        if (c == '%' || c == '?' || c == '#') {
            char code[4];
            std::snprintf(code, sizeof code, "%%%02X", static_cast<unsigned char>(c));
            uri += code;
        } else {
            uri += c;
        }
    }
    if (!wal_in_use) uri += "?immutable=1";
    const int rc =
        sqlite3_open_v2(uri.c_str(), &db_, SQLITE_OPEN_READONLY | SQLITE_OPEN_URI, nullptr);
    if (rc != SQLITE_OK) {
        const std::string message = db_ ? sqlite3_errmsg(db_) : sqlite3_errstr(rc);
        sqlite3_close(db_);
        db_ = nullptr;
        throw Error(Exit::failure,
                    "inventory " + file.string() + ": no space left on device (" + message + ")",
                    "free space on the file system of " + file.string() + ", then retry");
    }
    sqlite3_extended_result_codes(db_, 1);
    sqlite3_busy_timeout(db_, 5000);
    try {
        check_ownership(db_);
        exec(db_, "PRAGMA foreign_keys=ON");
        if (user_version(db_) != current_schema_version()) migrate();  // refuses newer, or fails
    } catch (...) {
        sqlite3_close(db_);
        db_ = nullptr;
        throw;
    }
}

Inventory::~Inventory() {
    sqlite3_close_v2(db_);
}

int Inventory::current_schema_version() {
    return static_cast<int>(migrations.size());
}

int Inventory::schema_version() const {
    return user_version(db_);
}

void Inventory::migrate() {
    const int current = current_schema_version();
    auto refuse_newer = [&](int version) {
        if (version > current) {
            throw Error(Exit::failure,
                        "inventory " + file_of(db_) + " has schema version " +
                            std::to_string(version) + ", newer than this pgforge supports (" +
                            std::to_string(current) + ")",
                        "upgrade pgforge");
        }
    };
    refuse_newer(user_version(db_));
    while (user_version(db_) < current) {
        in_transaction(db_, [&] {
            // Read again under the write lock: another process may have migrated meanwhile.
            const int version = user_version(db_);
            refuse_newer(version);
            if (version < current) {
                exec(db_, migrations[static_cast<std::size_t>(version)]);
                // PRAGMA takes no parameters; the number comes from this code, not from input.
                exec(db_, "PRAGMA user_version = " + std::to_string(version + 1));
            }
        });
    }
}

void Inventory::add(const Instance& instance) {
    Statement statement(
        db_, std::string("INSERT INTO instances (") + instance_columns +
                 ") VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, "
                 "?15, ?16)");
    bind_instance(statement, instance);
    const int rc = statement.step_code();
    if (rc == SQLITE_CONSTRAINT_PRIMARYKEY) {
        throw Error(Exit::conflict,
                    "instance " + instance.qualified_name() + " is already in the inventory",
                    "choose another name, or drop the existing instance first");
    }
    if (rc != SQLITE_DONE) fail(db_);
}

void Inventory::update(const Instance& instance) {
    Statement statement(db_,
                        "UPDATE instances SET base_dir = ?3, data_dir = ?4, wal_dir = ?5, "
                        "socket_dir = ?6, log_file = ?7, port = ?8, owner = ?9, superuser = ?10, "
                        "created_at = ?11, options = ?12, role = ?13, upstream = ?14, slot = ?15, "
                        "upgraded_from = ?16 WHERE version = ?1 AND name = ?2");
    bind_instance(statement, instance);
    statement.step();
    if (sqlite3_changes(db_) == 0) {
        throw Error(Exit::not_found,
                    "instance " + instance.qualified_name() + " is not in the inventory");
    }
}

bool Inventory::remove(const std::string& version, const std::string& name) {
    Statement statement(db_, "DELETE FROM instances WHERE version = ?1 AND name = ?2");
    statement.bind(1, version).bind(2, name).step();
    return sqlite3_changes(db_) > 0;
}

std::optional<Instance> Inventory::find(const std::string& version, const std::string& name) const {
    Statement statement(db_, select_instances("version = ?1 AND name = ?2"));
    statement.bind(1, version).bind(2, name);
    if (!statement.step()) return std::nullopt;
    return read_instance(statement);
}

std::vector<Instance> Inventory::find_by_name(const std::string& name) const {
    Statement statement(db_, select_instances("name = ?1"));
    statement.bind(1, name);
    return read_instances(statement);
}

std::vector<Instance> Inventory::list(const std::string& version) const {
    Statement statement(db_, select_instances("?1 = '' OR version = ?1"));
    statement.bind(1, version);
    return read_instances(statement);
}

std::vector<int> Inventory::ports() const {
    Statement statement(db_, "SELECT port FROM instances ORDER BY port");
    std::vector<int> ports;
    while (statement.step()) ports.push_back(static_cast<int>(statement.integer(0)));
    return ports;
}

std::int64_t Inventory::begin_operation(const std::string& operation, const std::string& instance) {
    // Not synced: what resuming acts on are the `made` rows, whose synced commits cover it.
    UnsyncedCommits unsynced(db_);
    Statement statement(db_,
                        "INSERT INTO journal (operation, instance, started_at, pid, outcome, "
                        "process) VALUES (?1, ?2, ?3, ?4, '', ?5)");
    statement.bind(1, operation)
        .bind(2, instance)
        .bind(3, utc_timestamp())
        .bind(4, std::int64_t{::getpid()})
        .bind(5, process_identity(::getpid()));
    statement.step();
    return sqlite3_last_insert_rowid(db_);
}

void Inventory::end_operation(std::int64_t id, bool ok, const std::string& message) {
    // An unknown id changes nothing and is not an error: this runs on failure paths, where a
    // second exception would hide the first.
    Statement statement(
        db_, "UPDATE journal SET ended_at = ?2, outcome = ?3, message = ?4 WHERE id = ?1");
    statement.bind(1, id)
        .bind(2, utc_timestamp())
        .bind(3, std::string(ok ? "ok" : "failed"))
        .bind(4, message);
    statement.step();
}

void Inventory::record_steps(std::int64_t operation_id, const std::vector<JournalStep>& steps,
                             bool synced) {
    if (steps.empty()) return;
    in_transaction(
        db_, [&] { insert_steps(operation_id, steps); }, synced);
}

void Inventory::end_operation(std::int64_t id, bool ok, const std::string& message,
                              const std::vector<JournalStep>& steps) {
    // One transaction (one sync) for the last steps and the end.
    in_transaction(db_, [&] {
        insert_steps(id, steps);
        end_operation(id, ok, message);
    });
}

void Inventory::insert_steps(std::int64_t operation_id, const std::vector<JournalStep>& steps) {
    if (steps.empty()) return;
    Statement next(db_, "SELECT coalesce(max(seq), 0) FROM journal_steps WHERE operation_id = ?1");
    next.bind(1, operation_id);
    std::int64_t seq = next.step() ? next.integer(0) : 0;
    Statement insert(db_,
                     "INSERT INTO journal_steps (operation_id, seq, kind, name, started_at, "
                     "duration_ms, outcome, message) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)");
    for (const auto& st : steps) {
        insert.reset();
        insert.bind(1, operation_id)
            .bind(2, ++seq)
            .bind(3, st.kind)
            .bind(4, st.name)
            .bind(5, st.started_at)
            .bind(6, st.duration_ms)
            .bind(7, st.outcome)
            .bind(8, st.message);
        insert.step();
    }
}

void Inventory::end_operation_removing(std::int64_t id, const std::vector<JournalStep>& steps,
                                       const std::string& version, const std::string& name) {
    in_transaction(db_, [&] {
        insert_steps(id, steps);
        remove(version, name);
        end_operation(id, true, {});
    });
}

void Inventory::end_operation_updating(std::int64_t id, const std::vector<JournalStep>& steps,
                                       const Instance& instance) {
    in_transaction(db_, [&] {
        insert_steps(id, steps);
        update(instance);
        end_operation(id, true, {});
    });
}

namespace {

// The rows of a query that selects id, operation, instance, started_at, ended_at, outcome,
// message, pid, process from the journal, in that order.

std::vector<JournalEntry> journal_entries(Statement& statement) {
    std::vector<JournalEntry> entries;
    while (statement.step()) {
        JournalEntry entry;
        entry.id = statement.integer(0);
        entry.operation = statement.text(1);
        entry.instance = statement.text(2);
        entry.started_at = statement.text(3);
        entry.ended_at = statement.text(4);
        entry.outcome = statement.text(5);
        entry.message = statement.text(6);
        entry.pid = static_cast<long>(statement.integer(7));
        entry.process = statement.text(8);
        entries.push_back(std::move(entry));
    }
    return entries;
}

}  // namespace

std::vector<JournalEntry> Inventory::unfinished(const std::string& instance) const {
    Statement statement(db_,
                        "SELECT id, operation, instance, started_at, ended_at, outcome, message, "
                        "pid, process FROM journal WHERE ended_at = '' AND (?1 = '' OR instance = "
                        "?1) ORDER BY id");
    statement.bind(1, instance);
    return journal_entries(statement);
}

std::vector<JournalStep> Inventory::steps(std::int64_t operation_id) const {
    Statement statement(db_,
                        "SELECT kind, name, started_at, duration_ms, outcome, message FROM "
                        "journal_steps WHERE operation_id = ?1 ORDER BY seq");
    statement.bind(1, operation_id);
    std::vector<JournalStep> out;
    while (statement.step()) {
        JournalStep st;
        st.kind = statement.text(0);
        st.name = statement.text(1);
        st.started_at = statement.text(2);
        st.duration_ms = statement.real(3);
        st.outcome = statement.text(4);
        st.message = statement.text(5);
        out.push_back(std::move(st));
    }
    return out;
}

std::string Inventory::plugin_state(const Instance& instance, const std::string& plugin) const {
    Statement statement(
        db_, "SELECT config FROM plugin_config WHERE version = ?1 AND name = ?2 AND plugin = ?3");
    statement.bind(1, instance.version).bind(2, instance.name).bind(3, plugin);
    return statement.step() ? statement.text(0) : std::string("{}");
}

void Inventory::set_plugin_state(const Instance& instance, const std::string& plugin,
                                 const std::string& json) {
    Statement statement(db_,
                        "INSERT INTO plugin_config (version, name, plugin, config) VALUES (?1, ?2, "
                        "?3, ?4) ON CONFLICT (version, name, plugin) DO UPDATE SET config = ?4");
    statement.bind(1, instance.version).bind(2, instance.name).bind(3, plugin).bind(4, json);
    statement.step();
}

Inventory::PluginOptions Inventory::plugin_options(const Instance& instance) const {
    Statement statement(db_,
                        "SELECT plugin, key, value FROM plugin_options WHERE version = ?1 AND "
                        "name = ?2 ORDER BY plugin, key");
    statement.bind(1, instance.version).bind(2, instance.name);
    PluginOptions out;
    while (statement.step()) out[statement.text(0)][statement.text(1)] = statement.text(2);
    return out;
}

void Inventory::set_plugin_options(const Instance& instance, const PluginOptionChanges& changes,
                                   std::int64_t end_operation_id,
                                   const std::vector<JournalStep>& steps) {
    in_transaction(db_, [&] {
        Statement set(db_,
                      "INSERT INTO plugin_options (version, name, plugin, key, value) VALUES (?1, "
                      "?2, ?3, ?4, ?5) ON CONFLICT (version, name, plugin, key) DO UPDATE SET "
                      "value = ?5");
        Statement unset(db_,
                        "DELETE FROM plugin_options WHERE version = ?1 AND name = ?2 AND "
                        "plugin = ?3 AND key = ?4");
        for (const auto& [plugin, keys] : changes)
            for (const auto& [key, value] : keys) {
                Statement& s = value ? set : unset;
                s.reset();
                s.bind(1, instance.version).bind(2, instance.name).bind(3, plugin).bind(4, key);
                if (value) s.bind(5, *value);
                s.step();
            }
        if (end_operation_id != 0) {
            insert_steps(end_operation_id, steps);
            end_operation(end_operation_id, true, {});
        }
    });
}

std::vector<int> Inventory::plugin_ports() const {
    // A plugin's own port, and those of its helpers ($.helpers.NAME.port, engine/pipeline/helpers).
    Statement statement(
        db_,
        "SELECT CAST(json_extract(config, '$.port') AS INTEGER) FROM plugin_config "
        "WHERE json_valid(config) AND json_extract(config, '$.port') IS NOT NULL "
        "UNION ALL SELECT CAST(json_extract(h.value, '$.port') AS INTEGER) FROM plugin_config, "
        "json_each(CASE WHEN json_valid(config) AND json_type(config, '$.helpers') = 'object' "
        "THEN config ELSE '{}' END, '$.helpers') AS h "
        "WHERE json_type(h.value, '$.port') = 'integer'");
    std::vector<int> ports;
    while (statement.step()) ports.push_back(static_cast<int>(statement.integer(0)));
    return ports;
}

std::vector<JournalEntry> Inventory::journal(const std::string& instance, int limit) const {
    // The id, not started_at, orders entries: timestamps of quick operations can be equal.
    Statement statement(db_,
                        "SELECT id, operation, instance, started_at, ended_at, outcome, message, "
                        "pid, process FROM journal WHERE ?1 = '' OR instance = ?1 ORDER BY id DESC "
                        "LIMIT ?2");
    statement.bind(1, instance).bind(2, std::int64_t{limit});
    return journal_entries(statement);
}

namespace {

std::string read_first_line(const char* path) {
    std::ifstream in(path);
    std::string line;
    std::getline(in, line);
    return line;
}

// The start time of a process in clock ticks since boot (field 22 of /proc/PID/stat); empty
// when it is gone.
std::string start_ticks(long pid) {
    std::ifstream in("/proc/" + std::to_string(pid) + "/stat");
    std::string stat;
    if (!std::getline(in, stat)) return {};
    // The command name (field 2) may hold spaces and parentheses: count from the last ')'.
    auto close = stat.rfind(')');
    if (close == std::string::npos) return {};
    std::istringstream fields(stat.substr(close + 2));
    std::string field;
    for (int k = 3; k <= 22 && fields >> field; ++k)
        if (k == 22) return field;
    return {};
}

}  // namespace

std::string process_identity(long pid) {
    std::string ticks = start_ticks(pid);
    if (ticks.empty()) return {};
    return read_first_line("/proc/sys/kernel/random/boot_id") + ":" + ticks;
}

bool process_gone(long pid, const std::string& identity) {
    if (pid <= 0) return true;
    if (::kill(static_cast<pid_t>(pid), 0) != 0 && errno == ESRCH) return true;
    // Alive under that pid: the same process only if it started at the same time in this boot
    // (an entry written before identities were recorded trusts the pid alone).
    if (identity.empty()) return false;
    std::string now = process_identity(pid);
    return !now.empty() && now != identity;
}

}  // namespace pgforge
