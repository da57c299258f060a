#include "engine/conf/pgconf.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <limits>

#include "engine/conf/template.hpp"
#include "engine/core/error.hpp"
#include "engine/core/safe_fs.hpp"

namespace fs = std::filesystem;

namespace pgforge::conf {

namespace {

// ---------------------------------------------------------------------------------------------
// The scanner: the token rules of guc-file.l, longest match first, ties to the earlier rule.
//
//   \n              end of line
//   [ \t\r]+        whitespace (skipped)
//   #.*             comment up to the end of the line (skipped)
//   ID              {LETTER}{LETTER_OR_DIGIT}*           LETTER: [A-Za-z_\200-\377]
//   QUALIFIED_ID    {ID}"."{ID}
//   STRING          '([^'\\\n]|\\.|'')*'
//   UNQUOTED_STRING {LETTER}({LETTER_OR_DIGIT}|[-._:/])*
//   INTEGER         {SIGN}?({DIGIT}+|0x{HEXDIGIT}+){UNIT_LETTER}*     UNIT_LETTER: [a-zA-Z]
//   REAL            {SIGN}?{DIGIT}*"."{DIGIT}*{EXPONENT}?
//   =               equals
//   .               error (any other byte)
// ---------------------------------------------------------------------------------------------

enum class Tok : std::uint8_t {
    eol,
    eof,
    id,
    qualified_id,
    string,
    unquoted,
    integer,
    real,
    equals,
    error
};

struct Token {
    Tok kind;
    size_t begin;
    size_t end;
};

inline bool is_letter(unsigned char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || c >= 0x80;
}
inline bool is_digit(unsigned char c) {
    return c >= '0' && c <= '9';
}
inline bool is_letter_or_digit(unsigned char c) {
    return is_letter(c) || is_digit(c);
}
inline bool is_ascii_alpha(unsigned char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}
inline bool is_hex(unsigned char c) {
    return is_digit(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}
inline char ascii_lower(char c) {
    return (c >= 'A' && c <= 'Z') ? static_cast<char>(c + 32) : c;
}

constexpr size_t npos = std::string_view::npos;

class Lexer {
  public:
    explicit Lexer(std::string_view text) : s_(text) {}

    Token next() {
        const size_t n = s_.size();
        for (;;) {
            if (pos_ >= n) return {Tok::eof, n, n};
            char c = s_[pos_];
            if (c == ' ' || c == '\t' || c == '\r') {
                ++pos_;
            } else if (c == '#') {
                while (pos_ < n && s_[pos_] != '\n') ++pos_;
            } else {
                break;
            }
        }
        const size_t begin = pos_;
        const auto c = static_cast<unsigned char>(s_[begin]);
        Tok kind = Tok::error;
        size_t end = begin + 1;
        if (c == '\n') {
            kind = Tok::eol;
        } else if (c == '=') {
            kind = Tok::equals;
        } else if (is_letter(c)) {
            size_t id_end = scan_id(begin);
            size_t qualified_end = npos;
            if (id_end + 1 < n && s_[id_end] == '.' && is_letter(at(id_end + 1)))
                qualified_end = scan_id(id_end + 1);
            size_t unquoted_end = begin + 1;
            while (unquoted_end < n) {
                unsigned char d = at(unquoted_end);
                if (!is_letter_or_digit(d) && d != '-' && d != '.' && d != '_' && d != ':' &&
                    d != '/')
                    break;
                ++unquoted_end;
            }
            end = unquoted_end;
            kind = unquoted_end == id_end          ? Tok::id
                   : unquoted_end == qualified_end ? Tok::qualified_id
                                                   : Tok::unquoted;
        } else if (c == '\'') {
            size_t string_end = scan_string(begin);
            if (string_end != npos) {
                kind = Tok::string;
                end = string_end;
            }
        } else if (c == '+' || c == '-' || c == '.' || is_digit(c)) {
            size_t p = begin + (c == '+' || c == '-' ? 1 : 0);
            size_t integer_end = scan_integer(p);
            size_t real_end = scan_real(p);
            if (integer_end != npos && (real_end == npos || integer_end >= real_end)) {
                kind = Tok::integer;
                end = integer_end;
            } else if (real_end != npos) {
                kind = Tok::real;
                end = real_end;
            }
        }
        pos_ = end;
        return {kind, begin, end};
    }

  private:
    unsigned char at(size_t i) const { return static_cast<unsigned char>(s_[i]); }

    size_t scan_id(size_t p) const {
        ++p;
        while (p < s_.size() && is_letter_or_digit(at(p))) ++p;
        return p;
    }

    // The end of the longest STRING match starting at the quote `p`, or npos.
    size_t scan_string(size_t p) const {
        const size_t n = s_.size();
        size_t best = npos;
        size_t i = p + 1;
        while (i < n) {
            char c = s_[i];
            if (c == '\n') break;
            if (c == '\\') {
                if (i + 1 < n && s_[i + 1] != '\n') {
                    i += 2;
                    continue;
                }
                break;
            }
            if (c == '\'') {
                best = i + 1;  // closing here is a match; '' may continue to a longer one
                if (i + 1 < n && s_[i + 1] == '\'') {
                    i += 2;
                    continue;
                }
                break;
            }
            ++i;
        }
        return best;
    }

    size_t scan_integer(size_t p) const {
        const size_t n = s_.size();
        if (p >= n || !is_digit(at(p))) return npos;
        size_t q = p;
        while (q < n && is_digit(at(q))) ++q;
        while (q < n && is_ascii_alpha(at(q))) ++q;
        if (s_[p] == '0' && p + 2 < n && s_[p + 1] == 'x' && is_hex(at(p + 2))) {
            size_t h = p + 2;
            while (h < n && is_hex(at(h))) ++h;
            while (h < n && is_ascii_alpha(at(h))) ++h;
            q = std::max(q, h);
        }
        return q;
    }

    size_t scan_real(size_t p) const {
        const size_t n = s_.size();
        size_t r = p;
        while (r < n && is_digit(at(r))) ++r;
        if (r >= n || s_[r] != '.') return npos;
        ++r;
        while (r < n && is_digit(at(r))) ++r;
        if (r < n && (s_[r] == 'e' || s_[r] == 'E')) {
            size_t e = r + 1;
            if (e < n && (s_[e] == '+' || s_[e] == '-')) ++e;
            if (e < n && is_digit(at(e))) {
                while (e < n && is_digit(at(e))) ++e;
                r = e;
            }
        }
        return r;
    }

    std::string_view s_;
    size_t pos_ = 0;
};

bool is_value_token(Tok t) {
    return t == Tok::id || t == Tok::string || t == Tok::integer || t == Tok::real ||
           t == Tok::unquoted;
}

// One physical line read as the server reads a logical line.
struct LineSyntax {
    bool ok = true;
    bool setting = false;
    size_t name_pos = 0, name_len = 0, value_pos = 0, value_len = 0;
    // on error: the offending token, or an empty range for "end of line"
    size_t error_pos = 0, error_len = 0;
};

LineSyntax scan_line(std::string_view text) {
    LineSyntax out;
    Lexer lexer(text);
    Token t = lexer.next();
    if (t.kind == Tok::eol || t.kind == Tok::eof) return out;
    auto fail = [&](const Token& bad) {
        out.ok = false;
        out.setting = false;
        if (bad.kind != Tok::eol && bad.kind != Tok::eof) {
            out.error_pos = bad.begin;
            out.error_len = bad.end - bad.begin;
        }
        return out;
    };
    if (t.kind != Tok::id && t.kind != Tok::qualified_id) return fail(t);
    out.name_pos = t.begin;
    out.name_len = t.end - t.begin;
    t = lexer.next();
    if (t.kind == Tok::equals) t = lexer.next();
    if (!is_value_token(t.kind)) return fail(t);
    out.value_pos = t.begin;
    out.value_len = t.end - t.begin;
    t = lexer.next();
    if (t.kind != Tok::eol && t.kind != Tok::eof) return fail(t);
    out.setting = true;
    return out;
}

bool names_equal(std::string_view a, std::string_view b) {
    if (a.size() != b.size()) return false;
    for (size_t i = 0; i < a.size(); ++i)
        if (ascii_lower(a[i]) != ascii_lower(b[i])) return false;
    return true;
}

std::string lower(std::string_view s) {
    std::string out(s);
    for (char& c : out) c = ascii_lower(c);
    return out;
}

std::string origin_name(const fs::path& origin) {
    return origin.empty() ? std::string("<text>") : origin.string();
}

std::string printable(std::string_view token) {
    std::string out;
    for (char c : token) {
        auto u = static_cast<unsigned char>(c);
        if (u < 0x20 || u == 0x7f) {
            static const char hex[] = "0123456789abcdef";
            out += "\\x";
            out += hex[u >> 4];
            out += hex[u & 15];
        } else {
            out += c;
        }
    }
    return out;
}

// Configuration files of an instance are the owner's, and so is what they include: as root, each
// file is opened with the rights of whoever controls it (safe_fs), so an include of a file that
// user cannot read is refused, never read by root. At most 64 MiB.
// With `missing_ok`, nullopt when the file does not exist as the reader sees it.
std::optional<std::string> read_file_bytes(const fs::path& file, const safe_fs::Control& reader,
                                           bool missing_ok) {
    try {
        if (missing_ok) return safe_fs::read_file_if_exists(file, reader, 64 << 20);
        return safe_fs::read_file(file, reader, 64 << 20);
    } catch (const Error& e) {
        std::string what = e.what();
        const std::string prefix = "cannot read " + fs::absolute(file).lexically_normal().string();
        if (what.rfind(prefix, 0) == 0) what = what.substr(prefix.size());
        if (what == ": it is a directory")
            throw Error(Exit::failure,
                        "cannot read configuration file " + file.string() + ": it is a directory",
                        "use include_dir for a directory");
        throw Error(Exit::failure, "cannot read configuration file " + file.string() + what,
                    e.hint().empty() ? "check that the file exists and is readable" : e.hint());
    }
}

void check_settable_name(std::string_view name) {
    if (!is_valid_name(name))
        throw Error(Exit::usage, "invalid configuration parameter name \"" + printable(name) + "\"",
                    "a name is letters, digits and _, optionally prefix.name");
    if (names_equal(name, "include") || names_equal(name, "include_if_exists") ||
        names_equal(name, "include_dir"))
        throw Error(Exit::usage, "\"" + std::string(name) + "\" is a directive, not a setting",
                    "edit include lines by hand");
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// Values
// ---------------------------------------------------------------------------------------------

std::string unquote_value(std::string_view raw) {
    if (raw.size() < 2 || raw.front() != '\'' || raw.back() != '\'') return std::string(raw);
    // Same walk as the server's DeescapeQuotedString (trailing quote included in the walk).
    std::string_view s = raw.substr(1);
    std::string out;
    out.reserve(s.size());
    for (size_t i = 0; i < s.size(); ++i) {
        char c = s[i];
        if (c == '\\' && i + 1 < s.size()) {
            ++i;
            switch (s[i]) {
                case 'b':
                    out += '\b';
                    break;
                case 'f':
                    out += '\f';
                    break;
                case 'n':
                    out += '\n';
                    break;
                case 'r':
                    out += '\r';
                    break;
                case 't':
                    out += '\t';
                    break;
                case '0':
                case '1':
                case '2':
                case '3':
                case '4':
                case '5':
                case '6':
                case '7': {
                    int k = 0;
                    long octal = 0;
                    while (k < 3 && i + k < s.size() && s[i + k] >= '0' && s[i + k] <= '7') {
                        octal = (octal << 3) + (s[i + k] - '0');
                        ++k;
                    }
                    i += static_cast<size_t>(k) - 1;
                    out += static_cast<char>(octal);
                    break;
                }
                default:
                    out += s[i];
                    break;
            }
        } else if (c == '\'' && i + 1 < s.size() && s[i + 1] == '\'') {
            out += '\'';
            ++i;
        } else {
            out += c;
        }
    }
    if (!out.empty()) out.pop_back();  // the closing quote
    // The server keeps values as C strings: a NUL byte (raw or \0) ends the value.
    if (size_t nul = out.find('\0'); nul != std::string::npos) out.resize(nul);
    return out;
}

bool is_valid_name(std::string_view name) {
    Lexer lexer(name);
    Token t = lexer.next();
    return !name.empty() && t.begin == 0 && t.end == name.size() &&
           (t.kind == Tok::id || t.kind == Tok::qualified_id);
}

namespace {

std::string quote_value(std::string_view value) {
    std::string out;
    out.reserve(value.size() + 2);
    out += '\'';
    for (char c : value) {
        if (c == '\'' || c == '\\') {
            out += c;
            out += c;
        } else if (c == '\n') {
            out += "\\n";
        } else if (c == '\r') {
            out += "\\r";
        } else {
            out += c;
        }
    }
    out += '\'';
    return out;
}

}  // namespace

std::string format_value(std::string_view value) {
    if (value.find('\0') != std::string_view::npos)
        throw Error(Exit::usage, "a configuration value cannot contain a NUL byte");
    bool ascii = std::all_of(value.begin(), value.end(),
                             [](char c) { return static_cast<unsigned char>(c) < 0x80; });
    if (!value.empty() && ascii) {
        Lexer lexer(value);
        Token t = lexer.next();
        if (t.begin == 0 && t.end == value.size() &&
            (t.kind == Tok::id || t.kind == Tok::integer || t.kind == Tok::real))
            return std::string(value);
    }
    return quote_value(value);
}

bool parse_bool(std::string_view text, bool& out) {
    // As the server's parse_bool_with_len: a non-empty prefix of a word; "o" is ambiguous.
    auto prefix_of = [&](std::string_view word, size_t min_len) {
        if (text.size() < min_len || text.size() > word.size()) return false;
        return names_equal(text, word.substr(0, text.size()));
    };
    if (text.empty()) return false;
    switch (text.front()) {
        case 't':
        case 'T':
            if (prefix_of("true", 1)) return out = true, true;
            break;
        case 'f':
        case 'F':
            if (prefix_of("false", 1)) return out = false, true;
            break;
        case 'y':
        case 'Y':
            if (prefix_of("yes", 1)) return out = true, true;
            break;
        case 'n':
        case 'N':
            if (prefix_of("no", 1)) return out = false, true;
            break;
        case 'o':
        case 'O':
            if (prefix_of("on", 2)) return out = true, true;
            if (prefix_of("off", 2)) return out = false, true;
            break;
        case '1':
            if (text.size() == 1) return out = true, true;
            break;
        case '0':
            if (text.size() == 1) return out = false, true;
            break;
        default:
            break;
    }
    return false;
}

// ---------------------------------------------------------------------------------------------
// ConfDocument
// ---------------------------------------------------------------------------------------------

ConfDocument::Line ConfDocument::make_line(std::string text) {
    Line line;
    LineSyntax syntax = scan_line(text);
    line.text = std::move(text);
    if (!syntax.setting) return line;
    line.name_pos = static_cast<std::uint32_t>(syntax.name_pos);
    line.name_len = static_cast<std::uint32_t>(syntax.name_len);
    line.value_pos = static_cast<std::uint32_t>(syntax.value_pos);
    line.value_len = static_cast<std::uint32_t>(syntax.value_len);
    std::string_view name(line.text.data() + line.name_pos, line.name_len);
    line.kind = Kind::setting;
    if (name.size() >= 7 && (name[0] == 'i' || name[0] == 'I')) {
        if (names_equal(name, "include"))
            line.kind = Kind::include;
        else if (names_equal(name, "include_if_exists"))
            line.kind = Kind::include_if_exists;
        else if (names_equal(name, "include_dir"))
            line.kind = Kind::include_dir;
    }
    return line;
}

ConfDocument ConfDocument::parse(std::string_view text, fs::path origin) {
    ConfDocument doc;
    doc.origin_ = std::move(origin);
    doc.lines_.reserve(static_cast<size_t>(std::count(text.begin(), text.end(), '\n')) + 1);
    size_t pos = 0;
    while (pos < text.size()) {
        size_t nl = text.find('\n', pos);
        size_t end = nl == std::string_view::npos ? text.size() : nl + 1;
        if (end - pos > std::numeric_limits<std::uint32_t>::max())
            throw Error(Exit::usage, origin_name(doc.origin_) + ":" +
                                         std::to_string(doc.lines_.size() + 1) + ": line too long");
        std::string_view piece = text.substr(pos, end - pos);
        LineSyntax syntax = scan_line(piece);
        if (!syntax.ok) {
            std::string where = origin_name(doc.origin_) + ":" +
                                std::to_string(doc.lines_.size() + 1) + ": syntax error";
            if (syntax.error_len == 0)
                where += " near end of line";
            else
                where += " near token \"" +
                         printable(piece.substr(syntax.error_pos, syntax.error_len)) + "\"";
            throw Error(Exit::usage, where,
                        "a line is: name = value  # comment (quote values with spaces or "
                        "special characters: 'a b'); the server rejects this file too");
        }
        doc.lines_.push_back(make_line(std::string(piece)));
        pos = end;
    }
    return doc;
}

ConfDocument ConfDocument::read(const fs::path& file) {
    return parse(*read_file_bytes(file, {}, false), file);
}

std::string ConfDocument::print() const {
    size_t total = 0;
    for (const Line& line : lines_) total += line.text.size();
    std::string out;
    out.reserve(total);
    for (const Line& line : lines_) out += line.text;
    return out;
}

void ConfDocument::save(const fs::path& file, const OsUser* owner) const {
    fs::path target = file.empty() ? origin_ : file;
    if (target.empty())
        throw Error(Exit::usage, "no file to save the configuration to",
                    "give a path, or read the document from a file");
    std::error_code ec;
    // Replace the file a symbolic link points to, not the link; as root, only where whoever
    // controls the link controls the target too (else the link's owner could have root write
    // any file).
    if (fs::is_symlink(target, ec)) {
        fs::path resolved = fs::canonical(target, ec);
        if (!ec) {
            if (::geteuid() == 0) {
                safe_fs::Control link = safe_fs::who_controls(target);
                safe_fs::Control to = safe_fs::who_controls(resolved.parent_path());
                if (link.kind != safe_fs::Control::root &&
                    (to.kind != link.kind || to.owner.uid != link.owner.uid))
                    throw Error(Exit::failure,
                                "refusing to write " + resolved.string() + " through the link " +
                                    target.string() + ": the link is " +
                                    (link.kind == safe_fs::Control::user
                                         ? link.owner.name + "'s"
                                         : "in a directory other users can write") +
                                    ", the target is not",
                                "edit the target directly, or replace the link by the file");
            }
            target = resolved;
        }
    }
    OsUser keep;
    auto mode = fs::perms::owner_read | fs::perms::owner_write;
    struct stat st {};
    if (::stat(target.c_str(), &st) == 0) {
        mode = static_cast<fs::perms>(st.st_mode & 07777);
        if (!owner) {
            keep.uid = st.st_uid;
            keep.gid = st.st_gid;
            owner = &keep;
        }
    }
    write_file_atomically(target, print(), owner, mode);
}

std::string_view ConfDocument::name_of(const Line& line) const {
    return std::string_view(line.text).substr(line.name_pos, line.name_len);
}

ConfEntry ConfDocument::entry_of(size_t index) const {
    const Line& line = lines_[index];
    ConfEntry entry;
    entry.name = std::string(name_of(line));
    entry.raw_value = line.text.substr(line.value_pos, line.value_len);
    entry.value =
        entry.raw_value.front() == '\'' ? unquote_value(entry.raw_value) : entry.raw_value;
    entry.line = static_cast<int>(index + 1);
    return entry;
}

std::optional<ConfEntry> ConfDocument::get(std::string_view name) const {
    for (size_t i = lines_.size(); i-- > 0;)
        if (lines_[i].kind == Kind::setting && names_equal(name_of(lines_[i]), name))
            return entry_of(i);
    return std::nullopt;
}

std::vector<ConfEntry> ConfDocument::entries() const {
    std::vector<ConfEntry> out;
    for (size_t i = 0; i < lines_.size(); ++i)
        if (lines_[i].kind == Kind::setting) out.push_back(entry_of(i));
    return out;
}

std::map<std::string, std::string> ConfDocument::getset(const std::set<std::string>& names) const {
    std::set<std::string, std::less<>> wanted;
    for (const std::string& name : names) wanted.insert(lower(name));
    std::map<std::string, std::string> out;
    std::string key;
    for (size_t i = 0; i < lines_.size(); ++i) {
        if (lines_[i].kind != Kind::setting) continue;
        std::string_view name = name_of(lines_[i]);
        key.assign(name);
        for (char& c : key) c = ascii_lower(c);
        if (wanted.count(key)) out[key] = entry_of(i).value;
    }
    return out;
}

std::vector<ConfDocument::Include> ConfDocument::includes() const {
    std::vector<Include> out;
    for (size_t i = 0; i < lines_.size(); ++i) {
        Include::Kind kind;
        switch (lines_[i].kind) {
            case Kind::include:
                kind = Include::file;
                break;
            case Kind::include_if_exists:
                kind = Include::file_if_exists;
                break;
            case Kind::include_dir:
                kind = Include::dir;
                break;
            default:
                continue;
        }
        const Line& line = lines_[i];
        std::string_view raw = std::string_view(line.text).substr(line.value_pos, line.value_len);
        out.push_back({kind, raw.front() == '\'' ? unquote_value(raw) : std::string(raw),
                       static_cast<int>(i + 1)});
    }
    return out;
}

const char* ConfDocument::line_end() const {
    for (const Line& line : lines_) {
        const std::string& t = line.text;
        if (!t.empty() && t.back() == '\n')
            return t.size() >= 2 && t[t.size() - 2] == '\r' ? "\r\n" : "\n";
    }
    return "\n";
}

void ConfDocument::replace_value(Line& line, std::string_view value, const std::string& formatted) {
    std::string text = std::move(line.text);
    // A quoted value may follow the name with no separator ("name'x'", also "name+1"): a bare
    // value there would run into the name, so it stays quoted.
    char before = line.value_pos > 0 ? text[line.value_pos - 1] : ' ';
    bool separated = before == ' ' || before == '\t' || before == '\r' || before == '=';
    text.replace(line.value_pos, line.value_len,
                 separated || formatted.front() == '\'' ? formatted : quote_value(value));
    line = make_line(std::move(text));
}

std::optional<std::string> ConfDocument::set(std::string_view name, std::string_view value) {
    check_settable_name(name);
    const std::string formatted = format_value(value);  // validates before anything changes

    // 1. The winning active line.
    for (size_t i = lines_.size(); i-- > 0;) {
        Line& line = lines_[i];
        if (line.kind != Kind::setting || !names_equal(name_of(line), name)) continue;
        std::optional<std::string> previous = entry_of(i).value;
        replace_value(line, value, formatted);
        return previous;
    }

    // 2. The last commented default: [blanks]#name ... that reads as a setting without the '#'.
    for (size_t i = lines_.size(); i-- > 0;) {
        Line& line = lines_[i];
        if (line.kind != Kind::other) continue;
        const std::string& t = line.text;
        size_t hash = t.find_first_not_of(" \t\r");
        if (hash == std::string::npos || t[hash] != '#') continue;
        std::string_view rest = std::string_view(t).substr(hash + 1);
        if (rest.size() < name.size() || !names_equal(rest.substr(0, name.size()), name)) continue;
        LineSyntax syntax = scan_line(rest);
        if (!syntax.setting || syntax.name_pos != 0 || syntax.name_len != name.size()) continue;
        std::string text = t;
        text.erase(hash, 1);
        line = make_line(std::move(text));
        replace_value(line, value, formatted);
        return std::nullopt;
    }

    // 3. A new line at the end.
    const char* eol = line_end();
    if (!lines_.empty() && !lines_.back().text.empty() && lines_.back().text.back() != '\n')
        lines_.back().text += eol;
    std::string text;
    text.reserve(name.size() + formatted.size() + 5);
    text.append(name).append(" = ").append(formatted).append(eol);
    lines_.push_back(make_line(std::move(text)));
    return std::nullopt;
}

void ConfDocument::update(const std::map<std::string, std::string>& values) {
    for (const auto& [name, value] : values) {  // all valid before the first change
        check_settable_name(name);
        format_value(value);
    }
    for (const auto& [name, value] : values) set(name, value);
}

bool ConfDocument::remove(std::string_view name, bool delete_lines) {
    bool changed = false;
    for (Line& line : lines_) {
        if (line.kind != Kind::setting || !names_equal(name_of(line), name)) continue;
        changed = true;
        if (delete_lines) {
            line.kind = Kind::other;
            line.text.clear();  // marked for deletion below
        } else {
            line = make_line("#" + line.text);
        }
    }
    if (changed && delete_lines)
        lines_.erase(std::remove_if(lines_.begin(), lines_.end(),
                                    [](const Line& line) { return line.text.empty(); }),
                     lines_.end());
    return changed;
}

// ---------------------------------------------------------------------------------------------
// ConfTree
// ---------------------------------------------------------------------------------------------

namespace {

constexpr int max_include_depth = 10;  // the server's CONF_FILE_MAX_DEPTH

fs::path resolve(const std::string& path, const fs::path& calling_file) {
    fs::path p(path);
    if (p.is_relative()) p = calling_file.parent_path() / p;
    return p.lexically_normal();
}

fs::path identity(const fs::path& file) {
    std::error_code ec;
    fs::path canonical = fs::weakly_canonical(file, ec);
    return ec ? fs::absolute(file, ec).lexically_normal() : canonical;
}

std::string at_line(const fs::path& file, int line) {
    return file.string() + ":" + std::to_string(line) + ": ";
}

}  // namespace

struct ConfTree::Loader {
    ConfTree& tree;
    std::vector<std::pair<fs::path, fs::path>> chain;  // (as read, identity) of open files
    // Whose rights the files are read with: whoever controls the main file, and for an include,
    // whoever controls the file that names it (else the include's own). As root, the owner's
    // `include_if_exists = '/root/secret'` is then read as the owner: refused, never shown.
    safe_fs::Control reader{};

    std::string chain_text(const fs::path& last) const {
        std::string out;
        for (const auto& [path, id] : chain) out += path.string() + " -> ";
        return out + last.string();
    }

    void file(const fs::path& path, int depth, const fs::path& from, int from_line, bool strict) {
        const std::string where = from.empty() ? std::string() : at_line(from, from_line);
        if (depth > max_include_depth)
            throw Error(Exit::usage,
                        where + "could not open configuration file \"" + path.string() +
                            "\": maximum nesting depth exceeded (" + chain_text(path) + ")",
                        "the server follows includes " + std::to_string(max_include_depth) +
                            " levels deep at most");
        fs::path id = identity(path);
        for (const auto& open : chain)
            if (open.second == id)
                throw Error(Exit::usage,
                            where + "configuration file recursion: " + chain_text(path),
                            "remove the include that leads back to a file being read");
        const safe_fs::Control outer = reader;
        reader = safe_fs::reader_for(path, outer);
        struct Restore {
            safe_fs::Control& r;
            safe_fs::Control was;
            ~Restore() { r = was; }
        } restore{reader, outer};
        // Whether the file exists is asked with the reader's rights too (the main file's
        // absence is reported as a read error naming it).
        const bool missing_ok = !strict || !from.empty();
        std::optional<std::string> bytes;
        try {
            bytes = read_file_bytes(path, reader, missing_ok);
        } catch (const Error& e) {
            if (where.empty() || e.code() == Exit::usage) throw;
            throw Error(e.code(), where + e.what(), e.hint());
        }
        if (!bytes) {
            if (!strict) return;
            throw Error(Exit::failure,
                        where + "could not open configuration file \"" + path.string() +
                            "\": " + std::strerror(ENOENT),
                        "create it, fix the path, or use include_if_exists");
        }
        ConfDocument doc = [&] {
            try {
                return ConfDocument::parse(*bytes, path);
            } catch (const Error& e) {
                if (where.empty() || e.code() == Exit::usage) throw;
                throw Error(e.code(), where + e.what(), e.hint());
            }
        }();
        tree.files_.push_back(path);
        chain.emplace_back(path, id);

        std::vector<ConfEntry> entries = doc.entries();
        std::vector<ConfDocument::Include> includes = doc.includes();
        size_t next_include = 0;
        auto follow = [&](const ConfDocument::Include& inc) {
            if (inc.path.find_first_not_of(" \t\r\n") == std::string::npos)
                throw Error(Exit::usage, at_line(path, inc.line) +
                                             "empty configuration file name: \"" + inc.path + "\"");
            fs::path target = resolve(inc.path, path);
            if (inc.kind == ConfDocument::Include::dir)
                directory(target, depth + 1, path, inc.line);
            else
                file(target, depth + 1, path, inc.line, inc.kind == ConfDocument::Include::file);
        };
        for (ConfEntry& entry : entries) {
            while (next_include < includes.size() && includes[next_include].line < entry.line)
                follow(includes[next_include++]);
            tree.settings_.push_back(
                {std::move(entry.name), std::move(entry.value), path, entry.line});
        }
        while (next_include < includes.size()) follow(includes[next_include++]);
        chain.pop_back();
    }

    // include_dir: files named *.conf, not starting with '.', in strcmp order.
    void directory(const fs::path& dir, int depth, const fs::path& from, int from_line) {
        std::error_code ec;
        fs::directory_iterator it(dir, ec);
        if (ec)
            throw Error(Exit::failure,
                        at_line(from, from_line) + "could not open configuration directory \"" +
                            dir.string() + "\": " + ec.message(),
                        "create the directory or fix the include_dir line");
        std::vector<std::string> names;
        for (; it != fs::directory_iterator(); it.increment(ec)) {
            std::string name = it->path().filename().string();
            if (name.size() < 6 || name[0] == '.' || name.compare(name.size() - 5, 5, ".conf") != 0)
                continue;
            std::error_code stat_ec;
            fs::file_status st = fs::status(it->path(), stat_ec);
            if (stat_ec)
                throw Error(Exit::failure, at_line(from, from_line) + "could not stat file \"" +
                                               it->path().string() + "\": " + stat_ec.message());
            if (!fs::is_directory(st)) names.push_back(std::move(name));
        }
        if (ec)
            throw Error(Exit::failure, at_line(from, from_line) +
                                           "could not read configuration directory \"" +
                                           dir.string() + "\": " + ec.message());
        std::sort(names.begin(), names.end());
        for (const std::string& name : names) file(dir / name, depth, from, from_line, true);
    }
};

ConfTree ConfTree::load(const fs::path& main_file, const fs::path& auto_file) {
    ConfTree tree;
    tree.main_file_ = main_file;
    tree.auto_file_ = auto_file;
    Loader loader{tree, {}};
    loader.file(main_file, 0, {}, 0, true);
    if (!auto_file.empty()) loader.file(auto_file, 0, {}, 0, false);
    for (const EffectiveSetting& s : tree.settings_) tree.effective_[lower(s.name)] = s;
    return tree;
}

std::optional<EffectiveSetting> ConfTree::get(std::string_view name) const {
    auto it = effective_.find(lower(name));
    if (it == effective_.end()) return std::nullopt;
    return it->second;
}

std::map<std::string, EffectiveSetting> ConfTree::all() const {
    return effective_;
}

std::vector<fs::path> ConfTree::files() const {
    return files_;
}

fs::path ConfTree::file_to_edit(std::string_view name) const {
    auto it = effective_.find(lower(name));
    if (it == effective_.end()) return main_file_;
    const fs::path& file = it->second.file;
    if (!auto_file_.empty() && identity(file) == identity(auto_file_)) return main_file_;
    return file;
}

AuthFiles auth_file_paths(const ConfTree& tree, const fs::path& data_dir) {
    AuthFiles out;
    auto resolve = [&](std::string_view name, const char* file, fs::path& path,
                       fs::path& named_by) {
        auto set = tree.get(name);
        if (!set || set->value.empty()) {
            path = (data_dir / file).lexically_normal();
            return;
        }
        fs::path p(set->value);
        path = (p.is_absolute() ? p : data_dir / p).lexically_normal();
        named_by = set->file;
    };
    resolve("hba_file", "pg_hba.conf", out.hba, out.hba_named_by);
    resolve("ident_file", "pg_ident.conf", out.ident, out.ident_named_by);
    return out;
}

std::string read_auth_file(const fs::path& file, const fs::path& named_by) {
    safe_fs::Control reader;
    if (!named_by.empty()) reader = safe_fs::reader_for(named_by, safe_fs::Control{});
    return *read_file_bytes(file, reader, false);
}

AuthFiles auth_file_paths(const fs::path& data_dir) {
    return auth_file_paths(
        ConfTree::load(data_dir / "postgresql.conf", data_dir / "postgresql.auto.conf"), data_dir);
}

}  // namespace pgforge::conf
