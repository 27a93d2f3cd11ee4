"""Safe under faults, on real hosts: lock, hooks that hang, dry run, rollback, batches, check,
status, Ctrl-C."""

from __future__ import annotations

import pytest

import json
import os
import signal
import subprocess
import time

from tests.signals import defaults_in_child

from .conftest import FAB, PORTS, ROOT, UPSTREAM, Traffic, fab, hosts_file, rows, serves, serves_now, set_version, states

ALL = ["web", "redis", "worker", "beat"]


def start_fab(*args: str) -> subprocess.Popen:
    return subprocess.Popen([FAB, *args], cwd=ROOT, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env={**os.environ, "COLUMNS": "200"},
                            preexec_fn=defaults_in_child)  # the test signals it: never an inherited SIG_IGN


def app_state(h) -> dict:
    """Everything a deploy could change: containers, the upstream file, the record and history."""
    state_dir = h.home / "app" / ".fab-bluegreen"
    return {
        "containers": h.run("docker ps -a --format '{{.ID}} {{.Names}} {{.State}} {{.Image}}' | sort").stdout,
        "upstream": h.path(UPSTREAM).read_bytes(),
        "files": {p.name: p.read_bytes() for p in sorted(state_dir.iterdir())} if state_dir.exists() else {},
    }


def test_two_deploys_at_once_one_wins_the_other_names_the_holder(bed, hosts, tmp_path):
    path = str(hosts_file(tmp_path, bed))
    assert fab("deploy", "--host", "h1", "--hosts-file", path).returncode == 0
    set_version(hosts[0], "2")
    first = start_fab("deploy", "--host", "h1", "--hosts-file", path, "--message", "first one")
    second = start_fab("deploy", "--host", "h1", "--hosts-file", path, "--message", "second one")
    outs = [p.communicate(timeout=300) for p in (first, second)]
    codes = sorted([first.returncode, second.returncode])
    print(outs)
    assert codes == [0, 1]
    loser = outs[[first.returncode, second.returncode].index(1)]
    assert "locked" in loser[0] and "locked by" in loser[1] and "(deploy, '" in loser[1]
    assert serves(hosts[0]) == "green 2"
    assert not (hosts[0].home / "app" / ".fab-bluegreen" / "app.lock").exists()  # released


def test_unlock_removes_a_lock_left_behind_and_says_whose(bed, hosts, tmp_path):
    h1 = hosts[0]
    path = str(hosts_file(tmp_path, bed))
    assert fab("deploy", "--host", "h1", "--hosts-file", path).returncode == 0
    lock = h1.home / "app" / ".fab-bluegreen" / "app.lock"
    lock.mkdir()
    (lock / "info").write_text(json.dumps({"who": "alice@laptop", "task": "deploy", "message": "friday",
                                           "when": "2026-11-27T17:00:00+00:00", "token": "x"}) + "\n")
    for p in (lock, lock / "info"):
        os.chown(p, *bed.deploy_ids())  # as if alice's run, as the deploy user, had left it
    blocked = fab("deploy", "--host", "h1", "--hosts-file", path)
    assert blocked.returncode == 1 and "locked by alice@laptop (deploy, 'friday'" in blocked.stderr
    asked = fab("unlock", "--host", "h1", "--hosts-file", path)  # no terminal to ask at, no --yes
    assert asked.returncode == 2 and "--yes" in asked.stderr and lock.exists()
    assert "alice@laptop (deploy, 'friday', since 2026-11-27T17:00:00+00:00)" in asked.stdout  # shown first
    res = fab("unlock", "--host", "h1", "--hosts-file", path, "--yes")
    assert res.returncode == 0 and "removed the lock" in res.stdout and not lock.exists()
    again = fab("unlock", "--host", "h1", "--hosts-file", path)
    assert again.returncode == 0 and "no lock" in again.stdout
    set_version(h1, "2")
    assert fab("deploy", "--host", "h1", "--hosts-file", path).returncode == 0


def test_a_hook_that_hangs_times_out_and_rolls_back_that_host_only(bed, hosts, tmp_path):
    h1, h2 = hosts[0], hosts[1]
    path = hosts_file(tmp_path, bed, timeouts="{ hook = 3 }", hosts=(
        '[hosts.h1]\nssh = "h1"\nhooks = { after_front = ["{compose} exec -T web cat /app/VERSION"] }\n'
        '[hosts.h2]\nssh = "h2"\nhooks = { after_front = ["sleep 600"], on_failure = ["echo cleaning up"] }\n'))
    assert fab("deploy", "--host", "h1", "--host", "h2", "--hosts-file", str(path)).returncode == 1  # h2 hangs
    set_version(h1, "2")
    set_version(h2, "2")
    started = time.monotonic()
    res = fab("deploy", "--host", "h1", "--host", "h2", "--hosts-file", str(path))
    assert time.monotonic() - started < 60
    assert res.returncode == 1
    table = rows(res.stdout)
    assert "deployed" in table["h1"] and "after_front hook" in table["h2"] and "rolled back" in table["h2"]
    assert "timed out after 3 s" in res.stdout
    progress = [line.split(None, 2) for line in res.stderr.splitlines() if len(line.split()) >= 3]
    h1_lines = [rest.strip() for _, host, rest in progress if host == "h1"]
    assert "after_front: {compose} exec -T web cat /app/VERSION" in h1_lines
    assert "2" in h1_lines  # the hook's own output (the new VERSION), in the progress view
    assert "cleaning up" in res.stderr  # on_failure ran on h2
    assert serves(h1) == "green 2"


def test_dry_run_prints_the_commands_and_changes_nothing(bed, hosts, tmp_path):
    h1 = hosts[0]
    path = str(hosts_file(tmp_path, bed))
    assert fab("deploy", "--host", "h1", "--hosts-file", path).returncode == 0
    set_version(h1, "2")
    before = app_state(h1)
    res = fab("deploy", "--host", "h1", "--hosts-file", path, "--dry-run")
    assert res.returncode == 0 and "dry run" in res.stdout
    assert "docker compose -p app-green -f compose.yml up -d --force-recreate --no-deps web redis" in res.stdout
    assert "docker stop -t 10 " in res.stdout and "sudo -n nginx -t" in res.stdout  # the live background, by ID
    assert app_state(h1) == before
    for task in (["cleanup", "--yes"], ["rollback"]):
        fab(*task, "--host", "h1", "--hosts-file", path, "--dry-run")
        assert app_state(h1) == before


@pytest.mark.unlike
def test_rollback_after_a_good_deploy_and_refusal_after_a_failed_one(bed, hosts, tmp_path):
    h1 = hosts[0]
    path = str(hosts_file(tmp_path, bed, health="{ retries = 4, interval = 0.5 }"))
    assert fab("deploy", "--host", "h1", "--hosts-file", path).returncode == 0  # blue 1
    set_version(h1, "2")
    assert fab("deploy", "--host", "h1", "--hosts-file", path).returncode == 0  # green 2
    with Traffic(f"http://{h1.ip}/health/") as traffic:
        res = fab("rollback", "--host", "h1", "--hosts-file", path)
        serves_now(h1, "blue 1")
    assert res.returncode == 0 and "fab rollback" in res.stdout
    assert traffic.failures == [] and serves(h1) == "blue 1"
    assert states(h1, "blue") == dict.fromkeys(ALL, "running")
    assert states(h1, "green")["worker"] == "exited" and states(h1, "green")["web"] == "running"

    assert fab("rollback", "--host", "h1", "--hosts-file", path).returncode == 0  # and forth: green 2
    assert serves(h1) == "green 2"
    set_version(h1, "3", mode="web-unhealthy")
    assert fab("deploy", "--host", "h1", "--hosts-file", path).returncode == 1  # recreates blue, fails
    refused = fab("rollback", "--host", "h1", "--hosts-file", path)
    assert refused.returncode == 1 and "not the ones that served before" in refused.stderr
    assert serves(h1) == "green 2"


def test_batches_stop_after_max_fail_and_the_rest_are_skipped(bed, hosts, tmp_path):
    path = str(hosts_file(tmp_path, bed, health="{ retries = 3, interval = 0.5 }"))
    everyone = ["--host", "h1", "--host", "h2", "--host", "h3"]
    assert fab("deploy", *everyone, "--hosts-file", path).returncode == 0
    set_version(hosts[0], "2", mode="web-unhealthy")
    res = fab("deploy", *everyone, "--hosts-file", path, "--batch", "1", "--max-fail", "1")
    assert res.returncode == 1
    table = rows(res.stdout)
    assert "rolled back" in table["h1"] and "skipped" in table["h2"] and "skipped" in table["h3"]
    assert "max-fail" in res.stdout
    assert [serves(h) for h in hosts] == ["blue 1", "blue 1", "blue 1"]


@pytest.mark.unlike
def test_check_finds_each_problem_and_changes_nothing(bed, hosts, tmp_path):
    h1 = hosts[0]
    path = str(hosts_file(tmp_path, bed))
    ok = fab("check", "--host", "h1", "--hosts-file", path)
    assert ok.returncode == 0 and "fail" not in ok.stdout

    green = PORTS["green"]
    h1.run(f"docker run -d --name squatter -p 127.0.0.1:{green}:6379 fbg/redis:7 >/dev/null")
    busy = fab("check", "--host", "h1", "--hosts-file", path)
    assert busy.returncode == 1 and f"{green} (green) is taken by another program" in busy.stdout
    h1.run("docker rm -f squatter >/dev/null")

    h1.run("cd /home/deploy/app && runuser -u deploy -- env DEPLOY_PORT=18009 docker compose -p app up -d redis")
    before = app_state(h1)
    leftover = fab("check", "--host", "h1", "--hosts-file", path)
    assert leftover.returncode == 1 and "plain compose project 'app'" in leftover.stdout
    blocked = fab("deploy", "--host", "h1", "--hosts-file", path)
    assert blocked.returncode == 1 and "refused" in blocked.stdout and "to adopt it" in blocked.stdout
    assert app_state(h1)["containers"] == before["containers"]
    h1.run("cd /home/deploy/app && docker compose -p app down >/dev/null 2>&1")

    h1.run(f"mv {UPSTREAM} /root/upstream.saved")  # nginx keeps serving its loaded config
    missing = fab("check", "--host", "h1", "--hosts-file", path)
    h1.run(f"mv /root/upstream.saved {UPSTREAM}")
    assert missing.returncode == 1 and f"{UPSTREAM} does not exist" in missing.stdout


def test_status_and_history_follow_deploys_failures_and_cleanup(bed, hosts, tmp_path):
    h1 = hosts[0]
    path = str(hosts_file(tmp_path, bed, health="{ retries = 3, interval = 0.5 }"))
    empty = fab("status", "--host", "h1", "--hosts-file", path)
    assert empty.returncode == 0 and "none" in rows(empty.stdout)["h1"]
    fab("deploy", "--host", "h1", "--hosts-file", path)
    set_version(h1, "2")
    fab("deploy", "--host", "h1", "--hosts-file", path)
    row = rows(fab("status", "--host", "h1", "--hosts-file", path).stdout)["h1"]
    assert "green" in row and "200 ok" in row and "deploy blue->green deployed" in row
    set_version(h1, "3", mode="web-unhealthy")
    fab("deploy", "--host", "h1", "--hosts-file", path)
    row = rows(fab("status", "--host", "h1", "--hosts-file", path).stdout)["h1"]
    assert "green" in row and "rolled back at health check" in row
    failed = fab("logs", "--host", "h1", "--hosts-file", path)  # by default: what failed last
    assert failed.returncode == 0 and "app-blue web" in failed.stdout and "blue 3 web start" in failed.stdout
    cleaned = fab("cleanup", "--host", "h1", "--hosts-file", path, "--yes")
    # the failed colour's redis was stopped by its rollback: not counted, said, and no refusal
    assert cleaned.returncode == 0 and "blue's redis is exited: its queues were not counted" in cleaned.stdout
    status = fab("status", "--hosts-file", path)  # no host named: every host
    assert status.returncode == 0 and set(rows(status.stdout)) == {"h1", "h2", "h3"}
    assert "cleanup green->" not in rows(status.stdout)["h1"] and "cleanup blue->green cleaned" in rows(status.stdout)["h1"]
    history = fab("history", "--host", "h1", "--hosts-file", path)
    cells = [[c.strip() for c in line.split("│")[1:-1]] for line in history.stdout.splitlines() if line.count("│") > 5]
    actions = [c[2] for c in cells if c[0] == "h1"]
    assert actions == ["deploy", "deploy", "deploy", "cleanup"]
    logs = fab("logs", "--host", "h1", "--hosts-file", path, "--colour", "green", "--service", "worker")
    assert logs.returncode == 0 and "green 2 worker start" in logs.stdout


@pytest.mark.unlike
@pytest.mark.parametrize("sig, code", [(signal.SIGINT, 130), (signal.SIGTERM, 143)], ids=["ctrl-c", "sigterm"])
def test_ctrl_c_or_sigterm_mid_deploy_puts_both_hosts_back_and_exits_130_or_143(bed, hosts, tmp_path, sig, code):
    """SIGTERM (a cancelled CI job, `timeout 300 fab deploy`) is handled as the first Ctrl-C is."""
    h1, h2 = hosts[0], hosts[1]
    path = str(hosts_file(tmp_path, bed, health="{ retries = 30, interval = 0.5 }"))
    assert fab("deploy", "--host", "h1", "--host", "h2", "--hosts-file", path).returncode == 0
    for h in (h1, h2):
        set_version(h, "2", mode="web-unhealthy")  # keeps the health check polling: a long step
    with Traffic(f"http://{h1.ip}/health/") as traffic:
        proc = start_fab("deploy", "--host", "h1", "--host", "h2", "--hosts-file", path)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not all(
                states(h, "green").get("web") == "running" for h in (h1, h2)):
            time.sleep(0.2)
        proc.send_signal(sig)
        out, err = proc.communicate(timeout=120)
    print(out, err)
    assert traffic.failures == [] and len(traffic.results) > 20
    assert proc.returncode == code
    cause = "Ctrl-C" if sig == signal.SIGINT else "SIGTERM"
    assert f"{cause}: rolling back every host" in err
    assert "│ interrupted │" in rows(out)["h1"] and "│ interrupted │" in rows(out)["h2"]
    for h in (h1, h2):
        serves_now(h, "blue 1")
        assert states(h, "blue") == dict.fromkeys(ALL, "running")
        assert "running" not in states(h, "green").values()
        assert not (h.home / "app" / ".fab-bluegreen" / "app.lock").exists()
        set_version(h, "2")
    assert fab("deploy", "--host", "h1", "--host", "h2", "--hosts-file", path).returncode == 0
