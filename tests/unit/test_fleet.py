"""The fleet without SSH (its connect hook and small jobs): order, batches, --max-fail, Ctrl-C, one
host's error as its row, at most MAX_PARALLEL at once; and the exit codes of the tasks' edge."""

import io
import threading
import time

import pytest
from invoke.exceptions import Exit
from rich.console import Console

from tasks import edge, fleet, report
from tasks.config.schema import HostSettings
from tasks.errors import Unreachable
from tasks.fleet import MAX_PARALLEL, Fleet
from tasks.host.remote import RecordingRemote
from tasks.result import (DEPLOYED, DRY_RUN, FAILED, INTERRUPTED, ROLLED_BACK, SKIPPED, UNREACHABLE,
                          HostResult)


def hosts(n: int) -> list[HostSettings]:
    return [HostSettings(name=f"h{i}", ssh=f"h{i}") for i in range(1, n + 1)]


def make_fleet(**kwargs) -> Fleet:
    kwargs.setdefault("connect", lambda s: RecordingRemote(name=s.name))
    return Fleet(report.Progress(Console(file=io.StringIO())), **kwargs)


class Jobs:
    """A job that records which hosts ran, in what order, and how many ran at once."""

    def __init__(self, seconds: float = 0.05, outcomes: dict[str, str] | None = None, then=None):
        self.seconds, self.outcomes, self.then = seconds, outcomes or {}, then
        self.lock = threading.Lock()
        self.running = self.peak = 0
        self.events: list[tuple[str, str]] = []

    def __call__(self, remote, s, say):
        with self.lock:
            self.running += 1
            self.peak = max(self.peak, self.running)
            self.events.append(("start", s.name))
        try:
            if self.then:
                self.then(s)
            time.sleep(self.seconds(s) if callable(self.seconds) else self.seconds)
            return HostResult(host=s.name, action="deploy", outcome=self.outcomes.get(s.name, DEPLOYED))
        finally:
            with self.lock:
                self.running -= 1
                self.events.append(("end", s.name))

    @property
    def ran(self) -> list[str]:
        return [name for event, name in self.events if event == "start"]


def test_results_come_back_in_the_hosts_order():
    five = hosts(5)

    def after_the_next(s):  # h5 ends first, h1 last: each waits for the next one's end (not a timer)
        i = int(s.name[1:])
        deadline = time.monotonic() + 10
        while i < 5 and ("end", f"h{i + 1}") not in job.events and time.monotonic() < deadline:
            time.sleep(0.005)

    job = Jobs(seconds=0, then=after_the_next)
    results = make_fleet().run(five, "deploy", job)
    assert [r.host for r in results] == [s.name for s in five]
    assert [name for event, name in job.events if event == "end"] == ["h5", "h4", "h3", "h2", "h1"]
    assert all(r.outcome == DEPLOYED for r in results)


def test_batch_runs_n_hosts_at_a_time_one_batch_after_the_other():
    job = Jobs(seconds=0.05)
    results = make_fleet(batch=2).run(hosts(5), "deploy", job)
    assert [r.outcome for r in results] == [DEPLOYED] * 5
    assert job.peak == 2
    order = job.events
    for first, later in ((["h1", "h2"], ["h3", "h4"]), (["h3", "h4"], ["h5"])):
        last_end = max(order.index(("end", h)) for h in first)
        assert all(order.index(("start", h)) > last_end for h in later), order


def test_max_fail_starts_no_new_batch_and_skips_the_rest_naming_the_option():
    job = Jobs(seconds=0.01, outcomes={"h2": ROLLED_BACK})
    results = make_fleet(batch=2, max_fail=1).run(hosts(5), "deploy", job)
    assert sorted(job.ran) == ["h1", "h2"]
    assert [r.outcome for r in results] == [DEPLOYED, ROLLED_BACK, SKIPPED, SKIPPED, SKIPPED]
    assert all("--max-fail" in r.reason and "1 host(s) already failed" in r.reason for r in results[2:])


def test_max_fail_counts_the_hosts_not_ok_over_every_batch_so_far():
    job = Jobs(seconds=0.01, outcomes={"h1": ROLLED_BACK, "h3": FAILED})
    results = make_fleet(batch=2, max_fail=2).run(hosts(6), "deploy", job)
    assert sorted(job.ran) == ["h1", "h2", "h3", "h4"]
    assert [r.outcome for r in results[4:]] == [SKIPPED, SKIPPED]


def test_an_interrupted_fleet_starts_no_new_host_and_skips_the_rest():
    f = make_fleet(batch=1)
    job = Jobs(seconds=0.01, then=lambda s: f.interrupted.set() if s.name == "h2" else None)  # Ctrl-C during h2
    results = f.run(hosts(4), "deploy", job)
    assert job.ran == ["h1", "h2"]
    assert [r.outcome for r in results] == [DEPLOYED, DEPLOYED, SKIPPED, SKIPPED]
    assert all(r.reason == "interrupted before it started" for r in results[2:])


def test_an_interrupt_inside_a_batch_skips_the_hosts_still_waiting_for_a_connection_slot():
    f = make_fleet()
    job = Jobs(seconds=0.05, then=lambda s: f.interrupted.set())
    results = f.run(hosts(MAX_PARALLEL + 3), "deploy", job)
    assert 1 <= len(job.ran) <= MAX_PARALLEL
    assert {r.host for r in results if r.outcome == DEPLOYED} == set(job.ran)
    others = [r for r in results if r.host not in job.ran]
    assert len(others) >= 3 and all(r.outcome == SKIPPED for r in others)


def test_ctrl_c_while_waiting_sets_interrupted_and_still_waits_for_every_host(monkeypatch):
    real_wait, calls = fleet.wait, []

    def wait(*args, **kwargs):  # the first wait is cut by Ctrl-C, as in the main thread
        calls.append(1)
        if len(calls) == 1:
            raise KeyboardInterrupt
        return real_wait(*args, **kwargs)

    monkeypatch.setattr(fleet, "wait", wait)
    f = make_fleet(batch=2)
    results = f.run(hosts(4), "deploy", Jobs(seconds=0.05))
    assert f.interrupted.is_set()
    assert [r.outcome for r in results] == [DEPLOYED, DEPLOYED, SKIPPED, SKIPPED]  # the running batch finished
    assert "Ctrl-C: rolling back" in f.progress.console.file.getvalue()


def test_sigterm_while_the_hosts_run_is_handled_as_ctrl_c_then_its_handler_is_put_back():
    import os
    import signal
    import threading

    from tasks.edge import exit_code

    before = signal.getsignal(signal.SIGTERM)
    f = make_fleet(batch=2)
    threading.Timer(0.1, os.kill, (os.getpid(), signal.SIGTERM)).start()  # a real SIGTERM, mid-batch
    results = f.run(hosts(4), "deploy", Jobs(seconds=0.4))
    assert f.interrupted.is_set() and f.interrupted.cause == "SIGTERM"
    assert [r.outcome for r in results] == [DEPLOYED, DEPLOYED, SKIPPED, SKIPPED]
    assert "SIGTERM: rolling back" in f.progress.console.file.getvalue()
    assert exit_code(f, results, DEPLOYED) == 143
    assert signal.getsignal(signal.SIGTERM) == before


def test_a_sigterm_ignored_when_fab_started_stays_ignored():
    import signal

    before = signal.signal(signal.SIGTERM, signal.SIG_IGN)
    try:
        seen = []
        f = make_fleet()
        f.run(hosts(1), "deploy", Jobs(seconds=0.01, then=lambda s: seen.append(signal.getsignal(signal.SIGTERM))))
        assert seen == [signal.SIG_IGN] and not f.interrupted.is_set()
    finally:
        signal.signal(signal.SIGTERM, before)


def test_an_unreachable_host_is_its_row_and_the_others_run():
    def connect(s):
        if s.name == "h2":
            raise Unreachable("cannot connect to h2: Connection refused: is the host up?")
        return RecordingRemote(name=s.name)

    job = Jobs(seconds=0.01)
    results = make_fleet(connect=connect).run(hosts(3), "deploy", job)
    assert sorted(job.ran) == ["h1", "h3"]
    assert [(r.outcome, r.step) for r in results] == [(DEPLOYED, ""), (UNREACHABLE, "connect"), (DEPLOYED, "")]
    assert results[1].reason == "cannot connect to h2: Connection refused: is the host up?"


def test_a_job_that_raises_is_that_hosts_failed_row_and_the_others_finish():
    def boom(s):
        if s.name == "h1":
            raise RuntimeError("oops")

    job = Jobs(seconds=0.02, then=boom)
    results = make_fleet().run(hosts(3), "deploy", job)
    assert [r.outcome for r in results] == [FAILED, DEPLOYED, DEPLOYED]
    assert results[0].reason == "internal error: RuntimeError: oops (please report it)"


@pytest.mark.parametrize("batch", [0, MAX_PARALLEL + 5])
def test_at_most_max_parallel_jobs_run_at_once(batch):
    job = Jobs(seconds=0.1)
    results = make_fleet(batch=batch).run(hosts(2 * MAX_PARALLEL + 5), "deploy", job)
    assert job.peak == MAX_PARALLEL
    assert len(results) == 2 * MAX_PARALLEL + 5 and all(r.outcome == DEPLOYED for r in results)


def test_at_most_max_parallel_looks_run_at_once():
    job = Jobs(seconds=0.1)
    rows = make_fleet().run_plain(hosts(MAX_PARALLEL + 5), lambda r, s: job(r, s, None).outcome,
                                  lambda host, error: error)
    assert job.peak == MAX_PARALLEL and rows == [DEPLOYED] * (MAX_PARALLEL + 5)


# --- the exit codes of deploy and rollback (edge.exit_code) ---------------------------------------

def rows(*outcomes: str) -> list[HostResult]:
    return [HostResult(host=f"h{i}", action="deploy", outcome=o) for i, o in enumerate(outcomes, 1)]


@pytest.mark.parametrize("outcomes, interrupted, code", [
    ((DEPLOYED, DEPLOYED), False, 0),
    ((DRY_RUN, DEPLOYED), False, 0),
    ((DEPLOYED, ROLLED_BACK), False, 1),
    ((DEPLOYED, UNREACHABLE), False, 1),
    ((DEPLOYED, SKIPPED), False, 1),
    ((DEPLOYED, INTERRUPTED), False, 130),
    ((DEPLOYED, DEPLOYED), True, 130),
    ((ROLLED_BACK, SKIPPED), True, 130),
])
def test_exit_code_0_all_ok_1_one_not_130_interrupted(outcomes, interrupted, code):
    f = make_fleet()
    if interrupted:
        f.interrupted.set()
    assert edge.exit_code(f, rows(*outcomes), DEPLOYED) == code
    if code == 0:
        assert edge._exit(code) is None
        return
    with pytest.raises(Exit) as e:
        edge._exit(code)
    assert e.value.code == code
