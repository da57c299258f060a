// Configuration templates ({{name}} placeholders) and the atomic writes of generated files.
#pragma once

#include <filesystem>
#include <map>
#include <string>

#include "engine/driver/process.hpp"

namespace pgforge {

// Replaces every {{name}} in `text`. An unknown name is an error naming `origin`.
std::string render_template(const std::string& text,
                            const std::map<std::string, std::string>& values,
                            const std::string& origin);

std::string read_text_file(const std::filesystem::path& file);

// Writes a temporary file beside `file`, fsyncs it, renames it over `file` and fsyncs the
// directory: readers see the old content or the new, never half of it. When running as root,
// the file is given to `owner`.
void write_file_atomically(const std::filesystem::path& file, const std::string& content,
                           const OsUser* owner, std::filesystem::perms mode);

// 'value' with quotes and backslashes doubled, as postgresql.conf wants string values.
std::string conf_quote(const std::string& value);

}  // namespace pgforge
