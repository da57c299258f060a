#include "engine/core/safe_fs.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <grp.h>
#include <pwd.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <vector>

#include "engine/core/error.hpp"
#include "engine/core/input.hpp"
#include "engine/core/log.hpp"

namespace fs = std::filesystem;

namespace pgforge::safe_fs {
namespace {

// The steps a child (or the same code in this process) reports a failure at.
enum Step : int {
    step_none = 0,
    step_become,
    step_open_dir,
    step_create_tmp,
    step_write,
    step_chown,
    step_chmod,
    step_sync,
    step_rename,
    step_mkdir,
    step_open,
    step_send,
    step_remove,
    step_died,
};

const char* step_name(int step) {
    switch (step) {
        case step_become:
            return "switch user";
        case step_open_dir:
            return "open directory";
        case step_create_tmp:
            return "create temporary file";
        case step_write:
            return "write";
        case step_chown:
            return "change owner";
        case step_chmod:
            return "change mode";
        case step_sync:
            return "sync";
        case step_rename:
            return "rename";
        case step_mkdir:
            return "create directory";
        case step_open:
            return "open";
        case step_send:
            return "pass descriptor";
        case step_remove:
            return "remove";
        case step_died:
            return "child process";
        default:
            return "file operation";
    }
}

bool root() {
    return geteuid() == 0;
}

fs::path absolute_normal(const fs::path& p) {
    std::error_code ec;
    fs::path a = fs::absolute(p, ec);
    return (ec ? p : a).lexically_normal();
}

std::string as_whom(const OsUser* user) {
    return user ? " as " + user->name : std::string();
}

std::string link_or_errno(int err) {
    // O_NOFOLLOW on a link gives ELOOP; O_DIRECTORY|O_NOFOLLOW on a link gives ENOTDIR or ELOOP.
    if (err == ELOOP) return "it is a symbolic link (pgforge does not follow links here)";
    return std::strerror(err);
}

[[noreturn]] void fail(const std::string& what, const fs::path& path, const ChildResult& r,
                       const OsUser* user, const std::string& hint = {}) {
    throw Error(Exit::failure,
                "cannot " + what + " " + path.string() + as_whom(user) + ": " + step_name(r.step) +
                    ": " + link_or_errno(r.error),
                hint);
}

// 12 random hex digits (getrandom; the time and pid if it fails).
std::string random_suffix() {
    unsigned char bytes[6] = {};
    if (getrandom(bytes, sizeof bytes, GRND_NONBLOCK) != static_cast<ssize_t>(sizeof bytes)) {
        unsigned long v = static_cast<unsigned long>(time(nullptr)) ^
                          (static_cast<unsigned long>(getpid()) << 16) ^
                          reinterpret_cast<unsigned long>(&bytes);
        std::memcpy(bytes, &v, sizeof bytes);
    }
    static const char hex[] = "0123456789abcdef";
    std::string out;
    for (unsigned char b : bytes) {
        out += hex[b >> 4];
        out += hex[b & 15];
    }
    return out;
}

// Everything a write needs, prepared before any fork.
struct WritePlan {
    const char* dir;
    const char* name;
    const char* tmp;
    const char* data;
    size_t size;
    mode_t mode;
    bool chown;  // fchown to uid/gid (root in this process); else only gid, best effort
    uid_t uid;
    gid_t gid;
};

// Async-signal-safe: runs in this process or in a child.
ChildResult write_at(const WritePlan& w) noexcept {
    int d = open(w.dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (d < 0) return {errno, step_open_dir};
    int fd = openat(d, w.tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (fd < 0) {
        ChildResult r{errno, step_create_tmp};
        close(d);
        return r;
    }
    ChildResult r;
    size_t done = 0;
    while (done < w.size) {
        ssize_t n = write(fd, w.data + done, w.size - done);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) {
            r = {n < 0 ? errno : EIO, step_write};
            break;
        }
        done += static_cast<size_t>(n);
    }
    if (!r.error) {
        if (w.chown) {
            if (fchown(fd, w.uid, w.gid) != 0) r = {errno, step_chown};
        } else if (w.gid != static_cast<gid_t>(-1)) {
            // The group of the file being replaced, when the owner is a member of it.
            (void)!fchown(fd, static_cast<uid_t>(-1), w.gid);
        }
    }
    if (!r.error && fchmod(fd, w.mode) != 0) r = {errno, step_chmod};
    if (!r.error && fsync(fd) != 0) r = {errno, step_sync};
    if (close(fd) != 0 && !r.error) r = {errno, step_write};
    if (!r.error && renameat(d, w.tmp, d, w.name) != 0) r = {errno, step_rename};
    if (r.error)
        unlinkat(d, w.tmp, 0);
    else
        fsync(d);
    close(d);
    return r;
}

// Makes each missing directory of `chain` (0755, the last with `mode`), opens the last one
// without following a link and sets its mode (and owner, when `chown`) through the descriptor.
// Async-signal-safe.
ChildResult make_chain(const std::vector<std::string>& chain, mode_t mode, bool chown, uid_t uid,
                       gid_t gid) noexcept {
    for (size_t k = 0; k < chain.size(); ++k) {
        bool last = k + 1 == chain.size();
        if (mkdir(chain[k].c_str(), last ? 0700 : 0755) != 0 && errno != EEXIST)
            return {errno, step_mkdir};
    }
    if (chain.empty()) return {};
    int fd = open(chain.back().c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0) {
        int e = errno;
        struct stat lst {};
        if ((e == ENOTDIR || e == ELOOP) && lstat(chain.back().c_str(), &lst) == 0)
            e = S_ISLNK(lst.st_mode) ? ELOOP : ENOTDIR;
        return {e, step_open_dir};
    }
    struct stat st {};
    ChildResult r;
    if (fstat(fd, &st) != 0)
        r = {errno, step_open_dir};
    else if (!S_ISDIR(st.st_mode))
        r = {ENOTDIR, step_open_dir};
    else if (chown && (st.st_uid != uid || st.st_gid != gid) && fchown(fd, uid, gid) != 0)
        r = {errno, step_chown};
    else if ((st.st_mode & 07777) != mode && fchmod(fd, mode) != 0)
        r = {errno, step_chmod};
    close(fd);
    return r;
}

// The directories from the first missing one down to `dir` (each as a full path), or only
// `dir` when it exists.
std::vector<std::string> missing_chain(const fs::path& dir) {
    std::vector<std::string> chain;
    fs::path p = dir;
    for (;;) {
        chain.insert(chain.begin(), p.string());
        fs::path parent = p.parent_path();
        struct stat st {};
        if (parent == p || lstat(parent.c_str(), &st) == 0) break;
        p = parent;
    }
    return chain;
}

void check_control(const Control& c, const fs::path& path, const OsUser* owner) {
    if (c.kind == Control::shared)
        throw Error(Exit::failure,
                    "refusing to work on " + path.string() + " as root: " + c.where.string() +
                        " is writable by other users",
                    "remove group and other write permission from " + c.where.string() +
                        " (chmod go-w), or set its sticky bit");
    if (c.kind == Control::user && owner && owner->uid != c.owner.uid) {
        std::string who =
            owner->name.empty() ? user_for_uid(owner->uid, owner->gid).name : owner->name;
        throw Error(Exit::failure,
                    "refusing to work on " + path.string() + " as a file of " + who + ": " +
                        c.where.string() + " belongs to " + c.owner.name +
                        ", who could redirect it",
                    "pgforge works there only as " + c.owner.name + " and on " + c.owner.name +
                        "'s files (a link to another user's file is not followed)");
    }
}

// One byte with room for one descriptor: what passes a descriptor over a socket pair (built
// on the stack, so a forked child may use it).
struct FdMessage {
    char byte = 0;
    iovec iov{&byte, 1};
    alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int))] = {};
    msghdr msg{};
    FdMessage() {
        msg.msg_iov = &iov;
        msg.msg_iovlen = 1;
        msg.msg_control = control;
        msg.msg_controllen = sizeof control;
    }
    FdMessage(const FdMessage&) = delete;
    FdMessage& operator=(const FdMessage&) = delete;
};

}  // namespace

Fd::~Fd() {
    if (fd_ >= 0) close(fd_);
}

Fd& Fd::operator=(Fd&& other) noexcept {
    if (this != &other) {
        if (fd_ >= 0) close(fd_);
        fd_ = other.release();
    }
    return *this;
}

ChildResult run_as(const OsUser& user, const std::function<ChildResult()>& body) {
    if (user.uid == 0)
        throw Error(Exit::failure, "internal: refusing to run a user's file work as root");
    std::vector<gid_t> groups = user.groups;
    if (groups.empty()) groups.push_back(user.gid);
    int report[2];
    if (pipe2(report, O_CLOEXEC) != 0)
        throw Error(Exit::failure, std::string("cannot create a pipe: ") + std::strerror(errno));
    pid_t pid = fork();
    if (pid < 0) {
        int e = errno;
        close(report[0]);
        close(report[1]);
        throw Error(Exit::failure, std::string("cannot fork: ") + std::strerror(e));
    }
    if (pid == 0) {
        close(report[0]);
        ChildResult r;
        if (int e = become_user(user.uid, user.gid, groups))
            r = {e, step_become};
        else
            r = body();
        ssize_t n = write(report[1], &r, sizeof r);
        (void)n;
        _exit(r.error ? 1 : 0);
    }
    close(report[1]);
    ChildResult r;
    size_t got = 0;
    while (got < sizeof r) {
        ssize_t n = read(report[0], reinterpret_cast<char*>(&r) + got, sizeof r - got);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) break;
        got += static_cast<size_t>(n);
    }
    close(report[0]);
    int status = 0;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }
    if (got != sizeof r) return {ECHILD, step_died};
    return r;
}

OsUser user_for_uid(uid_t uid, gid_t gid) {
    if (const passwd* pw = getpwuid(uid)) {
        try {
            return lookup_os_user(pw->pw_name);
        } catch (const std::exception&) {
        }
    }
    OsUser u;
    u.name = "uid " + std::to_string(uid);
    u.uid = uid;
    u.gid = gid;
    u.groups = {gid};
    return u;
}

Control who_controls(const fs::path& path) {
    fs::path lexical = absolute_normal(path);
    std::error_code ec;
    fs::path resolved = fs::weakly_canonical(lexical, ec);
    Control found;
    for (const fs::path& start : {lexical, ec ? lexical : resolved}) {
        for (fs::path p = start;; p = p.parent_path()) {
            struct stat st {};
            if (lstat(p.c_str(), &st) == 0) {
                if (st.st_uid != 0 && st.st_uid != geteuid()) {
                    Control c;
                    c.kind = Control::user;
                    c.owner = user_for_uid(st.st_uid, st.st_gid);
                    c.where = p;
                    return c;
                }
                // A directory others can write: they can swap what is in it, unless the sticky
                // bit keeps each entry to its owner.
                if (S_ISDIR(st.st_mode) && (st.st_mode & (S_IWGRP | S_IWOTH)) &&
                    !(st.st_mode & S_ISVTX)) {
                    found.kind = Control::shared;
                    found.where = p;
                    return found;
                }
            }
            if (p == p.parent_path()) break;
        }
    }
    return found;
}

void check_trusted_directory(const fs::path& dir, const std::string& what) {
    fs::path lexical = absolute_normal(dir);
    std::error_code ec;
    fs::path resolved = fs::weakly_canonical(lexical, ec);
    const uid_t me = geteuid();
    for (const fs::path& start : {lexical, ec ? lexical : resolved}) {
        bool first = true;
        for (fs::path p = start;; p = p.parent_path()) {
            struct stat st {};
            // Links on the way are resolved by the second walk; here each one's target counts.
            if (stat(p.c_str(), &st) == 0) {
                std::string name = what + " " + dir.string();
                std::string whose = p == lexical ? name : name + ": its parent " + p.string();
                if (!S_ISDIR(st.st_mode))
                    throw Error(Exit::failure, whose + " is not a directory",
                                "remove it or choose another " + what);
                if (st.st_uid != 0 && st.st_uid != me)
                    throw Error(Exit::failure,
                                whose + " belongs to " + user_for_uid(st.st_uid, st.st_gid).name +
                                    (me == 0 ? ", not to root" : ""),
                                "that user could redirect what pgforge does there: give it to " +
                                    std::string(me == 0 ? "root" : "you") +
                                    " (chown) and make it "
                                    "writable only by its owner, or choose another " +
                                    what);
                bool others_write = st.st_mode & (S_IWGRP | S_IWOTH);
                bool sticky_parent = !first && (st.st_mode & S_ISVTX);
                if (others_write && !sticky_parent)
                    throw Error(
                        Exit::failure,
                        whose + " is writable by other users (mode " +
                            [&] {
                                char m[8];
                                std::snprintf(m, sizeof m, "%04o", st.st_mode & 07777);
                                return std::string(m);
                            }() +
                            ")",
                        "remove group and other write permission (chmod go-w " + p.string() +
                            "), or choose another " + what);
                first = false;
            }
            if (p == p.parent_path()) break;
        }
    }
}

namespace {

bool trusted_owner(const struct stat& st) {
    return st.st_uid == 0 || st.st_uid == geteuid();
}

}  // namespace

std::optional<TrustedFile> open_trusted(const fs::path& path, bool directory, std::string& why) {
    std::error_code ec;
    fs::path real = fs::canonical(path, ec);
    if (ec) {
        why = path.string() + " cannot be read: " + ec.message();
        return std::nullopt;
    }
    std::vector<std::string> names;
    for (const auto& part : real.relative_path()) names.push_back(part.string());
    const size_t n = names.size();

    Fd current(::open("/", O_PATH | O_DIRECTORY | O_CLOEXEC));
    fs::path at = "/";
    struct stat st {};
    if (!current || ::fstat(current.get(), &st) != 0) {
        why = std::string("/ cannot be opened: ") + std::strerror(errno);
        return std::nullopt;
    }
    // At step k, `current` is open at `at`: "/" and then names[0..k-1]. The file is step n, its
    // own directory step n - 1, and the steps before are the directories above it.
    for (size_t k = 0;; ++k) {
        if (!trusted_owner(st)) {
            why = at.string() + " is owned by uid " + std::to_string(st.st_uid) +
                  ", neither root nor the current user";
            return std::nullopt;
        }
        if (st.st_mode & (S_IWGRP | S_IWOTH)) {
            // A shared directory above the file's own directory is safe when sticky: only the
            // owner of an entry (checked at the next step: root or us) can rename or remove it.
            const bool above = k + 1 < n;
            if (!(above && S_ISDIR(st.st_mode) && (st.st_mode & S_ISVTX))) {
                why = at.string() + " is writable by others than its owner";
                return std::nullopt;
            }
        }
        if (k == n) break;
        const bool last = k + 1 == n;
        int flags = O_NOFOLLOW | O_CLOEXEC;
        if (!last)
            flags |= O_PATH | O_DIRECTORY;
        else
            flags |= directory ? O_RDONLY | O_DIRECTORY : O_RDONLY | O_NONBLOCK;
        Fd next(::openat(current.get(), names[k].c_str(), flags));
        fs::path next_at = at / names[k];
        if (!next || ::fstat(next.get(), &st) != 0) {
            int e = errno;
            why = next_at.string() +
                  (e == ELOOP || e == ENOTDIR || e == ENOENT
                       ? " changed while it was checked (" + std::string(std::strerror(e)) + ")"
                       : " cannot be opened: " + std::string(std::strerror(e)));
            return std::nullopt;
        }
        current = std::move(next);
        at = std::move(next_at);
    }
    if (!directory && !S_ISREG(st.st_mode)) {
        why = at.string() + " is not a regular file";
        return std::nullopt;
    }
    if (directory && !S_ISDIR(st.st_mode)) {
        why = at.string() + " is not a directory";
        return std::nullopt;
    }
    // Opened O_NONBLOCK so that a FIFO could not stall the walk; reads are plain from here.
    if (!directory) ::fcntl(current.get(), F_SETFL, 0);
    return TrustedFile{std::move(current), std::move(at), st};
}

std::string unsafe_reason(const fs::path& path) {
    std::error_code ec;
    std::string why;
    if (!open_trusted(path, fs::is_directory(path, ec), why)) return why;
    return {};
}

Fd open_directory(const fs::path& dir_in) {
    const fs::path dir = absolute_normal(dir_in);
    std::error_code ec;
    const fs::path real = fs::canonical(dir, ec);
    if (ec)
        throw Error(Exit::failure, "cannot open directory " + dir.string() + ": " + ec.message());
    if (root()) {
        Control written = who_controls(dir);
        check_control(written, dir, nullptr);
        Control resolved = real == dir ? written : who_controls(real);
        if (resolved.kind != written.kind ||
            (written.kind == Control::user && resolved.owner.uid != written.owner.uid))
            throw Error(Exit::failure,
                        "refusing to work in " + real.string() + " through " + dir.string() + ": " +
                            (written.kind == Control::user ? written.owner.name + " controls "
                                                           : std::string("root controls ")) +
                            dir.string() + ", not what it leads to",
                        "replace the link on the way by the directory itself");
    }
    Fd current(::open("/", O_PATH | O_DIRECTORY | O_CLOEXEC));
    if (!current) throw Error(Exit::failure, std::string("cannot open /: ") + std::strerror(errno));
    fs::path at = "/";
    std::vector<std::string> names;
    for (const auto& part : real.relative_path()) names.push_back(part.string());
    for (size_t k = 0; k < names.size(); ++k) {
        const bool last = k + 1 == names.size();
        const int flags = O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC | (last ? O_RDONLY : O_PATH);
        Fd next(::openat(current.get(), names[k].c_str(), flags));
        at /= names[k];
        if (!next) {
            int e = errno;
            throw Error(
                Exit::failure,
                "cannot open directory " + dir.string() + ": " + at.string() +
                    (e == ELOOP || e == ENOTDIR || e == ENOENT
                         ? " changed while it was used (" + std::string(std::strerror(e)) + ")"
                         : ": " + std::string(std::strerror(e))));
        }
        current = std::move(next);
    }
    if (names.empty()) current = Fd(::open("/", O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    return current;
}

void write_file(const fs::path& file, const std::string& content, const OsUser* owner,
                mode_t mode) {
    fs::path target = absolute_normal(file);
    fs::path dir = target.parent_path();
    std::string dir_s = dir.string();
    std::string name = target.filename().string();
    std::string tmp = "." + name + ".pgforge-" + random_suffix();
    WritePlan w{dir_s.c_str(),  name.c_str(),           tmp.c_str(),
                content.data(), content.size(),         mode & 07777,
                false,          static_cast<uid_t>(-1), static_cast<gid_t>(-1)};
    if (root()) {
        Control c = who_controls(dir);
        check_control(c, target, owner);
        if (c.kind == Control::user) {
            if (owner && owner->gid != c.owner.gid) w.gid = owner->gid;
            ChildResult r = run_as(c.owner, [&] { return write_at(w); });
            if (r.error) fail("write", target, r, &c.owner);
            return;
        }
        if (owner) {
            w.chown = true;
            w.uid = owner->uid;
            w.gid = owner->gid;
        }
    }
    ChildResult r = write_at(w);
    if (r.error) fail("write", target, r, nullptr);
}

void make_directory(const fs::path& dir_in, const OsUser& owner, mode_t mode) {
    fs::path dir = absolute_normal(dir_in);
    mode &= 07777;
    std::vector<std::string> chain = missing_chain(dir);
    if (root()) {
        Control c = who_controls(dir.parent_path());
        check_control(c, dir, &owner);
        if (c.kind == Control::user) {
            ChildResult r = run_as(c.owner, [&] { return make_chain(chain, mode, false, 0, 0); });
            if (r.error) fail("make directory", dir, r, &c.owner);
            return;
        }
        ChildResult r = make_chain(chain, mode, true, owner.uid, owner.gid);
        if (r.error) fail("make directory", dir, r, nullptr);
        return;
    }
    ChildResult r = make_chain(chain, mode, false, 0, 0);
    if (r.error) fail("make directory", dir, r, nullptr);
}

Control reader_for(const fs::path& file, const Control& on_behalf_of) {
    if (on_behalf_of.kind != Control::root) return on_behalf_of;
    return who_controls(file);
}

std::optional<Fd> open_for_reading(const fs::path& file, bool missing_ok) {
    Control trusted;
    return open_for_reading(file, trusted, missing_ok);
}

std::optional<Fd> open_for_reading(const fs::path& file_in, const Control& on_behalf_of,
                                   bool missing_ok) {
    fs::path file = absolute_normal(file_in);
    std::string path = file.string();
    const int flags = O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK;
    Fd fd;
    std::optional<OsUser> reader;
    if (root()) {
        Control c = reader_for(file, on_behalf_of);
        check_control(c, file, nullptr);
        if (c.kind == Control::user) reader = c.owner;
    }
    if (reader) {
        int sv[2];
        if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0)
            throw Error(Exit::failure,
                        std::string("cannot create a socket pair: ") + std::strerror(errno));
        Fd mine(sv[0]), theirs(sv[1]);
        ChildResult r = run_as(*reader, [&]() noexcept -> ChildResult {
            int f = open(path.c_str(), flags);
            if (f < 0) return {errno, step_open};
            FdMessage m;
            cmsghdr* cm = CMSG_FIRSTHDR(&m.msg);
            cm->cmsg_level = SOL_SOCKET;
            cm->cmsg_type = SCM_RIGHTS;
            cm->cmsg_len = CMSG_LEN(sizeof(int));
            std::memcpy(CMSG_DATA(cm), &f, sizeof f);
            ChildResult out;
            if (sendmsg(sv[1], &m.msg, MSG_NOSIGNAL) != 1) out = {errno, step_send};
            close(f);
            return out;
        });
        if (r.error) {
            if (r.error == ENOENT && r.step == step_open && missing_ok) return std::nullopt;
            fail("read", file, r, &*reader,
                 r.error == EACCES ? "pgforge reads this file with " + reader->name +
                                         "'s rights, as it belongs to " + reader->name
                                   : std::string());
        }
        FdMessage m;
        if (recvmsg(mine.get(), &m.msg, MSG_CMSG_CLOEXEC) != 1)
            throw Error(Exit::failure, "cannot read " + path + ": no descriptor from the child");
        cmsghdr* cm = CMSG_FIRSTHDR(&m.msg);
        if (!cm || cm->cmsg_type != SCM_RIGHTS)
            throw Error(Exit::failure, "cannot read " + path + ": no descriptor from the child");
        int f = -1;
        std::memcpy(&f, CMSG_DATA(cm), sizeof f);
        fd = Fd(f);
    } else {
        fd = Fd(open(path.c_str(), flags));
        if (!fd) {
            if (errno == ENOENT && missing_ok) return std::nullopt;
            throw Error(Exit::failure, "cannot read " + path + ": " + std::strerror(errno));
        }
    }
    struct stat st {};
    if (fstat(fd.get(), &st) != 0)
        throw Error(Exit::failure, "cannot read " + path + ": " + std::strerror(errno));
    if (S_ISDIR(st.st_mode))
        throw Error(Exit::failure, "cannot read " + path + ": it is a directory");
    if (!S_ISREG(st.st_mode))
        throw Error(Exit::failure, "cannot read " + path + ": it is not a regular file");
    fcntl(fd.get(), F_SETFL, fcntl(fd.get(), F_GETFL) & ~O_NONBLOCK);
    return fd;
}

std::string read_rest(int fd, const fs::path& file, size_t limit) {
    std::string out;
    char buf[65536];
    for (;;) {
        ssize_t got = read(fd, buf, sizeof buf);
        if (got < 0 && errno == EINTR) continue;
        if (got < 0)
            throw Error(Exit::failure,
                        "cannot read " + file.string() + ": " + std::strerror(errno));
        if (got == 0) break;
        if (out.size() + static_cast<size_t>(got) > limit)
            throw Error(Exit::failure,
                        "cannot read " + file.string() + ": larger than " + describe_size(limit),
                        "pgforge reads files of at most that size");
        out.append(buf, static_cast<size_t>(got));
    }
    return out;
}

std::string read_file(const fs::path& file, size_t limit) {
    auto fd = open_for_reading(file, false);
    return read_rest(fd->get(), file, limit);
}

std::string read_file(const fs::path& file, const Control& reader, size_t limit) {
    auto fd = open_for_reading(file, reader, false);
    return read_rest(fd->get(), file, limit);
}

std::optional<std::string> read_file_if_exists(const fs::path& file, const Control& reader,
                                               size_t limit) {
    auto fd = open_for_reading(file, reader, true);
    if (!fd) return std::nullopt;
    return read_rest(fd->get(), file, limit);
}

std::optional<std::string> read_tail(const fs::path& file, size_t max_bytes) {
    auto fd = open_for_reading(file, true);
    if (!fd) return std::nullopt;
    struct stat st {};
    // Unchecked, a failed fstat or lseek would read the file from its start, and a long log
    // would exceed the read's limit.
    if (fstat(fd->get(), &st) != 0)
        throw Error(Exit::failure, "cannot read " + file.string() + ": " + std::strerror(errno));
    off_t from =
        st.st_size > static_cast<off_t>(max_bytes) ? st.st_size - static_cast<off_t>(max_bytes) : 0;
    if (from > 0 && lseek(fd->get(), from, SEEK_SET) < 0)
        throw Error(Exit::failure, "cannot read " + file.string() + ": " + std::strerror(errno));
    // The file may grow while it is read: take what is there, up to twice the window.
    std::string text = read_rest(fd->get(), file, max_bytes * 2 + 65536);
    if (text.size() > max_bytes) text.erase(0, text.size() - max_bytes);
    return text;
}

// ---------------------------------------------------------------- private directory

PrivateDirectory::PrivateDirectory(const fs::path& parent, const OsUser& owner) : owner_(owner) {
    fs::path p = absolute_normal(parent) / (std::string(prefix) + random_suffix());
    std::string s = p.string();
    if (root()) {
        Control c = who_controls(parent);
        check_control(c, p, &owner);
        as_owner_ = c.kind == Control::user;
    }
    ChildResult r;
    auto body = [&]() noexcept -> ChildResult {
        if (mkdir(s.c_str(), 0700) != 0) return {errno, step_mkdir};
        return {};
    };
    r = as_owner_ ? run_as(owner_, body) : body();
    if (r.error) fail("make private directory", p, r, as_owner_ ? &owner_ : nullptr);
    path_ = p;
    if (root() && !as_owner_ && owner.uid != 0) {
        // Root's own directory (a trusted parent): given to the owner through its descriptor.
        Fd fd(open(s.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
        if (!fd || fchown(fd.get(), owner.uid, owner.gid) != 0) {
            int e = errno;
            remove();
            throw Error(Exit::failure,
                        "cannot give " + s + " to " + owner.name + ": " + std::strerror(e));
        }
    }
}

PrivateDirectory::~PrivateDirectory() {
    remove();
}

fs::path PrivateDirectory::write(const std::string& name, const std::string& content) {
    if (name.empty() || name.find('/') != std::string::npos || name[0] == '.')
        throw Error(Exit::failure, "internal: bad private file name '" + name + "'");
    fs::path file = path_ / name;
    files_.push_back(name);
    write_file(file, content, root() && owner_.uid != 0 ? &owner_ : nullptr, 0600);
    return file;
}

void PrivateDirectory::remove() noexcept {
    if (path_.empty()) return;
    try {
        std::string dir = path_.string();
        std::vector<std::string> names = files_;
        // Temporary files a write left (killed between create and rename) go too.
        if (DIR* d = opendir(dir.c_str())) {
            while (dirent* e = readdir(d)) {
                std::string n = e->d_name;
                if (n != "." && n != "..") names.push_back(n);
            }
            closedir(d);
        }
        auto body = [&]() noexcept -> ChildResult {
            int d = open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
            if (d < 0) return {errno, step_open_dir};
            for (const std::string& n : names) unlinkat(d, n.c_str(), 0);
            close(d);
            if (rmdir(dir.c_str()) != 0 && errno != ENOENT) return {errno, step_remove};
            return {};
        };
        ChildResult r = as_owner_ ? run_as(owner_, body) : body();
        if (r.error)
            log::warn("could not remove " + dir + ": " + step_name(r.step) + ": " +
                      std::strerror(r.error));
    } catch (const std::exception& e) {
        log::warn("could not remove " + path_.string() + ": " + e.what());
    }
    path_.clear();
}

int PrivateDirectory::remove_leftovers(const fs::path& parent, const OsUser& owner) {
    int removed = 0;
    std::error_code ec;
    for (auto it = fs::directory_iterator(parent, ec); !ec && it != fs::directory_iterator();
         it.increment(ec)) {
        std::string name = it->path().filename().string();
        if (name.rfind(prefix, 0) != 0 || it->is_symlink(ec)) continue;
        PrivateDirectory leftover;
        leftover.path_ = it->path();
        leftover.owner_ = owner;
        if (root()) leftover.as_owner_ = who_controls(parent).kind == Control::user;
        leftover.remove();
        ++removed;
    }
    return removed;
}

}  // namespace pgforge::safe_fs
