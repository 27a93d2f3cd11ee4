"""Hostile input on a real host: a `dir` and a --message full of shell syntax deploy as plain text
(nothing they spell runs), the state files are the SSH user's alone (0700/0600, tightened where an
older version left them readable), and a hook with a password in its command line fails without
the password reaching the table, the progress or the history on the host."""

from __future__ import annotations

import json
import os
import shutil
import stat

from .conftest import EXAMPLE, fab, hosts_file, rows, serves

NAME = "hostile app $(touch PWNED1) `touch PWNED2` 'q' ; & (x)"  # a folder in the deploy user's home
MESSAGE = "friday $(touch PWNED3) `touch PWNED4` 'q' \"dq\" ; & | > PWNED5"
HOOK = "DATABASE_URL=postgres://app:hunter2@db/app sh -c 'echo connecting to $DATABASE_URL; exit 3'"


def modes(state) -> dict[str, int]:
    return {p.relative_to(state.parent).as_posix(): stat.S_IMODE(p.lstat().st_mode)
            for p in [state, *state.rglob("*")]}


def test_hostile_values_deploy_as_text_and_no_password_is_shown_or_kept(bed, hosts, tmp_path):
    h1 = hosts[0]
    app = h1.put_dir(EXAMPLE, NAME, clean=True)
    (app / "var").mkdir(exist_ok=True)
    os.chown(app / "var", *bed.deploy_ids())
    try:
        path = str(hosts_file(tmp_path, bed, dir=json.dumps("~/" + NAME),
                              health='{ path = "/health/?q=(ready)", retries = 15, interval = 0.5, timeout = 2 }',
                              hosts='[hosts.h1]\nssh = "h1"\n'))
        res = fab("deploy", "--host", "h1", "--hosts-file", path, "--message", MESSAGE)
        assert res.returncode == 0 and "deployed" in rows(res.stdout)["h1"]
        assert serves(h1) == "blue 1"
        assert not list(h1.home.rglob("PWNED*")) and not list(tmp_path.rglob("PWNED*"))
        state = app / ".fab-bluegreen"
        last = json.loads((state / "app.history.jsonl").read_text().splitlines()[-1])
        assert (last["result"], last["message"]) == ("deployed", MESSAGE)
        made = modes(state)
        assert made[".fab-bluegreen"] == 0o700 and set(made.values()) <= {0o700, 0o600}, made

        # an older version's modes are tightened by the next deploy; a hook with a password fails
        state.chmod(0o755)
        (state / "app.history.jsonl").chmod(0o644)
        (app / "app" / "VERSION").write_text("2\n")
        path = str(hosts_file(tmp_path, bed, dir=json.dumps("~/" + NAME), hooks=f"{{ after_front = {json.dumps([HOOK])} }}",
                              hosts='[hosts.h1]\nssh = "h1"\n'))
        res = fab("deploy", "--host", "h1", "--hosts-file", path)
        assert res.returncode == 1
        row = rows(res.stdout)["h1"]
        assert "rolled back" in row and "after_front[0] failed: exit 3" in row
        assert "hunter2" not in res.stdout + res.stderr
        assert "connecting to postgres://app:***@db/app" in res.stderr  # the hook's output, in the progress
        history = (state / "app.history.jsonl").read_text()
        assert "hunter2" not in history and "DATABASE_URL" not in history
        assert json.loads(history.splitlines()[-1])["reason"] == "after_front[0] failed: exit 3"
        made = modes(state)
        assert made[".fab-bluegreen"] == 0o700 and made[".fab-bluegreen/app.history.jsonl"] == 0o600, made
        assert serves(h1) == "blue 1"
        dry = fab("deploy", "--host", "h1", "--hosts-file", path, "--dry-run")  # the plan shows the hook
        assert dry.returncode == 0 and "DATABASE_URL=postgres://app:***@db/app" in dry.stdout
        assert "hunter2" not in dry.stdout + dry.stderr

        status = fab("status", "--host", "h1", "--hosts-file", path)
        assert status.returncode == 0 and "blue" in rows(status.stdout)["h1"]
        assert not list(h1.home.rglob("PWNED*"))
    finally:
        h1.run("ids=$(docker ps -aq); [ -z \"$ids\" ] || docker rm -f $ids >/dev/null", timeout=120)
        shutil.rmtree(app, ignore_errors=True)
