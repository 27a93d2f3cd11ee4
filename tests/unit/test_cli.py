"""The command line: its mistakes are usage errors (exit code 2, one line, no host contacted), and
the read-only tasks exit 1 when a host could not be read (no test bed: the real `fab` in a subprocess,
or the tasks in-process with a fake connect)."""

import functools
import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from invoke import Context
from invoke.exceptions import Exit

from tasks import fleet
from tasks.errors import Unreachable
from tasks.fleet import Fleet
from tasks.host.remote import RecordingRemote
from tasks.inspect import history, logs, status
from tasks.shell.base import MARK

ROOT = Path(__file__).resolve().parents[2]
FAB = Path(sys.executable).parent / "fab"


@pytest.fixture
def tripwire():
    """A port that listens but never accepts: any SSH attempt to it shows in its backlog."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(8)
    sock.setblocking(False)
    yield sock
    sock.close()


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]  # closed again at once: nothing listens there


def hosts_file(tmp_path, port: int) -> Path:
    path = tmp_path / "hosts.toml"
    path.write_text(f'[defaults]\nconnect_timeout = 1\n[hosts.h1]\nssh = "deploy@127.0.0.1:{port}"\n'
                    f'[hosts.h2]\nssh = "deploy@127.0.0.1:{port}"\n')
    return path


def fab(tmp_path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([str(FAB), "--search-root", str(ROOT), *args], cwd=tmp_path, capture_output=True,
                          text=True, timeout=60, env={**os.environ, "COLUMNS": "400"})  # tables unwrapped


def assert_usage_error(r: subprocess.CompletedProcess, message: str, tripwire=None) -> None:
    assert r.returncode == 2, (r.returncode, r.stdout, r.stderr)
    assert r.stderr.startswith("error: ") and r.stderr.count("\n") == 1, r.stderr
    assert message in r.stderr, r.stderr
    assert "Traceback" not in r.stdout + r.stderr
    if tripwire is not None:
        with pytest.raises(BlockingIOError):  # nobody knocked
            tripwire.accept()


USAGE = [
    (["deploy", "--host", "h1", "--batch", "abc"], "error: --batch expects a whole number, got 'abc'"),
    (["deploy", "--host", "h1", "--max-fail=1.5"], "error: --max-fail expects a whole number, got '1.5'"),
    (["history", "--host", "h1", "--lines", "abc"], "error: --lines expects a whole number, got 'abc'"),
    (["history", "--host", "h1", "--lines", "0"], "error: --lines expects a number of lines from 1"),
    (["logs", "--host", "h1", "--lines"], "error: --lines needs a value"),
    (["deploy", "--host", "h1", "--bogus"], "error: deploy has no option --bogus (fab --help deploy"),
    (["--bogus", "deploy"], "error: unknown option --bogus"),
    (["nosuchtask"], "error: unknown task 'nosuchtask' (the tasks: deploy, promote, rollback,"),
    (["--help", "nosuchtask"], "error: unknown task 'nosuchtask'"),
    (["deploy", "--host", "h1", "extra"], "error: unexpected 'extra': deploy takes options only"),
    (["logs", "--host", "h1", "--service", "--build"], "error: --service '--build': expected a service name"),
    (["deploy", "--host", "h1", "--message", "a\nb"], "error: --message 'a\\nb': expected one line"),
]


@pytest.mark.parametrize("args, message", USAGE, ids=[" ".join(a) for a, _ in USAGE])
def test_a_command_line_mistake_is_one_line_and_exit_code_2(tmp_path, tripwire, args, message):
    path = hosts_file(tmp_path, tripwire.getsockname()[1])
    r = fab(tmp_path, *args, *(["--hosts-file", str(path)] if args[0] != "--help" else []))
    assert_usage_error(r, message, tripwire)


@pytest.mark.parametrize("make, message", [
    (lambda p: p.mkdir(), "is a directory, not a hosts file"),
    (lambda p: p.write_bytes(b'[hosts.h1]\nssh = "h\xe91"\n'), "not UTF-8 text (byte 0xe9 at offset 19)"),
    (lambda p: p.write_text('[hosts.h1]\nssh = "h1"\nguard_deadline = nan\n'),
     "hosts.h1.guard_deadline: expected a finite number, got nan"),
    (lambda p: p.write_text('[hosts."--all"]\nssh = "h1"\n'), "hosts.--all: host name '--all' may hold only"),
    (lambda p: p.write_text('[hosts.h1]\nssh = "-oProxyCommand=touch /tmp/x"\n'), "may not start with '-'"),
])
def test_a_bad_hosts_file_is_one_line_and_exit_code_2(tmp_path, make, message):
    path = tmp_path / "bad.toml"
    make(path)
    r = fab(tmp_path, "status", "--hosts-file", str(path))
    assert_usage_error(r, f"error: {path}: ")
    assert message in r.stderr


def test_help_and_the_task_list_still_work(tmp_path):
    for args, needle in ((["-l"], "deploy"), (["--help", "deploy"], "--batch=INT"), (["-h"], "Core options"),
                         (["deploy", "--help"], "--max-fail=INT")):
        r = fab(tmp_path, *args)
        assert r.returncode == 0 and needle in r.stdout and not r.stderr, (args, r)


def test_promote_is_listed_and_its_help_shows_examples(tmp_path):
    assert "promote    Move the traffic to a colour staged by deploy --no-switch" in fab(tmp_path, "-l").stdout
    helped = fab(tmp_path, "--help", "promote").stdout
    for example in ("fab deploy --no-switch --host pi5", "fab promote --host pi5", "fab rollback --host pi5",
                    "ssh pi5 curl -s http://127.0.0.1:18002/"):
        assert example in helped
    assert "--no-switch" in fab(tmp_path, "--help", "deploy").stdout


def test_status_of_an_unreachable_host_exits_1(tmp_path):
    port = closed_port()
    r = fab(tmp_path, "status", "--hosts-file", str(hosts_file(tmp_path, port)))
    assert r.returncode == 1, (r.stdout, r.stderr)
    assert f"cannot connect to deploy@127.0.0.1:{port}" in r.stdout and "Traceback" not in r.stderr


# --- status, history and logs in-process: one host answers, the other cannot be reached --------------

HISTORY = json.dumps({"time": "2026-01-02T03:04:05+00:00", "action": "deploy", "user": "ann@laptop",
                      "from": "blue", "to": "green", "result": "deployed"})


def answer(command: str):
    if "awk -v cut" in command:  # state.history()
        return 0, HISTORY + "\n"
    if " logs " in command:
        return 0, "web-1  | hello from h1\n"
    return 0, f"{MARK}containers\n"


def connect(s):
    if s.name == "h2":
        raise Unreachable("cannot connect to deploy@h2:22: Connection refused: is the host up?")
    return RecordingRemote(name=s.name, answer=answer)


@pytest.fixture
def fake_fleet(monkeypatch):
    monkeypatch.setattr(fleet, "Fleet", functools.partial(Fleet, connect=connect))


def run(task, tmp_path, hosts, **kwargs):
    path = hosts_file(tmp_path, closed_port())
    return task(Context(), host=hosts, hosts_file=str(path), **kwargs)


@pytest.mark.parametrize("task, kwargs, said", [
    (status, {}, "h1"),
    (history, {}, "ann@laptop"),
    (logs, {"colour": "green", "service": "web"}, "hello from h1"),
])
def test_a_look_exits_1_when_a_host_could_not_be_read_and_shows_the_others(
        tmp_path, capsys, fake_fleet, task, kwargs, said):
    with pytest.raises(Exit) as e:
        run(task, tmp_path, ["h1", "h2"], **kwargs)
    assert e.value.code == 1
    out = " ".join(capsys.readouterr().out.split())
    assert said in out and "Connection refused" in out
    run(task, tmp_path, ["h1"], **kwargs)  # every host read: exit code 0
