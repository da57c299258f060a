# Sourced by the collection's tests: Ansible on this machine, with the source tree's collection
# and everything it writes under $work (which the caller made), nothing from the user's setup.
# Needs $src (the source tree) and $work.
command -v ansible-playbook >/dev/null && command -v ansible-doc >/dev/null || {
  echo "ansible-playbook and ansible-doc are needed: apt-get install ansible-core (scripts/setup does)" >&2
  exit 1
}
export ANSIBLE_COLLECTIONS_PATH="$src/share/ansible/collections"
export ANSIBLE_CONFIG="$work/ansible.cfg"  # empty: the defaults, whatever ~/.ansible.cfg says
: >"$ANSIBLE_CONFIG"
export ANSIBLE_LOCAL_TEMP="$work/ansible-local" ANSIBLE_REMOTE_TEMP="$work/ansible-remote"
export ANSIBLE_NOCOLOR=1 ANSIBLE_FORCE_COLOR=0 ANSIBLE_RETRY_FILES_ENABLED=0
export ANSIBLE_STDOUT_CALLBACK=default ANSIBLE_LOAD_CALLBACK_PLUGINS=0
export ANSIBLE_PYTHON_INTERPRETER=auto_silent ANSIBLE_LOCALHOST_WARNING=0
export ANSIBLE_INVENTORY_UNPARSED_WARNING=0 ANSIBLE_DEPRECATION_WARNINGS=0
# Python writes no __pycache__ into the source tree.
export PYTHONDONTWRITEBYTECODE=1

# playbook FILE [ansible-playbook options...]: runs it against localhost (connection local)
# and prints its output; fails with it.
playbook() {
  ansible-playbook -i localhost, -c local "$@"
}

# recap_changed OUTPUT: the changed= count of localhost in a PLAY RECAP, and that nothing failed.
recap_changed() {
  local line
  line=$(grep -E '^localhost +: ok=' <<<"$1") || { echo "no PLAY RECAP in the output" >&2; return 1; }
  grep -qE 'unreachable=0 +failed=0' <<<"$line" || { echo "recap: $line" >&2; return 1; }
  sed -E 's/.* changed=([0-9]+) .*/\1/' <<<"$line"
}
