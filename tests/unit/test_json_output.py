"""--json on the tasks themselves (in-process, the hosts simulated by tests/unit/fakehost.FakeHost):
stdout carries one JSON document and nothing else, the exit codes are those of the table's run, and
the tasks that change hosts send the same document to [defaults.notify] (a local HTTP server, a
local command), whatever their result; a failed notification changes nothing but a warning."""

from __future__ import annotations

import functools
import json
import subprocess
import sys
from pathlib import Path

import pytest
from invoke import Context
from invoke.exceptions import Exit

from tasks import cleanup as cleanup_tasks
from tasks import deploy as deploy_tasks
from tasks import document, fleet, report
from tasks import inspect as inspect_tasks
from tasks.config.schema import HostSettings
from tasks.errors import Unreachable
from tasks.fleet import Fleet
from tasks.shell import record

from .fakehost import FakeHost
from .receiver import Receiver

ROOT = Path(__file__).resolve().parents[2]
FAB = Path(sys.executable).parent / "fab"
ALL = ["web", "redis", "worker", "beat"]
SECRET = "hunter2"
S = HostSettings(name="h1", ssh="h1", settle=0)


def blue() -> FakeHost:
    return FakeHost(running={"blue": ALL}, record='{"live": "blue"}')


def deployed_to_green() -> FakeHost:
    """Green live, blue's containers still the ones that served before: a rollback goes back to blue."""
    record = {"live": "green", "previous": "blue", "colors": {"blue": {"containers": {x: f"idblue{x}" for x in ALL}}}}
    return FakeHost(running={"blue": ALL, "green": ALL}, record=json.dumps(record), upstream_port=18002)


def two_colours() -> FakeHost:
    return FakeHost(running={"blue": ALL, "green": ALL}, upstream_port=18002, record='{"live": "green"}')


def waiting() -> FakeHost:
    host = FakeHost(running={"blue": ["web", "redis"], "green": ALL}, upstream_port=18002, queued={"celery": 2})
    host.containers[("blue", "worker")] = host.containers[("blue", "beat")] = "exited"
    return host


def with_history() -> FakeHost:
    line = record.history_line("deploy", "h1", "deployed", **{"from": "blue", "to": "green", "message": "v2"})
    return FakeHost(running={"blue": ALL}, history=line + "\n")


# task, its options, the hosts h1 and h2 (None: unreachable), the exit code of that run
CASES = {
    "deploy": (deploy_tasks.deploy, {}, [blue, lambda: FakeHost(running={"blue": ALL}, fail=("i=0; while",))], 1),
    "rollback": (deploy_tasks.rollback, {}, [deployed_to_green], 0),
    "cleanup": (cleanup_tasks.cleanup, {"yes": True}, [two_colours, FakeHost], 0),
    "drain": (cleanup_tasks.drain, {}, [waiting], 0),
    "status": (inspect_tasks.status, {}, [blue, None], 1),
    "history": (inspect_tasks.history, {}, [with_history], 0),
    "check": (inspect_tasks.check, {}, [blue, None], 1),
}


class Run:
    """Runs tasks in-process on simulated hosts; collects the exit code, stdout and stderr."""

    def __init__(self, tmp_path, monkeypatch, capsys):
        self.tmp_path, self.monkeypatch, self.capsys = tmp_path, monkeypatch, capsys
        self.fakes: dict[str, FakeHost] = {}

    def hosts_file(self, names, notify: str = "", extra: str = "") -> Path:
        path = self.tmp_path / "hosts.toml"
        path.write_text(f"[defaults]\nsettle = 0\n{extra}\n{notify}\n"
                        + "".join(f'[hosts.{n}]\nssh = "{n}"\n' for n in names))
        return path

    def __call__(self, task, makers, notify: str = "", interrupted: bool = False, extra: str = "", **kwargs):
        names = [f"h{i}" for i in range(1, len(makers) + 1)]
        self.fakes = {n: make() for n, make in zip(names, makers) if make is not None}

        def connect(s):
            if s.name not in self.fakes:
                raise Unreachable(f"cannot connect to {s.ssh}: Connection refused")
            return self.fakes[s.name].remote

        event = fleet.Stop()
        if interrupted:
            event.stop("Ctrl-C")
        self.monkeypatch.setattr(fleet, "Fleet", functools.partial(Fleet, connect=connect, interrupted=event))
        path = self.hosts_file(names, notify, extra)
        self.capsys.readouterr()
        try:
            task(Context(), host=names, hosts_file=str(path), **kwargs)
            code = 0
        except Exit as e:
            code = e.code
            if e.message:
                print(e.message, file=sys.stderr)
        out, err = self.capsys.readouterr()
        return code, out, err


@pytest.fixture
def run(tmp_path, monkeypatch, capsys):
    return Run(tmp_path, monkeypatch, capsys)


@pytest.mark.parametrize("name", list(CASES))
def test_stdout_is_one_json_document_and_the_exit_code_is_the_tables(run, name):
    task, options, makers, code = CASES[name]
    table_code, table_out, _ = run(task, makers, **options)
    assert table_code == code and "│" in table_out  # the table's run, for comparison
    json_code, out, err = run(task, makers, json_=True, **options)
    doc = json.loads(out)  # nothing but the document on stdout
    assert json_code == code and doc["exit_code"] == code and doc["ok"] is (code == 0) and doc["task"] == name
    assert [h["host"] for h in doc["hosts"]] == [f"h{i}" for i in range(1, len(makers) + 1)]
    assert "│" not in out + err  # no table anywhere


def test_the_deploy_document_has_numbers_and_the_failure(run):
    code, out, err = run(deploy_tasks.deploy, CASES["deploy"][2], json_=True)
    h1, h2 = json.loads(out)["hosts"]
    assert (h1["result"], h1["to"], h1["tries"], h2["result"], h2["step"], h2["tries"]) == \
        ("deployed", "green", 1, "rolled back", "health check", None)  # no try answered: "-" in the table
    assert isinstance(h1["seconds"], float) and h1["plan"] is None
    assert "h2 FAILED at health check" in " ".join(err.split())  # progress on stderr
    assert "fab cleanup --host h1" in " ".join(err.split())  # no cleanup offered: the command, on stderr


def test_status_history_and_check_have_their_own_fields(run):
    _, out, _ = run(inspect_tasks.status, [blue, None], json_=True)
    h1, h2 = json.loads(out)["hosts"]
    assert h1["live"] == "blue" and h1["health"] == {"http_code": 200, "ok": True}
    assert h1["colors"]["blue"]["services"] == dict.fromkeys(ALL, "running")
    assert (h2["ok"], h2["live"]) == (False, None) and "Connection refused" in h2["error"]
    _, out, _ = run(inspect_tasks.history, [with_history, None], json_=True)
    h1, h2 = json.loads(out)["hosts"]
    assert [(a["action"], a["from"], a["to"], a["message"]) for a in h1["actions"]] == [("deploy", "blue", "green", "v2")]
    assert (h2["ok"], h2["actions"]) == (False, []) and "Connection refused" in h2["error"]
    _, out, _ = run(inspect_tasks.check, [blue], json_=True)
    (h1,) = json.loads(out)["hosts"]
    assert h1["ok"] is True and {"name": "ssh", "result": "ok", "detail": "deploy@fake"} in h1["checks"]


def test_a_dry_run_puts_its_commands_in_the_document(run):
    code, out, _ = run(deploy_tasks.deploy, [blue], json_=True, dry_run=True)
    doc = json.loads(out)
    assert code == 0 and doc["dry_run"] is True and doc["hosts"][0]["result"] == "dry run"
    assert any("mkdir" in line for line in doc["hosts"][0]["plan"])


def test_an_interrupted_run_exits_130_with_its_document(run):
    code, out, _ = run(deploy_tasks.deploy, [blue, blue], json_=True, interrupted=True)
    doc = json.loads(out)
    assert code == 130 and doc["exit_code"] == 130 and {h["result"] for h in doc["hosts"]} == {"skipped"}


def test_a_settings_error_leaves_stdout_empty_and_is_one_line_with_exit_code_2(run):
    code, out, err = run(deploy_tasks.deploy, [blue], json_=True, extra="stop_timeout = 'long'")
    assert (code, out) == (2, "") and err.count("\n") == 1 and "defaults.stop_timeout: expected a number" in err


def test_cleanup_with_json_and_no_yes_asks_on_stderr_or_refuses_without_a_terminal(run, monkeypatch):
    code, out, err = run(cleanup_tasks.cleanup, [two_colours], json_=True)
    assert (code, out) == (2, "") and "add --yes to confirm" in err
    assert "fab cleanup: plan" in err  # the plan it would have asked about: on stderr
    asked = []
    monkeypatch.setattr(report, "confirm", lambda question, console: asked.append(console) or True)
    code, out, err = run(cleanup_tasks.cleanup, [two_colours], json_=True)
    assert asked == [report.err] and code == 0 and "fab cleanup: plan" in err
    assert json.loads(out)["hosts"][0]["result"] == "cleaned"


# --- notifications -----------------------------------------------------------------------------

def notify(hook: Receiver, command: str = "cat > notified.json") -> str:
    return f'[defaults.notify]\nwebhook = "{hook.url}"\ncommand = "{command}"\ntimeout = 5\n'


@pytest.mark.parametrize("name", ["deploy", "rollback", "cleanup", "drain"])
def test_a_run_that_changes_hosts_sends_its_document_once_to_the_webhook_and_the_command(run, tmp_path, name):
    task, options, makers, code = CASES[name]
    with Receiver() as hook:
        got, out, err = run(task, makers, notify=notify(hook), json_=True, **options)
    assert got == code and "warning" not in err
    # once per run, the very document of stdout as it leaves the workstation: no SSH target (issue 19, item 11)
    sent = document.dumps(document.off_workstation(json.loads(out)))
    assert hook.bodies == [sent.encode()]
    assert (tmp_path / "notified.json").read_text() == sent
    assert json.loads(hook.bodies[0])["exit_code"] == code  # a failed deploy (exit 1) notifies too


def test_without_json_the_notification_is_the_same_document(run, tmp_path):
    with Receiver() as hook:
        code, out, _ = run(deploy_tasks.deploy, [blue], notify=notify(hook))
    assert code == 0 and "│" in out
    doc = json.loads(hook.bodies[0])
    assert (doc["task"], doc["ok"], doc["hosts"][0]["result"]) == ("deploy", True, "deployed")


def test_an_interrupted_run_notifies_and_looks_dry_runs_and_settings_errors_do_not(run, tmp_path):
    with Receiver() as hook:
        run(deploy_tasks.deploy, [blue], notify=notify(hook), interrupted=True)
        assert [json.loads(b)["exit_code"] for b in hook.bodies] == [130]
        for task, makers, options in ((inspect_tasks.status, [blue], {}), (inspect_tasks.history, [blue], {}),
                                      (inspect_tasks.check, [blue], {}), (deploy_tasks.deploy, [blue], {"dry_run": True}),
                                      (cleanup_tasks.cleanup, [two_colours], {"dry_run": True})):
            assert run(task, makers, notify=notify(hook), **options)[0] == 0
        assert run(deploy_tasks.deploy, [blue], notify=notify(hook), extra="stop_timeout = 'long'")[0] == 2
    assert len(hook.bodies) == 1


@pytest.mark.parametrize("makers, code", [([blue], 0), (CASES["deploy"][2], 1)])
def test_a_failed_notification_is_a_warning_and_the_exit_code_is_unchanged(run, tmp_path, makers, code):
    with Receiver(status=500) as hook:
        got, out, err = run(deploy_tasks.deploy, makers, notify=notify(hook, "exit 7"), json_=True)
    assert got == code and json.loads(out)["exit_code"] == code
    lines = [line for line in err.splitlines() if line.startswith("warning: notify.")]
    assert len(lines) == 2 and "HTTP 500" in lines[0] and "exit 7" in lines[1], err
    assert "T0KEN" not in err


def test_no_secret_from_the_message_or_a_reason_reaches_the_document_or_the_notification(run, tmp_path):
    message = f"fix login postgres://app:{SECRET}@db/app API_TOKEN={SECRET}"
    failing = [lambda: FakeHost(running={"blue": ALL}, fail=("git pull",))]  # prepare fails, with its output
    with Receiver() as hook:
        code, out, err = run(deploy_tasks.deploy, failing, notify=notify(hook), json_=True,
                             message=message, extra=f'prepare = ["git pull DB_PASSWORD={SECRET}"]')
    doc = json.loads(out)
    assert code == 1 and doc["message"] == "fix login postgres://app:***@db/app API_TOKEN=***"
    assert doc["hosts"][0]["step"] == "prepare" and doc["hosts"][0]["reason"]
    for text in (out, err, hook.bodies[0].decode(), (tmp_path / "notified.json").read_text()):
        assert SECRET not in text


def test_help_shows_json_with_an_example_for_every_task_that_has_it(tmp_path):
    for name in CASES:
        r = subprocess.run([str(FAB), "--search-root", str(ROOT), "--help", name], cwd=tmp_path, capture_output=True,
                           text=True, timeout=60)
        assert r.returncode == 0 and "--json" in r.stdout, (name, r.stdout)
        example = [line.strip() for line in r.stdout.splitlines() if line.strip().startswith(f"fab {name} ")]
        assert example and "--json | jq" in example[0], (name, r.stdout)
