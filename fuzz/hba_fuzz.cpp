// libFuzzer target for engine/conf/hba: arbitrary bytes read as pg_hba.conf and as pg_ident.conf
// either fail to parse (a pgforge::Error) or print back byte for byte; every record's to_line()
// reads back as the same record; edits (insert, append, remove) print text that parses again,
// with the expected records, and appends keep the original bytes as a prefix.
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>

#include "engine/conf/hba.hpp"
#include "engine/core/error.hpp"

using pgforge::conf::HbaFile;
using pgforge::conf::HbaRecord;
using pgforge::conf::IdentEntry;
using pgforge::conf::IdentFile;

namespace {

[[noreturn]] void fail(const char* what) {
    std::fprintf(stderr, "hba_fuzz: %s\n", what);
    std::abort();  // libFuzzer reports the crash and saves the input
}

void check(bool ok, const char* what) {
    if (!ok) fail(what);
}

template <typename File>
File must_parse(const std::string& text, const char* what) {
    try {
        return File::parse(text, "fuzz-output.conf");
    } catch (const pgforge::Error& e) {
        std::fprintf(stderr, "hba_fuzz: %s\n", e.what());
        fail(what);
    }
}

bool starts_with(const std::string& s, const std::string& prefix) {
    return s.compare(0, prefix.size(), prefix) == 0;
}

const HbaRecord& new_record() {
    static const HbaRecord r =
        HbaRecord::parse_fields({"hostssl", "all,\"all\"", "+admins", "10.0.0.0/8", "scram-sha-256",
                                 "clientcert=verify-full"});
    return r;
}

void fuzz_hba(const std::string& input, size_t pick) {
    // The reader plugins get never throws: a line the server would refuse is named instead.
    const pgforge::conf::HbaReading reading = pgforge::conf::read_hba_records(input);
    HbaFile f;
    try {
        f = HbaFile::parse(input, "fuzz.conf");
    } catch (const pgforge::Error& e) {
        check(e.code() == pgforge::Exit::usage, "hba parse error with an unexpected exit code");
        check(!reading.invalid.empty(), "read_hba_records accepts what parse refuses");
        return;
    }
    check(f.print() == input, "hba print() differs from the input");
    const std::vector<HbaRecord> records = f.records();
    const size_t n = records.size();
    check(f.size() == n, "hba size() differs from records().size()");
    check(reading.invalid.empty() && reading.records.size() == n,
          "read_hba_records reads a valid file otherwise than parse");
    for (size_t k = 0; k < n; ++k)
        check(reading.records[k].same_as(records[k]) && reading.records[k].line == records[k].line,
              "read_hba_records gives another record than parse");

    for (const HbaRecord& r : records) {
        HbaFile alone = must_parse<HbaFile>(r.to_line(), "hba to_line() does not parse");
        check(alone.size() == 1 && alone.records()[0].same_as(r),
              "hba to_line() reads back as another record");
    }

    {  // append: the input stays a prefix; the new record is last
        HbaFile g = f;
        g.append(new_record());
        std::string out = g.print();
        check(starts_with(out, input), "hba append changed existing bytes");
        HbaFile h = must_parse<HbaFile>(out, "hba append output does not parse");
        const std::vector<HbaRecord> got = h.records();
        check(got.size() == n + 1, "hba append: wrong record count");
        check(got.back().same_as(new_record()), "hba append: wrong last record");
        for (size_t i = 0; i < n; ++i)
            check(got[i].same_as(records[i]), "hba append changed a record");
    }
    if (n == 0) return;
    const size_t at = pick % n;
    {  // insert before a record
        HbaFile g = f;
        g.insert(at, records[at]);
        HbaFile h = must_parse<HbaFile>(g.print(), "hba insert output does not parse");
        check(h.size() == n + 1, "hba insert: wrong record count");
        check(h.records()[at].same_as(records[at]) && h.records()[at + 1].same_as(records[at]),
              "hba insert: wrong records around the new one");
    }
    {  // insert after the last match
        HbaFile g = f;
        HbaFile::Match m{.type = records[at].type, .method = records[at].method};
        size_t last = f.find(m).back();
        g.insert_after(m, new_record());
        HbaFile h = must_parse<HbaFile>(g.print(), "hba insert_after output does not parse");
        check(h.size() == n + 1 && h.records()[last + 1].same_as(new_record()),
              "hba insert_after: the record is not after the last match");
    }
    {  // remove one, then every match
        HbaFile g = f;
        g.remove_at(at);
        std::string out = g.print();
        check(out.size() < input.size(), "hba remove_at removed nothing");
        HbaFile h = must_parse<HbaFile>(out, "hba remove_at output does not parse");
        const std::vector<HbaRecord> got = h.records();
        check(got.size() == n - 1, "hba remove_at: wrong record count");
        for (size_t i = 0; i + 1 < n; ++i)
            check(got[i].same_as(records[i < at ? i : i + 1]),
                  "hba remove_at changed another record");

        HbaFile k = f;
        HbaFile::Match m{.address = records[at].address};
        size_t matches = f.find(m).size();
        check(k.remove(m) == matches, "hba remove: wrong count");
        HbaFile l = must_parse<HbaFile>(k.print(), "hba remove output does not parse");
        check(l.size() == n - matches && l.find(m).empty(), "hba remove left a match");
    }
}

void fuzz_ident(const std::string& input, size_t pick) {
    IdentFile f;
    try {
        f = IdentFile::parse(input, "fuzz_ident.conf");
    } catch (const pgforge::Error& e) {
        check(e.code() == pgforge::Exit::usage, "ident parse error with an unexpected exit code");
        return;
    }
    check(f.print() == input, "ident print() differs from the input");
    const std::vector<IdentEntry> entries = f.entries();
    const size_t n = entries.size();
    for (const IdentEntry& e : entries) {
        IdentFile alone = must_parse<IdentFile>(e.to_line(), "ident to_line() does not parse");
        check(alone.entries().size() == 1, "ident to_line() is not one entry");
        const IdentEntry b = alone.entries()[0];
        check(b.map == e.map && b.system_user == e.system_user && b.pg_user == e.pg_user,
              "ident to_line() reads back as another entry");
    }
    {
        IdentFile g = f;
        IdentEntry e{.map = "fuzz map", .system_user = "/^(.*)$", .pg_user = "\\1"};
        bool existed = false;
        for (const IdentEntry& x : entries)
            existed |= x.map == e.map && x.system_user == e.system_user && x.pg_user == e.pg_user;
        check(g.add(e) != existed, "ident add: wrong result");
        check(!g.add(e), "ident add twice added twice");
        std::string out = g.print();
        check(starts_with(out, input), "ident add changed existing bytes");
        IdentFile h = must_parse<IdentFile>(out, "ident add output does not parse");
        check(h.entries().size() == n + (existed ? 0 : 1), "ident add: wrong entry count");
    }
    if (n == 0) return;
    {
        const IdentEntry& e = entries[pick % n];
        IdentFile g = f;
        size_t removed = g.remove(e.map, std::nullopt, e.pg_user);
        check(removed >= 1, "ident remove removed nothing");
        IdentFile h = must_parse<IdentFile>(g.print(), "ident remove output does not parse");
        check(h.entries().size() == n - removed, "ident remove: wrong entry count");
    }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    const std::string input(reinterpret_cast<const char*>(data), size);
    size_t pick = size ? data[0] : 0;
    fuzz_hba(input, pick);
    fuzz_ident(input, pick);
    return 0;
}
