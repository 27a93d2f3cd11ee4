"""Secrets on real hosts: read on the workstation, written to each colour's own file on the host
(0600) from the SSH channel's standard input, handed to compose as DEPLOY_ENV_FILE; the app gets
them, a rollback runs the old code with the old secrets, cleanup removes the old colour's file. The
values never show in fab's output, the history, a dry run, or any process's command line on the
host while fab deploys (every /proc/*/cmdline, sampled all along)."""

from __future__ import annotations

import json
import os
import stat
import threading
import uuid
from pathlib import Path

from tests.testbed.bed import Bed, Host

from .conftest import fab, hosts_file, rows, serves, set_version

# names and values that the tool's guesses at credentials would not mask (a KEY=value whose name
# says PASSWORD or KEY, a URL's password): only knowing the values masks them
BLUE_WORD = f"blue-w0rd-{uuid.uuid4().hex[:12]}"
BLUE_DB_WORD = f"db-{uuid.uuid4().hex[:12]}"
GREEN_WORD = f"green-w0rd-{uuid.uuid4().hex[:12]}"
VALUES = (BLUE_WORD, BLUE_DB_WORD, GREEN_WORD)
BLUE_TEXT = f"# the app's secrets, version 1\nexport APP_WORD={BLUE_WORD}\nDB_WORD='{BLUE_DB_WORD}'\n"
GREEN_TEXT = f"APP_WORD={GREEN_WORD}\n"
# the hook prints what the app was given: fab must show it masked
SAY_SECRET = "{compose} exec -T web sh -c 'echo \"the app has $APP_WORD\"'"


def secrets_hosts(tmp_path: Path, bed: Bed, secrets: str, **more: str) -> str:
    hooks = f"{{ after_front = {json.dumps([SAY_SECRET])} }}"
    return str(hosts_file(tmp_path, bed, hosts='[hosts.h1]\nssh = "h1"\n', secrets=secrets, hooks=hooks, **more))


def env_file(h: Host, color: str) -> Path:
    return h.home / "app" / ".fab-bluegreen" / f"app.{color}.env"


def app_env(h: Host, container: str, name: str) -> str:
    """A variable of a container's environment (`env` in it: the bed's busybox has no printenv)."""
    out = h.run(f"docker exec {container} env", check=False).stdout
    return next((line.split("=", 1)[1] for line in out.splitlines() if line.startswith(name + "=")), "")


class CommandLines:
    """Every process's command line on this machine (the bed's hosts share its PID namespace),
    sampled until stopped: the ones holding a needle, and how many of fab's compose commands were
    seen (so that the watch demonstrably saw the deploy's commands)."""

    def __init__(self, needles: tuple[str, ...]):
        self.needles = [n.encode() for n in needles]
        self.hits: list[str] = []
        self.seen: set[bytes] = set()
        self._stop = threading.Event()

    def __enter__(self) -> "CommandLines":
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.is_set():
            for pid in os.listdir("/proc"):
                if not pid.isdigit():
                    continue
                try:
                    with open(f"/proc/{pid}/cmdline", "rb") as f:
                        line = f.read()
                except OSError:
                    continue
                if any(n in line for n in self.needles):
                    self.hits.append(line.replace(b"\0", b" ").decode(errors="replace"))
                if b"DEPLOY_ENV_FILE" in line:
                    self.seen.add(line)

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join(10)


def assert_never_shown(*outputs: str) -> None:
    for text in outputs:
        for value in VALUES:
            assert value not in text, f"{value} shown"


def test_each_colour_gets_its_own_secrets_never_shown_nor_on_a_command_line(bed, hosts, tmp_path):
    h1 = hosts[0]
    (tmp_path / "secrets").mkdir()
    (tmp_path / "secrets" / "prod.env").write_text(BLUE_TEXT)
    (tmp_path / "secrets" / "v2.env").write_text(GREEN_TEXT)
    path = secrets_hosts(tmp_path, bed, '{ env_file = "secrets/prod.env" }')

    dry = fab("deploy", "--host", "h1", "--hosts-file", path, "--dry-run")
    assert dry.returncode == 0 and "secrets: 2 keys from secrets/prod.env" in dry.stdout
    assert not env_file(h1, "blue").exists()

    with CommandLines(VALUES) as watch:
        res = fab("deploy", "--host", "h1", "--hosts-file", path)
    assert res.returncode == 0, res.stderr
    print(f"{len(watch.seen)} distinct command lines with DEPLOY_ENV_FILE seen during the deploy")
    assert watch.hits == [] and len(watch.seen) >= 3
    # on the host: blue's own file, 0600, the SSH user's; the app has the values
    blue = env_file(h1, "blue")
    assert blue.read_text() == BLUE_TEXT and stat.S_IMODE(blue.stat().st_mode) == 0o600
    assert (blue.stat().st_uid, blue.stat().st_gid) == Bed.deploy_ids()
    assert app_env(h1, "app-blue-web-1", "APP_WORD") == BLUE_WORD
    assert app_env(h1, "app-blue-worker-1", "DB_WORD") == BLUE_DB_WORD
    assert "the app has ***" in res.stderr  # the hook printed the value: masked

    # version 2 with other secrets, from a command this time: to green; blue keeps its own file
    set_version(h1, "2")
    path2 = secrets_hosts(tmp_path, bed, '{ command = "cat secrets/v2.env" }')
    with CommandLines(VALUES) as watch:
        res2 = fab("deploy", "--host", "h1", "--hosts-file", path2)
    assert res2.returncode == 0, res2.stderr
    assert watch.hits == [] and watch.seen
    assert env_file(h1, "green").read_text() == GREEN_TEXT and blue.read_text() == BLUE_TEXT
    assert app_env(h1, "app-green-worker-1", "APP_WORD") == GREEN_WORD
    assert serves(h1) == "green 2"

    # a rollback runs the old code with the old secrets
    with CommandLines(VALUES) as watch:
        back = fab("rollback", "--host", "h1", "--hosts-file", path)
    assert back.returncode == 0 and serves(h1) == "blue 1" and watch.hits == []
    assert app_env(h1, "app-blue-worker-1", "APP_WORD") == BLUE_WORD  # its background, started again
    assert app_env(h1, "app-blue-web-1", "APP_WORD") == BLUE_WORD

    # cleanup removes the old colour's file with its containers; the live colour's stays
    clean = fab("cleanup", "--host", "h1", "--hosts-file", path, "--yes")
    assert clean.returncode == 0
    assert not env_file(h1, "green").exists() and blue.read_text() == BLUE_TEXT
    assert h1.run("docker ps -aq --filter label=com.docker.compose.project=app-green").stdout.strip() == ""

    history = fab("history", "--host", "h1", "--hosts-file", path)
    status = fab("status", "--host", "h1", "--hosts-file", path)
    kept = (h1.home / "app" / ".fab-bluegreen" / "app.history.jsonl").read_text()
    assert_never_shown(dry.stdout, dry.stderr, res.stdout, res.stderr, res2.stdout, res2.stderr, back.stdout,
                       back.stderr, clean.stdout, clean.stderr, history.stdout, status.stdout, kept)


def test_an_app_that_logs_its_environment_is_shown_masked_when_it_fails(bed, hosts, tmp_path):
    h1 = hosts[0]
    (tmp_path / "prod.env").write_text(BLUE_TEXT)
    path = secrets_hosts(tmp_path, bed, '{ env_file = "prod.env" }', health="{ retries = 3, interval = 0.5 }")
    assert fab("deploy", "--host", "h1", "--hosts-file", path).returncode == 0
    set_version(h1, "2", mode="web-unhealthy web-logs-env")
    res = fab("deploy", "--host", "h1", "--hosts-file", path)
    assert res.returncode == 1 and "rolled back" in rows(res.stdout)["h1"]
    # the failing web's last log lines (its environment) are shown, the values masked
    assert "APP_WORD=***" in res.stderr and "DB_WORD=***" in res.stderr
    assert app_env(h1, "app-blue-web-1", "APP_WORD") == BLUE_WORD and serves(h1) == "blue 1"
    logs = fab("logs", "--host", "h1", "--hosts-file", path)  # the failed web's log, by default
    assert "APP_WORD=***" in logs.stdout
    assert_never_shown(res.stdout, res.stderr, logs.stdout)


def test_a_malformed_secrets_file_stops_before_any_host_is_contacted(bed, hosts, tmp_path):
    h1 = hosts[0]
    (tmp_path / "prod.env").write_text(f"A=1\n\n# fine\n{BLUE_WORD}\n")
    path = secrets_hosts(tmp_path, bed, '{ env_file = "prod.env" }')
    res = fab("deploy", "--host", "h1", "--hosts-file", path)
    assert res.returncode == 2 and res.stderr.startswith("error: prod.env:4: not KEY=value (")
    assert_never_shown(res.stdout, res.stderr)
    assert not (h1.home / "app" / ".fab-bluegreen").exists()  # not even the lock was taken
