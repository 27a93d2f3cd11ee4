"""A reboot of the host (the bed's Host.reboot: dockerd stopped as a shutdown stops it, then started
again) with services that say `restart: always` or `unless-stopped`: exactly the live colour's worker
and beat run afterwards, never the old colour's beside them, and nginx serves the live colour."""

from __future__ import annotations

import time

import pytest

from .conftest import fab, get, hosts_file, rows, serves, set_version, states

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


def test_a_reboot_after_a_rolled_back_deploy_brings_back_only_the_old_colour_s_background(bed, hosts, policy,
                                                                                          tmp_path):
    h1 = hosts[0]
    path = str(hosts_file(tmp_path, bed, settle="4"))
    assert fab("deploy", "--host", "h1", "--hosts-file", path).returncode == 0  # blue 1
    set_version(h1, "2", mode="worker-crash")
    res = fab("deploy", "--host", "h1", "--hosts-file", path)
    assert res.returncode == 1 and "rolled back" in res.stdout
    after_reboot(h1, "blue", "blue 1")


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
