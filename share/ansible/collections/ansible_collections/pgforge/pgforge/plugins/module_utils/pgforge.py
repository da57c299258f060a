# -*- coding: utf-8 -*-
# Running `pgforge ... apply` for the modules of the pgforge.pgforge collection: the command
# line, the manifest on standard input, and pgforge's JSON turned into Ansible's `changed`,
# `diff` and failure.

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json
import os
import tempfile

from ansible.module_utils.common.text.converters import to_native


def common_argument_spec():
    """The options every module has: which pgforge, and the site it works on."""
    return dict(
        pgforge_bin=dict(type='str', default='pgforge'),
        prefix=dict(type='path'),
        settings_file=dict(type='path'),
        run_dir=dict(type='path'),
    )


def role_options(nested=False):
    """The role manifest (docs/roles.md) as Ansible options; `nested` for `roles` of an
    instance, where `state` has no default."""
    return dict(
        name=dict(type='str', required=True),
        state=dict(type='str', choices=['present', 'absent'],
                   default=None if nested else 'present'),
        login=dict(type='bool'),
        superuser=dict(type='bool'),
        createdb=dict(type='bool'),
        createrole=dict(type='bool'),
        replication=dict(type='bool'),
        inherit=dict(type='bool'),
        connection_limit=dict(type='int'),
        valid_until=dict(type='str'),
        in_roles=dict(type='list', elements='str'),
        password=dict(type='str', no_log=True),
        pgpass=dict(type='bool', no_log=False),
        reassign_owned=dict(type='str'),
        drop_owned=dict(type='bool'),
    )


def database_options(nested=False):
    """The database manifest (docs/databases.md) as Ansible options."""
    return dict(
        name=dict(type='str', required=True),
        state=dict(type='str', choices=['present', 'absent'],
                   default=None if nested else 'present'),
        owner=dict(type='str'),
        tablespace=dict(type='str'),
        settings=dict(type='dict'),
        schemas=dict(type='list', elements='raw'),
        extensions=dict(type='list', elements='raw'),
        force_drop=dict(type='bool'),
    )


def manifest_of(params, keys):
    """The manifest fields among `params`: those given (a null option is left out, so that
    pgforge leaves that field as it is). Values inside a field are kept as they are: a null
    setting still means "remove it"."""
    return dict((k, params[k]) for k in keys if params.get(k) is not None)


def pruned(items):
    """A list of nested manifests (databases, roles) without the options left unset."""
    if items is None:
        return None
    return [dict((k, v) for k, v in item.items() if v is not None) for item in items]


class Pgforge(object):
    """Runs `pgforge [--prefix P] [--settings F] [--run-dir R] --json WORDS -f - [--check]
    [--diff] [EXTRA...]` with a manifest as JSON on standard input."""

    def __init__(self, module):
        self.module = module
        self._temp_files = []

    def binary(self):
        name = self.module.params['pgforge_bin']
        if os.sep in name:
            return name
        return self.module.get_bin_path(name, required=True)

    def command(self, words, extra=None):
        params = self.module.params
        argv = [self.binary()]
        for flag, key in (('--prefix', 'prefix'), ('--settings', 'settings_file'),
                          ('--run-dir', 'run_dir')):
            if params.get(key):
                argv += [flag, params[key]]
        argv.append('--json')
        argv += list(words)
        argv += ['-f', '-']
        if self.module.check_mode:
            argv.append('--check')
        if self.module._diff:
            argv.append('--diff')
        argv += list(extra or [])
        return argv

    def secret_file(self, secret):
        """A 0600 file holding `secret` (its first line), removed by cleanup(): how a password
        reaches pgforge without appearing in argv."""
        fd, path = tempfile.mkstemp(prefix='pgforge-', dir=self.module.tmpdir)
        self._temp_files.append(path)
        with os.fdopen(fd, 'w') as f:
            f.write(secret + '\n')
        return path

    def cleanup(self):
        for path in self._temp_files:
            try:
                os.unlink(path)
            except OSError:
                pass
        self._temp_files = []

    def fail(self, **kwargs):
        self.cleanup()
        self.module.fail_json(**kwargs)

    def apply(self, words, manifest, extra=None):
        """Runs the apply; returns (argv, the parsed JSON). A non-zero exit fails the task with
        pgforge's message."""
        argv = self.command(words, extra)
        try:
            rc, out, err = self.module.run_command(argv, data=json.dumps(manifest),
                                                   binary_data=True)
        finally:
            self.cleanup()
        if rc != 0:
            error = None
            try:
                doc = json.loads(out)
                if isinstance(doc, dict) and isinstance(doc.get('error'), dict):
                    error = doc['error']
            except ValueError:
                pass
            msg = err.strip()
            if not msg and error:
                msg = 'pgforge: %s' % error.get('message')
                if error.get('hint'):
                    msg += ' (hint: %s)' % error['hint']
            if not msg:
                msg = 'pgforge exited with status %d' % rc
            self.module.fail_json(msg=msg, rc=rc, cmd=argv, stdout=out, stderr=err,
                                  error=error)
        try:
            doc = json.loads(out)
        except ValueError as e:
            self.module.fail_json(msg='pgforge printed no JSON: %s' % to_native(e), rc=rc,
                                  cmd=argv, stdout=out, stderr=err)
        return argv, doc


def results_of(doc):
    """The list of result objects: `instance apply` prints {"changed", "check", "results"},
    `database apply` and `role apply` one object or a list."""
    if isinstance(doc, dict) and isinstance(doc.get('results'), list):
        return doc['results']
    if isinstance(doc, list):
        return doc
    return [doc]


def _outcome_changed(outcome):
    return isinstance(outcome, dict) and outcome.get('result', 'unchanged') != 'unchanged'


def is_changed(doc):
    """Whether anything was (in check mode: would be) changed: any result not "unchanged",
    nested databases and roles included."""
    if isinstance(doc, dict) and doc.get('changed') is True:
        return True
    for r in results_of(doc):
        if _outcome_changed(r):
            return True
        for key in ('databases', 'roles'):
            for nested in (r.get(key) or []) if isinstance(r, dict) else []:
                if _outcome_changed(nested):
                    return True
    return False


def _text(value):
    if value is None:
        return ''
    if isinstance(value, (dict, list)):
        return json.dumps(value, sort_keys=True)
    if isinstance(value, bool):
        return 'true' if value else 'false'
    return '%s' % value


def _sql_block(kind, outcomes):
    text = ''
    for o in outcomes or []:
        if not _outcome_changed(o):
            continue
        text += '-- %s %s: %s\n' % (kind, o.get('name'), o.get('result'))
        for statement in o.get('statements') or []:
            text += statement.rstrip().rstrip(';') + ';\n'
    return text


def ansible_diff(doc, kind):
    """Ansible's `diff` (a list): per object, its field changes as before/after, then a
    `prepared` text with the unified diffs of the files and the SQL, as pgforge reports
    them."""
    diffs = []
    for r in results_of(doc):
        if not isinstance(r, dict):
            continue
        label = '%s %s' % (r.get('object', kind), r.get('name'))
        changes = r.get('changes') or []
        if not changes and r.get('result') in ('created', 'dropped'):
            present = dict(field='state', before='absent', after='present')
            absent = dict(field='state', before='present', after='absent')
            changes = [present if r.get('result') == 'created' else absent]
        if changes:
            before, after = '', ''
            for c in changes:
                if c.get('before') is not None:
                    before += '%s: %s\n' % (c.get('field'), _text(c.get('before')))
                if c.get('after') is not None:
                    after += '%s: %s\n' % (c.get('field'), _text(c.get('after')))
            diffs.append(dict(before_header=label, after_header=label, before=before,
                              after=after))
        prepared = ''
        for f in r.get('diff') or []:
            if isinstance(f, dict):
                text = f.get('diff') or ''
                prepared += text if text.endswith('\n') else text + '\n'
        if kind == 'instance':
            prepared += _sql_block('database', r.get('databases'))
            prepared += _sql_block('role', r.get('roles'))
        else:
            prepared += _sql_block(kind, [r])
        if prepared:
            diffs.append(dict(prepared=prepared))
    return diffs
