"""Open connections to the old colour across cleanup: the wait run by a real `sh` (with a fake `ss`),
its count read back, cleanup waiting or (--force) not, the number in the result, the table and the
history, and drain_connections in hosts.toml."""

from __future__ import annotations

import json
import shlex
import shutil
import subprocess
from pathlib import Path

import pytest
from invoke import Context
from invoke.exceptions import Exit
from rich.console import Console

from tasks import fleet, report
from tasks.cleanup import cleanup as fab_cleanup
from tasks.config import loader
from tasks.config.schema import Color, HostSettings
from tasks.errors import ConfigError
from tasks.fleet import Fleet
from tasks.host import cleanup
from tasks.host.remote import DryRunRemote, RecordingRemote, _Lines
from tasks.result import CLEANED, INTERRUPTED, PLANNED, REFUSED, CleanupResult
from tasks.shell import connections

from .fakehost import FakeHost

S = HostSettings(name="pi5", ssh="pi5", ports=((Color.BLUE, 18001), (Color.GREEN, 18002)))
ALL = ["web", "redis", "worker", "beat"]

# A fake ss: each call prints as many socket lines as its row of `counts` says for its end ("S D":
# sockets whose local port is the port, then those whose peer port is it), moving to the next row
# after the dport call; past the last row it repeats it. `sleep` does nothing, so no test waits.
FAKE_SS = r"""#!/bin/sh
printf '%s\n' "$*" >> "$FAKE_DIR/ss.log"
row=$(cat "$FAKE_DIR/row" 2>/dev/null || echo 1)
line=$(sed -n "${row}p" "$FAKE_DIR/counts"); [ -n "$line" ] || line=$(tail -n 1 "$FAKE_DIR/counts")
case "$*" in *sport*) n=${line% *};; *) n=${line#* }; echo $((row + 1)) > "$FAKE_DIR/row";; esac
i=0; while [ $i -lt $n ]; do echo "0 0 127.0.0.1:18001 127.0.0.1:4000$i"; i=$((i + 1)); done
"""
TOOLS = ("sh", "date", "grep", "tail", "sed", "cat", "printf", "echo")


def run_wait(tmp_path: Path, counts: list[str] | None, seconds: float, ss: str = FAKE_SS) -> subprocess.CompletedProcess:
    """wait_closed() for blue, run by sh with only TOOLS and (unless counts is None) the fake ss on PATH."""
    bin_ = tmp_path / "bin"
    bin_.mkdir()
    for tool in TOOLS:
        (bin_ / tool).symlink_to(shutil.which(tool))
    (bin_ / "sleep").write_text("#!/bin/sh\n")
    if counts is not None:
        (bin_ / "ss").write_text(ss)
        (tmp_path / "counts").write_text("".join(f"{c}\n" for c in counts))
    for f in bin_.iterdir():
        f.chmod(0o755)
    return subprocess.run([str(bin_ / "sh"), "-c", connections.wait_closed(S, Color.BLUE, seconds)],
                          env={"PATH": str(bin_), "FAKE_DIR": str(tmp_path)}, capture_output=True, text=True,
                          timeout=30, stdin=subprocess.DEVNULL)


def ss_calls(tmp_path: Path) -> list[str]:
    return (tmp_path / "ss.log").read_text().splitlines()


# --- the command, run by a real shell ------------------------------------------------------------

def test_the_wait_prints_the_count_as_it_falls_and_ends_when_none_is_open(tmp_path):
    # docker-proxy sees 3 (one client from outside the host), then the host shows only nginx's end
    # (no docker-proxy), then one connection from both ends, then none
    res = run_wait(tmp_path, ["3 2", "0 2", "2 2", "1 1", "0 0"], 60)
    assert (res.returncode, res.stdout) == (0, "open 3\nopen 2\nopen 1\nopen 0\n"), res.stderr
    assert ss_calls(tmp_path)[:2] == ["-Htn state established ( sport = :18001 )",
                                      "-Htn state established ( dport = :18001 )"]  # each filter one word
    assert len(ss_calls(tmp_path)) == 10  # both ends, five times


def test_the_wait_with_no_time_counts_once_and_says_how_many_are_left(tmp_path):
    res = run_wait(tmp_path, ["2 2"], 0)
    assert (res.returncode, res.stdout) == (1, "open 2\n")
    assert len(ss_calls(tmp_path)) == 2


def test_without_ss_the_wait_says_what_to_do(tmp_path):
    res = run_wait(tmp_path, None, 60)
    assert res.returncode == 3
    assert res.stdout == ("@@fbg:why could not count the open connections to blue's port 18001: ss not found "
                          "(install iproute2 for ss, or skip the wait with --force)\n")


def test_an_ss_that_fails_is_named_not_counted_as_zero(tmp_path):
    res = run_wait(tmp_path, ["0 0"], 60, ss="#!/bin/sh\necho 'ss: unknown option -- H' >&2\nexit 255\n")
    assert res.returncode == 3 and "18001: ss: unknown option -- H (install" in res.stdout
    assert connections.last_count(res.stdout) is None


def test_the_port_is_the_colours_and_the_budget_the_wait_plus_a_command():
    command = connections.wait_closed(S, Color.GREEN, 2.5)
    assert "( sport = :18002 )" in command and "+ 3 ))" in command and ":18001" not in command
    assert command.budget == 2.5 + S.timeouts.command


@pytest.mark.parametrize("stdout, count", [
    ("open 3\nopen 1\n", 1), ("open 0\n", 0), ("", None), ("open\n", None), ("open x\n", None),
    ("open 2\n@@fbg:why could not count\n", 2), ("open ٣\n", None), ("opened 2\n", None),
])
def test_the_last_count_is_read_back(stdout, count):
    assert connections.last_count(stdout) == count


# --- cleanup on the fake host --------------------------------------------------------------------

def cleaned(host: FakeHost, s: HostSettings = S, force: bool = False) -> tuple[CleanupResult, list[str]]:
    said: list[str] = []
    plan = cleanup.plan(host.remote, s)
    assert plan.outcome == PLANNED
    return cleanup.remove(host.remote, s, plan, force=force, say=said.append), said


def old_and_new() -> FakeHost:
    return FakeHost(running={"blue": ["web", "redis"], "green": ALL}, upstream_port=18002)


def test_cleanup_waits_for_the_connections_to_close_before_down_and_shows_them_falling():
    host = old_and_new()
    host.open_connections = [2, 1, 1, 0]
    done, said = cleaned(host)
    assert (done.outcome, done.cut) == (CLEANED, 0)
    wait = host.index("fbg_open() {")
    assert "( sport = :18001 )" in host.commands[wait] and "+ 60 ))" in host.commands[wait]
    assert wait < host.index("compose.yml down")
    assert [m for m in said if m.startswith("open connections")] == [
        "open connections to blue: 2", "open connections to blue: 1", "open connections to blue: 0"]
    assert "waiting up to 60 s for them to close" in said[0]


def test_connections_still_open_after_drain_connections_are_cut_and_counted():
    host = old_and_new()
    host.open_connections = [3, 1]  # one never closes
    s = HostSettings(name="pi5", ssh="pi5", drain_connections=2)
    done, said = cleaned(host, s)
    assert (done.outcome, done.cut) == (CLEANED, 1)
    assert "+ 2 ))" in host.commands[host.index("fbg_open() {")]
    assert host.state("blue") == {}
    assert "1 connection(s) to blue still open after 2 s: removing it cuts them" in said
    [appended] = [c for c in host.commands if ">> .fab-bluegreen/app.history.jsonl)" in c]
    line = json.loads(shlex.split(appended.split("printf '%s\\n' ", 1)[1])[0])
    assert (line["action"], line["result"], line["cut"]) == ("cleanup", "cleaned", 1)


def test_force_counts_once_without_waiting_and_cuts_them():
    host = old_and_new()
    host.open_connections = [3, 0]  # they would close within a second: --force does not wait for it
    done, said = cleaned(host, force=True)
    assert (done.outcome, done.cut) == (CLEANED, 3)
    assert "+ 0 ))" in host.commands[host.index("fbg_open() {")]
    assert any("--force, no wait" in m for m in said)


def test_force_does_not_skip_the_brokers_refusal():
    host = FakeHost(running={"blue": ["web", "redis"], "green": ALL}, upstream_port=18002, queued={"celery": 2})
    plan = cleanup.plan(host.remote, S)
    assert plan.outcome == REFUSED and "celery: 2" in plan.reason


def test_connections_that_cannot_be_counted_refuse_the_cleanup_unless_forced():
    host = old_and_new()
    host.open_connections = None
    done, _ = cleaned(host)
    assert (done.outcome, done.step, done.cut) == (REFUSED, "connections", None)
    assert "ss not found" in done.reason
    assert host.state("blue") == {"web": "running", "redis": "running"}  # nothing removed
    forced, _ = cleaned(host, force=True)
    assert (forced.outcome, forced.cut) == (CLEANED, None)
    assert forced.warnings == ["open connections not counted: could not count the open connections: ss not found"]


def test_ctrl_c_during_the_wait_removes_nothing():
    host = old_and_new()
    host.open_connections = [1]
    plan = cleanup.plan(host.remote, S)
    done = cleanup.remove(host.remote, S, plan, interrupted=lambda: True)
    assert (done.outcome, done.step, done.cut) == (INTERRUPTED, "connections", None)
    assert host.state("blue") == {"web": "running", "redis": "running"}
    assert not any("compose.yml down" in c for c in host.commands) and host.index("fbg_open() {") >= 0


def test_fab_cleanup_interrupted_during_the_wait_exits_130_and_removes_nothing(tmp_path, monkeypatch, capsys):
    host = old_and_new()
    fleets: list[Fleet] = []

    class OneFakeHost(Fleet):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, connect=lambda s: host.remote, **kwargs)
            fleets.append(self)

    def ctrl_c_during_the_wait(match):
        fleets[-1].interrupted.set()  # as Fleet._wait does on KeyboardInterrupt
        return 1, "open 1\n"

    monkeypatch.setattr(fleet, "Fleet", OneFakeHost)
    monkeypatch.setattr(host, "wait_closed", ctrl_c_during_the_wait)
    path = tmp_path / "hosts.toml"
    path.write_text('[hosts.h1]\nssh = "h1"\n')
    with pytest.raises(Exit) as e:
        fab_cleanup(Context(), host=["h1"], hosts_file=str(path), yes=True)
    assert e.value.code == 130
    assert host.state("blue") == {"web": "running", "redis": "running"}
    out = capsys.readouterr()
    assert "interrupted" in out.out and "Ctrl-C while" in out.out and "cuts them" not in out.err
    assert "open connections to blue: 1" in out.err  # the progress: its last line would say


def test_a_dry_run_plans_the_wait_without_waiting():
    host = old_and_new()
    host.open_connections = [5]
    dry = DryRunRemote(host.remote)
    plan = cleanup.plan(dry, S)
    done = cleanup.remove(dry, S, plan)
    assert (done.outcome, done.cut, done.warnings) == (CLEANED, None, [])  # nothing was counted: nothing said
    assert [kind for kind, line in dry.plan if "fbg_open() {" in line] == ["run"]  # shown, not run
    assert not any("fbg_open() {" in c for c in host.commands)


def test_the_table_counts_the_cut_connections_once_a_removal_counted_them():
    def render(results) -> str:
        console = Console(record=True, width=200)
        console.print(report.cleanup_table(results))
        return console.export_text()

    planned = render([CleanupResult("pi5", "cleanup", PLANNED, Color.BLUE, Color.GREEN)])
    assert "connections cut" not in planned
    text = render([CleanupResult("pi5", "cleanup", CLEANED, Color.BLUE, Color.GREEN, cut=1),
                   CleanupResult("vm1", "cleanup", CLEANED, Color.BLUE, Color.GREEN, cut=0),
                   CleanupResult("rpi", "cleanup", REFUSED, Color.BLUE, Color.GREEN)])
    header = next(line for line in text.splitlines() if "connections cut" in line)
    column = header.split("┃").index(" connections cut ")
    cells = {line.split("│")[1].strip(): line.split("│")[column].strip()
             for line in text.splitlines() if line.count("│") > 3 and "connections cut" not in line}
    assert cells == {"pi5": "1", "vm1": "0", "rpi": "-"}


# --- the runner hands on lines as they come ------------------------------------------------------

def test_output_lines_reach_on_line_as_they_complete():
    seen: list[str] = []
    lines = _Lines(seen.append)
    for chunk in ("open 3\nop", "en 2", "\n", "open 1\nopen 0\n"):
        lines.write(chunk)
    assert seen == ["open 3", "open 2", "open 1", "open 0"]


def test_a_recording_remote_hands_on_its_answers_lines():
    seen: list[str] = []
    RecordingRemote(answer=lambda c: (1, "open 2\nopen 1\n")).run("x", 1, on_line=seen.append)
    assert seen == ["open 2", "open 1"]


# --- drain_connections in hosts.toml -------------------------------------------------------------

def load(tmp_path: Path, text: str):
    path = tmp_path / "hosts.toml"
    path.write_text(text)
    return loader.load(path)


def test_drain_connections_defaults_to_60_and_a_host_may_set_its_own(tmp_path):
    inv = load(tmp_path, '[defaults]\ndrain_connections = 5\n[hosts.a]\nssh = "a"\n'
                         '[hosts.b]\nssh = "b"\ndrain_connections = 0\n')
    assert (inv.hosts["a"].drain_connections, inv.hosts["b"].drain_connections) == (5, 0)
    assert load(tmp_path, '[hosts.a]\nssh = "a"\n').hosts["a"].drain_connections == 60


@pytest.mark.parametrize("where, value, message", [
    ("hosts.a", "nan", "expected a finite number, got nan"),
    ("hosts.a", "inf", "expected a finite number, got inf"),
    ("defaults", "-1", "-1: expected seconds from 0 up to 86400"),
    ("hosts.a", "true", "expected a number, got True"),
    ("defaults", '"60"', "expected a number, got '60'"),
    ("hosts.a", "90000", "90000: expected seconds from 0 up to 86400"),
])
def test_a_bad_drain_connections_is_one_line_naming_file_and_key(tmp_path, where, value, message):
    text = (f"[defaults]\ndrain_connections = {value}\n[hosts.a]\nssh = \"a\"\n" if where == "defaults"
            else f"[hosts.a]\nssh = \"a\"\ndrain_connections = {value}\n")
    with pytest.raises(ConfigError) as e:
        load(tmp_path, text)
    assert str(e.value) == f"{tmp_path / 'hosts.toml'}: {where}.drain_connections: {message}"
    assert e.value.exit_code == 2
