#!/usr/bin/python
# -*- coding: utf-8 -*-

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r'''
---
module: pgforge_instance
short_description: A PostgreSQL instance managed by pgforge, as described
description:
  - Makes a PostgreSQL instance what the options describe, with C(pgforge instance apply). A
    missing instance is created, an existing one changed in place (settings, HBA and ident
    records, state, its databases and roles) through one configuration change and at most one
    reload, and I(state=absent) drops it.
  - Applying the same description again writes nothing, reloads nothing and runs no SQL
    (C(changed=false)).
  - A setting that needs a restart is reported in C(pending_restart) unless
    I(restart_on_changes=true).
  - See pgforge's docs/cli.md and docs/ansible.md.
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
    details:
      - The changes of each field as before/after, then the unified diff of each configuration
        file and the SQL of the databases and roles.
  platform:
    platforms: posix
options:
  name:
    description: The instance's name (C(main)); I(version) says which major version's.
    type: str
    required: true
  version:
    description: The PostgreSQL major version (as C(pgforge instance create --version)).
    type: str
  port:
    description: The port; left out, a free one of the site's range when it is created.
    type: int
  state:
    description:
      - C(started) and C(stopped) create the instance if it is missing and start or stop it;
        C(absent) stops it and removes it (data directory, configuration, inventory entry).
      - With C(absent), only I(name) and I(version) are given to pgforge; the other options
        are ignored.
    type: str
    choices: [started, stopped, absent]
    default: started
  restart_on_changes:
    description:
      - Restart the server when a setting that needs a restart changed; otherwise the setting is
        reported in C(pending_restart) and waits for the next restart.
    type: bool
  encoding:
    description: Creation option, the database cluster's encoding (C(UTF8)).
    type: str
  locale:
    description: Creation option, its locale (C(C.UTF-8)).
    type: str
  data_checksums:
    description: Creation option, data checksums on.
    type: bool
  auth_local:
    description: Creation option, the method of local connections (default C(peer)).
    type: str
  auth_host:
    description: Creation option, the method of host connections (default C(scram-sha-256)).
    type: str
  superuser:
    description: Creation option, the superuser's name.
    type: str
  superuser_password_file:
    description:
      - Creation option, a file on the managed host whose first line is the superuser's
        password; not readable by its group or others.
      - Mutually exclusive with I(superuser_password).
    type: path
  superuser_password:
    description:
      - Creation option, the superuser's password. The module writes it to a 0600 file of its
        temporary directory, given to pgforge as I(superuser_password_file) and removed when
        pgforge ends; it is never on a command line.
    type: str
  waldir:
    description: Creation option, a directory for the WAL outside the data directory.
    type: path
  settings:
    description:
      - postgresql.conf parameters; a null value removes the parameter from the files. Those not
        named are left as they are.
    type: dict
  hba:
    description:
      - pg_hba.conf records, each a mapping (C(type), C(database), C(user), C(address),
        C(method), C(options)) or a string, the record as written in pg_hba.conf.
      - With I(hba_mode=present) these records must be there and the others are kept; with
        I(hba_mode=exact) the list is the whole file.
    type: list
    elements: raw
  hba_mode:
    description: How I(hba) is read; pgforge's default is C(present).
    type: str
    choices: [present, exact]
  ident:
    description: pg_ident.conf entries.
    type: list
    elements: dict
    suboptions:
      map:
        description: The map's name.
        type: str
        required: true
      system_user:
        description: The OS user (or a C(/regex)).
        type: str
        required: true
      database_user:
        description: The database role.
        type: str
        required: true
  ident_mode:
    description: C(present) (the entries listed must be there) or C(exact) (the whole file).
    type: str
    choices: [present, exact]
  databases:
    description:
      - Databases of the instance, each as the options of M(pgforge.pgforge.pgforge_database)
        (without I(instance)). Applied after the instance is configured and running.
    type: list
    elements: dict
    suboptions:
      name:
        description: The database's name.
        type: str
        required: true
      state:
        description: C(present) or C(absent).
        type: str
        choices: [present, absent]
      owner:
        description: Its owner.
        type: str
      tablespace:
        description: Its default tablespace.
        type: str
      settings:
        description: Database-level settings; a null value resets one, C({}) resets all.
        type: dict
      schemas:
        description: Schemas (a name, or C(name), C(owner), C(state)).
        type: list
        elements: raw
      extensions:
        description: Extensions (a name, or C(name), C(schema), C(version), C(state)).
        type: list
        elements: raw
      force_drop:
        description: With I(state=absent), end its sessions first.
        type: bool
  roles:
    description:
      - Roles of the instance, each as the options of M(pgforge.pgforge.pgforge_role) (without
        I(instance) and I(password_file)). Passwords travel in the manifest on standard input.
    type: list
    elements: dict
    suboptions:
      name:
        description: The role's name.
        type: str
        required: true
      state:
        description: C(present) or C(absent).
        type: str
        choices: [present, absent]
      login:
        description: LOGIN or NOLOGIN.
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
        description: The password is valid until this time, or C(infinity).
        type: str
      in_roles:
        description: Member of exactly these roles; left out, untouched.
        type: list
        elements: str
      password:
        description: The password, in clear text (never on a command line, never logged).
        type: str
      pgpass:
        description: Keep (true) or remove (false) an entry in C(~/.pgpass).
        type: bool
      reassign_owned:
        description: With I(state=absent), give what the role owns to this role first.
        type: str
      drop_owned:
        description: With I(state=absent), drop what the role owns first.
        type: bool
  plugins:
    description:
      - Sections of plugins that declare per-instance options, merged into the manifest's top
        level, one key per plugin (its name) whose value maps option to value; for example the
        backup plugin's C(backup) section. A key that is one of the options above is refused.
    type: dict
seealso:
  - module: pgforge.pgforge.pgforge_database
  - module: pgforge.pgforge.pgforge_role
notes:
  - Creation options only matter when the instance is created; pgforge reports a difference on
    an existing instance as an error naming the field, since it cannot change.
'''

EXAMPLES = r'''
- name: An instance with its settings, access rules, role and database
  pgforge.pgforge.pgforge_instance:
    name: main
    version: "15"
    port: 5433
    settings:
      work_mem: 8MB
      log_min_duration_statement: 250ms
      shared_buffers: null          # removed from the files: the server's default
    hba:
      - type: host
        database: app
        user: app
        address: 127.0.0.1/32
        method: scram-sha-256
      - "local replication backup peer"
    roles:
      - name: app
        login: true
        password: "{{ app_password }}"
    databases:
      - name: app
        owner: app
        extensions: [pg_trgm]

- name: Change a setting that needs a restart, and restart for it
  pgforge.pgforge.pgforge_instance:
    name: main
    settings:
      max_connections: 200
    restart_on_changes: true

- name: The whole pg_hba.conf, nothing else
  pgforge.pgforge.pgforge_instance:
    name: main
    hba_mode: exact
    hba:
      - "local all all peer map=pgforge"
      - "host all all 127.0.0.1/32 scram-sha-256"

- name: A plugin's per-instance options (the backup plugin's stanza)
  pgforge.pgforge.pgforge_instance:
    name: main
    plugins:
      backup:
        retention_full: 2

- name: On a private site
  pgforge.pgforge.pgforge_instance:
    name: test
    settings_file: /srv/pgforge/settings.ini
    state: stopped

- name: Drop it
  pgforge.pgforge.pgforge_instance:
    name: test
    state: absent
'''

RETURN = r'''
changed:
  description:
    - Whether anything was (in check mode, would be) created, changed or dropped, the instance's
      databases and roles included.
  returned: always
  type: bool
result:
  description: pgforge's outcome for the instance.
  returned: success
  type: str
  sample: changed
  choices: [created, changed, dropped, unchanged]
changes:
  description: What changed on the instance, field by field (C(field), C(before), C(after)).
  returned: success
  type: list
  elements: dict
  sample: [{"field": "settings.work_mem", "before": "4MB", "after": "8MB"}]
pending_restart:
  description: Whether a changed setting waits for a restart.
  returned: success
  type: bool
restarted:
  description: Whether the instance was restarted (I(restart_on_changes)).
  returned: success
  type: bool
databases:
  description: The outcome of each database (C(name), C(result), C(statements)).
  returned: success
  type: list
  elements: dict
  sample: [{"name": "app", "result": "created", "statements": ["CREATE DATABASE \"app\" OWNER \"app\""]}]
roles:
  description: The outcome of each role (C(name), C(result), C(statements)).
  returned: success
  type: list
  elements: dict
results:
  description:
    - pgforge's results, one object per instance (C(object), C(name), C(result), C(changes),
      C(pending_restart), C(restarted), C(databases), C(roles), and C(diff) in diff mode).
  returned: success
  type: list
  elements: dict
cmd:
  description: The command that ran (no password is ever in it).
  returned: always
  type: list
  elements: str
diff:
  description:
    - In diff mode, the field changes as before/after, then the unified diffs of the files and
      the SQL as C(prepared) text.
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
    pruned,
    results_of,
    role_options,
)

# The manifest's own fields, in the order pgforge documents them.
FIELDS = ['name', 'version', 'port', 'state', 'restart_on_changes', 'encoding', 'locale',
          'data_checksums', 'auth_local', 'auth_host', 'superuser', 'superuser_password_file',
          'waldir', 'settings', 'hba_mode', 'hba', 'ident_mode', 'ident', 'databases', 'roles']


def main():
    argument_spec = common_argument_spec()
    argument_spec.update(
        name=dict(type='str', required=True),
        version=dict(type='str'),
        port=dict(type='int'),
        state=dict(type='str', choices=['started', 'stopped', 'absent'], default='started'),
        restart_on_changes=dict(type='bool'),
        encoding=dict(type='str'),
        locale=dict(type='str'),
        data_checksums=dict(type='bool'),
        auth_local=dict(type='str'),
        auth_host=dict(type='str'),
        superuser=dict(type='str'),
        superuser_password_file=dict(type='path', no_log=False),
        superuser_password=dict(type='str', no_log=True),
        waldir=dict(type='path'),
        settings=dict(type='dict'),
        hba=dict(type='list', elements='raw'),
        hba_mode=dict(type='str', choices=['present', 'exact']),
        ident=dict(type='list', elements='dict', options=dict(
            map=dict(type='str', required=True),
            system_user=dict(type='str', required=True),
            database_user=dict(type='str', required=True),
        )),
        ident_mode=dict(type='str', choices=['present', 'exact']),
        databases=dict(type='list', elements='dict', options=database_options(nested=True)),
        roles=dict(type='list', elements='dict', options=role_options(nested=True)),
        plugins=dict(type='dict'),
    )
    module = AnsibleModule(argument_spec=argument_spec, supports_check_mode=True,
                           mutually_exclusive=[['superuser_password', 'superuser_password_file']])
    params = module.params
    pgforge = Pgforge(module)

    if params['state'] == 'absent':
        # Dropped: what it would have been made of does not matter.
        argv, doc = pgforge.apply(['instance', 'apply'],
                                  manifest_of(params, ['name', 'version', 'state']))
        exit_with(module, argv, doc)

    manifest = manifest_of(params, FIELDS)
    for key in ('databases', 'roles'):
        if key in manifest:
            manifest[key] = pruned(manifest[key])
    for key, value in (params['plugins'] or {}).items():
        if key in argument_spec:
            module.fail_json(msg="plugins: '%s' is an option of the module, not a plugin's "
                                 "section: give it as the option" % key)
        manifest[key] = value
    if params['superuser_password'] is not None:
        manifest['superuser_password_file'] = pgforge.secret_file(params['superuser_password'])

    argv, doc = pgforge.apply(['instance', 'apply'], manifest)
    exit_with(module, argv, doc)


def exit_with(module, argv, doc):
    results = results_of(doc)
    first = results[0] if results and isinstance(results[0], dict) else {}
    ret = dict(changed=is_changed(doc), cmd=argv, results=results,
               result=first.get('result'), changes=first.get('changes', []),
               pending_restart=bool(first.get('pending_restart', False)),
               restarted=bool(first.get('restarted', False)),
               databases=first.get('databases', []), roles=first.get('roles', []))
    if module._diff and ret['changed']:
        ret['diff'] = ansible_diff(doc, 'instance')
    module.exit_json(**ret)


if __name__ == '__main__':
    main()
