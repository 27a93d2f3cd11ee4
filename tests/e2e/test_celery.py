"""A real Celery app on the real bed (examples/celery-app): a stdlib web service that enqueues one
Celery task per request, a Celery 5 worker and beat, real redis, all built FROM scratch on the hosts.

Every id a request enqueued through nginx is executed exactly once (done.log, written by the task),
with a shared broker and with a broker per colour (drained before cleanup); a running task survives
the deploy's stop of its worker; the old and the new beat never tick at the same time."""

from __future__ import annotations

import os
import re
import time
from collections import Counter
from pathlib import Path

import pytest

from tests.testbed.bed import Bed, Host

from .conftest import PORTS, ROOT, Traffic, fab, get, hosts_file, rows

CELERY_APP = ROOT / "examples" / "celery-app"
SHARED_ENV = "BROKER_URL=redis://broker:6379/0\n"  # the secrets file's text: the app's broker is the shared one


@pytest.fixture
def h1(hosts) -> Host:
    """h1 with the Celery example in ~/app instead of the simple one (hosts are reset first)."""
    h = hosts[0]
    h.put_dir(CELERY_APP, "app", clean=True)
    var = h.home / "app" / "var"
    var.mkdir(exist_ok=True)
    os.chown(var, *Bed.deploy_ids())
    return h


def celery_hosts(tmp_path: Path, bed: Bed, shared_broker: bool, **more: str) -> str:
    """h1 only; stop_timeout leaves Celery's warm shutdown the time of the tests' longest task. With
    the shared broker, its URL comes from a secrets file beside the hosts file (the example's README)."""
    layout = {"front": '["web"]', "shared": '["broker"]'} if shared_broker else {"front": '["web", "redis"]'}
    if shared_broker:
        (tmp_path / "celery.env").write_text(SHARED_ENV)
        layout["secrets"] = '{ env_file = "celery.env" }'
    values = {**layout, "stop_timeout": "20", "settle": "3",
              "health": "{ retries = 40, interval = 0.5, timeout = 2 }", **more}
    return str(hosts_file(tmp_path, bed, hosts='[hosts.h1]\nssh = "h1"\n', **values))


def log(h: Host, name: str) -> list[list[str]]:
    path = h.home / "app" / "var" / name
    return [line.split() for line in path.read_text().splitlines()] if path.exists() else []


def done(h: Host) -> Counter:
    """id -> how many times a worker finished it."""
    return Counter(parts[0] for parts in log(h, "done.log"))


def done_by(h: Host) -> dict[str, str]:
    return {parts[0]: parts[1] for parts in log(h, "done.log")}


def wait_for(predicate, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out after {timeout} s waiting for {what}"
        time.sleep(0.5)


def cleanup_row(stdout: str) -> str:
    """h1's row of the last table cleanup printed (after its plan, the result)."""
    return rows(stdout.rsplit("fab cleanup", 1)[-1])["h1"]


def container_id(h: Host, name: str) -> str:
    return h.run(f"docker inspect -f '{{{{.Id}}}} {{{{.State.Status}}}}' {name}").stdout.strip()


class Enqueue(Traffic):
    """A request through nginx every 0.1 s, each enqueuing a task with a new id, until stopped."""

    def __init__(self, host: Host, prefix: str):
        super().__init__(f"http://{host.ip}/enqueue", period=0.1)
        self.prefix = prefix

    def request_url(self, n: int) -> str:
        return f"{self.url}?id={self.prefix}-{n}"

    @property
    def answers(self) -> list[tuple[str, int, str]]:
        """(id, status, body) per request, in order."""
        return [(f"{self.prefix}-{n}", status, body) for n, (_, status, body) in enumerate(self.results, 1)]

    @property
    def queued(self) -> list[str]:
        return [i for i, status, body in self.answers if status == 200 and body == f"queued {i}"]


def assert_each_id_ran_once(h: Host, ids: list[str], timeout: float = 60) -> None:
    wait_for(lambda: set(ids) <= set(done(h)), timeout, "every queued id in done.log")
    counts = done(h)
    twice = {i: n for i, n in counts.items() if n > 1}
    assert twice == {}, f"ran more than once: {twice}"
    print(f"{len(ids)} ids queued through nginx, each executed exactly once")


def assert_one_beat_at_a_time(h: Host) -> None:
    """Ticks (sent by beat) change colour once: the old beat's last before the new one's first."""
    ticks = [(float(t), colour) for colour, t in log(h, "ticks.log")]
    assert ticks, "beat sent no tick"
    colours = [c for _, c in ticks]
    changes = [i for i in range(1, len(colours)) if colours[i] != colours[i - 1]]
    assert len(changes) == 1, f"ticks interleave: {colours}"
    at = changes[0]
    gaps = [b[0] - a[0] for a, b in zip(ticks, ticks[1:])]
    print(f"beat: {len(ticks)} ticks, {colours[at - 1]} -> {colours[at]}; longest gap between ticks "
          f"{max(gaps):.2f} s (across the deploy: {ticks[at][0] - ticks[at - 1][0]:.2f} s)")


def test_shared_broker_every_request_task_runs_once_through_deploy_and_cleanup(bed, h1, tmp_path):
    path = celery_hosts(tmp_path, bed, shared_broker=True)
    assert fab("deploy", "--host", "h1", "--hosts-file", path).returncode == 0
    # the broker URL came from the secrets file: blue's own copy on the host, in its containers
    assert (h1.home / "app" / ".fab-bluegreen" / "app.blue.env").read_text() == SHARED_ENV
    assert "BROKER_URL=redis://broker:6379/0" in h1.run("docker exec app-blue-worker-1 env").stdout.splitlines()
    broker = container_id(h1, "app-shared-broker-1")
    assert broker.endswith(" running")
    time.sleep(2)  # a few ticks of blue's beat
    with Enqueue(h1, "s") as stream:
        time.sleep(1)
        res = fab("deploy", "--host", "h1", "--hosts-file", path)
        assert res.returncode == 0
        assert "wait in" not in res.stdout  # nothing to count: one queue for both colours
        time.sleep(1)
        clean = fab("cleanup", "--host", "h1", "--hosts-file", path, "--yes")
        assert clean.returncode == 0 and "cleaned" in cleanup_row(clean.stdout)
        time.sleep(1)
    print(f"{len(stream.results)} requests, failures: {stream.failures[:5]}")
    assert len(stream.results) > 40 and stream.failures == []
    assert_each_id_ran_once(h1, stream.queued)
    ran_on = Counter(done_by(h1)[i] for i in stream.queued)
    print(f"ran on: {dict(ran_on)}")
    assert ran_on["green"] > 0
    # the shared broker was never stopped, recreated or removed
    assert container_id(h1, "app-shared-broker-1") == broker
    status = rows(fab("status", "--host", "h1", "--hosts-file", path).stdout)["h1"]
    assert re.search(r"│\s*broker running\s*│", status)
    assert_one_beat_at_a_time(h1)


def test_broker_per_colour_cleanup_refuses_until_drain_and_every_task_runs_once(bed, h1, tmp_path):
    path = celery_hosts(tmp_path, bed, shared_broker=False)
    assert fab("deploy", "--host", "h1", "--hosts-file", path).returncode == 0
    late = [f"late-{i}" for i in range(5)]
    with Enqueue(h1, "p") as stream:
        time.sleep(1)
        res = fab("deploy", "--host", "h1", "--hosts-file", path)
        assert res.returncode == 0
        # what blue's web queued after blue's worker stopped waits in blue's redis; the table says so
        assert re.search(r"warning: \d+ message\(s\) wait in blue's redis \(celery: \d+\)", rows(res.stdout)["h1"])
        # and a few that certainly wait: straight to blue's web, whose worker is stopped
        for i in late:
            h1.run(f"curl -sf 'http://127.0.0.1:{PORTS['blue']}/enqueue?id={i}'")

        refused = fab("cleanup", "--host", "h1", "--hosts-file", path, "--yes")
        assert refused.returncode == 1
        row = cleanup_row(refused.stdout)
        assert "refused" in row and "fab drain --host h1" in row
        waiting = int(re.search(r"wait in blue's redis \(celery: (\d+)\)", row).group(1))
        assert waiting >= len(late)
        assert container_id(h1, "app-blue-redis-1").endswith(" running")  # nothing removed

        drain_started = time.time()
        drained = fab("drain", "--host", "h1", "--hosts-file", path)
        assert drained.returncode == 0
        assert "drained" in rows(drained.stdout)["h1"] and f"celery: {waiting}" in rows(drained.stdout)["h1"]
        clean = fab("cleanup", "--host", "h1", "--hosts-file", path, "--yes")
        assert clean.returncode == 0 and "cleaned" in cleanup_row(clean.stdout)
        time.sleep(1)
    print(f"{len(stream.results)} requests, failures: {stream.failures[:5]}")
    assert len(stream.results) > 40 and stream.failures == []
    assert_each_id_ran_once(h1, stream.queued + late)
    # exactly the messages cleanup counted ran on blue's worker, started by the drain; beat stayed off
    by_drain = [p[0] for p in log(h1, "done.log") if p[1] == "blue" and float(p[2]) > drain_started]
    print(f"{waiting} tasks waited in blue's redis ({waiting - len(late)} queued through nginx during the "
          "deploy); the drain ran them on blue's worker")
    assert len(by_drain) == waiting and set(late) <= set(by_drain)
    assert not any(colour == "blue" and float(t) > drain_started for colour, t in log(h1, "ticks.log"))
    history = fab("history", "--host", "h1", "--hosts-file", path, "--lines", "2")
    assert re.search(r"drain\s*│.*│\s*drained", history.stdout)
    assert_one_beat_at_a_time(h1)


def test_a_running_task_completes_across_the_stop_and_a_killed_worker_is_a_warning(bed, h1, tmp_path):
    path = celery_hosts(tmp_path, bed, shared_broker=True)
    assert fab("deploy", "--host", "h1", "--hosts-file", path).returncode == 0
    assert get(f"http://{h1.ip}/enqueue?id=long-1&seconds=6")[0] == 200
    wait_for(lambda: any(p[0] == "long-1" for p in log(h1, "started.log")), 20, "long-1 to start")
    started = time.time()
    res = fab("deploy", "--host", "h1", "--hosts-file", path)
    assert res.returncode == 0 and "killed" not in res.stdout
    assert done_by(h1).get("long-1") == "blue" and done(h1)["long-1"] == 1
    finished = float(next(p[2] for p in log(h1, "done.log") if p[0] == "long-1"))
    print(f"long-1 (6 s) finished on blue {finished - started:.1f} s into the deploy that stopped its worker")
    exit_code = h1.run("docker inspect -f '{{.State.ExitCode}}' app-blue-worker-1").stdout.strip()
    assert exit_code == "0"  # Celery's warm shutdown, not a kill

    # a task longer than the grace period: the worker is killed, and the table says so
    short = celery_hosts(tmp_path, bed, shared_broker=True, stop_timeout="2")
    assert get(f"http://{h1.ip}/enqueue?id=long-2&seconds=15")[0] == 200
    wait_for(lambda: any(p[0] == "long-2" for p in log(h1, "started.log")), 20, "long-2 to start")
    res = fab("deploy", "--host", "h1", "--hosts-file", short)
    assert res.returncode == 0
    assert "green's worker was killed after stop_timeout (2 s)" in rows(res.stdout)["h1"]
    assert h1.run("docker inspect -f '{{.State.ExitCode}}' app-green-worker-1").stdout.strip() == "137"


def test_check_warns_when_a_shared_service_is_also_a_colour_service(bed, h1, tmp_path):
    path = celery_hosts(tmp_path, bed, shared_broker=False, shared='["redis"]')  # redis stays in front as well
    res = fab("check", "--host", "h1", "--hosts-file", path)
    assert res.returncode == 0  # a warning, not a failure
    assert re.search(r"h1\s*│\s*shared\s*│\s*warn\s*│\s*redis listed in shared and also in front or background", res.stdout)
