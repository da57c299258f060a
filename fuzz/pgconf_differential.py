#!/usr/bin/env python3
"""Differential check of pgforge's postgresql.conf reader against the server itself.

Generates random postgresql.conf-like files, has a running server read each one (it is
include_if_exists'd from the server's postgresql.conf; pg_file_settings re-reads the files on
every query) and compares with what pgconf_oracle prints.

  pgconf_differential.py ORACLE INCLUDED_FILE 'psql args...' [CASES] [SEED]
"""
import random
import shlex
import subprocess
import sys

oracle, target, psql_args = sys.argv[1], sys.argv[2], shlex.split(sys.argv[3])
cases = int(sys.argv[4]) if len(sys.argv) > 4 else 1000
rng = random.Random(int(sys.argv[5]) if len(sys.argv) > 5 else 1)

NAMES = ["work_mem", "Work_Mem", "x", "_a", "a1", "my.knob", "a.b.c", "a$b", "a-b", "1a",
         "caf\u00e9", "a.", ".a", "ab:c", "a/b", "port"]
VALUES = ["1", "-1", "+1", "0x1F", "0xZZ", "1e5", "1.5e3", "1.5e", ".5", ".", "-.", "1.",
          "5min", "128MB", "1.5GB", "on", "a.b", "en_US.UTF-8", "C:/x", "/x", "a-b", "a b",
          "$x", "x$", "''", "'a''b'", "'a''", "'a\\'b'", "'\\101\\7\\x'", "'#x'", "'a' 'b'",
          "'\\\\'", "'\\'", "'''", "''''", "'x'''", "'a\tb'", "'caf\u00e9'", "=", "#", "'"]
SEPS = [" = ", "=", " ", "\t", "\t=\t", " == ", "", " =", "= "]
TAILS = ["", " # c", "#c", "   ", "\t", "\r", " x", " 'y'", "=", " \r", "# 'unclosed"]
JUNK = ["", " ", "\t", "\r", "#", "\f", "'", "=", "a", "1", ".", "-", "\\", "$", ":"]


BAD_NAMES = {"a.b.c", "a$b", "a-b", "1a", "a.", ".a", "ab:c", "a/b"}
BAD_VALUES = {"1e5", "1.5e", "-.", "1.5GB", "a.b", "/x", "$x", "x$", "'a''", "'a' 'b'",
              "'\\'", "'''", "=", "#", "'"}
NAMES_OK = [n for n in NAMES if n not in BAD_NAMES]
VALUES_OK = [v for v in VALUES if v not in BAD_VALUES]
SEPS_OK = [s for s in SEPS if s not in (" == ", "")]
TAILS_OK = [t for t in TAILS if t not in (" x", " 'y'", "=")]
mostly_valid = False


def valid_line():
    return (rng.choice(["", "", " ", "\t"]) + rng.choice(NAMES_OK) + rng.choice(SEPS_OK) +
            rng.choice(VALUES_OK) + rng.choice(TAILS_OK))


def random_line():
    if mostly_valid and rng.random() < 0.97:
        return valid_line()
    r = rng.random()
    if r < 0.1:
        return rng.choice(["", "# comment", "   ", "\r", "#work_mem = 4MB  # min"])
    if r < 0.2:
        return "".join(rng.choice(JUNK) for _ in range(rng.randint(1, 6)))
    line = rng.choice(["", "", " ", "\t"]) + rng.choice(NAMES) + rng.choice(SEPS)
    line += rng.choice(VALUES) + rng.choice(TAILS)
    if rng.random() < 0.1:  # splice in a random character
        at = rng.randint(0, len(line))
        line = line[:at] + rng.choice(JUNK) + line[at:]
    return line


def server_view():
    query = ("select sourceline, coalesce(name, ''), "
             "encode(convert_to(coalesce(setting, ''), 'UTF8'), 'hex'), coalesce(error, '') "
             f"from pg_file_settings where sourcefile = '{target}' order by seqno")
    out = subprocess.run(["psql", *psql_args, "-XAtF", "\t", "-c", query],
                         check=True, capture_output=True, text=True).stdout
    rows = [line.split("\t") for line in out.splitlines()]
    errors = [int(r[0]) for r in rows if r[1] == ""]
    settings = [(int(r[0]), r[1].lower(), r[2]) for r in rows if r[1] != ""]
    return errors, settings


def our_view():
    out = subprocess.run([oracle, target], check=True, capture_output=True, text=True).stdout
    rows = [line.split("\t") for line in out.splitlines()]
    if rows and rows[0][0] == "error":
        return [int(rows[0][1])], None
    return [], [(int(r[0]), r[1].lower(), r[2] if len(r) > 2 else "") for r in rows]


failures = 0
rejected = 0
for case in range(cases):
    mostly_valid = rng.random() < 0.6
    lines = [random_line() for _ in range(rng.randint(1, 5))]
    text = "\n".join(lines) + rng.choice(["\n", "\n", ""])
    with open(target, "w", encoding="utf-8", newline="") as f:
        f.write(text)
    server_errors, server_settings = server_view()
    our_errors, our_settings = our_view()
    if server_errors or our_errors:
        rejected += 1
        ok = bool(server_errors) and bool(our_errors) and min(server_errors) == our_errors[0]
        # The server numbers an error at the very end of a file without a final newline one
        # line too low (it counts the line end it has not seen): accept that.
        if (not ok and server_errors and our_errors and not text.endswith("\n")
                and min(server_errors) == our_errors[0] - 1 and
                our_errors[0] == text.count("\n") + 1):
            ok = True
    else:
        ok = server_settings == our_settings
    if not ok:
        failures += 1
        print(f"MISMATCH case {case}: {text!r}\n  server: {server_errors} {server_settings}\n"
              f"  ours:   {our_errors} {our_settings}")
print(f"{cases} cases ({rejected} with a syntax error), {failures} mismatches")
sys.exit(1 if failures else 0)
