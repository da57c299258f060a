#!/usr/bin/python
# -*- coding: utf-8 -*-

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r'''
---
module: pgforge_role
short_description: A role of a pgforge instance, as described
description:
  - Makes a role of a running pgforge instance what the options describe, with
    C(pgforge role apply); only the statements that make the instance agree run, and applying
    the same description again runs none (C(changed=false)).
  - Options left out (or null) leave that attribute as it is, or take PostgreSQL's default
    when the role is created. See pgforge's docs/roles.md.
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
    details: The diff is the SQL that ran (or would run), the password shown as C('***').
  platform:
    platforms: posix
options:
  instance:
    description:
      - The instance, C(NAME) or C(VERSION/NAME); it must be running.
    type: str
    required: true
  name:
    description:
      - The role's name (1 to 63 bytes, any character).
    type: str
    required: true
  state:
    description:
      - C(present) creates or changes the role, C(absent) drops it if it exists.
    type: str
    choices: [present, absent]
    default: present
  login:
    description: LOGIN (true) or NOLOGIN (false).
    type: bool
  superuser:
    description: SUPERUSER or NOSUPERUSER.
    type: bool
  createdb:
    description: CREATEDB or NOCREATEDB.
    type: bool
  createrole:
    description: CREATEROLE or NOCREATEROLE.
    type: bool
  replication:
    description: REPLICATION or NOREPLICATION.
    type: bool
  inherit:
    description: INHERIT or NOINHERIT.
    type: bool
  connection_limit:
    description: At most this many connections; C(-1) for no limit.
    type: int
  valid_until:
    description:
      - The password is valid until this time (any timestamp the server reads, or
        C(infinity)). Quote dates in YAML.
    type: str
  in_roles:
    description:
      - The role is a member of exactly these roles (C([]) for none); left out, its memberships
        are untouched.
    type: list
    elements: str
  password:
    description:
      - The password, in clear text. It reaches pgforge in the manifest on standard input,
        never on the command line; pgforge sends the server a SCRAM-SHA-256 verifier, and
        reports C(changed) only when the stored verifier is not that of this password.
    type: str
  password_file:
    description:
      - A file on the managed host whose first line is the password (C(pgforge role apply
        --password-file)); it must not be readable by its group or others.
      - Mutually exclusive with I(password).
    type: path
  pgpass:
    description:
      - C(true) keeps an entry for the role in C(~/.pgpass) of the user running pgforge,
        C(false) removes it.
    type: bool
  reassign_owned:
    description:
      - With I(state=absent), what the role owns is given to this role first, in every database.
    type: str
  drop_owned:
    description:
      - With I(state=absent), what the role owns is dropped first, in every database.
    type: bool
seealso:
  - module: pgforge.pgforge.pgforge_instance
  - module: pgforge.pgforge.pgforge_database
'''

EXAMPLES = r'''
- name: An application role that logs in
  pgforge.pgforge.pgforge_role:
    instance: main
    name: app
    login: true
    connection_limit: 20
    in_roles: [readers]
    password: "{{ app_password }}"

- name: The password from a file on the host, and an entry in ~/.pgpass
  pgforge.pgforge.pgforge_role:
    instance: 15/main
    name: report
    login: true
    password_file: /etc/pgforge/report.pw
    pgpass: true

- name: Drop a role, giving what it owns to postgres
  pgforge.pgforge.pgforge_role:
    instance: main
    name: old_app
    state: absent
    reassign_owned: postgres
'''

RETURN = r'''
changed:
  description: Whether the role was (in check mode, would be) created, changed or dropped.
  returned: always
  type: bool
result:
  description: pgforge's outcome for the role.
  returned: success
  type: str
  sample: created
  choices: [created, changed, dropped, unchanged]
statements:
  description:
    - The statements that ran, in order (in check mode, those that would run); passwords show
      as C('***').
  returned: success
  type: list
  elements: str
  sample: ["CREATE ROLE \"app\" WITH LOGIN CONNECTION LIMIT 20 PASSWORD '***'"]
results:
  description: pgforge's JSON, one object per role (C(name), C(result), C(statements)).
  returned: success
  type: list
  elements: dict
  sample: [{"name": "app", "result": "created", "statements": ["CREATE ROLE \"app\" WITH LOGIN"]}]
cmd:
  description: The command that ran (no password is ever in it).
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
    is_changed,
    manifest_of,
    results_of,
    role_options,
)


def main():
    fields = role_options()
    argument_spec = common_argument_spec()
    argument_spec.update(fields)
    argument_spec.update(
        instance=dict(type='str', required=True),
        password_file=dict(type='path', no_log=False),
    )
    module = AnsibleModule(argument_spec=argument_spec, supports_check_mode=True,
                           mutually_exclusive=[['password', 'password_file'],
                                               ['reassign_owned', 'drop_owned']])
    manifest = manifest_of(module.params, fields)
    extra = []
    if module.params['password_file']:
        extra = ['--password-file', module.params['password_file']]
    pgforge = Pgforge(module)
    argv, doc = pgforge.apply(['role', 'apply', '-i', module.params['instance']], manifest,
                              extra)
    results = results_of(doc)
    first = results[0] if results and isinstance(results[0], dict) else {}
    ret = dict(changed=is_changed(doc), cmd=argv, results=results,
               result=first.get('result'), statements=first.get('statements', []))
    if module._diff and ret['changed']:
        ret['diff'] = ansible_diff(doc, 'role')
    module.exit_json(**ret)


if __name__ == '__main__':
    main()
