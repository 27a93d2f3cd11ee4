#!/usr/bin/env bash
# Sets up a new Debian 12 machine (as root) and runs every test: the unit tests, then the
# end-to-end tests on the project's own simulated hosts (network namespaces with sshd,
# dockerd and nginx), which it builds first and tears down at the end. The end-to-end suite
# runs twice: on the hosts as built, and on hosts unlike them (FBG_BED_VARIANT=unlike: the app
# on other ports, a first upstream that names a port with nothing behind it, a root-only
# upstream file).
# Extra arguments go to pytest, e.g.  bash scripts/test.sh -k cleanup
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install.sh
echo "==> test bed: 3 hosts"
.venv/bin/python -m tests.testbed up --hosts 3   # fails (non-zero) if the hosts cannot be built
trap '.venv/bin/python -m tests.testbed down' EXIT
echo "==> pytest: unit tests, and end-to-end tests on the hosts as built"
rc=0
.venv/bin/python -m pytest -v -p no:cacheprovider tests "$@" || rc=$?
echo "==> pytest: end-to-end tests on hosts unlike the bed (FBG_BED_VARIANT=unlike)"
FBG_BED_VARIANT=unlike .venv/bin/python -m pytest -v -p no:cacheprovider tests/e2e "$@" || rc=$?
exit $rc
