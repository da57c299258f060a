// File work that cannot be redirected. pgforge runs as root and works inside directories that
// belong to the instance's owner: whatever the owner can write, the owner can turn into a
// symbolic link, swap or fill. The rule here: the owner's file work is done with the owner's
// rights (a child process that has become the owner, or a descriptor that child opened), and
// root's own work is done only in directories that no one but root can change, through
// descriptors. docs/design.md ("Files under root") says why.
#pragma once

#include <sys/stat.h>
#include <sys/types.h>

#include <cstddef>
#include <filesystem>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "engine/core/process.hpp"

namespace pgforge::safe_fs {

// An owned file descriptor (closed when it goes).
class Fd {
  public:
    Fd() = default;
    explicit Fd(int fd) : fd_(fd) {}
    ~Fd();
    Fd(Fd&& other) noexcept : fd_(other.release()) {}
    Fd& operator=(Fd&& other) noexcept;
    Fd(const Fd&) = delete;
    Fd& operator=(const Fd&) = delete;
    int get() const { return fd_; }
    int release() {
        int fd = fd_;
        fd_ = -1;
        return fd;
    }
    explicit operator bool() const { return fd_ >= 0; }

  private:
    int fd_ = -1;
};

// A file (or directory) that pgforge trusts enough to run or load as root (a plugin's manifest
// and library, a site hook), opened once: what was checked is this descriptor, and what is read,
// loaded or run is this descriptor too.
struct TrustedFile {
    Fd fd;
    std::filesystem::path path;  // the real path (symbolic links resolved)
    struct ::stat st {};         // fstat of fd
};

// Opens `path` for trust (the rule is in docs/plugins.md, "Which files are trusted"). The path
// is resolved once (symbolic links followed, to find the real location), then walked again from
// `/` one name at a time with openat(O_NOFOLLOW): a name swapped for a link after the
// resolution fails the walk. Every directory on the way and the file itself must be owned by
// root or the current user; none may be writable by group or others, except a directory above
// the file's own directory that has the sticky bit (like /tmp), where no one but the owner of
// the entry below can rename or remove it, and that entry is checked in turn. The file's own
// directory (a plugin or hook directory) is never shared: everything in it is trusted.
// `directory`: open a directory instead of a file. Returns nullopt with `why` (naming the
// path at fault) when the path cannot be trusted or opened.
std::optional<TrustedFile> open_trusted(const std::filesystem::path& path, bool directory,
                                        std::string& why);

// Why a file or directory must not be trusted (open_trusted's rule, over its whole path), or
// empty when it is safe.
std::string unsafe_reason(const std::filesystem::path& path);

// What a child reports: 0, or the errno of the step that failed.
struct ChildResult {
    int error = 0;
    int step = 0;  // the body's own numbering of its steps (see step_name in safe_fs.cpp)
};

// Runs `body` in a forked child that has become `user` (setgroups to the user's groups, setgid,
// setuid; checked: a child still holding uid 0 does nothing) and returns what it reported.
// The process may have threads: `body` must use only async-signal-safe calls (open, openat,
// read, write, fsync, fchmod, renameat, unlinkat, mkdirat, close ...), allocate nothing and throw
// nothing. Everything it needs is prepared before. A child that died without reporting gives
// ECHILD.
ChildResult run_as(const OsUser& user, const std::function<ChildResult()>& body);

// Who, besides root, can change what `path` names: the deepest owner other than root found on
// the path (the path itself, then each parent up to /, both as written and with links resolved;
// lstat, a link is not followed where it is the thing looked at).
struct Control {
    enum Kind {
        root,    // only root (and the running user) can change it
        user,    // `owner` can (it owns `where`)
        shared,  // `where` is a directory writable by a group or everyone, without the sticky bit
    };
    Kind kind = root;
    OsUser owner;
    std::filesystem::path where;
};
Control who_controls(const std::filesystem::path& path);

// The OS user with this uid (name, groups); a uid without an entry gets `gid` and no groups.
OsUser user_for_uid(uid_t uid, gid_t gid);

// Throws Error naming `what` ("run directory", "prefix") unless `dir` and each of its parents
// (as written and with links resolved) is owned by root or the running user and not writable by
// a group or others; a world-writable directory with the sticky bit (/tmp) is allowed as a
// parent only. A missing `dir` is checked from its deepest existing parent.
void check_trusted_directory(const std::filesystem::path& dir, const std::string& what);

// Opens the directory `dir` for root's own work in it through the descriptor (openat, renameat,
// unlinkat), where a user may control the place. As root: refused (Error naming it) when a group
// or everyone can write the place without the sticky bit, or when where `dir` resolves to is not
// controlled by whoever controls it as written (a link the owner planted on the way to root's or
// another user's directory). The resolved path is then walked from `/` one name at a time with
// O_NOFOLLOW, so a directory swapped for a link after the check fails the walk; the descriptor
// stays on the directory that was checked whatever is renamed later.
Fd open_directory(const std::filesystem::path& dir);

// Writes `content` to `file` atomically: a new temporary file with a random name in the same
// directory (O_CREAT|O_EXCL|O_NOFOLLOW), written, chmod-ed and fsync-ed through its descriptor,
// renamed over `file`, the directory fsync-ed. As root, when a user other than root controls the
// directory, all of it is done by a child that has become that user (`owner`, if given, must be
// that user); otherwise in this process, with fchown to `owner`. A symbolic link at `file` is
// replaced, never followed.
void write_file(const std::filesystem::path& file, const std::string& content, const OsUser* owner,
                mode_t mode);

// Makes `dir` (missing parents 0755) and gives it to `owner` with `mode`, or checks and fixes an
// existing one through its descriptor. A symbolic link or a non-directory at `dir` is an Error.
// As root: parents that only root controls are made by root (mkdirat, fchown and fchmod through
// the new directory's descriptor); below a directory of the owner, by a child that has become
// the owner. A directory controlled by another user, or writable by a group or everyone without
// the sticky bit, is an Error.
void make_directory(const std::filesystem::path& dir, const OsUser& owner, mode_t mode);

// Opens a regular file for reading with the rights of whoever controls it (as root: a child that
// has become that user opens it and passes the descriptor back). nullopt when it does not exist
// and `missing_ok`; any other failure (a file that user cannot read, not a regular file) is an
// Error naming the file and the user.
std::optional<Fd> open_for_reading(const std::filesystem::path& file, bool missing_ok = false);

// The same with the rights `reader` stands for (who_controls of another path: the file that named
// this one, as an include does). A user reader reads as that user; a root reader defers to
// who_controls(file).
std::optional<Fd> open_for_reading(const std::filesystem::path& file, const Control& reader,
                                   bool missing_ok = false);
// Who reads `file` on behalf of `reader` (see above).
Control reader_for(const std::filesystem::path& file, const Control& reader);

// The whole file through open_for_reading, at most `limit` bytes (more is an Error).
std::string read_file(const std::filesystem::path& file, size_t limit = 64 << 20);
std::string read_file(const std::filesystem::path& file, const Control& reader,
                      size_t limit = 64 << 20);
// What is left to read from `fd` (named `file` in errors), at most `limit` bytes (more is an
// Error).
std::string read_rest(int fd, const std::filesystem::path& file, size_t limit);
// nullopt when the file does not exist (as `reader` sees it: a file that user cannot even look
// for is an Error, so that root's view of which files exist is not given away).
std::optional<std::string> read_file_if_exists(const std::filesystem::path& file,
                                               const Control& reader, size_t limit = 64 << 20);

// The last `max_bytes` of the file through open_for_reading; nullopt when it does not exist.
std::optional<std::string> read_tail(const std::filesystem::path& file, size_t max_bytes);

// A new private directory (0700, owned by `owner`) named `<parent>/.pgforge-private-<random>`,
// removed with what is in it when this goes. Made as `owner` when root and the parent is the
// owner's. `leftovers` finds such directories a killed process left.
class PrivateDirectory {
  public:
    PrivateDirectory(const std::filesystem::path& parent, const OsUser& owner);
    ~PrivateDirectory();
    PrivateDirectory(const PrivateDirectory&) = delete;
    PrivateDirectory& operator=(const PrivateDirectory&) = delete;
    const std::filesystem::path& path() const { return path_; }
    // Writes a file (0600) into it.
    std::filesystem::path write(const std::string& name, const std::string& content);
    // Removes it now (files first); errors are only logged.
    void remove() noexcept;

    static constexpr const char* prefix = ".pgforge-private-";
    // Removes every `<parent>/.pgforge-private-*` (a KILL's leftovers); returns how many.
    static int remove_leftovers(const std::filesystem::path& parent, const OsUser& owner);

  private:
    PrivateDirectory() = default;
    std::filesystem::path path_;
    OsUser owner_;
    bool as_owner_ = false;
    std::vector<std::string> files_;
};

}  // namespace pgforge::safe_fs
