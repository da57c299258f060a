#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <string>
#include <system_error>
#include <thread>

#include "engine/core/error.hpp"
#include "engine/core/interrupt.hpp"
#include "engine/inventory/inventory.hpp"

namespace fs = std::filesystem;

namespace pgforge {

// mkdir -p, each directory made with mode 0755 (less the umask).
std::error_code make_directories(const fs::path& dir) {
    if (dir.empty()) return {};
    struct stat st {};
    if (::stat(dir.c_str(), &st) == 0) {
        return S_ISDIR(st.st_mode) ? std::error_code()
                                   : std::make_error_code(std::errc::not_a_directory);
    }
    if (auto error = make_directories(dir.parent_path())) return error;
    if (::mkdir(dir.c_str(), 0755) != 0 && errno != EEXIST) {
        return {errno, std::generic_category()};
    }
    return {};
}

namespace {

// The pid in the file only makes the busy message more useful; failing to write it is harmless.
bool record_holder(int fd) {
    const std::string pid = std::to_string(::getpid()) + "\n";
    return ::ftruncate(fd, 0) == 0 &&
           ::pwrite(fd, pid.data(), pid.size(), 0) == static_cast<ssize_t>(pid.size());
}

bool clear_holder(int fd) {
    return ::ftruncate(fd, 0) == 0;
}

// 0 when the file does not name a holder (not written yet, or released).
long read_holder(int fd) {
    char buffer[32] = {};
    const ssize_t n = ::pread(fd, buffer, sizeof buffer - 1, 0);
    if (n <= 0) return 0;
    char* end = nullptr;
    const long pid = std::strtol(buffer, &end, 10);
    return end != buffer && pid > 0 ? pid : 0;
}

}  // namespace

namespace {

// The directory of lock files is private to its owner (0700): a lock file names the instances of
// the site and holds pids. Made so, or tightened when an older pgforge made it 0755.
void make_lock_directory(const fs::path& dir) {
    if (auto error = make_directories(dir.parent_path())) {
        throw Error(Exit::failure, "cannot create directory " + dir.parent_path().string() + ": " +
                                       error.message());
    }
    if (::mkdir(dir.c_str(), 0700) != 0 && errno != EEXIST)
        throw Error(Exit::failure,
                    "cannot create lock directory " + dir.string() + ": " + std::strerror(errno));
    struct stat st {};
    if (::lstat(dir.c_str(), &st) != 0 || !S_ISDIR(st.st_mode))
        throw Error(Exit::failure, "lock directory " + dir.string() + " is not a directory",
                    "move it away");
    if ((st.st_mode & 077) != 0 && st.st_uid == ::geteuid()) ::chmod(dir.c_str(), 0700);
}

}  // namespace

FileLock::FileLock(const fs::path& file, std::chrono::milliseconds timeout,
                   const std::string& what) {
    make_lock_directory(file.parent_path());
    fd_ = ::open(file.c_str(), O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (fd_ < 0) {
        throw Error(Exit::failure,
                    "cannot open lock file " + file.string() + ": " + std::strerror(errno));
    }
    // Lock files made by an older pgforge were 0644.
    struct stat st {};
    if (::fstat(fd_, &st) == 0 && (st.st_mode & 077) != 0 && st.st_uid == ::geteuid())
        ::fchmod(fd_, 0600);

    using clock = std::chrono::steady_clock;
    const auto deadline = clock::now() + timeout;
    auto pause = std::chrono::milliseconds(5);
    while (::flock(fd_, LOCK_EX | LOCK_NB) != 0) {
        const int error = errno;
        if (error == EINTR) continue;
        if (error != EWOULDBLOCK) {
            ::close(fd_);
            throw Error(Exit::failure,
                        "cannot lock " + file.string() + ": " + std::strerror(error));
        }
        const auto now = clock::now();
        if (now >= deadline) {
            const long holder = read_holder(fd_);
            ::close(fd_);
            const std::string process =
                holder > 0 ? "another pgforge process (pid " + std::to_string(holder) + ")"
                           : std::string("another pgforge process");
            throw Error(Exit::busy, what + " is busy: " + process + " holds " + file.string(),
                        "wait for it to finish, or retry");
        }
        // INT/TERM/HUP while waiting: give up now (exit 8), nothing was done yet.
        if (interrupted()) {
            ::close(fd_);
            throw_if_interrupted();
        }
        // Short pauses first, so that a lock released quickly is taken quickly.
        std::this_thread::sleep_for(std::min<clock::duration>(pause, deadline - now));
        pause = std::min(pause * 2, std::chrono::milliseconds(20));
    }
    record_holder(fd_);
}

FileLock::~FileLock() {
    if (fd_ < 0) return;
    // Cleared while still held, so that the next waiter never reports a process that is gone.
    // The file itself stays: removing it would let two processes lock different inodes.
    clear_holder(fd_);
    ::flock(fd_, LOCK_UN);
    ::close(fd_);
}

std::string utc_timestamp() {
    using namespace std::chrono;
    const auto now = system_clock::now();
    const auto seconds = floor<std::chrono::seconds>(now);
    const auto millis = duration_cast<milliseconds>(now - seconds).count();
    const std::time_t t = system_clock::to_time_t(seconds);
    std::tm tm{};
    ::gmtime_r(&t, &tm);
    char date[32];
    std::strftime(date, sizeof date, "%Y-%m-%dT%H:%M:%S", &tm);
    char result[48];
    std::snprintf(result, sizeof result, "%s.%03dZ", date, static_cast<int>(millis));
    return result;
}

}  // namespace pgforge
