"""deploy --no-switch (Stage), promote, and removing a staged colour (rollback, cleanup), against the
fake host (no SSH). The same on real hosts under traffic: tests/e2e/test_promote.py."""

from __future__ import annotations

import json
import re

import pytest

from tasks.config.schema import HostSettings
from tasks.host import cleanup, inspect
from tasks.host.check import staging_fits
from tasks.host.deploy import Deploy, Promote, Rollback, Stage
from tasks.host.facts import find_live, parse
from tasks.host.remote import Result
from tasks.result import CLEANED, DEPLOYED, FAILED, REFUSED, ROLLED_BACK, STAGED, UNSTAGED
from tasks.shell import guard
from tasks.shell.base import MARK
from tasks.shell.record import Record, record_problem

from .fakehost import FakeHost

S = HostSettings(name="pi5", ssh="pi5", settle=0)
ALL = ["web", "redis", "worker", "beat"]
LIVE_BLUE = json.dumps({"app": "app", "live": "blue", "previous": "green",
                        "colors": {"blue": {"containers": {x: f"idblue{x}" for x in ALL}}}})


def staged_host() -> FakeHost:
    """blue live (all four running), then deploy --no-switch: green's front staged beside it."""
    host = FakeHost(running={"blue": ALL}, record=LIVE_BLUE)
    r = Stage(host.remote, S).run()
    assert (r.outcome, r.from_color, r.to_color) == (STAGED, "blue", "green")
    return host


def record(host: FakeHost) -> dict:
    return json.loads(host.record)


def touches(commands: list[str], color: str) -> bool:
    """Whether any command stops, starts, creates or removes something of that colour."""
    return any(re.search(rf"-p app-{color} -f compose.yml (stop|start|up|down|restart)|docker stop -t \d+ id{color}", c)
               for c in commands)


def test_a_staged_deploy_starts_the_new_front_beside_the_live_colour_and_moves_nothing():
    host = staged_host()
    assert host.state("blue") == dict.fromkeys(ALL, "running")  # blue keeps its worker and beat
    # no green background runs yet: created with the front (one compose call), started by promote
    assert host.state("green") == {"web": "running", "redis": "running", "worker": "created", "beat": "created"}
    assert "127.0.0.1:18001" in host.upstream  # nginx untouched
    assert not touches(host.commands, "blue") and not any("nginx -s reload" in c for c in host.commands)
    rec = record(host)
    assert (rec["live"], rec["staged"], rec["previous"]) == ("blue", "green", None)  # green recreated: no going back
    assert rec["colors"]["green"]["containers"] == {"beat": "idgreenbeat", "redis": "idgreenredis", "web": "idgreenweb",
                                                    "worker": "idgreenworker"}  # created, not started
    assert rec["colors"]["blue"]["containers"] == json.loads(LIVE_BLUE)["colors"]["blue"]["containers"]
    assert any('"action":"deploy"' in c and '"result":"staged"' in c for c in host.commands)


def test_the_staged_result_says_the_port_and_what_to_do_next():
    host = FakeHost(running={"blue": ALL}, record=LIVE_BLUE)
    r = Stage(host.remote, S).run()
    assert "green runs on port 18002 beside blue" in r.reason and "fab promote --host pi5" in r.reason
    assert "fab rollback --host pi5" in r.reason and r.ok


def test_the_guard_of_a_staged_deploy_would_only_stop_the_new_colour():
    host = FakeHost(running={"blue": ALL}, record=LIVE_BLUE)
    stage = Stage(host.remote, S)
    stage.run()
    undo = " ".join(host.undo_commands(freed=True))  # the journal the run wrote (gone with its lock)
    assert "-p app-green -f compose.yml stop" in undo
    assert "-p app-blue" not in undo and "nginx" not in undo
    assert host.undo_words(freed=True) == ["stop app-green (kept for its logs)"]


@pytest.mark.parametrize("failing, step", [("i=0; while", "health check"), ("up --no-start --force-recreate --no-deps web", "start new front")])
def test_a_failed_staged_deploy_stops_the_new_colour_and_leaves_the_live_one_alone(failing, step):
    host = FakeHost(running={"blue": ALL}, record=LIVE_BLUE, fail=(failing,))
    r = Stage(host.remote, S).run()
    assert (r.outcome, r.step) == (ROLLED_BACK, step)
    assert host.state("blue") == dict.fromkeys(ALL, "running") and "running" not in host.state("green").values()
    assert not touches(host.commands, "blue")
    assert host.record == LIVE_BLUE


def test_promote_finishes_the_deploy_of_the_staged_colour():
    host = staged_host()
    sent = len(host.commands)
    r = Promote(host.remote, S).run()
    assert (r.outcome, r.from_color, r.to_color) == (DEPLOYED, "blue", "green")
    promoted = host.commands[sent:]
    assert not any("--no-deps web redis" in c for c in promoted)  # the staged front stays
    order = [next(i for i, c in enumerate(promoted) if x in host.p.arm.sub("", c)) for x in (
        "i=0; while", "docker stop -t 30 idblueworker idbluebeat", "sudo nginx -s reload",
        "-p app-green -f compose.yml up --no-start --force-recreate --no-deps worker beat")]
    assert order == sorted(order)
    assert host.state("green") == dict.fromkeys(["web", "redis", "worker", "beat"], "running")
    assert host.state("blue") == {"web": "running", "redis": "running", "worker": "exited", "beat": "exited"}
    assert "127.0.0.1:18002" in host.upstream
    rec = record(host)
    assert (rec["live"], rec["previous"]) == ("green", "blue") and "staged" not in rec
    assert rec["colors"]["green"]["containers"]["worker"] == "idgreenworker"
    assert any('"action":"promote"' in c and '"result":"deployed"' in c for c in promoted)


def test_promote_with_nothing_staged_is_refused_before_anything_changes():
    host = FakeHost(running={"blue": ALL}, record=LIVE_BLUE)
    r = Promote(host.remote, S).run()
    assert r.outcome == REFUSED and "no colour is staged here" in r.reason and "--no-switch" in r.reason
    assert not any("compose.yml" in c for c in host.commands[2:])


def test_promote_of_a_staged_colour_that_no_longer_runs_is_refused():
    host = staged_host()
    host.containers[("green", "web")] = "exited"
    r = Promote(host.remote, S).run()
    assert r.outcome == REFUSED and "the staged green's web is not running" in r.reason


@pytest.mark.parametrize("failing, step", [("i=0; while", "health check"), ("sudo -n nginx -t", "switch"),
                                           ("end=$((", "settle")])
def test_a_failed_promote_leaves_the_old_colour_serving_and_the_staged_one_stopped(failing, step):
    host = staged_host()
    before = host.record
    host.fail.append(failing)
    r = Promote(host.remote, S).run()
    assert (r.outcome, r.step) == (ROLLED_BACK, step)
    assert host.state("blue") == dict.fromkeys(ALL, "running")
    assert "running" not in host.state("green").values() and host.state("green")  # stopped, kept for its logs
    assert "127.0.0.1:18001" in host.upstream and host.record == before  # still says staged: green
    again = Promote(host.remote, S).run()
    assert again.outcome == REFUSED and "not running" in again.reason


def test_rollback_of_a_staged_colour_removes_it_and_changes_nothing_else():
    host = staged_host()
    host.env_files = {"blue": b"A=1\n", "green": b"A=2\n"}
    sent = len(host.commands)
    r = Rollback(host.remote, S).run()
    assert (r.outcome, r.from_color, r.to_color) == (UNSTAGED, "green", "blue") and r.ok
    assert host.state("green") == {} and host.state("blue") == dict.fromkeys(ALL, "running")
    assert host.env_files == {"blue": b"A=1\n"}
    down = [c for c in host.commands[sent:] if " down " in c]
    assert len(down) == 1 and " -v" not in down[0] and "-p app-green" in down[0]
    assert not touches(host.commands[sent:], "blue")
    assert not any("nginx -s reload" in c or guard.ARM_MARK in c for c in host.commands[sent:])
    rec = record(host)
    assert (rec["live"], rec["previous"]) == ("blue", None) and "staged" not in rec and "green" not in rec["colors"]
    assert rec["colors"]["blue"]["containers"] == json.loads(LIVE_BLUE)["colors"]["blue"]["containers"]
    assert any('"action":"rollback"' in c and '"result":"unstaged"' in c for c in host.commands[sent:])


def test_a_failed_removal_of_a_staged_colour_is_failed_and_keeps_the_record():
    host = staged_host()
    before = host.record
    host.fail.append(" down ")
    r = Rollback(host.remote, S).run()
    assert r.outcome == FAILED and "`down` of the staged green failed" in r.reason
    assert host.record == before


def test_cleanup_of_a_staged_colour_removes_it_and_clears_staged():
    host = staged_host()
    planned = cleanup.plan(host.remote, S)
    assert (planned.from_color, planned.to_color) == ("green", "blue")
    assert cleanup.remove(host.remote, S, planned).outcome == CLEANED
    assert host.state("green") == {} and host.state("blue") == dict.fromkeys(ALL, "running")
    assert "staged" not in record(host) and record(host)["live"] == "blue"


def test_a_new_deploy_over_a_staged_colour_replaces_it():
    host = staged_host()
    r = Deploy(host.remote, S).run()
    assert (r.outcome, r.to_color) == (DEPLOYED, "green")
    assert "staged" not in record(host) and record(host)["live"] == "green"


def test_a_staged_colour_is_never_taken_for_the_live_one():
    # no record of a live colour: nginx names blue's port, where the staged blue listens
    text = (f"{MARK}record\n" + json.dumps({"staged": "blue"}) + f"\n{MARK}upstream\nserver 127.0.0.1:18001;\n"
            f"{MARK}containers\napp-blue web running 0 sha256:b idb 0\n")
    assert find_live(S, parse(text)) is None
    host = FakeHost(running={"blue": ["web", "redis"]}, record=json.dumps({"staged": "blue"}))
    assert Promote(host.remote, S).run().outcome == DEPLOYED  # the first deploy, staged, then promoted
    assert record(host)["live"] == "blue" and "staged" not in record(host)


def test_status_shows_the_staged_colour_and_its_port():
    host = staged_host()
    row = inspect.status(host.remote, S)
    assert row.live == "blue" and row.staged == "green (port 18002)"
    host.containers[("green", "web")] = "exited"
    assert inspect.status(host.remote, S).staged == "green (port 18002, its web exited)"


def test_the_record_keeps_staged_and_checks_it():
    rec = Record.from_json({"live": "blue", "staged": "green", "previous": "green"})
    assert json.loads(rec.dump())["staged"] == "green"
    assert rec.with_staged("green").previous is None
    assert rec.with_live("app", "green", "blue").staged is None and rec.with_live("app", "blue", None).staged == "green"
    assert rec.without_color("green").staged is None
    assert "staged" not in json.loads(Record().with_live("app", "blue", None).dump())  # only while one is staged
    assert record_problem({"staged": "purple"}) == 'has staged "purple", not blue, green or null'


@pytest.mark.parametrize("stats, available_kb, level, said", [
    ("45.5MiB / 1.9GiB\n12MiB / 1.9GiB\n", 900 * 1024, "ok", "needs about 58 MiB, what blue's front uses now; 900 MiB"),
    ("300MiB / 1GiB\n", 400 * 1024, "warn", "needs about 300 MiB, what blue's front uses now; 400 MiB available: "
                                            "it may not fit"),
    ("0B / 0B\n", 400 * 1024, "warn", "could not estimate"),
    ("", 400 * 1024, "warn", "could not estimate"),
])
def test_check_estimates_whether_a_staged_front_fits(stats, available_kb, level, said):
    res = Result("x", 0, f"{stats}{MARK}available\n{available_kb}\n")
    got_level, name, detail = staging_fits(S, "blue", res)
    assert (got_level, name) == (level, "staging") and said in detail
