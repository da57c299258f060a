#!/usr/bin/python
# -*- coding: utf-8 -*-

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r'''
---
module: pgforge_database
short_description: A database of a pgforge instance, as described
description:
  - Makes a database of a running pgforge instance what the options describe, with
    C(pgforge database apply). It is created, its owner, tablespace and settings changed, schemas and
    extensions created, changed or dropped. Applying the same description again runs no
    statement (C(changed=false)).
  - What is left out is left alone. See pgforge's docs/databases.md.
version_added: 0.1.0
author:
  - pgforge contributors
extends_documentation_fragment:
  - pgforge.pgforge.common
  - ansible.builtin.action_common_attributes
attributes:
  check_mode:
    support: full
  diff_mode:
    support: full
    details: The diff is the SQL that ran (or would run).
  platform:
    platforms: posix
options:
  instance:
    description:
      - The instance, C(NAME) or C(VERSION/NAME); it must be running.
    type: str
    required: true
  name:
    description: The database's name.
    type: str
    required: true
  state:
    description:
      - C(present) creates or changes the database, C(absent) drops it if it exists.
    type: str
    choices: [present, absent]
    default: present
  owner:
    description: Its owner (C(ALTER DATABASE ... OWNER TO) when it differs).
    type: str
  tablespace:
    description: Its default tablespace (C(ALTER DATABASE ... SET TABLESPACE) when it differs).
    type: str
  settings:
    description:
      - Database-level settings (C(ALTER DATABASE ... SET)) for those that differ; a null value
        resets that one. C({}) given explicitly resets them all; left out, they are untouched.
    type: dict
  schemas:
    description:
      - Schemas that must be there (a name, or C(name), C(owner), C(state)); those not named are
        left alone. C(state=absent) drops one (refused by the server if it is not empty).
    type: list
    elements: raw
  extensions:
    description:
      - Extensions (a name, or C(name), C(schema), C(version), C(state)); C(CREATE EXTENSION IF
        NOT EXISTS ... CASCADE), C(ALTER EXTENSION) when the schema or version differ,
        C(DROP EXTENSION) with C(state=absent).
    type: list
    elements: raw
  force_drop:
    description: With I(state=absent), C(DROP DATABASE ... WITH (FORCE)) ends its sessions.
    type: bool
seealso:
  - module: pgforge.pgforge.pgforge_instance
  - module: pgforge.pgforge.pgforge_role
'''

EXAMPLES = r'''
- name: The application's database
  pgforge.pgforge.pgforge_database:
    instance: main
    name: app
    owner: app
    settings:
      work_mem: 64MB
      statement_timeout: null   # reset
    schemas:
      - name: app
        owner: app
      - reporting
    extensions:
      - pg_trgm
      - name: hstore
        schema: app

- name: Drop a database, ending its sessions
  pgforge.pgforge.pgforge_database:
    instance: 15/main
    name: scratch
    state: absent
    force_drop: true
'''

RETURN = r'''
changed:
  description: Whether the database was (in check mode, would be) created, changed or dropped.
  returned: always
  type: bool
result:
  description: pgforge's outcome for the database.
  returned: success
  type: str
  sample: changed
  choices: [created, changed, dropped, unchanged]
statements:
  description: The statements that ran, in order (in check mode, those that would run).
  returned: success
  type: list
  elements: str
  sample: ["ALTER DATABASE \"app\" SET \"work_mem\" TO '64MB'"]
results:
  description: pgforge's JSON, one object per database (C(name), C(result), C(statements)).
  returned: success
  type: list
  elements: dict
cmd:
  description: The command that ran.
  returned: always
  type: list
  elements: str
diff:
  description: In diff mode, the SQL as C(prepared) text.
  returned: changed and diff mode
  type: list
  elements: dict
'''

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.pgforge.pgforge.plugins.module_utils.pgforge import (
    Pgforge,
    ansible_diff,
    common_argument_spec,
    database_options,
    is_changed,
    manifest_of,
    results_of,
)


def main():
    fields = database_options()
    argument_spec = common_argument_spec()
    argument_spec.update(fields)
    argument_spec.update(instance=dict(type='str', required=True))
    module = AnsibleModule(argument_spec=argument_spec, supports_check_mode=True)
    manifest = manifest_of(module.params, fields)
    pgforge = Pgforge(module)
    argv, doc = pgforge.apply(['database', 'apply', '-i', module.params['instance']], manifest)
    results = results_of(doc)
    first = results[0] if results and isinstance(results[0], dict) else {}
    ret = dict(changed=is_changed(doc), cmd=argv, results=results,
               result=first.get('result'), statements=first.get('statements', []))
    if module._diff and ret['changed']:
        ret['diff'] = ansible_diff(doc, 'database')
    module.exit_json(**ret)


if __name__ == '__main__':
    main()
