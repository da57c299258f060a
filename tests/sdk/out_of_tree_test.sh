#!/usr/bin/env bash
# The example plugin (examples/plugin-hello), built out of tree against the SDK that
# `cmake --install` installs, is found in the installed plugin directory by the installed
# pgforge, loads, and its hooks and command run on a real instance; its unit test, built with the
# installed testing kit (pgforge/testing.hpp), passes without a server.
# Usage: out_of_tree_test.sh BUILD_DIR SOURCE_DIR
set -euo pipefail
build=$1
src=$2
work=$(mktemp -d /tmp/pgforge-sdk.XXXXXX)
chmod 755 "$work"
settings=$work/settings.ini
pgforge() { "$work/usr/bin/pgforge" --settings "$settings" "$@"; }
cleanup() {
  pgforge instance drop hi >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT
fail() { echo "out_of_tree_test: $*" >&2; exit 1; }

cmake --install "$build" --prefix "$work/usr" >/dev/null
cmake -S "$src/examples/plugin-hello" -B "$work/hello-build" -DCMAKE_PREFIX_PATH="$work/usr" \
  -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build "$work/hello-build" >/dev/null
# Its unit test, built with the installed testing kit, runs without a server.
ctest --test-dir "$work/hello-build" --output-on-failure >"$work/ctest.log" 2>&1 ||
  fail "the example's unit test failed: $(cat "$work/ctest.log")"
grep -q "100% tests passed" "$work/ctest.log" || fail "the example's unit test did not run"
[ -f "$work/usr/include/pgforge/testing.hpp" ] || fail "testing.hpp was not installed"
cmake --install "$work/hello-build" >/dev/null
[ -f "$work/usr/lib/pgforge/plugins/hello.so" ] || fail "hello.so was not installed beside pgforge"
# The version script of pgforge_add_plugin: the descriptor is the only exported symbol.
exported=$(nm -D --defined-only "$work/usr/lib/pgforge/plugins/hello.so" | awk '{print $3}' |
  grep -vx 'pgforge_plugin_descriptor_v1' || true)
[ -z "$exported" ] || fail "hello.so exports more than its descriptor: $exported"

port=$((61000 + ($$ % 40) * 100))
cat >"$settings" <<INI
prefix = $work/prefix
run_dir = $work/run
[postgresql]
port_min = $port
port_max = $((port + 99))
[plugins]
enabled = hello
[hello]
greeting = bonjour
preload = pg_stat_statements
INI

pgforge plugin list | grep -E '^hello +1\.0\.0 +1\.[0-9]+ +loaded' >/dev/null ||
  fail "hello is not loaded: $(pgforge plugin list 2>&1)"
pgforge --log-level info instance create hi >"$work/create.log" 2>&1 ||
  fail "create failed: $(cat "$work/create.log")"
grep -q "hello: 15/hi is up on port $port" "$work/create.log" ||
  fail "post_start handler did not log: $(cat "$work/create.log")"
[ "$(cat "$work/prefix/15/hi/hello/greeting")" = "bonjour, 15/hi" ] ||
  fail "pre_configure contribution missing"
grep -Eq "^shared_preload_libraries = '?pg_stat_statements'?" "$work/prefix/15/hi/data/postgresql.conf" ||
  fail "the preload list contribution is missing: $(grep shared_preload "$work/prefix/15/hi/data/postgresql.conf")"
out=$(pgforge hello greet -i hi)
[[ "$out" == "hello, 15/hi (server 15"* ]] || fail "hello greet said: $out"
pgforge instance drop hi >/dev/null
echo "out_of_tree_test: ok"
