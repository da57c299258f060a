# -*- coding: utf-8 -*-
# The options every module of pgforge.pgforge has.

from __future__ import absolute_import, division, print_function

__metaclass__ = type


class ModuleDocFragment(object):

    DOCUMENTATION = r'''
options:
  pgforge_bin:
    description:
      - The pgforge program to run, a name looked up on C(PATH) or a path.
    type: str
    default: pgforge
  prefix:
    description:
      - Where instances, the inventory and lock files live (C(pgforge --prefix)).
      - Left out, pgforge's default (its settings file, else C(/var/lib/pgforge) as root,
        C(~/.local/share/pgforge) otherwise).
    type: path
  settings_file:
    description:
      - The site settings file (C(pgforge --settings)); else C($PGFORGE_SETTINGS), then
        C(/etc/pgforge/settings.ini) (root) or C(~/.config/pgforge/settings.ini).
    type: path
  run_dir:
    description:
      - Where unix sockets live (C(pgforge --run-dir)).
    type: path
notes:
  - The module runs C(pgforge --json ... apply -f -) on the managed host with the manifest as
    JSON on standard input; a password never appears on pgforge's command line.
  - In check mode pgforge runs with C(--check), which computes the result without changing
    anything; in diff mode with C(--diff), which adds the unified diffs of the files it would
    change and the SQL it would run.
  - A non-zero exit of pgforge fails the task with pgforge's message (its standard error); the
    result then has C(rc), C(stderr), and C(error) (C(message), C(hint), C(exit)) from its JSON.
requirements:
  - pgforge on the managed host.
'''
