#!/usr/bin/env python3
# Each module's DOCUMENTATION (with the collection's doc fragment) says what its argument_spec
# says: the same options, and for each its type, elements, required, default, choices, no_log
# for passwords, and suboptions -- what ansible-test's validate-modules checks, for this
# collection. Usage: check_docs.py COLLECTIONS_DIR
import importlib
import sys

import yaml

collections = sys.argv[1]
sys.path.insert(0, collections)
base = 'ansible_collections.pgforge.pgforge.plugins'
fragment = yaml.safe_load(
    importlib.import_module(base + '.doc_fragments.common').ModuleDocFragment.DOCUMENTATION)

import ansible.module_utils.basic as basic  # noqa: E402


class Captured(Exception):
    pass


class Spy(object):
    def __init__(self, argument_spec, **kwargs):
        raise Captured(argument_spec)


basic.AnsibleModule = Spy
errors = []


def compare(where, doc, spec):
    if set(doc) != set(spec):
        errors.append('%s: documented %s, in the spec %s' % (where, sorted(doc), sorted(spec)))
    for name in sorted(set(doc) & set(spec)):
        d, s = doc[name], spec[name]
        at = '%s.%s' % (where, name)
        if d.get('type', 'str') != s.get('type', 'str'):
            errors.append('%s: type %s in the docs, %s in the spec' % (at, d.get('type'), s.get('type')))
        for key in ('elements', 'choices'):
            if d.get(key) != s.get(key):
                errors.append('%s: %s %s in the docs, %s in the spec' % (at, key, d.get(key), s.get(key)))
        if bool(d.get('required')) != bool(s.get('required')):
            errors.append('%s: required differs' % at)
        if d.get('default') != s.get('default'):
            errors.append('%s: default %r in the docs, %r in the spec' % (at, d.get('default'), s.get('default')))
        if not d.get('description'):
            errors.append('%s: no description' % at)
        if 'password' in name and 'file' not in name and not s.get('no_log'):
            errors.append('%s: a password without no_log' % at)
        if 'suboptions' in d or 'options' in s:
            compare(at, d.get('suboptions') or {}, s.get('options') or {})


for name in ('pgforge_instance', 'pgforge_database', 'pgforge_role'):
    module = importlib.import_module(base + '.modules.' + name)
    doc = yaml.safe_load(module.DOCUMENTATION)
    for part in ('EXAMPLES', 'RETURN'):
        yaml.safe_load(getattr(module, part))
    options = dict(fragment['options'])
    options.update(doc['options'])
    try:
        module.main()
        errors.append('%s: main() built no AnsibleModule' % name)
    except Captured as e:
        compare(name, options, e.args[0])

if errors:
    print('\n'.join(errors))
    sys.exit(1)
print('documentation and argument specs agree')
