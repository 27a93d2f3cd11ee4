"""The dead-man's switch on real hosts: a cut link and a killed fab leave the host to its guard,
which puts it back as it was; the next deploy works without `fab unlock`."""

from __future__ import annotations

import json
import subprocess
import time

import pytest

from .conftest import Traffic, fab, hosts_file, rows, serves, set_version, states
from .test_safety import start_fab

ALL = ["web", "redis", "worker", "beat"]
DEADLINE = 5  # guard_deadline in these tests: seconds without a word from fab (fed every few seconds)
COMMAND = 10  # timeouts.command in these tests: no longer part of the guard's deadline


def wait_for(what: str, predicate, timeout: float) -> float:
    """Poll until predicate() is true; return how long it took."""
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        if predicate():
            return time.monotonic() - started
        time.sleep(0.25)
    raise AssertionError(f"{what}: not within {timeout} s")


def history(h) -> list[dict]:
    path = h.home / "app" / ".fab-bluegreen" / "app.history.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def start_deploy_and_wait_for_old_background_to_stop(bed, h, tmp_path, deadline: float = DEADLINE,
                                                     start_delay: float = 8, others=()):
    """Deploy blue, then start a deploy of green whose health check on h starts late (start_delay):
    it is still busy when blue's background has stopped (`others` deploy beside it, without the late
    start). Returns a quick hosts file (the same guard_deadline: for the runs after it) and the
    running fab."""
    common = {"guard_deadline": str(deadline), "timeouts": f"{{ command = {COMMAND} }}"}
    path = str(hosts_file(tmp_path, bed, **common))
    late_health = f"{{ retries = 4, interval = 0.5, timeout = 2, start_delay = {start_delay} }}"
    tables = f'[hosts.{h.name}]\nssh = "{h.name}"\nhealth = {late_health}\n' + \
        "".join(f'[hosts.{o.name}]\nssh = "{o.name}"\n' for o in others)
    (tmp_path / "late").mkdir()
    late = str(hosts_file(tmp_path / "late", bed, tables, **common))
    targets = [arg for x in (h, *others) for arg in ("--host", x.name)]
    assert fab("deploy", *targets, "--hosts-file", path).returncode == 0
    for x in (h, *others):
        set_version(x, "2")
    proc = start_fab("deploy", *targets, "--hosts-file", late)
    wait_for("blue's worker stopped", lambda: states(h, "blue").get("worker") == "exited", 60)
    return path, proc


def running_again(h, color: str) -> bool:
    s = states(h, color)
    return s.get("worker") == "running" and s.get("beat") == "running"


def assert_put_back_by_the_guard(bed, h, path) -> None:
    assert states(h, "blue") == dict.fromkeys(ALL, "running")
    assert "running" not in states(h, "green").values()
    assert serves(h) == "blue 1"
    assert history(h)[-1]["action"] == "guard" and history(h)[-1]["result"] == "rolled back"
    assert not (h.home / "app" / ".fab-bluegreen" / "app.lock").exists()
    row = rows(fab("status", "--host", h.name, "--hosts-file", path).stdout)[h.name]
    assert "guard" in row and "rolled back" in row
    res = fab("deploy", "--host", h.name, "--hosts-file", path)  # no fab unlock needed
    assert res.returncode == 0 and "the guard put this host back" in res.stderr
    assert serves(h) == "green 2"


@pytest.mark.unlike
def test_a_link_cut_in_a_long_health_wait_puts_the_old_colour_back_within_the_deadline(bed, hosts, tmp_path):
    """The health check starts 60 s late: while the link is up, the feeder keeps the guard quiet
    past its deadline; once cut, the guard acts within guard_deadline of fab's last feed, and fab
    gives the host up as soon, never waiting out the health wait's budget (over 70 s). Another host
    in the same run deploys as usual."""
    h, other = hosts[0], hosts[1]
    path, proc = start_deploy_and_wait_for_old_background_to_stop(bed, h, tmp_path, start_delay=60, others=[other])
    time.sleep(DEADLINE + 3)  # in the health wait, past guard_deadline: the feeds keep the guard quiet
    assert proc.poll() is None and history(h)[-1]["action"] == "deploy", "the guard acted on a live link"
    assert states(h, "blue")["worker"] == "exited"
    veth = h.veth  # this bed slot's own link (tbv1 is slot 0's: another bed)
    subprocess.run(["ip", "link", "set", veth, "down"], check=True)  # packets vanish: no RST
    cut = time.monotonic()
    try:
        back = ended = None
        while (back is None or ended is None) and time.monotonic() - cut < 120:
            ended = ended if ended is not None or proc.poll() is None else time.monotonic() - cut
            back = back if back is not None or not running_again(h, "blue") else time.monotonic() - cut
            time.sleep(0.2)
        out, err = proc.communicate(timeout=10)
        print(out, err, f"blue's worker and beat ran again {back} s after the cut, fab ended {ended} s after it")
        assert back is not None and back < DEADLINE + 10, "the guard did not put blue's background back in time"
        assert ended < DEADLINE + 5, "fab did not give the host up within about guard_deadline of the cut"
        assert proc.returncode == 1
        row = rows(out)[h.name]
        assert "unreachable" in row and "left to its guard" in row
        assert "deployed" in rows(out)[other.name] and serves(other) == "green 2"
        wait_for("the guard's history line", lambda: history(h)[-1]["action"] == "guard", 30)
    finally:
        subprocess.run(["ip", "link", "set", veth, "up"], check=True)
    time.sleep(1)
    assert_put_back_by_the_guard(bed, h, path)


def test_fab_killed_mid_deploy_leaves_the_host_to_its_guard(bed, hosts, tmp_path):
    h = hosts[0]
    path, proc = start_deploy_and_wait_for_old_background_to_stop(bed, h, tmp_path)
    with Traffic(f"http://{h.ip}/health/") as traffic:
        proc.kill()  # SIGKILL: no rollback, no unlock, nothing from fab any more
        proc.communicate(timeout=30)
        assert (h.home / "app" / ".fab-bluegreen" / "app.lock").exists()
        took = wait_for("the guard's history line", lambda: history(h)[-1]["action"] == "guard", DEADLINE + 15)
        time.sleep(1)
    print(f"the guard acted {took:.1f} s after the kill")
    assert traffic.failures == [] and len(traffic.results) > 20
    assert_put_back_by_the_guard(bed, h, path)


@pytest.mark.parametrize("outcome", ["deployed", "rolled back"])
def test_a_guard_confirmed_in_time_never_acts(bed, hosts, tmp_path, outcome):
    h = hosts[0]
    path = str(hosts_file(tmp_path, bed, guard_deadline="6", health="{ retries = 3, interval = 0.5 }"))
    assert fab("deploy", "--host", h.name, "--hosts-file", path).returncode == 0
    set_version(h, "2", mode="" if outcome == "deployed" else "web-unhealthy")
    res = fab("deploy", "--host", h.name, "--hosts-file", path)
    assert outcome in rows(res.stdout)[h.name]
    time.sleep(8)  # past the deadline: a guard still armed would have acted by now
    assert [line["action"] for line in history(h)] == ["deploy", "deploy"]
    assert serves(h) == ("green 2" if outcome == "deployed" else "blue 1")
    assert not (h.home / "app" / ".fab-bluegreen" / "app.guard").exists()


def test_unlock_of_a_dead_runs_lock_shows_its_guard_then_disarms_it(bed, hosts, tmp_path):
    h = hosts[0]
    deadline = 10  # the unlock comes before the guard would act: fab has to start and connect first
    path, proc = start_deploy_and_wait_for_old_background_to_stop(bed, h, tmp_path, deadline)
    wait_for("green's web started", lambda: states(h, "green").get("web") == "running", 60)  # its health check waits
    proc.kill()
    proc.communicate(timeout=30)
    res = fab("unlock", "--host", h.name, "--hosts-file", path, "--yes")
    assert res.returncode == 0
    row = rows(res.stdout)[h.name]
    assert "(deploy, since" in row and "armed: puts the host back in" in row
    # its undo journal: what that run changed, newest first (it died before the switch: nothing to switch back)
    assert "stop app-green (kept for its logs); start app-blue worker beat again" in row and "switch back" not in row
    assert "removed the lock; disarmed its guard" in res.stdout
    assert not (h.home / "app" / ".fab-bluegreen" / "app.lock").exists()
    time.sleep(deadline + 5)  # past the deadline that guard had (fab was killed before the unlock): it never acts
    assert [line["action"] for line in history(h)] == ["deploy"]
    assert states(h, "blue")["worker"] == "exited"  # the host stays as the dead run left it
    res = fab("deploy", "--host", h.name, "--hosts-file", path)  # and can be deployed again
    assert res.returncode == 0 and serves(h) == "green 2"
