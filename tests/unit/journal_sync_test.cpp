// What an operation's journal costs in disk syncs (docs/design.md, "The inventory and the
// journal"), counted under SQLite by a VFS that wraps the default one and counts xSync calls.
#include <sqlite3.h>

#include <catch2/catch.hpp>
#include <filesystem>

#include "engine/inventory/inventory.hpp"
#include "tests/unit/temp_dir.hpp"

namespace fs = std::filesystem;
using namespace pgforge;
using pgforge::test::TempDir;

namespace {

int syncs = 0;
sqlite3_vfs* real_vfs = nullptr;

struct CountingFile {
    sqlite3_file base;
    sqlite3_file* real;  // the real VFS's file, right after this struct
};

sqlite3_file* real(sqlite3_file* f) {
    return reinterpret_cast<CountingFile*>(f)->real;
}

int c_close(sqlite3_file* f) {
    return real(f)->pMethods->xClose(real(f));
}
int c_read(sqlite3_file* f, void* b, int n, sqlite3_int64 o) {
    return real(f)->pMethods->xRead(real(f), b, n, o);
}
int c_write(sqlite3_file* f, const void* b, int n, sqlite3_int64 o) {
    return real(f)->pMethods->xWrite(real(f), b, n, o);
}
int c_truncate(sqlite3_file* f, sqlite3_int64 size) {
    return real(f)->pMethods->xTruncate(real(f), size);
}
int c_sync(sqlite3_file* f, int flags) {
    ++syncs;
    return real(f)->pMethods->xSync(real(f), flags);
}
int c_file_size(sqlite3_file* f, sqlite3_int64* size) {
    return real(f)->pMethods->xFileSize(real(f), size);
}
int c_lock(sqlite3_file* f, int l) {
    return real(f)->pMethods->xLock(real(f), l);
}
int c_unlock(sqlite3_file* f, int l) {
    return real(f)->pMethods->xUnlock(real(f), l);
}
int c_check_reserved(sqlite3_file* f, int* out) {
    return real(f)->pMethods->xCheckReservedLock(real(f), out);
}
int c_file_control(sqlite3_file* f, int op, void* arg) {
    return real(f)->pMethods->xFileControl(real(f), op, arg);
}
int c_sector_size(sqlite3_file* f) {
    return real(f)->pMethods->xSectorSize(real(f));
}
int c_device(sqlite3_file* f) {
    return real(f)->pMethods->xDeviceCharacteristics(real(f));
}
int c_shm_map(sqlite3_file* f, int region, int size, int extend, void volatile** p) {
    return real(f)->pMethods->xShmMap(real(f), region, size, extend, p);
}
int c_shm_lock(sqlite3_file* f, int offset, int n, int flags) {
    return real(f)->pMethods->xShmLock(real(f), offset, n, flags);
}
void c_shm_barrier(sqlite3_file* f) {
    real(f)->pMethods->xShmBarrier(real(f));
}
int c_shm_unmap(sqlite3_file* f, int delete_flag) {
    return real(f)->pMethods->xShmUnmap(real(f), delete_flag);
}
int c_fetch(sqlite3_file* f, sqlite3_int64 o, int n, void** p) {
    return real(f)->pMethods->xFetch(real(f), o, n, p);
}
int c_unfetch(sqlite3_file* f, sqlite3_int64 o, void* p) {
    return real(f)->pMethods->xUnfetch(real(f), o, p);
}

const sqlite3_io_methods counting_methods = {
    3,           c_close,   c_read,     c_write,          c_truncate,     c_sync,
    c_file_size, c_lock,    c_unlock,   c_check_reserved, c_file_control, c_sector_size,
    c_device,    c_shm_map, c_shm_lock, c_shm_barrier,    c_shm_unmap,    c_fetch,
    c_unfetch};

int c_open(sqlite3_vfs*, const char* name, sqlite3_file* f, int flags, int* out_flags) {
    auto* file = reinterpret_cast<CountingFile*>(f);
    file->real = reinterpret_cast<sqlite3_file*>(file + 1);
    file->base.pMethods = nullptr;
    int rc = real_vfs->xOpen(real_vfs, name, file->real, flags, out_flags);
    if (file->real->pMethods) file->base.pMethods = &counting_methods;
    return rc;
}

// Registered as the default VFS while it lives: every connection opened meanwhile is counted.
class SyncCounter {
  public:
    SyncCounter() {
        real_vfs = sqlite3_vfs_find(nullptr);
        vfs_ = *real_vfs;
        vfs_.zName = "pgforge-sync-counter";
        vfs_.szOsFile = static_cast<int>(sizeof(CountingFile)) + real_vfs->szOsFile;
        vfs_.xOpen = c_open;
        vfs_.pNext = nullptr;
        REQUIRE(sqlite3_vfs_register(&vfs_, 1) == SQLITE_OK);
        syncs = 0;
    }
    ~SyncCounter() {
        sqlite3_vfs_unregister(&vfs_);
        sqlite3_vfs_register(real_vfs, 1);
    }
    SyncCounter(const SyncCounter&) = delete;
    SyncCounter& operator=(const SyncCounter&) = delete;
    // Syncs since the last call.
    int take() { return std::exchange(syncs, 0); }

  private:
    sqlite3_vfs vfs_{};
};

Instance instance_named(const std::string& name) {
    Instance i;
    i.version = "15";
    i.name = name;
    i.base_dir = "/srv/pgforge/15/" + name;
    i.data_dir = i.base_dir / "data";
    i.socket_dir = "/run/pgforge";
    i.log_file = i.base_dir / "log" / "postgresql.log";
    i.port = 5432;
    i.owner = "postgres";
    i.superuser = "postgres";
    return i;
}

}  // namespace

TEST_CASE("an operation's journal costs one disk sync, plus one per thing it makes",
          "[inventory][journal]") {
    TempDir dir;
    const fs::path file = dir.path() / "inventory.sqlite";
    SyncCounter counter;
    {
        // A new inventory (made whole, synced, linked in), and the first write to its log, which
        // also syncs the log's header (as the first write after each checkpoint does).
        Inventory made(file);
        made.end_operation(made.begin_operation("adopt", "15/first"), true);
    }
    counter.take();

    // A start or a stop: begin, a step, the end.
    {
        Inventory inventory(file);
        auto id = inventory.begin_operation("start", "15/main");
        CHECK(counter.take() == 0);  // a kill -9 keeps it all the same (written, not synced)
        inventory.record_steps(id, {{"step", "start", "t", 1, "ok", ""}}, false);
        CHECK(counter.take() == 0);
        inventory.end_operation(id, true, {}, {{"step", "wait", "t", 1, "ok", ""}});
        CHECK(counter.take() == 1);  // the end, and every row before it
    }
    // Closing does not checkpoint the log into the database file.
    CHECK(counter.take() == 0);

    // A create: what it makes is journaled, synced, before it is made.
    {
        Inventory inventory(file);
        auto id = inventory.begin_operation("create", "15/other");
        inventory.record_steps(id, {{"made", "inventory entry", "t", 0, "ok", "15/other"}});
        CHECK(counter.take() == 1);
        inventory.add(instance_named("other"));
        CHECK(counter.take() == 1);  // the entry itself (synced: the instances are the truth)
        inventory.record_steps(id, {{"step", "initdb", "t", 1, "ok", ""}}, false);
        inventory.end_operation(id, true, {}, {});
        CHECK(counter.take() == 1);
    }

    // Reading costs none.
    {
        Inventory inventory(file);
        CHECK(inventory.list().size() == 1);
        CHECK(inventory.journal().size() == 3);
    }
    CHECK(counter.take() == 0);
}
