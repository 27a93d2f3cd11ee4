"""A reboot of the host (the bed's Host.reboot: dockerd stopped as a shutdown stops it, then started
again) with services that say `restart: always` or `unless-stopped`: exactly the live colour's worker
and beat run afterwards, never the old colour's beside them, and nginx serves the live colour."""

from __future__ import annotations

import json
import threading
import time

import pytest

from .conftest import fab, get, hosts_file, rows, serves, set_version, states
from .test_guard import wait_for
from .test_safety import start_fab

POLICIES = ["always", "unless-stopped"]


@pytest.fixture(params=POLICIES)
def policy(request, hosts) -> str:
    """Every service of h1's example app with this restart policy (the x-app anchor, and redis)."""
    compose = hosts[0].home / "app" / "compose.yml"
    text = compose.read_text()
    text = text.replace("x-app: &app\n", f"x-app: &app\n  restart: {request.param}\n", 1)
    text = text.replace("    image: fbg/redis:7\n", f"    image: fbg/redis:7\n    restart: {request.param}\n", 1)
    assert text.count(f"restart: {request.param}") == 2
    compose.write_text(text)
    return request.param


def running_background(h) -> dict[str, list[str]]:
    """service -> the colours whose container of it runs (worker and beat)."""
    now = {c: states(h, c) for c in ("blue", "green")}
    return {x: [c for c in now if now[c].get(x) == "running"] for x in ("worker", "beat")}


def after_reboot(h, live: str, body: str, power_cut: bool = False) -> None:
    """Reboot h (power_cut: its SSH users' processes killed first); then nginx serves `body` again, and once the live colour's worker and beat run,
    they are the only ones (checked for a few seconds: Docker starts containers one by one)."""
    h.reboot(power_cut=power_cut)
    deadline = time.monotonic() + 60
    while get(f"http://{h.ip}/health/") != (200, body) or running_background(h) != {"worker": [live], "beat": [live]}:
        if time.monotonic() > deadline:
            break
        time.sleep(1)
    for _ in range(5):
        now = {c: states(h, c) for c in ("blue", "green")}
        assert running_background(h) == {"worker": [live], "beat": [live]}, f"after the reboot: {now}"
        time.sleep(1)
    assert serves(h) == body


@pytest.mark.unlike
def test_a_reboot_after_a_deploy_brings_back_only_the_live_colour_s_background(bed, hosts, policy, tmp_path):
    h1 = hosts[0]
    path = str(hosts_file(tmp_path, bed))
    assert fab("deploy", "--host", "h1", "--hosts-file", path).returncode == 0  # blue 1
    set_version(h1, "2")
    assert fab("deploy", "--host", "h1", "--hosts-file", path).returncode == 0  # green 2
    status = rows(fab("status", "--host", "h1", "--hosts-file", path).stdout)["h1"]
    assert f"beat worker restart: no (compose: {policy})" in status  # blue's, turned off by the deploy
    after_reboot(h1, "green", "green 2")
    set_version(h1, "3")  # and the next deploy goes on from there
    assert fab("deploy", "--host", "h1", "--hosts-file", path).returncode == 0
    after_reboot(h1, "blue", "blue 3", power_cut=True)


@pytest.mark.unlike
def test_a_reboot_after_a_rolled_back_deploy_brings_back_only_the_old_colour_s_background(bed, hosts, policy,
                                                                                          tmp_path):
    h1 = hosts[0]
    path = str(hosts_file(tmp_path, bed, settle="4"))
    assert fab("deploy", "--host", "h1", "--hosts-file", path).returncode == 0  # blue 1
    set_version(h1, "2", mode="worker-crash")
    res = fab("deploy", "--host", "h1", "--hosts-file", path)
    assert res.returncode == 1 and "rolled back" in res.stdout
    after_reboot(h1, "blue", "blue 1")


@pytest.mark.unlike
def test_a_reboot_after_deploy_no_switch_keeps_the_traffic_and_the_background_on_the_live_colour(bed, hosts, policy,
                                                                                               tmp_path):
    h1 = hosts[0]
    path = str(hosts_file(tmp_path, bed))
    assert fab("deploy", "--host", "h1", "--hosts-file", path).returncode == 0  # blue 1
    set_version(h1, "2")
    assert fab("deploy", "--host", "h1", "--hosts-file", path).returncode == 0  # green 2; blue's background stopped
    set_version(h1, "3")
    res = fab("deploy", "--no-switch", "--host", "h1", "--hosts-file", path)  # blue 3 staged beside green
    assert res.returncode == 0 and "staged" in res.stdout
    after_reboot(h1, "green", "green 2")
    assert states(h1, "blue")["web"] == "running"  # the staged front: its policy brings it back
    res = fab("promote", "--host", "h1", "--hosts-file", path)
    assert res.returncode == 0
    after_reboot(h1, "blue", "blue 3")


class Beats:
    """How many beat containers run on the host, polled in a thread (a failed poll, while dockerd is
    down, counts nothing); `most` is the highest count seen."""

    def __init__(self, h):
        self.h, self.most, self.polls = h, 0, 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(0.3):
            res = self.h.run("docker ps -q --filter label=com.docker.compose.service=beat --filter status=running",
                             check=False, timeout=10)
            if res.returncode == 0:
                self.polls += 1
                self.most = max(self.most, len(res.stdout.split()))

    def __enter__(self) -> "Beats":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join(15)


def history(h) -> list[dict]:
    path = h.home / "app" / ".fab-bluegreen" / "app.history.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()]


def cut_off_in_the_health_wait(bed, h1, tmp_path) -> str:
    """Deploy blue 1, then green 2 with a slow front, killed (the power cut: fab's side of the link is
    gone with it) while its health check waits: blue's worker and beat stopped. The hosts file's path."""
    path = str(hosts_file(tmp_path, bed))
    assert fab("deploy", "--host", "h1", "--hosts-file", path).returncode == 0  # blue 1
    (tmp_path / "slow").mkdir()  # a front that takes its time: the deploy waits in its health check
    slow = str(hosts_file(tmp_path / "slow", bed, health="{ retries = 4, interval = 0.5, start_delay = 60 }"))
    set_version(h1, "2")
    proc = start_fab("deploy", "--host", "h1", "--hosts-file", slow)
    try:
        wait_for("green's web started, blue's worker and beat stopped", lambda: states(h1, "green").get("web") ==
                 "running" and states(h1, "blue").get("beat") == "exited", 60)
    finally:
        proc.kill()
        proc.communicate(timeout=30)
    return path


@pytest.mark.unlike
def test_a_power_cut_while_the_new_front_s_health_check_waits_is_put_right_by_the_next_deploy(bed, hosts, policy,
                                                                                             tmp_path):
    h1 = hosts[0]
    path = cut_off_in_the_health_wait(bed, h1, tmp_path)
    with Beats(h1) as beats:
        h1.reboot(power_cut=True)
        time.sleep(3)  # docker brings back what its restart policies say
        assert (h1.home / "app" / ".fab-bluegreen" / "app.lock").exists()
        status = rows(fab("status", "--host", "h1", "--hosts-file", path).stdout)["h1"]
        assert "interrupted by a reboot" in status and "puts the host back (stop app-green (kept for its logs); start app-blue worker beat again, unless" in status, status
        res = fab("deploy", "--host", "h1", "--hosts-file", path)
        assert res.returncode == 0, res.stdout + res.stderr
        said = [line for line in res.stdout.splitlines() if "interrupted by a reboot" in line]
        assert len(said) == 1 and "put the host back as its guard would have" in said[0], res.stdout
        assert serves(h1) == "green 2"
        time.sleep(2)
    assert beats.polls > 10 and beats.most == 1, (beats.polls, beats.most)  # never two beats, from the boot on
    assert running_background(h1) == {"worker": ["green"], "beat": ["green"]}
    put_back, deployed = history(h1)[-2:]
    assert (put_back["action"], put_back["cause"], put_back["by"]) == ("guard", "reboot", "deploy")
    assert (deployed["action"], deployed["result"], deployed["to"]) == ("deploy", "deployed", "green")


@pytest.mark.unlike
def test_a_power_cut_mid_deploy_is_put_right_at_boot_by_the_script_the_boot_unit_runs(bed, hosts, policy, tmp_path):
    """The bed has no systemd: the boot script runs as the unit fab setup registers would run it
    (as the SSH user, once dockerd is up, before anyone runs fab). fab check says the bed cannot
    have the unit."""
    h1 = hosts[0]
    path = cut_off_in_the_health_wait(bed, h1, tmp_path)
    state = h1.home / "app" / ".fab-bluegreen"
    assert (state / "app.boot.sh").exists()  # the deploy's lock take wrote it
    with Beats(h1) as beats:
        h1.reboot(power_cut=True)
        assert (state / "app.lock").exists()
        res = h1.run('/bin/sh "$HOME"/app/.fab-bluegreen/app.boot.sh', user="deploy", timeout=120)
        assert res.returncode == 0, res.stdout + res.stderr
        assert not (state / "app.lock").exists()
        assert serves(h1) == "blue 1"
        wait_for("blue's worker and beat run again", lambda: running_background(h1) == {"worker": ["blue"],
                                                                                        "beat": ["blue"]}, 60)
        assert states(h1, "green").get("web") != "running"
        time.sleep(2)
    assert beats.polls > 5 and beats.most == 1, (beats.polls, beats.most)
    put_back = history(h1)[-1]
    assert (put_back["action"], put_back["cause"], put_back["by"], put_back["user"]) == ("guard", "reboot", "boot",
                                                                                          "(boot)")
    status = fab("status", "--host", "h1", "--hosts-file", path).stdout
    assert "interrupted by a reboot" not in status, status
    checked = fab("check", "--host", "h1", "--hosts-file", path)
    assert "boot-putback" in checked.stdout and "no systemd" in checked.stdout, checked.stdout
