#include "engine/pg/libpq.hpp"

#include <dlfcn.h>

#include <atomic>
#include <string>

#include "engine/core/error.hpp"
#include "engine/core/log.hpp"

namespace pgforge::pg::libpq {

namespace {

std::atomic<bool> loaded_{false};

[[noreturn]] void cannot_load(const char* library, const std::string& why) {
    throw Error(
        Exit::failure,
        std::string("cannot load ") + library +
            " (libpq, PostgreSQL's client library), which connecting to a server needs: " + why,
        "install the package libpq5 (apt-get install libpq5)");
}

}  // namespace

Functions load(const char* library) {
    // RTLD_LOCAL: libpq's symbols serve this table alone, never a plugin's own references.
    void* handle = ::dlopen(library, RTLD_NOW | RTLD_LOCAL);
    if (!handle) {
        const char* why = ::dlerror();
        cannot_load(library, why ? why : "dlopen failed");
    }
    Functions f;
#define PGFORGE_LIBPQ_RESOLVE(name)                                                         \
    f.name = reinterpret_cast<decltype(f.name)>(::dlsym(handle, #name));                    \
    if (!f.name) {                                                                          \
        ::dlclose(handle);                                                                  \
        cannot_load(library, "it has no function " #name " (libpq 10 or later is needed)"); \
    }
    PGFORGE_LIBPQ_FUNCTIONS(PGFORGE_LIBPQ_RESOLVE)
#undef PGFORGE_LIBPQ_RESOLVE
    return f;
}

const Functions& functions() {
    // A throwing initialiser leaves the static uninitialised: the next call tries again.
    static const Functions table = [] {
        Functions f = load(kLibrary);
        log::debug(std::string("loaded ") + kLibrary);
        loaded_ = true;
        return f;
    }();
    return table;
}

bool loaded() {
    return loaded_;
}

}  // namespace pgforge::pg::libpq
