"""lock.with_lock: take the lock, run, release, and end the result as an error says, written once for
deploy, cleanup and drain (issue 18, part 6)."""

import pytest

from tasks.errors import Interrupted, Locked, Refused, StepFailed, Unreachable
from tasks.host.lock import with_lock
from tasks.host.remote import Result
from tasks.result import INTERRUPTED, LOCKED, REFUSED, ROLLED_BACK, UNREACHABLE, HostResult

TAKEN = Result("lock", 0, "lifted blue\n")


def raising(error: BaseException):
    def raise_it(*args):
        raise error
    return raise_it


def run_locked(take, run, events: list, **kwargs) -> HostResult:
    result = HostResult(host="pi5", action="drain")
    returned = with_lock(result, run, take, lambda: events.append("release"), step=lambda: "wait",
                         unreachable=lambda step: f"; left at {step}", **kwargs)
    events.append(("returned", returned))
    return result


def test_the_run_gets_what_taking_printed_and_the_lock_is_released_after_it():
    events = []
    result = run_locked(lambda: TAKEN, lambda taken: events.append(("run", taken)) or "done", events)
    assert events == [("run", TAKEN), "release", ("returned", "done")]
    assert (result.outcome, result.step, result.reason) == ("", "", "")


@pytest.mark.parametrize("error, expected", [
    (Locked("locked by ann"), (LOCKED, "lock", "locked by ann")),
    (Refused("no dir"), (REFUSED, "lock", "no dir")),
    (Unreachable("lost"), (UNREACHABLE, "lock", "lost; left at lock")),
])
def test_an_error_while_taking_it_runs_nothing_releases_nothing_and_is_the_lock_step(error, expected):
    events, said = [], []
    result = run_locked(raising(error), lambda taken: events.append("run"), events, say=said.append)
    assert events == [("returned", None)]
    assert (result.outcome, result.step, result.reason) == expected
    assert said == [f"{expected[0]} at lock: {expected[2]}"]


@pytest.mark.parametrize("error, expected", [
    (Refused("no live colour"), (REFUSED, "wait", "no live colour")),
    (Unreachable("lost"), (UNREACHABLE, "wait", "lost; left at wait")),
    (StepFailed("prepare", "exit 1"), (ROLLED_BACK, "prepare", "exit 1 (nothing was changed)")),
    (Interrupted("ship"), (INTERRUPTED, "ship", "interrupted (Ctrl-C) before anything was changed")),
])
def test_an_error_while_it_is_held_is_released_first_then_mapped(error, expected):
    events = []
    result = run_locked(lambda: TAKEN, raising(error), events)
    assert events == ["release", ("returned", None)]
    assert (result.outcome, result.step, result.reason) == expected


def test_a_bug_goes_up_once_the_lock_is_released():
    events = []
    with pytest.raises(KeyError):
        run_locked(lambda: TAKEN, raising(KeyError("since")), events)
    assert events == ["release"]
