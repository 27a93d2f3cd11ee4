"""An error ends one host's run as the same outcome in every task (tasks/result.py outcome_for): a
lost connection is `unreachable` wherever it happens, the lock step of cleanup and drain included."""

import pytest

from tasks.config.schema import HostSettings
from tasks.errors import Locked, Refused, Unreachable
from tasks.host import cleanup
from tasks.host.deploy import Deploy
from tasks.host.drain import drain
from tasks.result import FAILED, LOCKED, PLANNED, REFUSED, UNREACHABLE, outcome_for

from .fakehost import FakeHost

S = HostSettings(name="pi5", ssh="pi5", settle=0)
ALL = ["web", "redis", "worker", "beat"]
LOST = "the connection was lost (no answer from the host)"


@pytest.mark.parametrize("error, expected", [
    (Locked("locked by ann"), (LOCKED, "locked by ann")),
    (Refused("bad record"), (REFUSED, "bad record")),
    (Unreachable(LOST), (UNREACHABLE, LOST)),
    (KeyError("since"), (FAILED, "internal error: KeyError: 'since' (please report it)")),
])
def test_outcome_for_maps_each_error_once(error, expected):
    assert outcome_for(error) == expected


def lost_at_the_lock(host: FakeHost) -> FakeHost:
    """The connection drops while the lock is being taken."""
    answer = host.answer

    def lossy(command: str):
        if host.p.lock in command:
            raise Unreachable(LOST)
        return answer(command)

    host.remote.answer = lossy
    return host


def old_colour_left(queued: int = 0) -> FakeHost:
    host = FakeHost(running={"blue": ["web", "redis"], "green": ALL}, upstream_port=18002, queued={"celery": queued})
    host.containers[("blue", "worker")] = "exited"
    return host


def test_a_connection_lost_at_cleanups_lock_is_unreachable_not_refused():
    host = old_colour_left()
    plan = cleanup.plan(host.remote, S)
    assert plan.outcome == PLANNED
    done = cleanup.remove(lost_at_the_lock(host).remote, S, plan)
    assert (done.outcome, done.step, done.reason) == (UNREACHABLE, "lock", LOST)
    assert set(host.state("blue")) == {"web", "redis", "worker"}  # nothing removed


def test_a_connection_lost_at_drains_lock_is_unreachable():
    host = lost_at_the_lock(old_colour_left(queued=2))
    r = drain(host.remote, S)
    assert r.outcome == UNREACHABLE and r.reason.startswith(LOST)
    assert host.state("blue")["worker"] == "exited" and len(host.commands) == 1


def test_a_connection_lost_at_deploys_lock_is_unreachable():
    host = lost_at_the_lock(FakeHost(running={"blue": ALL}))
    r = Deploy(host.remote, S).run()
    assert (r.outcome, r.step) == (UNREACHABLE, "lock")
    assert r.reason == (f"{LOST}; the host is left to itself mid-step: check it with fab status before "
                        "deploying again")


def test_a_connection_lost_in_the_middle_of_cleanups_removal_is_that_hosts_unreachable_row():
    import io

    from rich.console import Console

    from tasks.fleet import Fleet
    from tasks.report import Progress

    host = FakeHost(running={"blue": ALL, "green": ALL}, record='{"live": "green"}', upstream_port=18002)
    answer = host.remote.answer

    def lose_it_at_down(command):
        if " down " in command:
            raise Unreachable("the connection was lost: EOF")
        return answer(command)

    host.remote.answer = lose_it_at_down
    plan = cleanup.plan(host.remote, S)
    assert plan.outcome == PLANNED
    fleet = Fleet(Progress(Console(file=io.StringIO())), connect=lambda s: host.remote)
    [row] = fleet.run([S], "cleanup", lambda r, s, say: cleanup.remove(r, s, plan))
    assert row.outcome == "unreachable" and "the connection was lost" in row.reason
