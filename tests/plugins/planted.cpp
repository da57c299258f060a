// What an attacker plants as a plugin library: its constructor runs as soon as the dynamic
// loader maps it, before pgforge can look at anything. It leaves a marker file (the path in
// PGFORGE_TEST_PLANTED_MARKER) so that a test can tell it ran.
#include <fcntl.h>
#include <unistd.h>

#include <cstdlib>

namespace {

__attribute__((constructor)) void planted() {
    const char* marker = std::getenv("PGFORGE_TEST_PLANTED_MARKER");
    if (!marker) return;
    int fd = ::open(marker, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (fd >= 0) ::close(fd);
}

}  // namespace
