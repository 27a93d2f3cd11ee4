"""fab deploy on real hosts: traffic through nginx, containers really stopped and started."""

from __future__ import annotations

import pytest

import json
from datetime import datetime

from .conftest import Traffic, containers, events, fab, hosts_file, rows, serves, serves_now, set_version, states


def ts(docker_time: str) -> float:
    """Docker's RFC 3339 time with nanoseconds -> epoch seconds."""
    head, _, frac = docker_time.rstrip("Z").partition(".")
    return datetime.fromisoformat(head + "+00:00").timestamp() + float("0." + (frac or "0"))


@pytest.mark.unlike
def test_first_deploy_to_an_empty_host_serves_blue_through_nginx(bed, hosts, tmp_path):
    h1 = hosts[0]
    res = fab("deploy", "--host", "h1", "--hosts-file", str(hosts_file(tmp_path, bed)))
    assert res.returncode == 0
    serves_now(h1, "blue 1")
    assert states(h1, "blue") == dict.fromkeys(["web", "redis", "worker", "beat"], "running")
    assert "deployed" in res.stdout and "h1" in res.stdout
    record = json.loads((h1.home / "app" / ".fab-bluegreen" / "app.json").read_text())
    assert record["live"] == "blue" and record["colors"]["blue"]["images"]["web"].startswith("sha256:")


@pytest.mark.unlike
def test_blue_to_green_under_traffic_is_staged_and_loses_no_request(bed, hosts, tmp_path):
    h1 = hosts[0]
    path = str(hosts_file(tmp_path, bed))
    assert fab("deploy", "--host", "h1", "--hosts-file", path).returncode == 0
    blue_before = containers(h1, "blue")
    set_version(h1, "2")
    with Traffic(f"http://{h1.ip}/health/") as traffic:
        res = fab("deploy", "--host", "h1", "--hosts-file", path)
        assert res.returncode == 0, res.stderr
        serves_now(h1, "green 2")
    print(f"{len(traffic.results)} requests during the deploy, failures: {traffic.failures[:5]}")
    assert len(traffic.results) > 40
    assert traffic.failures == []
    bodies = [body for _, _, body in traffic.results]
    assert bodies[0] == "blue 1" and bodies[-1] == "green 2"
    # the switch happened once: blue answers until a moment, green after it. During nginx's reload
    # the old workers still accept for a moment next to the new ones (the switch waits that out
    # before it verifies), so answers may interleave within that moment, never after it
    switch_index = bodies.index("green 2")
    last_blue = max(i for i, body in enumerate(bodies) if body == "blue 1")
    assert set(bodies[:switch_index]) == {"blue 1"} and set(bodies[last_blue + 1:]) == {"green 2"}
    assert traffic.results[last_blue][0] - traffic.results[switch_index][0] < 1.0, "answers interleaved past the reload"

    green, blue = containers(h1, "green"), containers(h1, "blue")
    # the old worker and beat were stopped before the new web started
    assert ts(blue["worker"]["finished"]) < ts(green["web"]["started"])
    assert ts(blue["beat"]["finished"]) < ts(green["web"]["started"])
    # the new beat started after the switch (first answer from green through nginx)
    assert ts(green["beat"]["started"]) >= traffic.results[switch_index - 1][0]
    # afterwards: old web still runs (instant switch back), old worker and beat stopped, not removed
    assert blue["web"]["state"] == "running" and blue["web"]["id"] == blue_before["web"]["id"]
    assert (blue["worker"]["state"], blue["beat"]["state"]) == ("exited", "exited")
    assert {s: c["state"] for s, c in green.items()} == dict.fromkeys(["web", "redis", "worker", "beat"], "running")
    assert_one_beat_at_a_time(h1)


def assert_one_beat_at_a_time(h1) -> None:
    """From the beats' own start/stop events: never two beats alive at once."""
    alive: set[str] = set()
    for _, color, version, what in events(h1):
        if what == "beat start":
            assert not alive, f"beat {color} {version} started while {alive} was running"
            alive.add(f"{color} {version}")
        elif what == "beat stop":
            alive.discard(f"{color} {version}")
    ticks = (h1.home / "app" / "var" / "ticks.log").read_text().splitlines()
    colors = [line.split()[1] for line in ticks]
    changes = sum(1 for a, b in zip(colors, colors[1:]) if a != b)
    assert changes == 1, f"ticks alternate between colours {changes} times"


def test_unhealthy_new_version_rolls_back_and_blue_keeps_serving(bed, hosts, tmp_path):
    h1 = hosts[0]
    path = str(hosts_file(tmp_path, bed, health="{ retries = 4, interval = 0.5 }"))
    assert fab("deploy", "--host", "h1", "--hosts-file", path).returncode == 0
    set_version(h1, "2", mode="web-unhealthy")
    with Traffic(f"http://{h1.ip}/health/") as traffic:
        res = fab("deploy", "--host", "h1", "--hosts-file", path)
    assert res.returncode == 1
    assert "rolled back" in res.stdout and "health check" in res.stdout and "HTTP 404" in res.stdout
    assert "web start" in res.stderr  # the failing web's last log lines are shown
    assert traffic.failures == [] and serves(h1) == "blue 1"
    assert states(h1, "blue") == dict.fromkeys(["web", "redis", "worker", "beat"], "running")
    green = states(h1, "green")
    assert green and set(green.values()) == {"exited"}  # kept for their logs, not running


@pytest.mark.unlike
def test_worker_that_exits_within_settle_rolls_back(bed, hosts, tmp_path):
    h1 = hosts[0]
    path = str(hosts_file(tmp_path, bed, settle="4"))
    assert fab("deploy", "--host", "h1", "--hosts-file", path).returncode == 0
    set_version(h1, "2", mode="worker-crash")
    res = fab("deploy", "--host", "h1", "--hosts-file", path)
    assert res.returncode == 1
    assert "rolled back" in res.stdout and "settle" in res.stdout and "worker exited" in res.stdout
    serves_now(h1, "blue 1")  # switched back: nginx serves blue again, not the stopped green
    assert states(h1, "blue") == dict.fromkeys(["web", "redis", "worker", "beat"], "running")
    assert "running" not in states(h1, "green").values()
    assert_beats_never_overlap(h1)


def assert_beats_never_overlap(h1) -> None:
    alive = 0
    for *_, what in events(h1):
        alive += {"beat start": 1, "beat stop": -1}.get(what, 0)
        assert alive <= 1


def test_redeploy_to_a_colour_still_there_recreates_its_containers(bed, hosts, tmp_path):
    h1 = hosts[0]
    path = str(hosts_file(tmp_path, bed))
    assert fab("deploy", "--host", "h1", "--hosts-file", path).returncode == 0  # blue 1
    set_version(h1, "2")
    assert fab("deploy", "--host", "h1", "--hosts-file", path).returncode == 0  # green 2
    old_blue = containers(h1, "blue")
    set_version(h1, "3")
    assert fab("deploy", "--host", "h1", "--hosts-file", path).returncode == 0  # blue again, no cleanup
    assert serves(h1) == "blue 3"
    new_blue = containers(h1, "blue")
    for service in ("web", "redis", "worker", "beat"):
        assert new_blue[service]["id"] != old_blue[service]["id"], f"{service} was not recreated"
        assert new_blue[service]["state"] == "running"


def test_two_hosts_one_broken_the_other_deploys(bed, hosts, tmp_path):
    h1, h2 = hosts[0], hosts[1]
    path = str(hosts_file(tmp_path, bed, health="{ retries = 3, interval = 0.5 }"))
    assert fab("deploy", "--host", "h1", "--host", "h2", "--hosts-file", path).returncode == 0
    set_version(h1, "2")
    set_version(h2, "2", mode="web-unhealthy")
    res = fab("deploy", "--host", "h1", "--host", "h2", "--hosts-file", path)
    assert res.returncode == 1
    table = rows(res.stdout)
    assert "deployed" in table["h1"] and "green" in table["h1"]
    assert "rolled back" in table["h2"] and "health check" in table["h2"]
    assert serves(h1) == "green 2" and serves(h2) == "blue 1"
