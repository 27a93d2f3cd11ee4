"""Long steps show life on a real host: while `prepare` runs, fab's progress (stderr, not a terminal)
says every FBG_PROGRESS_EVERY seconds (30 by default; 1 here) how long it has run and the last line
it printed, with the run's secrets masked."""

from __future__ import annotations

import json
import re
import uuid

from .conftest import fab, hosts_file, rows

WORD = f"prep-w0rd-{uuid.uuid4().hex[:12]}"  # a name the tool's guesses would not mask: only its value does
SLOW = 'for i in 1 2 3 4 5; do echo "step $i of 5: $(cat "$DEPLOY_ENV_FILE")"; sleep 1; done'


def test_a_slow_prepare_shows_its_time_and_last_line_masked(bed, hosts, tmp_path, monkeypatch):
    (tmp_path / "prod.env").write_text(f"APP_WORD={WORD}\n")
    path = hosts_file(tmp_path, bed, hosts='[hosts.h1]\nssh = "h1"\n', secrets='{ env_file = "prod.env" }',
                      prepare=json.dumps(["docker compose build -q", SLOW]))
    monkeypatch.setenv("FBG_PROGRESS_EVERY", "1")
    res = fab("deploy", "--host", "h1", "--hosts-file", str(path))
    assert res.returncode == 0 and "deployed" in rows(res.stdout)["h1"], res.stderr
    life = [line for line in res.stderr.splitlines() if re.search(r"h1 +prepare: \d+ s, ", line)]
    seconds = [int(re.search(r"prepare: (\d+) s", line).group(1)) for line in life]
    assert len(life) >= 3 and seconds == sorted(seconds) and seconds[-1] >= 3, res.stderr
    shown = [line for line in life if "last line: step " in line]
    assert shown and all(re.search(r"last line: step [1-5] of 5: APP_WORD=\*\*\*$", line) for line in shown), life
    assert WORD not in res.stderr + res.stdout
