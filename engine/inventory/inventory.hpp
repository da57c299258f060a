// The SQLite inventory of managed instances and the journal of operations.
// Holds what was declared; running state is never stored here.
#pragma once

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <system_error>
#include <vector>

#include "engine/core/instance.hpp"

struct sqlite3;

namespace pgforge {

struct JournalEntry {
    std::int64_t id = 0;
    std::string operation;   // "create", "start", ...
    std::string instance;    // qualified name, "15/main"
    std::string started_at;  // ISO 8601 UTC with milliseconds
    std::string ended_at;    // empty while running (or if the process died)
    std::string outcome;     // "", "ok", "failed"
    std::string message;     // error message when failed
    long pid = 0;
    std::string process;  // process_identity(pid) when it began
};

// One thing an operation did: an engine step ("initdb"), a plugin handler ("pre_start backup"),
// a site hook ("pre_start hooks/pre_start.d/10-check") or a program a plugin ran.
struct JournalStep {
    std::string kind;  // "step", "plugin", "hook", "run"
    std::string name;
    std::string started_at;
    double duration_ms = 0;
    std::string outcome;  // "ok", "refused", "failed"
    std::string message;
};

class Inventory {
  public:
    // Opens and migrates the schema forward; WAL journal mode, busy timeout of a few seconds.
    // A missing inventory (and its parent directory) is created, whole, mode 0600. An existing
    // one that is damaged (empty, not an SQLite database, failing PRAGMA quick_check, holding
    // tables but no schema version) or newer than this code is refused, never written over:
    // Error(Exit::failure) saying how to get out. On a full file system the inventory is opened
    // read-only: reads work, writes fail with "no space left on device".
    explicit Inventory(const std::filesystem::path& file);
    ~Inventory();
    Inventory(const Inventory&) = delete;
    Inventory& operator=(const Inventory&) = delete;

    // The schema version this code writes (PRAGMA user_version after migration).
    static int current_schema_version();
    int schema_version() const;

    // Throws Error(Exit::conflict) when (version, name) is already recorded.
    void add(const Instance& instance);
    // Replaces the recorded fields of an existing instance (matched by version and name).
    void update(const Instance& instance);
    // Returns false when there was nothing to remove.
    bool remove(const std::string& version, const std::string& name);

    std::optional<Instance> find(const std::string& version, const std::string& name) const;
    std::vector<Instance> find_by_name(const std::string& name) const;
    // Ordered by version then name; empty `version` lists all.
    std::vector<Instance> list(const std::string& version = {}) const;
    std::vector<int> ports() const;

    std::int64_t begin_operation(const std::string& operation, const std::string& instance);
    void end_operation(std::int64_t id, bool ok, const std::string& message = {});
    // Appends to an operation's steps, in one transaction. Every commit is written at once (a
    // kill -9 keeps it); `synced` also waits for the disk (one fsync), as what is about to be
    // made must be journaled before it is made; without it, a power loss may lose these rows
    // until the next synced commit (history only: begin_operation is not synced either; the
    // ends of operations and every change of the instances are).
    void record_steps(std::int64_t operation_id, const std::vector<JournalStep>& steps,
                      bool synced = true);
    std::vector<JournalStep> steps(std::int64_t operation_id) const;
    // end_operation with the operation's last steps, in one transaction.
    void end_operation(std::int64_t id, bool ok, const std::string& message,
                       const std::vector<JournalStep>& steps);

    // end_operation "ok" with the last steps and the removal of the instance's entry, in one
    // transaction: a drop is either finished or still unfinished, never half-recorded.
    void end_operation_removing(std::int64_t id, const std::vector<JournalStep>& steps,
                                const std::string& version, const std::string& name);
    // end_operation "ok" with the last steps and the new recorded fields of the instance (what
    // the operation changed of what the inventory mirrors: port, directories, version, owner),
    // in one transaction: the entry and the files never disagree after an operation that ended.
    void end_operation_updating(std::int64_t id, const std::vector<JournalStep>& steps,
                                const Instance& instance);
    // Operations without an end (still running, or their process died), oldest first; empty
    // `instance` means all.
    std::vector<JournalEntry> unfinished(const std::string& instance = {}) const;

    // A plugin's per-instance state (a JSON object, "{}" when none); gone with the instance.
    std::string plugin_state(const Instance& instance, const std::string& plugin) const;
    void set_plugin_state(const Instance& instance, const std::string& plugin,
                          const std::string& json);
    // The per-instance options of plugins (SDK 1.2, pgforge/options.hpp) as set for the
    // instance: plugin -> key -> value; gone with the instance. Only the library writes them,
    // never a plugin.
    using PluginOptions = std::map<std::string, std::map<std::string, std::string>>;
    using PluginOptionChanges =
        std::map<std::string, std::map<std::string, std::optional<std::string>>>;
    PluginOptions plugin_options(const Instance& instance) const;
    // Sets each plugin.key to its value, or removes it (nullopt), in one transaction; with an
    // operation id, that operation is ended "ok" with `steps` in the same transaction.
    void set_plugin_options(const Instance& instance, const PluginOptionChanges& changes,
                            std::int64_t end_operation_id = 0,
                            const std::vector<JournalStep>& steps = {});
    // Ports plugins reserved (the "port" key of their states, and "port" of each helper under
    // their "helpers" key).
    std::vector<int> plugin_ports() const;

    // Newest first; empty `instance` means all.
    std::vector<JournalEntry> journal(const std::string& instance = {}, int limit = 50) const;

  private:
    sqlite3* db_ = nullptr;
    void create_new(const std::filesystem::path& file);
    void open_read_only(const std::filesystem::path& file);
    void migrate();
    void insert_steps(std::int64_t operation_id, const std::vector<JournalStep>& steps);
};

// An exclusive advisory lock (flock) on a file, held for the object's lifetime.
// Waits up to `timeout` for another holder; then throws Error(Exit::busy) naming `what`.
class FileLock {
  public:
    FileLock(const std::filesystem::path& file, std::chrono::milliseconds timeout,
             const std::string& what);
    ~FileLock();
    FileLock(const FileLock&) = delete;
    FileLock& operator=(const FileLock&) = delete;

  private:
    int fd_ = -1;
};

// mkdir -p, each directory made with mode 0755 (less the umask).
std::error_code make_directories(const std::filesystem::path& dir);

// What tells a process apart from a later one with the same pid: the boot id and its start
// time. Empty when there is no such process.
std::string process_identity(long pid);
// Whether the process that began a journal entry (its pid and identity) has ended.
bool process_gone(long pid, const std::string& identity);

// Current UTC time as ISO 8601 with milliseconds: 2026-11-22T04:19:45.123Z
std::string utc_timestamp();

}  // namespace pgforge
