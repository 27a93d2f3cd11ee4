#!/usr/bin/env bash
# The main job on a new Debian 12 machine (as root), with no hosts of your own: builds two
# simulated hosts (h1, h2), puts the example app on them, deploys version 1 (blue), then
# version 2 with `fab deploy --group demo` (to green, on both hosts at once) and shows the table.
# The hosts stay up for you to look at; `bash scripts/demo.sh down` removes them.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "${1:-}" = down ]; then exec .venv/bin/python -m tests.testbed down; fi
bash scripts/install.sh
.venv/bin/python -m tests.testbed up --hosts 2
.venv/bin/python - <<'PY'
from pathlib import Path
from tests.testbed.bed import Bed
for h in Bed().hosts:
    app = h.put_dir(Path("examples/simple"), "app", clean=True)
    (app / "app" / "VERSION").write_text("1\n")
PY
export PATH="$PWD/.venv/bin:$PATH"
echo; echo "==> fab deploy --group demo   (first deploy: version 1 goes to blue)"
fab deploy --group demo
.venv/bin/python -c 'from tests.testbed.bed import Bed
for h in Bed().hosts: (h.home / "app/app/VERSION").write_text("2\n")'
echo; echo "==> fab deploy --group demo   (version 2 goes to green with zero downtime)"
fab deploy --group demo
echo; echo "==> curl http://10.200.0.11/health/ -> $(curl -s http://10.200.0.11/health/)   (nginx on h1)"
echo "Next: fab cleanup --group demo   (removes blue)  |  bash scripts/demo.sh down   (removes the hosts)"
