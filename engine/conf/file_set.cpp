#include "engine/conf/file_set.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <pwd.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <set>

#include "engine/core/error.hpp"
#include "engine/core/fault.hpp"
#include "engine/core/log.hpp"
#include "engine/core/safe_fs.hpp"
#include "engine/core/text.hpp"

namespace fs = std::filesystem;

namespace pgforge::conf {
namespace {

constexpr const char* kMagic = "pgforge-configure 1\n";
constexpr off_t kManifestLimit = 64 << 20;

[[noreturn]] void fail(const fs::path& what, const std::string& step, int e = errno) {
    throw Error(Exit::failure, "cannot " + step + " " + what.string() + ": " + std::strerror(e));
}

using safe_fs::Fd;

std::string random_name() {
    return ".pgforge-stage-" + random_hex(8);
}

// The directory through safe_fs::open_directory: as root, a link the owner planted on the way (or
// swapped in later) cannot take the work out of the owner's place.
int open_dir(const fs::path& dir) {
    return safe_fs::open_directory(dir).release();
}

// A new file `name` in `dirfd` holding `content`, with its owner and mode set through its
// descriptor and synced. Never opens an existing file nor follows a symbolic link.
void stage(int dirfd, const fs::path& dir, const std::string& name, const std::string& content,
           const uid_t* uid, const gid_t* gid, mode_t mode) {
    const fs::path path = dir / name;
    Fd fd(
        ::openat(dirfd, name.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600));
    if (fd.get() < 0) fail(path, "create");
    auto undo = [&](const char* step) {
        int e = errno;
        ::unlinkat(dirfd, name.c_str(), 0);
        fail(path, step, e);
    };
    size_t done = 0;
    while (done < content.size()) {
        ssize_t n = ::write(fd.get(), content.data() + done, content.size() - done);
        if (n < 0 && errno == EINTR) continue;
        if (n == 0) errno = EIO;  // no progress: an error, not a loop without end
        if (n <= 0) undo("write");
        done += static_cast<size_t>(n);
    }
    if (uid && gid && ::geteuid() == 0 && ::fchown(fd.get(), *uid, *gid) != 0) undo("give");
    if (::fchmod(fd.get(), mode) != 0) undo("set the mode of");
    if (::fsync(fd.get()) != 0) undo("sync");
}

void replace(int dirfd, const fs::path& dir, const std::string& from, const fs::path& to) {
    if (::renameat(dirfd, from.c_str(), dirfd, to.filename().c_str()) != 0) {
        int e = errno;
        ::unlinkat(dirfd, from.c_str(), 0);
        fail(dir / to.filename(), "rename " + from + " to", e);
    }
}

// --- manifest: a line per field; byte strings as "<length>\n<bytes>\n"

void put_bytes(std::string& out, const std::string& s) {
    out += std::to_string(s.size()) + "\n" + s + "\n";
}

struct Reader {
    const std::string& text;
    size_t pos = 0;
    std::string line() {
        size_t nl = text.find('\n', pos);
        if (nl == std::string::npos) throw std::runtime_error("truncated");
        std::string l = text.substr(pos, nl - pos);
        pos = nl + 1;
        return l;
    }
    unsigned long number() {
        std::string l = line();
        if (l.empty() || l.size() > 19 || l.find_first_not_of("0123456789") != std::string::npos)
            throw std::runtime_error("bad number");
        return std::stoul(l);
    }
    std::string bytes() {
        unsigned long n = number();
        if (n > text.size() - pos || pos + n >= text.size() || text[pos + n] != '\n')
            throw std::runtime_error("bad length");
        std::string s = text.substr(pos, n);
        pos += n + 1;
        return s;
    }
};

std::string manifest_text(const std::vector<FileSet::Entry>& entries) {
    std::string out = kMagic;
    out += std::to_string(entries.size()) + "\n";
    for (const auto& e : entries) {
        put_bytes(out, e.file.string());
        put_bytes(out, e.staged);
        out += std::string(e.existed ? "1" : "0") + "\n" + std::to_string(e.uid) + "\n" +
               std::to_string(e.gid) + "\n" + std::to_string(e.mode) + "\n";
        put_bytes(out, e.before);
    }
    return out;
}

std::vector<FileSet::Entry> parse_manifest(const std::string& text) {
    if (text.rfind(kMagic, 0) != 0) throw std::runtime_error("not a manifest");
    Reader r{text, std::strlen(kMagic)};
    unsigned long n = r.number();
    std::vector<FileSet::Entry> entries;
    for (unsigned long k = 0; k < n; ++k) {
        FileSet::Entry e;
        e.file = r.bytes();
        e.staged = r.bytes();
        e.existed = r.number() != 0;
        e.uid = static_cast<unsigned>(r.number());
        e.gid = static_cast<unsigned>(r.number());
        e.mode = static_cast<unsigned>(r.number()) & 07777;
        e.before = r.bytes();
        if (!e.file.is_absolute() || e.file.filename().empty() ||
            e.staged.rfind(".pgforge-stage-", 0) != 0 || e.staged.find('/') != std::string::npos)
            throw std::runtime_error("bad entry");
        for (const auto& part : e.file)
            if (part == "..") throw std::runtime_error("bad entry");
        entries.push_back(std::move(e));
    }
    if (r.pos != text.size()) throw std::runtime_error("trailing bytes");
    return entries;
}

void sync_dir(int dirfd) {
    ::fsync(dirfd);
}

// Puts every file of `entries` back as the manifest says and removes the staged files. Goes on
// after an error (so that as much as possible is back) and throws the first one at the end.
void put_back(const std::vector<FileSet::Entry>& entries) {
    std::string first;
    for (const auto& e : entries) {
        try {
            const fs::path dir = e.file.parent_path();
            Fd dirfd(open_dir(dir));
            if (::unlinkat(dirfd.get(), e.staged.c_str(), 0) != 0 && errno != ENOENT)
                fail(dir / e.staged, "remove");
            if (e.existed) {
                std::string name = random_name();
                uid_t uid = e.uid;
                gid_t gid = e.gid;
                stage(dirfd.get(), dir, name, e.before, &uid, &gid, static_cast<mode_t>(e.mode));
                replace(dirfd.get(), dir, name, e.file);
            } else if (::unlinkat(dirfd.get(), e.file.filename().c_str(), 0) != 0 &&
                       errno != ENOENT) {
                fail(e.file, "remove");
            }
            sync_dir(dirfd.get());
            fault_point("files", "put back " + e.file.filename().string(), "after");
        } catch (const std::exception& ex) {
            log::error(std::string("could not put back ") + e.file.string() + ": " + ex.what());
            if (first.empty()) first = ex.what();
        }
    }
    if (!first.empty())
        throw Error(Exit::failure, "could not put every configuration file back: " + first,
                    "the manifest stays; run the command again to retry");
}

// Removes the staged files a killed process left in `dir`: a manifest staged but not yet
// renamed, a file being put back. Only names pgforge makes; links are removed, never followed.
// The caller holds the instance lock, so no other pgforge process is staging there.
void sweep(const fs::path& dir) {
    int fd = -1;
    try {
        fd = open_dir(dir);
    } catch (const std::exception&) {
        return;  // nothing to sweep where pgforge may not work (the write then says why)
    }
    DIR* d = ::fdopendir(fd);
    if (!d) {
        ::close(fd);
        return;
    }
    std::vector<std::string> stale;
    while (dirent* e = ::readdir(d))
        if (std::strncmp(e->d_name, ".pgforge-stage-", 15) == 0) stale.push_back(e->d_name);
    for (const auto& name : stale) ::unlinkat(::dirfd(d), name.c_str(), 0);
    ::closedir(d);
}

void sweep_all(const fs::path& dir, const std::vector<FileSet::Entry>& entries) {
    std::set<fs::path> dirs{dir};
    for (const auto& e : entries) dirs.insert(e.file.parent_path());
    for (const auto& d : dirs) sweep(d);
}

void remove_manifest(const fs::path& dir) {
    Fd dirfd(open_dir(dir));
    if (::unlinkat(dirfd.get(), ".pgforge-configure", 0) != 0 && errno != ENOENT)
        fail(FileSet::manifest_path(dir), "remove");
    sync_dir(dirfd.get());
}

}  // namespace

FileSet::FileSet(fs::path dir) : dir_(std::move(dir)) {}

FileSet::~FileSet() {
    if (state_ != State::applied) return;
    try {
        rollback();
    } catch (const std::exception& e) {
        log::error(e.what());
    }
}

void FileSet::add(const fs::path& file, std::string content, const OsUser* owner, fs::perms mode) {
    if (state_ != State::idle) throw std::logic_error("FileSet::add after apply");
    Entry e;
    e.file = fs::absolute(file).lexically_normal();
    e.after = std::move(content);
    // The previous content is read through the file itself, never through a link: it goes back
    // into this place, owned by the file's owner, on a rollback.
    Fd dirfd(open_dir(e.file.parent_path()));
    Fd fd(::openat(dirfd.get(), e.file.filename().c_str(),
                   O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK));
    struct stat st {};
    // As root, only the owner's files are an instance's configuration: a file of another user
    // (root's, named by an include the owner wrote) is never written for it.
    const bool for_owner = owner && ::geteuid() == 0 && owner->uid != 0;
    auto refuse_other = [&](const fs::path& what, uid_t uid) {
        struct passwd* pw = ::getpwuid(uid);
        throw Error(Exit::failure,
                    what.string() + " belongs to " +
                        (pw ? std::string(pw->pw_name) : "uid " + std::to_string(uid)) +
                        ", not to the instance's owner " + owner->name +
                        ": pgforge writes an instance's configuration only into its owner's files",
                    "edit that file yourself, or set the parameter in a file of the owner "
                    "(and remove the include that names the other file)");
    };
    if (fd.get() < 0 && errno == ENOENT) {
        struct stat dst {};
        if (for_owner && ::fstat(dirfd.get(), &dst) == 0 && dst.st_uid != owner->uid)
            refuse_other(e.file.parent_path(), dst.st_uid);
        e.uid = owner ? owner->uid : ::geteuid();
        e.gid = owner ? owner->gid : ::getegid();
        e.mode = static_cast<unsigned>(mode) & 07777;
    } else if (fd.get() < 0 && errno == ELOOP) {
        throw Error(Exit::failure,
                    e.file.string() +
                        " is a symbolic link: pgforge replaces configuration files "
                        "and does not write through links",
                    "put the file itself in its place");
    } else if (fd.get() < 0 || ::fstat(fd.get(), &st) != 0) {
        fail(e.file, "read");
    } else if (!S_ISREG(st.st_mode)) {
        throw Error(Exit::failure, e.file.string() + " is not a regular file",
                    "put the configuration file itself in its place");
    } else {
        if (for_owner && st.st_uid != owner->uid) refuse_other(e.file, st.st_uid);
        e.existed = true;
        e.uid = st.st_uid;
        e.gid = st.st_gid;
        e.mode = st.st_mode & 07777;
        char buf[65536];
        for (;;) {
            ssize_t n = ::read(fd.get(), buf, sizeof buf);
            if (n < 0 && errno == EINTR) continue;
            if (n < 0) fail(e.file, "read");
            if (n == 0) break;
            e.before.append(buf, static_cast<size_t>(n));
        }
    }
    entries_.push_back(std::move(e));
}

void FileSet::apply() {
    if (state_ != State::idle) throw std::logic_error("FileSet::apply twice");
    sweep_all(dir_, entries_);  // what an earlier killed process left
    for (auto& e : entries_) e.staged = random_name();
    // The manifest first: from here on, a kill leaves what recover() needs.
    {
        Fd dirfd(open_dir(dir_));
        std::string name = random_name();
        stage(dirfd.get(), dir_, name, manifest_text(entries_), nullptr, nullptr, 0600);
        replace(dirfd.get(), dir_, name, manifest_path(dir_));
        sync_dir(dirfd.get());
    }
    state_ = State::applied;
    fault_point("files", "manifest", "after");
    try {
        for (const auto& e : entries_) {
            const fs::path dir = e.file.parent_path();
            Fd dirfd(open_dir(dir));
            uid_t uid = e.uid;
            gid_t gid = e.gid;
            stage(dirfd.get(), dir, e.staged, e.after, &uid, &gid, static_cast<mode_t>(e.mode));
            fault_point("files", "stage " + e.file.filename().string(), "after");
        }
        std::set<fs::path> dirs;
        for (const auto& e : entries_) {
            const fs::path dir = e.file.parent_path();
            Fd dirfd(open_dir(dir));
            replace(dirfd.get(), dir, e.staged, e.file);
            dirs.insert(dir);
            fault_point("files", "rename " + e.file.filename().string(), "after");
        }
        for (const auto& dir : dirs) {
            Fd dirfd(open_dir(dir));
            sync_dir(dirfd.get());
        }
    } catch (...) {
        rollback();
        throw;
    }
}

void FileSet::commit() {
    if (state_ != State::applied) return;
    remove_manifest(dir_);
    state_ = State::done;
}

void FileSet::rollback() {
    if (state_ != State::applied) return;
    put_back(entries_);
    remove_manifest(dir_);
    state_ = State::done;
}

bool FileSet::recover(const fs::path& dir) {
    const fs::path manifest = manifest_path(dir);
    struct stat st {};
    if (::lstat(manifest.c_str(), &st) != 0) {
        if (errno == ENOENT) return false;
        fail(manifest, "look at");
    }
    const std::string hint =
        "check the configuration files of " + dir.string() + ", then remove " + manifest.string();
    // Only a manifest this user wrote is trusted: it names files to write as this user.
    Fd fd(::open(manifest.c_str(), O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK));
    if (fd.get() < 0) fail(manifest, "open");
    if (::fstat(fd.get(), &st) != 0) fail(manifest, "read");
    if (!S_ISREG(st.st_mode) || st.st_uid != ::geteuid() || st.st_nlink != 1 ||
        (st.st_mode & 022) != 0 || st.st_size > kManifestLimit)
        throw Error(Exit::failure,
                    manifest.string() +
                        " was not written by pgforge (wrong owner, mode, type or size): an "
                        "interrupted configuration change cannot be undone from it",
                    hint);
    std::string text;
    text.resize(static_cast<size_t>(st.st_size));
    size_t done = 0;
    while (done < text.size()) {
        ssize_t n = ::read(fd.get(), text.data() + done, text.size() - done);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) fail(manifest, "read");
        if (n == 0) break;
        done += static_cast<size_t>(n);
    }
    text.resize(done);
    std::vector<Entry> entries;
    try {
        entries = parse_manifest(text);
    } catch (const std::runtime_error& e) {
        throw Error(Exit::failure, manifest.string() + " is damaged (" + e.what() + ")", hint);
    }
    put_back(entries);
    remove_manifest(dir);
    sweep_all(dir, entries);
    return true;
}

}  // namespace pgforge::conf
