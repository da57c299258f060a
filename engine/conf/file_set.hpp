// Several configuration files changed as one: pg_hba.conf and pg_ident.conf, postgresql.conf and
// its includes change together or not at all, even when the process is killed half way.
//
// apply() first writes a manifest (`.pgforge-configure` in the data directory, written to a new
// file and renamed into place) that lists every target with its previous content, owner and
// mode, and the name of the staged file that will replace it; then stages each new content as a
// new file (O_CREAT|O_EXCL, a random name, in the target's directory, owner and mode set through
// its descriptor, synced), then renames them all into place. commit() removes the manifest;
// rollback() (and the destructor, when neither was called) puts every file back as it was and
// removes the manifest. recover() finds a manifest left by a killed process and does the same.
// Staged files a killed process left behind (`.pgforge-stage-*`) are removed by the next apply()
// or recover().
#pragma once

#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include "engine/conf/template.hpp"

namespace pgforge::conf {

class FileSet {
  public:
    // `dir`: where the manifest lives (the instance's data directory).
    explicit FileSet(std::filesystem::path dir);
    ~FileSet();  // rolls back when applied and neither committed nor rolled back
    FileSet(const FileSet&) = delete;
    FileSet& operator=(const FileSet&) = delete;

    // A file to replace with `content`: it keeps its owner and mode when it exists, else gets
    // `owner` (when running as root) and `mode`.
    void add(const std::filesystem::path& file, std::string content, const OsUser* owner,
             std::filesystem::perms mode);
    bool empty() const { return entries_.empty(); }

    void apply();     // manifest, staged files, renames; on an error, puts everything back
    void commit();    // the new files stay: removes the manifest
    void rollback();  // every file as it was; the manifest removed. Idempotent.

    static std::filesystem::path manifest_path(const std::filesystem::path& dir) {
        return dir / ".pgforge-configure";
    }
    // Puts back the files a killed apply() left (as rollback()); returns whether there was a
    // manifest. One stat when there is none. A manifest not written by this user, or damaged,
    // is refused with Error(Exit::failure) naming it.
    static bool recover(const std::filesystem::path& dir);

    struct Entry {
        std::filesystem::path file;
        std::string staged;  // name of the staged file, in file's directory
        bool existed = false;
        unsigned uid = 0, gid = 0, mode = 0600;
        std::string before;  // previous content
        std::string after;   // new content (not in the manifest)
    };

  private:
    std::filesystem::path dir_;
    std::vector<Entry> entries_;
    enum class State { idle, applied, done } state_ = State::idle;
};

}  // namespace pgforge::conf
