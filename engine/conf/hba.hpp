// pg_hba.conf and pg_ident.conf as ordered records that keep every byte of the file: comments,
// blank lines, alignment, quotes, CRLF line ends, backslash continuations, a missing final
// newline. print() returns exactly what was parsed; edits touch only the records they add or
// remove. Parsing follows PostgreSQL 15's hba.c (tokenizer, keywords, address/netmask and
// option checks) without expanding @file inclusions, which stay tokens.
#pragma once

#include <filesystem>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "engine/conf/template.hpp"

namespace pgforge::conf {

// One pg_hba.conf record. Database and user names are held unquoted, with a parallel flag telling
// whether they were written in double quotes: a quoted keyword ("all") is a plain name, and an
// unquoted @name is a file inclusion (kept as a token, never expanded).
struct HbaRecord {
    std::string type;                    // local, host, hostssl, hostnossl, hostgssenc, ...
    std::vector<std::string> databases;  // tokens as written, unquoted
    std::vector<std::string> users;
    std::string address;  // empty for local; IP[/CIDR], host name, all, samehost or samenet
    std::string mask;     // separate netmask, or empty
    std::string method;
    std::vector<std::pair<std::string, std::string>> options;
    int line = 0;  // 1-based line of the record's first line; 0 when not from a file

    // Parallel to databases / users; a missing entry means "not quoted".
    std::vector<bool> databases_quoted;
    std::vector<bool> users_quoted;
    bool address_quoted = false;

    bool database_quoted(size_t i) const {
        return i < databases_quoted.size() && databases_quoted[i];
    }
    bool user_quoted(size_t i) const { return i < users_quoted.size() && users_quoted[i]; }

    // Canonical text for a new record (no line end), columns aligned like PostgreSQL's sample:
    // TYPE 8, DATABASE 16, USER 16, ADDRESS 24 wide. Tokens are quoted where needed.
    std::string to_line() const;

    // From words written as pg_hba.conf fields, one field per word, e.g.
    // {"host", "all", "all", "10.0.0.0/8", "scram-sha-256", "clientcert=verify-full"} or
    // {"local", "db1,\"db 2\"", "all", "peer"}. Validates as PostgreSQL does; throws
    // Error(Exit::usage) saying what is wrong.
    static HbaRecord parse_fields(const std::vector<std::string>& fields);

    // Same meaning (quotes compared only where they matter), ignoring `line`.
    bool same_as(const HbaRecord& other) const;
};

// Every line of pg_hba.conf text as the server reads it: the valid records (with their line),
// and (line, what is wrong) for each line the server would refuse, instead of an error at the
// first. A NUL byte makes its line one of those.
struct HbaReading {
    std::vector<HbaRecord> records;
    std::vector<std::pair<int, std::string>> invalid;
};
HbaReading read_hba_records(std::string_view text);

// Every record line of pg_hba.conf text in file order, as pg_hba_file_rules lists them: the
// record, or the line as written (continuations joined) with what the server finds wrong in
// it. Comments and blank lines are left out. Never throws for the content: the listing of a
// file with a bad line. (HbaFile::parse, used before writing, stays strict.)
struct HbaLine {
    int line = 0;  // 1-based first line
    std::string text;
    std::optional<HbaRecord> record;
    std::string error;  // empty when record is set
};
std::vector<HbaLine> list_hba_lines(std::string_view text);

class HbaFile {
  public:
    // An invalid record → Error(Exit::usage) naming origin:line and what is wrong.
    static HbaFile parse(std::string_view text, std::filesystem::path origin = {});
    static HbaFile read(const std::filesystem::path& file) {
        return parse(read_text_file(file), file);
    }

    std::string print() const;               // byte-for-byte what was parsed, plus edits
    std::vector<HbaRecord> records() const;  // in order
    size_t size() const { return record_chunks_.size(); }

    // Records matching every field that is set: type, method and address compare the text
    // (address also matches ADDR/LEN against a record written as ADDR + contiguous MASK);
    // database and user match when one of the record's names has that text (quotes ignored).
    struct Match {
        std::optional<std::string> type{}, database{}, user{}, address{}, method{};
    };
    std::vector<size_t> find(const Match& m) const;  // 0-based indexes in records()

    // A new record goes in as its own line (to_line() + the file's line end, CRLF if the file
    // uses CRLF). The record is validated; Error(Exit::usage) if it is invalid.
    void insert(size_t index, const HbaRecord& r);  // before records()[index]; size() = at the end
    void insert_before(const Match& m,
                       const HbaRecord& r);  // before the first match, else not_found
    void insert_after(const Match& m, const HbaRecord& r);  // after the last match, else not_found
    void append(const HbaRecord& r);                        // at the end of the file
    size_t remove(const Match& m);  // removes the matching records' lines; returns how many
    void remove_at(size_t index);   // Error(Exit::usage) if there is no such record

    void write(const std::filesystem::path& file, const OsUser* owner = nullptr,
               std::filesystem::perms mode = std::filesystem::perms::owner_read |
                                             std::filesystem::perms::owner_write) const {
        write_file_atomically(file, print(), owner, mode);
    }

  private:
    struct Chunk {
        std::string raw;  // the logical line with its line end(s), continuation lines included
        std::optional<HbaRecord> record;
    };
    std::vector<Chunk> chunks_;
    std::vector<size_t> record_chunks_;  // chunk index of each record
    std::filesystem::path origin_;

    void insert_at_chunk(size_t chunk, const HbaRecord& r);  // before chunks_[chunk]
};

// pg_ident.conf: MAPNAME SYSTEM-USERNAME PG-USERNAME (system name may be a /regex). Names are
// held unquoted; to_line() quotes them where needed.
struct IdentEntry {
    std::string map{}, system_user{}, pg_user{};
    int line = 0;
    std::string to_line() const;  // MAPNAME 16, SYSTEM-USERNAME 24 wide, as the sample's header
};

class IdentFile {
  public:
    static IdentFile parse(std::string_view text, std::filesystem::path origin = {});
    static IdentFile read(const std::filesystem::path& file) {
        return parse(read_text_file(file), file);
    }

    std::string print() const;
    std::vector<IdentEntry> entries() const;

    // Appends unless an entry with the same three names exists; returns whether it added.
    bool add(const IdentEntry& e);
    bool add_if_absent(const IdentEntry& e) { return add(e); }
    // Removes the entries matching every name that is set; returns how many.
    size_t remove(const std::optional<std::string>& map,
                  const std::optional<std::string>& system_user,
                  const std::optional<std::string>& pg_user);

    void write(const std::filesystem::path& file, const OsUser* owner = nullptr,
               std::filesystem::perms mode = std::filesystem::perms::owner_read |
                                             std::filesystem::perms::owner_write) const {
        write_file_atomically(file, print(), owner, mode);
    }

  private:
    struct Chunk {
        std::string raw;
        std::optional<IdentEntry> entry;
    };
    std::vector<Chunk> chunks_;
    std::filesystem::path origin_;
};

}  // namespace pgforge::conf
