"""deploy --no-switch, then promote, on real hosts: the staged colour's front runs beside the live
colour while every request still goes to the live one; it answers on its own port on the host;
promote moves the traffic without losing a request; a failed promote leaves the old colour serving;
rollback (or cleanup) of a staged colour removes it and nothing else."""

from __future__ import annotations

import pytest

import json
import re

from .conftest import PORTS, Traffic, containers, fab, hosts_file, rows, serves, serves_now, set_version, states
from .test_deploy import assert_one_beat_at_a_time

ALL = ["web", "redis", "worker", "beat"]


def record(h1) -> dict:
    return json.loads((h1.home / "app" / ".fab-bluegreen" / "app.json").read_text())


@pytest.mark.unlike
def test_a_staged_colour_waits_beside_the_live_one_until_promote_moves_the_traffic(bed, hosts, tmp_path):
    h1 = hosts[0]
    path = str(hosts_file(tmp_path, bed))
    assert fab("deploy", "--host", "h1", "--hosts-file", path).returncode == 0  # blue 1
    blue_before = containers(h1, "blue")
    set_version(h1, "2")
    with Traffic(f"http://{h1.ip}/health/") as traffic:
        staged = fab("deploy", "--no-switch", "--host", "h1", "--hosts-file", path)
        assert staged.returncode == 0, staged.stderr
        row = rows(staged.stdout)["h1"]
        assert "staged" in row and f"green runs on port {PORTS['green']} beside blue" in row
        serves_now(h1, "blue 1")  # no traffic moved
        # both fronts run; blue keeps its worker and beat; green's background waits
        assert states(h1, "blue") == dict.fromkeys(ALL, "running")
        assert states(h1, "green") == {"web": "running", "redis": "running"}
        assert {s: c["id"] for s, c in containers(h1, "blue").items()} == {s: c["id"] for s, c in blue_before.items()}
        # try it on the host, on its own port
        tried = h1.run(f"curl -s http://127.0.0.1:{PORTS['green']}/health/").stdout.strip()
        assert tried == "green 2"
        status = rows(fab("status", "--host", "h1", "--hosts-file", path).stdout)["h1"]
        assert f"staged: green (port {PORTS['green']})" in status
        assert record(h1)["staged"] == "green" and record(h1)["live"] == "blue"

        promoted = fab("promote", "--host", "h1", "--hosts-file", path)
        assert promoted.returncode == 0, promoted.stderr
        assert "deployed" in rows(promoted.stdout)["h1"] and "fab promote" in promoted.stdout
        serves_now(h1, "green 2")
    print(f"{len(traffic.results)} requests through stage and promote, failures: {traffic.failures[:5]}")
    assert len(traffic.results) > 40 and traffic.failures == []
    bodies = [body for _, _, body in traffic.results]
    switch = bodies.index("green 2")
    assert set(bodies[:switch]) == {"blue 1"} and bodies[-1] == "green 2"
    assert states(h1, "green") == dict.fromkeys(ALL, "running")
    assert states(h1, "blue") == {"web": "running", "redis": "running", "worker": "exited", "beat": "exited"}
    assert "staged" not in record(h1) and (record(h1)["live"], record(h1)["previous"]) == ("green", "blue")
    assert_one_beat_at_a_time(h1)
    history = fab("history", "--host", "h1", "--hosts-file", path, "--lines", "2").stdout
    assert re.search(r"deploy\s*│.*│\s*staged", history) and re.search(r"promote\s*│.*│\s*deployed", history)
    assert fab("promote", "--host", "h1", "--hosts-file", path).returncode == 1  # nothing staged any more


@pytest.mark.unlike
def test_a_failed_promote_leaves_the_old_colour_serving_and_the_staged_one_stopped(bed, hosts, tmp_path):
    h1 = hosts[0]
    path = str(hosts_file(tmp_path, bed, settle="4"))
    assert fab("deploy", "--host", "h1", "--hosts-file", path).returncode == 0  # blue 1
    set_version(h1, "2", mode="worker-crash")  # green's worker exits within settle
    assert fab("deploy", "--no-switch", "--host", "h1", "--hosts-file", path).returncode == 0
    with Traffic(f"http://{h1.ip}/health/") as traffic:
        res = fab("promote", "--host", "h1", "--hosts-file", path)
        assert res.returncode == 1
        serves_now(h1, "blue 1")
    row = rows(res.stdout)["h1"]
    assert "rolled back" in row and "settle" in row and "worker exited" in row
    assert traffic.failures == []
    assert states(h1, "blue") == dict.fromkeys(ALL, "running")  # its background started again
    assert "running" not in states(h1, "green").values()  # stopped, kept for its logs
    again = fab("promote", "--host", "h1", "--hosts-file", path)
    assert again.returncode == 1 and "not running" in again.stdout
    removed = fab("rollback", "--host", "h1", "--hosts-file", path)  # removes the staged green
    assert removed.returncode == 0 and "unstaged" in rows(removed.stdout)["h1"] and states(h1, "green") == {}


def test_rollback_or_cleanup_of_a_staged_colour_removes_it_and_nothing_else(bed, hosts, tmp_path):
    h1 = hosts[0]
    path = str(hosts_file(tmp_path, bed))
    assert fab("deploy", "--host", "h1", "--hosts-file", path).returncode == 0  # blue 1
    set_version(h1, "2")
    assert fab("deploy", "--host", "h1", "--hosts-file", path).returncode == 0  # green 2, blue kept
    before = {c: containers(h1, c) for c in ("blue", "green")}
    upstream_before = h1.path("/etc/nginx/conf.d/app_upstream.conf").read_text()
    set_version(h1, "3")
    assert fab("deploy", "--no-switch", "--host", "h1", "--hosts-file", path).returncode == 0  # blue 3 staged
    assert h1.run(f"curl -s http://127.0.0.1:{PORTS['blue']}/health/").stdout.strip() == "blue 3"
    serves_now(h1, "green 2")

    with Traffic(f"http://{h1.ip}/health/") as traffic:
        res = fab("rollback", "--host", "h1", "--hosts-file", path)
    assert res.returncode == 0, res.stderr
    assert "unstaged" in rows(res.stdout)["h1"] and traffic.failures == []
    assert {b for _, _, b in traffic.results} == {"green 2"}
    assert states(h1, "blue") == {}  # removed (down), its volumes kept
    assert containers(h1, "green") == before["green"]  # untouched, the same containers
    assert h1.path("/etc/nginx/conf.d/app_upstream.conf").read_text() == upstream_before
    assert "staged" not in record(h1) and record(h1)["live"] == "green" and "blue" not in record(h1)["colors"]
    assert h1.run("docker volume ls -q").stdout.count("app-blue_data") == 1  # never -v

    set_version(h1, "4")
    assert fab("deploy", "--no-switch", "--host", "h1", "--hosts-file", path).returncode == 0  # blue 4 staged
    clean = fab("cleanup", "--host", "h1", "--hosts-file", path, "--yes")
    assert clean.returncode == 0 and states(h1, "blue") == {} and serves(h1) == "green 2"
    assert "staged" not in record(h1)
    check = fab("check", "--host", "h1", "--hosts-file", path)
    assert re.search(r"staging\s*│\s*(ok|warn)\s*│\s*a staged front \(deploy --no-switch\) needs about \d+ MiB",
                     check.stdout), check.stdout
