// postgresql.conf-format files (postgresql.conf, postgresql.auto.conf, included files): read
// with the server's own lexical rules (src/backend/utils/misc/guc-file.l), printed back byte for
// byte, and edited without touching anything but the bytes of the edit.
//
// A document is a vector of physical lines; a setting line remembers where its name and value
// are, so an edit replaces exactly those bytes. Everything else (spacing, separators, comments,
// CRLF line ends, a missing final newline) stays as it was.
#pragma once

#include <cstdint>
#include <filesystem>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

namespace pgforge {
struct OsUser;
}

namespace pgforge::conf {

struct ConfEntry {          // one active setting line
    std::string name;       // as written
    std::string value;      // unquoted, unescaped
    std::string raw_value;  // as written (with quotes)
    int line = 0;           // 1-based
};

class ConfDocument {
  public:
    // Throws Error(Exit::usage) naming origin:line for a syntax error (the first one).
    static ConfDocument parse(std::string_view text, std::filesystem::path origin = {});
    // A missing or unreadable file is an Error(Exit::failure) naming it.
    static ConfDocument read(const std::filesystem::path& file);

    // Identical bytes to what was parsed (missing final newline kept), plus edits.
    std::string print() const;
    // Writes print() atomically to `file` (empty: origin()). A file that is replaced keeps its
    // mode and owner (unless `owner` is given); a new one is created 0600.
    void save(const std::filesystem::path& file = {}, const OsUser* owner = nullptr) const;

    // The last active occurrence (names compare case-insensitively).
    std::optional<ConfEntry> get(std::string_view name) const;
    // Active settings in file order (all occurrences; include directives are not settings).
    std::vector<ConfEntry> entries() const;
    // py-postgresql's getset: the values of those of `names` that are set; keys lowercase.
    std::map<std::string, std::string> getset(const std::set<std::string>& names) const;

    // Changes the value in place on the line that wins (spacing, separator and trailing comment
    // kept); if absent but present as a commented default ("#work_mem = 4MB   # min 64kB"),
    // un-comments the last such line in place and sets the value there; else appends
    // "name = value" (adding a line end first if the file lacks a final one). Returns the
    // previous value (nullopt if none). `value` is unquoted; it is written with format_value()
    // (always quoted where it follows the name with no separator, as in "name'x'").
    // An invalid name, an include directive's name or a value with a NUL byte is
    // Error(Exit::usage).
    std::optional<std::string> set(std::string_view name, std::string_view value);
    void update(const std::map<std::string, std::string>& values);  // several sets
    // Comments out every active occurrence ("#" prepended), or deletes the lines when
    // `delete_lines`. Returns whether anything changed.
    bool remove(std::string_view name, bool delete_lines = false);

    struct Include {
        enum Kind { file, file_if_exists, dir } kind;
        std::string path;  // unquoted, as written (relative to the including file's directory)
        int line;
    };
    std::vector<Include> includes() const;

    const std::filesystem::path& origin() const { return origin_; }
    size_t line_count() const { return lines_.size(); }

  private:
    enum class Kind : std::uint8_t { other, setting, include, include_if_exists, include_dir };
    struct Line {
        std::string text;  // the bytes of the line, with its '\n' when it has one
        std::uint32_t name_pos = 0, name_len = 0, value_pos = 0, value_len = 0;
        Kind kind = Kind::other;
    };

    static Line make_line(std::string text);
    std::string_view name_of(const Line& line) const;
    ConfEntry entry_of(size_t index) const;
    const char* line_end() const;  // "\r\n" when the document's lines end so, else "\n"
    void replace_value(Line& line, std::string_view value, const std::string& formatted);

    std::filesystem::path origin_;
    std::vector<Line> lines_;
};

// How a value is written: bare when it is a plain number (with optional unit) or an ASCII
// identifier that the scanner reads back identically; otherwise single-quoted, with quotes and
// backslashes doubled (and a newline or carriage return written \n, \r: one line per setting).
// A NUL byte cannot be represented: Error(Exit::usage).
std::string format_value(std::string_view value);

// The server's DeescapeQuotedString: strips the quotes of a quoted value and resolves '' and
// the backslash escapes. `raw` is the quoted token as written.
std::string unquote_value(std::string_view raw);

// Whether `name` is a parameter name as the scanner reads one (identifier or prefix.name).
bool is_valid_name(std::string_view name);

// Effective settings of a server's configuration: the main file with its include tree, then
// postgresql.auto.conf from the data directory (which overrides).
struct EffectiveSetting {
    std::string name;  // as written where it wins
    std::string value;
    std::filesystem::path file;
    int line;
};

class ConfTree {
  public:
    // main_file: postgresql.conf; auto_file: postgresql.auto.conf (may not exist). Includes are
    // followed; a missing `include` is an error naming the including file and line;
    // include_if_exists skips. Cycles (with the chain) and nesting deeper than the server's 10
    // levels are Error(Exit::usage).
    static ConfTree load(const std::filesystem::path& main_file,
                         const std::filesystem::path& auto_file = {});
    std::optional<EffectiveSetting> get(std::string_view name) const;  // which file/line wins
    std::map<std::string, EffectiveSetting> all() const;               // lowercase keys
    std::vector<std::filesystem::path> files() const;  // every file read, in read order
    // Every setting line in the order the server applies them (later ones win).
    const std::vector<EffectiveSetting>& settings() const { return settings_; }
    // The file to edit for `name`: where the winning value is, unless that is
    // postgresql.auto.conf (then the main file), or the main file when the name appears nowhere.
    std::filesystem::path file_to_edit(std::string_view name) const;

  private:
    struct Loader;
    std::filesystem::path main_file_;
    std::filesystem::path auto_file_;
    std::vector<std::filesystem::path> files_;
    std::vector<EffectiveSetting> settings_;
    std::map<std::string, EffectiveSetting> effective_;
};

// on/off/true/false/yes/no/1/0 and unique prefixes, case-insensitive, as the server's
// parse_bool. Returns false (and leaves `out` unchanged) when `text` is none of them.
bool parse_bool(std::string_view text, bool& out);

// The pg_hba.conf and pg_ident.conf a server reads (the hba_file and ident_file settings).
struct AuthFiles {
    std::filesystem::path hba;
    std::filesystem::path ident;
    // The configuration file whose line sets each (empty: not set, the data directory's file):
    // the file is read with the rights of whoever controls that one (read_auth_file).
    std::filesystem::path hba_named_by;
    std::filesystem::path ident_named_by;
};
// From the postgresql.conf tree of `data_dir` (with postgresql.auto.conf): each setting's value
// where it wins, a relative path taken from the data directory (the server makes it absolute
// from its working directory, and pgforge starts it in the data directory); unset or empty:
// pg_hba.conf and pg_ident.conf in the data directory. Errors are ConfTree::load's.
AuthFiles auth_file_paths(const std::filesystem::path& data_dir);
AuthFiles auth_file_paths(const ConfTree& tree, const std::filesystem::path& data_dir);
// The text of `file` (AuthFiles::hba or ::ident) read with the rights of whoever controls the
// configuration file that named it (`named_by`; empty: of whoever controls `file`), as an
// include is: a path the owner points at a file only root can read is refused, never read by
// root.
std::string read_auth_file(const std::filesystem::path& file,
                           const std::filesystem::path& named_by);

}  // namespace pgforge::conf
