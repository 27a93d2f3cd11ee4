#!/usr/bin/env bash
# Sets up a new Debian 12 machine (as root) and runs every test: the unit tests and the end-to-end
# tests on the project's own simulated hosts (network namespaces with sshd, dockerd and nginx).
# Three pytest workers (pytest-xdist) run side by side, each on a test bed of its own (bed slots 0,
# 1 and 2: 3 hosts each), built once here and torn down at the end; an idle worker takes tests queued
# for another (--dist worksteal). Three, on a 2-core machine: the end-to-end tests wait on their hosts
# (health checks, settle, stop_timeout, guards) more than they compute. The tests marked `unlike` run twice,
# as test_x[standard] and test_x[unlike] (hosts unlike the bed: other ports, a first upstream that
# names a port with nothing behind it, a root-only upstream file). The 15 slowest are listed last.
# Extra arguments go to pytest, e.g.  bash scripts/test.sh -k cleanup
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install.sh
workers=${FBG_TEST_WORKERS:-3}
base=${FBG_BED_SLOT:-0}
slots=$(seq "$base" $((base + workers - 1)))
down() {  # side by side, as they were built
  for k in $slots; do FBG_BED_SLOT=$k .venv/bin/python -m tests.testbed down & done
  wait  # no args: 0 whatever they returned (a bed that will not go down does not fail the run)
}
trap down EXIT
echo "==> test beds: slots $(echo $slots), 3 hosts each"
logs=$(mktemp -d)
pids=""
for k in $slots; do   # built side by side; any that cannot be built fails the run
  FBG_BED_SLOT=$k .venv/bin/python -m tests.testbed up --hosts 3 > "$logs/$k.log" 2>&1 & pids="$pids $!"
done
rc=0
for p in $pids; do wait "$p" || rc=$?; done
for k in $slots; do cat "$logs/$k.log"; done
rm -rf "$logs"
[ "$rc" = 0 ] || { echo "==> a test bed could not be built" >&2; exit "$rc"; }
echo "==> pytest: unit and end-to-end tests, $workers workers"
.venv/bin/python -m pytest -p no:cacheprovider -n "$workers" --dist worksteal --durations=15 -rfE tests "$@"
