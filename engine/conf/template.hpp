// Configuration templates ({{name}} placeholders) and the atomic writes of generated files.
#pragma once

#include <filesystem>
#include <map>
#include <string>

#include "engine/core/process.hpp"

namespace pgforge {

// Replaces every {{name}} in `text`. An unknown name is an error naming `origin`.
std::string render_template(const std::string& text,
                            const std::map<std::string, std::string>& values,
                            const std::string& origin);

// The whole file (at most 64 MiB), read with the rights of whoever controls it: as root, a file in
// a directory of another user is opened by a child that has become that user (safe_fs.hpp).
std::string read_text_file(const std::filesystem::path& file);

// Writes a new temporary file (random name, O_EXCL|O_NOFOLLOW) beside `file`, fsyncs it, renames
// it over `file` and fsyncs the directory: readers see the old content or the new, never half of
// it. As root, in a directory of another user, all of it is done as that user (`owner`, when
// given, must be that user); elsewhere the file is given to `owner` through its descriptor.
void write_file_atomically(const std::filesystem::path& file, const std::string& content,
                           const OsUser* owner, std::filesystem::perms mode);

// 'value' with quotes and backslashes doubled, as postgresql.conf wants string values.
std::string conf_quote(const std::string& value);

}  // namespace pgforge
