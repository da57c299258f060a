#!/usr/bin/env bash
# The pgforge.pgforge collection without a server: ansible-doc renders each module's
# documentation, which says what the argument specs say (check_docs.py), and stand_in.yml drives the modules against fake_pgforge.py, which answers as
# pgforge's apply commands do. Usage: stand_in.sh SOURCE_DIR
set -euo pipefail
src=$(cd "$1" && pwd)
work=$(mktemp -d /tmp/pgforge-ansible-unit.XXXXXX)
trap 'rm -rf "$work"' EXIT
. "$src/tests/ansible/env.sh"

for module in pgforge_instance pgforge_database pgforge_role; do
  doc=$(ansible-doc "pgforge.pgforge.$module" 2>&1) || { echo "$doc" >&2; exit 1; }
  for part in OPTIONS ATTRIBUTES EXAMPLES "RETURN VALUES" pgforge_bin settings_file; do
    grep -q "$part" <<<"$doc" || { echo "ansible-doc $module: no $part" >&2; echo "$doc" >&2; exit 1; }
  done
  if grep -qiE '^\[?(WARNING|ERROR)' <<<"$doc"; then echo "$doc" >&2; exit 1; fi
done
# The documentation against the argument specs, with the Python ansible-core runs on.
ansible_python=$(sed -n '1s/^#! *\([^ ]*\).*/\1/p' "$(command -v ansible-doc)")
"$ansible_python" "$src/tests/ansible/check_docs.py" "$src/share/ansible/collections"
listed=$(ansible-doc -l pgforge.pgforge)
[ "$(grep -c '^pgforge.pgforge.pgforge_' <<<"$listed")" = 3 ] || { echo "$listed" >&2; exit 1; }

mkdir "$work/fake"
playbook "$src/tests/ansible/stand_in.yml" \
  -e "fake=$src/tests/ansible/fake_pgforge.py fake_dir=$work/fake"
