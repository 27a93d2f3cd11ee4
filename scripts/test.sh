#!/usr/bin/env bash
# Sets up a new Debian 12 machine (as root) and runs every test: the unit tests, then the
# end-to-end tests on the project's own simulated hosts (network namespaces with sshd,
# dockerd and nginx), which it builds first and tears down at the end.
# Extra arguments go to pytest, e.g.  bash scripts/test.sh -k cleanup
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install.sh
echo "==> test bed: 3 hosts"
.venv/bin/python -m tests.testbed up --hosts 3   # fails (non-zero) if the hosts cannot be built
trap '.venv/bin/python -m tests.testbed down' EXIT
echo "==> pytest"
.venv/bin/python -m pytest -v -p no:cacheprovider tests "$@"
