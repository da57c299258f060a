#!/usr/bin/env bash
# The pgforge.pgforge collection against localhost with a real pgforge, on a private site (a
# temporary prefix, run directory and port range, as tests/support/test_site.cpp makes):
# playbook.yml creates an instance with settings, an HBA record, a role and a database; a
# second run reports changed=0; --check with a changed manifest reports the change and changes
# nothing; state=absent drops the instance. Whatever happens, the servers started under the
# site are stopped (by their postmaster.pid) and the site removed.
# Usage: run.sh PGFORGE SOURCE_DIR
set -euo pipefail
pgforge=$(realpath "$1")
src=$(cd "$2" && pwd)
work=$(mktemp -d /tmp/pgforge-ansible.XXXXXX)
# The servers' OS user (postgres, when this runs as root) must reach its directories.
chmod 755 "$work"

stop_servers() {
  local pidfile pid i
  while IFS= read -r pidfile; do
    pid=$(head -n 1 "$pidfile" 2>/dev/null) || continue
    [[ "$pid" =~ ^[0-9]+$ ]] && kill -0 "$pid" 2>/dev/null || continue
    kill -QUIT "$pid" 2>/dev/null || true
    for ((i = 0; i < 100; i++)); do
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.1
    done
    kill -KILL "$pid" 2>/dev/null || true
  done < <(find "$work" -name postmaster.pid 2>/dev/null)
}
trap 'stop_servers; rm -rf "$work"' EXIT

. "$src/tests/ansible/env.sh"

port_min=$((20000 + ($$ % 400) * 100))
settings="$work/settings.ini"
cat >"$settings" <<EOF
prefix = $work/prefix
run_dir = $work/run
[postgresql]
port_min = $port_min
port_max = $((port_min + 99))
start_timeout = 30
stop_timeout = 30
lock_timeout = 5
EOF
instance=ansible
pf() { "$pgforge" --settings "$settings" "$@"; }
json_field() { python3 -c 'import json,sys; d=json.load(sys.stdin)
for k in sys.argv[1:]: d=d[int(k)] if isinstance(d, list) else d[k]
print(d if isinstance(d, str) else json.dumps(d))' "$@"; }
fail() { echo "ansible test: $*" >&2; exit 1; }

# The role's password travels in a 0600 vars file, never on a command line.
password=$(head -c 18 /dev/urandom | base64 | tr -dc 'A-Za-z0-9')
(umask 077 && printf 'app_password: "%s"\n' "$password" >"$work/secret.yml")
vars=(-e "pgforge_bin=$pgforge" -e "settings_file=$settings" -e "instance=$instance"
      -e "@$work/secret.yml")

# run LABEL [ansible-playbook options...]: prints the output; sets $changed from its recap.
run() {
  local label=$1 out
  shift
  echo "ansible test: $label"
  out=$(playbook "$src/tests/ansible/playbook.yml" "${vars[@]}" "$@" 2>&1) ||
    { echo "$out"; fail "$label: ansible-playbook failed"; }
  echo "$out"
  output=$out
  changed=$(recap_changed "$out") || fail "$label: bad recap"
}

run "first run: create" -e work_mem=8MB
[ "$changed" -eq 3 ] || fail "the first run reports changed=$changed, not 3"
[ "$(pf conf get -i "$instance" work_mem --json | json_field work_mem value)" = 8MB ] ||
  fail "work_mem is not 8MB"
pf hba list -i "$instance" --json |
  python3 -c 'import json,sys; r=json.load(sys.stdin)
sys.exit(0 if any(x["users"]==["app"] and x["databases"]==["app"] and x["address"]=="127.0.0.1/32"
                  and x["method"]=="scram-sha-256" for x in r) else 1)' ||
  fail "no HBA record for app"
[ "$(pf database get -i "$instance" app --json | json_field owner)" = app ] || fail "no database app"
[ "$(pf database get -i "$instance" reports --json | json_field owner)" = reporting ] ||
  fail "no database reports"
[ "$(pf role get -i "$instance" reporting --json | json_field in_roles)" = '["app"]' ] ||
  fail "reporting is not a member of app"
# The role logs in with its password through the HBA record, into its database.
port=$(pf instance get "$instance" --json | json_field port)
[ "$(PGPASSWORD="$password" PGCONNECT_TIMEOUT=5 psql -X -At -h 127.0.0.1 -p "$port" -U app -d app \
      -c 'SELECT current_user')" = app ] || fail "app cannot log in"
# The password is nowhere under the site but in the vars file (not in logs, files, the journal).
if grep -rlF -- "$password" "$work" | grep -vxF "$work/secret.yml"; then
  fail "the password is in the files above"
fi

data_dir=$(pf instance get "$instance" --json | json_field data_dir)
conf_times() { stat -c '%n %y' "$data_dir/postgresql.conf" "$data_dir/pg_hba.conf"; }
times_before=$(conf_times)

run "second run: nothing to do" -e work_mem=8MB
[ "$changed" -eq 0 ] || fail "the second run reports changed=$changed"
[ "$(conf_times)" = "$times_before" ] || fail "the second run rewrote a configuration file"

run "check mode with a changed manifest" -e work_mem=16MB --check --diff
[ "$changed" -eq 1 ] || fail "--check reports changed=$changed, not 1"
grep -q 'work_mem' <<<"$output" && grep -q '16MB' <<<"$output" || fail "no diff of work_mem shown"
[ "$(pf conf get -i "$instance" work_mem --json | json_field work_mem value)" = 8MB ] ||
  fail "--check changed work_mem"
[ "$(conf_times)" = "$times_before" ] || fail "--check rewrote a configuration file"

run "state absent: dropped" -e work_mem=8MB -e state=absent
[ "$changed" -eq 1 ] || fail "dropping reports changed=$changed, not 1"
if pf instance get "$instance" --json >/dev/null 2>&1; then fail "the instance is still there"; fi
[ ! -e "$data_dir" ] || fail "$data_dir is still there"

run "state absent again: nothing to do" -e work_mem=8MB -e state=absent
[ "$changed" -eq 0 ] || fail "dropping again reports changed=$changed"
echo "ansible test: passed"
