"""Restart policies follow the colour (tasks/shell/restart.py): a container the tool stops keeps no
policy that would start it at boot, and gets its own back when the tool starts it again. The shell
on a real sh with a fake docker; the order in the sequences against the fake host."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from tasks.config.schema import HostSettings
from tasks.host.deploy import Deploy, Promote, Rollback, Stage
from tasks.host.drain import drain
from tasks.result import DEPLOYED, DRAINED, ROLLED_BACK, STAGED
from tasks import report
from tasks.host import inspect
from tasks.host.facts import parse, restart_off
from tasks.shell import compose, probe, restart

from .fakehost import FakeHost

S = HostSettings(name="pi5", ssh="pi5", settle=0)
ALL = ["web", "redis", "worker", "beat"]
BACKGROUND = [("worker",), ("beat",)]

# --- the shell, on sh, with a docker that keeps each container's policy in a file -------------

FAKE_DOCKER = """#!/bin/sh
C="$FBG_CTRS"
echo "$*" >> "$C/../calls"
case "$1" in
ps) ls "$C" ;;
inspect) shift 3; for i in "$@"; do [ -f "$C/$i" ] || { echo "No such object: $i" >&2; exit 1; }; \
echo "$i $(cat "$C/$i")"; done ;;
update) [ -f "$C/../broken" ] && exit 1; p=${2#--restart=}; shift 2; for i in "$@"; do echo "$p" > "$C/$i"; done ;;
esac
"""


@pytest.fixture
def box(tmp_path: Path):
    (tmp_path / "bin").mkdir()
    (tmp_path / "ctrs").mkdir()
    (tmp_path / "app").mkdir()
    (tmp_path / "bin" / "docker").write_text(FAKE_DOCKER)
    os.chmod(tmp_path / "bin" / "docker", 0o755)
    return tmp_path


def policies(box: Path) -> dict[str, str]:
    return {p.name: p.read_text().strip() for p in (box / "ctrs").iterdir()}


def run(box: Path, line: str) -> subprocess.CompletedProcess:
    env = {"PATH": f"{box / 'bin'}:/usr/bin:/bin", "FBG_CTRS": str(box / "ctrs")}
    return subprocess.run(["sh", "-c", line], env=env, capture_output=True, text=True)


def kept(box: Path) -> str:
    f = box / "app" / restart.path(S)
    return f.read_text() if f.exists() else ""


def test_hold_keeps_each_policy_then_turns_it_off_and_give_back_puts_it_back(box):
    s = HostSettings(name="pi5", ssh="pi5", dir=str(box / "app"))
    for cid, policy in (("a1", "always"), ("b2", "on-failure:3"), ("c3", "unless-stopped"), ("d4", "no")):
        (box / "ctrs" / cid).write_text(policy + "\n")
    assert run(box, restart.hold(s, restart.listed(["a1", "b2", "d4"]))).returncode == 0
    assert policies(box) == {"a1": "no", "b2": "no", "c3": "unless-stopped", "d4": "no"}
    assert kept(box) == "a1 always\nb2 on-failure:3\n"  # d4 had none to keep
    # stopped again (its policy already off): what was kept stays; c3's is kept too
    assert run(box, restart.hold(s, restart.listed(["a1", "c3"]))).returncode == 0
    assert kept(box) == "c3 unless-stopped\na1 always\nb2 on-failure:3\n"
    assert run(box, restart.give_back(s, restart.listed(["a1", "b2", "d4"]))).returncode == 0
    assert policies(box) == {"a1": "always", "b2": "on-failure:3", "c3": "no", "d4": "no"}
    assert kept(box) == "c3 unless-stopped\n"
    (box / "ctrs" / "c3").unlink()  # removed (cleanup): its line goes with the next hold
    assert run(box, restart.hold(s, restart.listed(["a1"]))).returncode == 0
    assert kept(box) == "a1 always\n"


def test_a_failed_update_says_why_and_fails(box):
    s = HostSettings(name="pi5", ssh="pi5", dir=str(box / "app"))
    (box / "ctrs" / "a1").write_text("always\n")
    (box / "broken").write_text("")
    res = run(box, restart.hold(s, restart.listed(["a1"])))
    assert res.returncode == 1 and "@@fbg:why could not turn off the restart policy" in res.stdout


def test_no_containers_nothing_to_do(box):
    s = HostSettings(name="pi5", ssh="pi5", dir=str(box / "app"))
    for line in (restart.hold(s, "true"), restart.give_back(s, "true"), restart.give_back(s, restart.listed(["x"]))):
        assert run(box, line).returncode == 0
    assert not (box / "calls").exists() or "update" not in (box / "calls").read_text()


def test_stop_by_id_turns_the_policy_off_in_the_same_line_before_the_stop():
    line = compose.stop_ids(S, ["idblueworker", "idbluebeat"])
    assert line.startswith(restart.hold(S, restart.listed(["idblueworker", "idbluebeat"])) + " && docker stop ")


# --- the order in the sequences ---------------------------------------------------------------

def at(host: FakeHost, *event: str) -> int:
    return host.events.index(event)


def test_a_deploy_turns_off_the_old_background_s_policy_before_stopping_it_and_keeps_the_new_one_s():
    host = FakeHost(running={"blue": ALL})
    assert Deploy(host.remote, S).run().outcome == DEPLOYED
    for service in ("worker", "beat"):
        assert at(host, "hold", "blue", service) < host.stopped("blue", service)
    assert host.held == {("blue", "worker"), ("blue", "beat")}  # the live green keeps its own, blue's web too


@pytest.mark.parametrize("failing", ["i=0; while", "end=$(("])
def test_a_rollback_turns_off_the_failed_colour_s_policy_and_gives_the_old_background_its_own_back(failing):
    host = FakeHost(running={"blue": ALL}, fail=(failing,), record='{"live": "blue"}')
    assert Deploy(host.remote, S).run().outcome == ROLLED_BACK
    for service in host.state("green"):
        assert at(host, "hold", "green", service) < host.stopped("green", service)
    for service in ("worker", "beat"):
        assert at(host, "give back", "blue", service) < host.events.index(("start", "blue", service),
                                                                          host.stopped("blue", service))
    assert host.held == {("green", x) for x in host.state("green")}


def test_the_guard_s_undo_does_the_same():
    host = FakeHost(running={"blue": ALL}, record='{"live": "blue"}', fail=("i=0; while",))
    Deploy(host.remote, S).run()
    undo = "; ".join(host.undo_commands(freed=True))  # the journal the guard would have run
    held, back = restart.hold(S, compose.ids_of(S, "green")), restart.give_back(S, compose.ids_of(S, "blue", ("worker", "beat")))
    assert undo.index(held) < undo.index("-p app-green -f compose.yml stop")
    assert undo.index("-p app-green -f compose.yml stop") < undo.index(back) < undo.index("-p app-blue -f compose.yml start")


def test_a_rollback_to_the_previous_colour_gives_its_background_its_policy_back():
    rec = json.dumps({"app": "app", "live": "green", "previous": "blue",
                      "colors": {"blue": {"containers": {x: f"idblue{x}" for x in ALL}}}})
    host = FakeHost(running={"blue": ALL, "green": ALL}, record=rec, upstream_port=18002)
    host.containers[("blue", "worker")] = host.containers[("blue", "beat")] = "exited"
    host.held = {("blue", "worker"), ("blue", "beat")}
    assert Rollback(host.remote, S).run().outcome == DEPLOYED
    for service in ("worker", "beat"):
        assert at(host, "hold", "green", service) < host.stopped("green", service)
        assert at(host, "give back", "blue", service) < at(host, "start", "blue", service)
    assert host.held == {("green", "worker"), ("green", "beat")}


def test_stage_leaves_the_live_background_alone_and_promote_turns_it_off_before_stopping_it():
    live = json.dumps({"app": "app", "live": "blue", "colors": {"blue": {"containers": {x: f"idblue{x}" for x in ALL}}}})
    host = FakeHost(running={"blue": ALL}, record=live)
    assert Stage(host.remote, S).run().outcome == STAGED
    assert not host.held
    assert Promote(host.remote, S).run().outcome == DEPLOYED
    for service in ("worker", "beat"):
        assert at(host, "hold", "blue", service) < host.stopped("blue", service)
    assert host.held == {("blue", "worker"), ("blue", "beat")}


def test_drain_s_workers_get_their_policy_back_while_they_run_and_lose_it_before_they_stop():
    host = FakeHost(running={"blue": ["web", "redis"], "green": ALL}, upstream_port=18002, queued={"celery": 2})
    host.containers[("blue", "worker")] = host.containers[("blue", "beat")] = "exited"
    host.held = {("blue", "worker"), ("blue", "beat")}
    assert drain(host.remote, S).outcome == DRAINED
    started = at(host, "start", "blue", "worker")
    assert at(host, "give back", "blue", "worker") < started < at(host, "hold", "blue", "worker")
    assert host.events.index(("hold", "blue", "worker")) < host.events.index(("stop", "blue", "worker"), started)
    assert host.held == {("blue", "worker"), ("blue", "beat")}


# --- fab status -------------------------------------------------------------------------------

def test_status_notes_the_services_whose_policy_is_not_the_compose_file_s():
    host = FakeHost(running={"blue": ALL}, record='{"live": "blue"}')
    host.containers[("green", "worker")] = host.containers[("green", "beat")] = "exited"
    out = (host.facts() + "@@fbg:restart-kept\nidgreenworker always\nidgreenbeat always\nidblueweb on-failure:3\n"
           "@@fbg:restart-now\nidgreenworker no\nidgreenbeat \nidblueweb on-failure:3\n")
    facts = parse(out)
    assert restart_off(S, facts, "green") == "beat worker restart: no (compose: always)"
    assert restart_off(S, facts, "blue") == ""  # given back: as the compose file says
    line = probe.status(S)
    assert "echo @@fbg:restart-kept; cat \"$HOME\"/app/.fab-bluegreen/app.restart 2>/dev/null" in line
    status = inspect.ColorStatus("web@1", {"worker": "exited"}, restart="worker restart: no (compose: always)")
    assert report._color_status(status) == "web@1: worker exited (worker restart: no (compose: always))"
