#!/usr/bin/env python3
# A stand-in for pgforge that speaks the JSON of `instance apply`, `database apply` and
# `role apply` (docs/ansible.md, docs/databases.md, docs/roles.md) over a little JSON store, so
# that the collection's module logic is tested without a server: the command line it is given,
# the manifest on stdin, check mode, diff mode, idempotence and failures.
#
# $FAKE_PGFORGE_DIR holds store.json (the "instances") and calls.jsonl: per call, its argv,
# the manifest read from stdin, and for a superuser_password_file its mode and first line as
# seen during the call.
import json
import os
import stat
import sys

CREATION = ['version', 'encoding', 'locale', 'data_checksums', 'auth_local', 'auth_host',
            'superuser', 'waldir']
INSTANCE_KEYS = set(CREATION + [
    'name', 'port', 'state', 'restart_on_changes', 'superuser_password_file', 'settings',
    'hba_mode', 'hba', 'ident_mode', 'ident', 'databases', 'roles'])
PLUGINS = ['backup']


def fail(message, code, hint=''):
    print(json.dumps({'error': {'message': message, 'hint': hint, 'exit': code}}))
    sys.stderr.write('pgforge: %s\n' % message)
    if hint:
        sys.stderr.write('  hint: %s\n' % hint)
    sys.exit(code)


def hba_text(record):
    if isinstance(record, str):
        return ' '.join(record.split())
    fields = [record.get('type'), record.get('database'), record.get('user')]
    if record.get('address'):
        fields.append(record['address'])
    fields.append(record.get('method'))
    return ' '.join(str(f) for f in fields)


def apply_object(kind, store, manifest):
    """A database or role: created, changed (the fields that differ), dropped, unchanged."""
    name = manifest['name']
    current = store.get(name)
    wanted = dict((k, v) for k, v in manifest.items() if k not in ('state',))
    if manifest.get('state') == 'absent':
        if current is None:
            return {'name': name, 'result': 'unchanged', 'statements': []}
        del store[name]
        return {'name': name, 'result': 'dropped',
                'statements': ['DROP %s "%s"' % (kind.upper(), name)]}
    if current is None:
        store[name] = wanted
        text = 'CREATE %s "%s"' % (kind.upper(), name)
        if 'password' in wanted:
            text += " PASSWORD '***'"
        return {'name': name, 'result': 'created', 'statements': [text]}
    statements = []
    for k, v in sorted(wanted.items()):
        if current.get(k) != v:
            shown = "'***'" if k == 'password' else json.dumps(v)
            statements.append('ALTER %s "%s" SET %s = %s' % (kind.upper(), name, k, shown))
            current[k] = v
    return {'name': name, 'result': 'changed' if statements else 'unchanged',
            'statements': statements}


def apply_instance(store, manifest, with_diff, call):
    name = manifest['name']
    for key in manifest:
        if key not in INSTANCE_KEYS and key not in PLUGINS:
            fail("%s: unknown key '%s'" % (name, key), 2)
    if name == 'broken':
        fail('instance 15/broken: the server did not start', 7,
             'see pgforge instance logs broken')
    password_file = manifest.get('superuser_password_file')
    if password_file:
        st = os.stat(password_file)
        with open(password_file) as f:
            call['password_file'] = {'mode': stat.S_IMODE(st.st_mode),
                                     'first_line': f.readline().rstrip('\n')}
    instances = store.setdefault('instances', {})
    current = instances.get(name)
    result = {'object': 'instance', 'name': '15/' + name, 'changes': [],
              'pending_restart': False, 'restarted': False, 'databases': [], 'roles': []}
    if manifest.get('state') == 'absent':
        if current is None:
            result['result'] = 'unchanged'
        else:
            del instances[name]
            result['result'] = 'dropped'
        return result
    created = current is None
    if created:
        current = instances[name] = {'settings': {}, 'hba': [], 'state': 'started',
                                     'databases': {}, 'roles': {}}
        for key in CREATION:
            if key in manifest:
                current[key] = manifest[key]
    else:
        for key in CREATION:
            if key in manifest and current.get(key) != manifest[key]:
                fail('instance 15/%s: %s cannot change (%s, the manifest says %s)'
                     % (name, key, current.get(key), manifest[key]), 2)
    changes = result['changes']
    conf_before, conf_after = [], []
    for key, value in sorted((manifest.get('settings') or {}).items()):
        value = None if value is None else str(value)
        before = current['settings'].get(key)
        if before != value:
            changes.append({'field': 'settings.' + key, 'before': before, 'after': value})
            if before is not None:
                conf_before.append('%s = %s' % (key, before))
            if value is None:
                current['settings'].pop(key, None)
            else:
                current['settings'][key] = value
                conf_after.append('%s = %s' % (key, value))
    hba_added = []
    for record in manifest.get('hba') or []:
        text = hba_text(record)
        if text not in current['hba']:
            current['hba'].append(text)
            hba_added.append(text)
            changes.append({'field': 'hba', 'before': None, 'after': text})
    state = manifest.get('state', 'started')
    if state != current['state']:
        changes.append({'field': 'state', 'before': current['state'], 'after': state})
        current['state'] = state
    for plugin in PLUGINS:
        if plugin in manifest and current.get(plugin) != manifest[plugin]:
            changes.append({'field': plugin, 'before': current.get(plugin),
                            'after': manifest[plugin]})
            current[plugin] = manifest[plugin]
    for db in manifest.get('databases') or []:
        result['databases'].append(apply_object('database', current['databases'], db))
    for role in manifest.get('roles') or []:
        result['roles'].append(apply_object('role', current['roles'], role))
    nested = [o for o in result['databases'] + result['roles'] if o['result'] != 'unchanged']
    if created:
        result['result'] = 'created'
    else:
        result['result'] = 'changed' if changes or nested else 'unchanged'
    if with_diff:
        result['diff'] = []
        if conf_before or conf_after:
            text = '--- a/postgresql.conf\n+++ b/postgresql.conf\n@@ -1,%d +1,%d @@\n' % (
                len(conf_before), len(conf_after))
            text += ''.join('-%s\n' % line for line in conf_before)
            text += ''.join('+%s\n' % line for line in conf_after)
            result['diff'].append({'file': '/fake/%s/postgresql.conf' % name, 'diff': text})
        if hba_added:
            text = '--- a/pg_hba.conf\n+++ b/pg_hba.conf\n@@ -1,0 +1,%d @@\n' % len(hba_added)
            text += ''.join('+%s\n' % line for line in hba_added)
            result['diff'].append({'file': '/fake/%s/pg_hba.conf' % name, 'diff': text})
    return result


def main():
    argv = sys.argv[1:]
    home = os.environ['FAKE_PGFORGE_DIR']
    i = 0
    while i < len(argv) and argv[i].startswith('--'):
        i += 1 if argv[i] == '--json' else 2
    words = [a for a in argv[i:i + 2]]
    rest = argv[i + 2:]
    check, with_diff = '--check' in rest, '--diff' in rest
    call = {'argv': sys.argv}
    if words[1:] != ['apply'] or rest[rest.index('-f') + 1] != '-':
        fail('the stand-in knows only "apply -f -"', 2)
    call['manifest'] = manifest = json.loads(sys.stdin.read())
    path = os.path.join(home, 'store.json')
    store = {}
    if os.path.exists(path):
        with open(path) as f:
            store = json.load(f)
    try:
        if words[0] == 'instance':
            out = {'changed': False, 'check': check,
                   'results': [apply_instance(store, manifest, with_diff, call)]}
            r = out['results'][0]
            out['changed'] = r['result'] != 'unchanged'
        elif words[0] in ('database', 'role'):
            target = rest[rest.index('-i') + 1]
            instance = store.get('instances', {}).get(target)
            if instance is None:
                fail('instance %s does not exist' % target, 4, 'see pgforge instance list')
            if words[0] == 'role' and '--password-file' in rest:
                with open(rest[rest.index('--password-file') + 1]) as f:
                    manifest = dict(manifest, password=f.readline().rstrip('\n'))
            out = apply_object(words[0], instance[words[0] + 's'], manifest)
            if with_diff:
                out['diff_requested'] = True
        else:
            fail('unknown object %s' % words[0], 2)
    finally:
        with open(os.path.join(home, 'calls.jsonl'), 'a') as f:
            f.write(json.dumps(call) + '\n')
    if not check:
        with open(path, 'w') as f:
            json.dump(store, f)
    print(json.dumps(out, indent=2))


if __name__ == '__main__':
    main()
