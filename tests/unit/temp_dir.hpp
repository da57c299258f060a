// Scaffolding shared by the unit tests: a private temporary directory, a helper to write files
// into it, and a scoped change of one environment variable. Header-only.
#pragma once

#include <stdlib.h>

#include <cerrno>
#include <filesystem>
#include <fstream>
#include <optional>
#include <stdexcept>
#include <string>
#include <system_error>

namespace pgforge::test {

// A fresh directory under /tmp, removed with everything in it when the object goes away.
class TempDir {
  public:
    explicit TempDir(const std::string& tag = "unit") {
        std::string name = "/tmp/pgforge-" + tag + "-XXXXXX";
        if (!::mkdtemp(name.data())) throw std::system_error(errno, std::generic_category());
        path_ = name;
    }
    ~TempDir() {
        std::error_code ignored;
        // Give back any permission a test removed, so that everything can be deleted.
        std::filesystem::permissions(path_, std::filesystem::perms::owner_all,
                                     std::filesystem::perm_options::add, ignored);
        for (const auto& entry : std::filesystem::recursive_directory_iterator(path_, ignored))
            if (entry.is_directory(ignored))
                std::filesystem::permissions(entry.path(), std::filesystem::perms::owner_all,
                                             std::filesystem::perm_options::add, ignored);
        std::filesystem::remove_all(path_, ignored);
    }
    TempDir(const TempDir&) = delete;
    TempDir& operator=(const TempDir&) = delete;

    const std::filesystem::path& path() const { return path_; }
    std::filesystem::path operator/(const std::string& part) const { return path_ / part; }

  private:
    std::filesystem::path path_;
};

// Writes `content` to `file` (creating parent directories), failing loudly.
inline void write_text(const std::filesystem::path& file, const std::string& content) {
    std::filesystem::create_directories(file.parent_path());
    std::ofstream out(file, std::ios::binary | std::ios::trunc);
    out << content;
    if (!out) throw std::runtime_error("cannot write test file " + file.string());
}

// Sets (or, with nullopt, unsets) an environment variable; restores the old value on exit.
class ScopedEnv {
  public:
    ScopedEnv(std::string name, const std::optional<std::string>& value) : name_(std::move(name)) {
        if (const char* old = ::getenv(name_.c_str())) old_ = old;
        if (value)
            ::setenv(name_.c_str(), value->c_str(), 1);
        else
            ::unsetenv(name_.c_str());
    }
    ~ScopedEnv() {
        if (old_)
            ::setenv(name_.c_str(), old_->c_str(), 1);
        else
            ::unsetenv(name_.c_str());
    }
    ScopedEnv(const ScopedEnv&) = delete;
    ScopedEnv& operator=(const ScopedEnv&) = delete;

  private:
    std::string name_;
    std::optional<std::string> old_;
};

}  // namespace pgforge::test
