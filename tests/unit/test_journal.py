"""One undo journal (issue 18, part 2): each sequence fails at every round trip in turn, once by a
failed command (fab rolls back) and once by a cut link (fab hears nothing; the guard would run the
journal from the host's file). Both undo the same commands, and either puts the host back where it
started: the same containers running, restart policies, upstream and record; the failed colour's
containers kept, stopped, their restart policy held."""

from __future__ import annotations

import json
from typing import Callable

import pytest

from tasks.config.schema import HostSettings
from tasks.host import inspect, lock
from tasks.host.deploy import Deploy, Promote, Rollback, Stage
from tasks.result import ROLLED_BACK, UNREACHABLE
from tasks.shell import guard, journal

from .fakehost import FakeHost

S = HostSettings(name="pi5", ssh="pi5", settle=0)
ALL = ["web", "redis", "worker", "beat"]
LIVE_BLUE = json.dumps({"app": "app", "live": "blue", "previous": None,
                        "colors": {"blue": {"containers": {x: f"idblue{x}" for x in ALL}}}})


def live_blue() -> FakeHost:
    return FakeHost(running={"blue": ALL}, record=LIVE_BLUE)


def staged_green() -> FakeHost:
    host = live_blue()
    assert Stage(host.remote, S).run().outcome == "staged"
    return host


def green_after_blue() -> FakeHost:
    """green live; blue's front kept running, its background stopped with its policy held: a rollback goes back to it."""
    rec = json.dumps({"app": "app", "live": "green", "previous": "blue",
                      "colors": {"blue": {"containers": {x: f"idblue{x}" for x in ALL}}}})
    host = FakeHost(running={"blue": ALL, "green": ALL}, record=rec, upstream_port=18002)
    host.containers[("blue", "worker")] = host.containers[("blue", "beat")] = "exited"
    host.held = {("blue", "worker"), ("blue", "beat")}
    return host


CASES = {"deploy": (Deploy, live_blue), "stage": (Stage, live_blue), "promote": (Promote, staged_green),
         "rollback": (Rollback, green_after_blue)}


def snapshot(host: FakeHost) -> dict:
    return {"running": {k for k, v in host.containers.items() if v == "running"}, "upstream": host.upstream,
            "record": json.loads(host.record), "held": set(host.held), "containers": set(host.containers)}


def back_where_it_started(host: FakeHost, before: dict, case: str) -> None:
    now = snapshot(host)
    if case == "promote":  # a failed promote stops the staged colour (kept for its logs), as a failed deploy does
        green = {k for k in now["containers"] if k[0] == "green"}
        assert green <= now["held"]
        before = {**before, "running": before["running"] - green, "containers": before["containers"] - green}
    assert now["running"] == before["running"]
    assert (now["upstream"].strip(), now["record"]) == (before["upstream"].strip(), before["record"])
    assert now["held"] & before["containers"] == before["held"]  # the policies of what was there, as they were
    assert now["containers"] - before["containers"] <= now["held"]  # the failed colour's: kept, stopped, none


def fresh(make: Callable[[], FakeHost]) -> tuple[FakeHost, dict]:
    host = make()
    host.trips, host.events = 0, []
    host.remote.commands.clear()
    return host, snapshot(host)


def armed_trips(cls: type[Deploy], make: Callable[[], FakeHost]) -> range:
    """The round trips of a run that went through, from the one that arms the guard to the last
    before the one that disarms it."""
    host, _ = fresh(make)
    assert cls(host.remote, S).run().outcome in ("deployed", "staged")
    arming = next(i for i, c in enumerate(host.commands) if ": arm-guard;" in c)
    return range(arming + 1, len(host.commands))  # 1-based round trip numbers; the last one disarms


def sent_undo(host: FakeHost, after: int) -> list[str]:
    """The journal entries fab sent as commands from round trip `after` on, in order."""
    entries = host.undo_commands(freed=True)
    return [e for c in host.commands[after:] for e in entries if e in host.p.note.sub("", c)]


@pytest.mark.parametrize("case", CASES)
def test_fab_s_rollback_and_the_guard_run_the_same_journal_and_either_puts_the_host_back(case):
    cls, make = CASES[case]
    trips = armed_trips(cls, make)
    assert len(trips) >= 2, trips
    undone = 0
    for trip in trips:
        # fab's rollback: round trip `trip` fails
        failed, before = fresh(make)
        failed.fail_trip = trip
        r = cls(failed.remote, S).run()
        if r.outcome != ROLLED_BACK:  # a round trip whose failure is only a warning (the queue count)
            continue
        undone += 1
        back_where_it_started(failed, before, case)
        fab_ran = sent_undo(failed, trip)
        assert fab_ran == failed.undo_commands(freed=True), (case, trip)  # the journal, newest first, each once

        # the guard: the link is cut once round trip `trip` ran; it runs the journal it finds on the host
        cut, before = fresh(make)
        cut.cut_trip = trip
        assert cls(cut.remote, S).run().outcome == UNREACHABLE
        assert cut.undo_commands() == fab_ran, (case, trip)  # the same commands as fab's rollback
        cut.cut_trip = 0
        for command in cut.undo_commands():
            cut.answer(command)
        back_where_it_started(cut, before, case)
    assert undone >= (1 if case == "stage" else 3), (case, list(trips))


INFO = json.dumps({"who": "ann@laptop", "when": "2026-12-07T10:00:00+00:00", "task": "deploy", "message": "",
                   "token": "a" * 32, "since": 1})


def cut_mid_deploy() -> FakeHost:
    """A deploy whose link was cut once the new front started: its lock and journal stay on the host."""
    host = live_blue()
    host.cut_trip = 4
    assert Deploy(host.remote, S).run().outcome == UNREACHABLE
    host.cut_trip, host.lock = 0, INFO
    return host


@pytest.mark.parametrize("stale, said", [("reboot", "interrupted by a reboot"), ("guard gone", "guard gone"),
                                         ("", "in flight; its undo")])
def test_status_shows_a_stale_lock_and_what_the_next_run_will_do(stale, said):
    host = cut_mid_deploy()
    host.stale = stale
    row = inspect.status(host.remote, S)
    assert said in row.lock and "stop app-green (kept for its logs); start app-blue worker beat again" in row.lock
    assert ("the next deploy, rollback, promote, cleanup or drain puts the host back" in row.lock) == bool(stale)


def test_the_next_run_says_in_one_line_what_it_put_back():
    out = (f"{guard.STALE}{guard.ARMED}{guard.REBOOT}\n{INFO}\n{journal.SHOWN}stop app-green (kept for its logs)\n"
           f"{journal.SHOWN}start app-blue worker beat again\n{journal.NOT_PUT_BACK}stop app-green\nacquired\n")
    assert lock.stale(out, S) == (
        "the lock of ann@laptop (deploy, since 2026-12-07T10:00:00+00:00) was interrupted by a reboot: put the host "
        "back as its guard would have (stop app-green (kept for its logs); start app-blue worker beat again); "
        "not put back: stop app-green; freed it")
    unarmed = f"{guard.STALE}{guard.REBOOT}\n{INFO}\nacquired\n"
    assert lock.stale(unarmed, S).endswith("was interrupted by a reboot before it changed anything: freed it")
    assert lock.stale("acquired\n", S) == ""
