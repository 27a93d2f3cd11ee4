"""--json and notifications on real hosts: each task's stdout is one JSON document (json.loads), with
numbers as numbers and the exit code of the table's run; a deploy, rollback, cleanup and drain tell
[defaults.notify] (a local HTTP server on the workstation's address on the bed, and a local command)
once per run, with that same document, whatever the result."""

from __future__ import annotations

import pytest

import json
from pathlib import Path

from tasks.document import off_workstation
from tests.unit.receiver import Receiver

from .conftest import PORTS, fab, hosts_file, serves, set_version, states

SECRET = "hunter2"
MESSAGE = f"release 2 postgres://app:{SECRET}@db/app API_TOKEN={SECRET}"


def notify(hook: Receiver, folder: Path) -> str:
    """[defaults.notify] as a TOML inline table: the webhook, and a command keeping each body in a file."""
    return f"{{ webhook = \"{hook.url}\", command = 'cat > \"$(mktemp -p {folder} note.XXXXXX)\"', timeout = 10 }}"


def document(res, task: str, code: int) -> dict:
    """The run's stdout as a document: nothing but it there, and the exit code it says."""
    assert res.returncode == code, res.stderr
    doc = json.loads(res.stdout)
    assert (doc["task"], doc["exit_code"], doc["ok"]) == (task, code, code == 0)
    assert SECRET not in res.stdout + res.stderr
    return doc


def hosts_of(doc: dict) -> dict[str, dict]:
    return {h["host"]: h for h in doc["hosts"]}


def notes(folder: Path) -> list[str]:
    return [p.read_text() for p in sorted(folder.glob("note.*"), key=lambda p: p.stat().st_mtime_ns)]


def test_every_task_prints_one_document_and_the_changing_ones_notify(bed, hosts, tmp_path):
    h1, h2 = hosts[0], hosts[1]
    folder = tmp_path / "notes"
    folder.mkdir()
    with Receiver(host=bed.bridge_ip) as hook:
        path = str(hosts_file(tmp_path, bed, notify=notify(hook, folder)))
        on = ["--host", "h1", "--host", "h2", "--hosts-file", path]

        checked = hosts_of(document(fab("check", *on, "--json"), "check", 0))
        assert checked["h1"]["ok"] is True and {c["result"] for c in checked["h1"]["checks"]} <= {"ok", "warn"}
        assert any(c["name"] == "ssh" for c in checked["h2"]["checks"])

        first_run = fab("deploy", *on, "--json", "--message", MESSAGE)
        first = document(first_run, "deploy", 0)
        assert first["message"] == "release 2 postgres://app:***@db/app API_TOKEN=***"
        for h in first["hosts"]:
            assert (h["from"], h["to"], h["result"], h["ok"]) == (None, "blue", "deployed", True)
            assert isinstance(h["seconds"], float) and h["seconds"] > 0 and isinstance(h["tries"], int)
            assert h["live_version"].startswith("web@") and h["plan"] is None
        set_version(h1, "2")
        set_version(h2, "2")
        second = fab("deploy", *on, "--json")
        assert hosts_of(document(second, "deploy", 0))["h1"]["to"] == "green"
        assert "fab cleanup --host h1 --host h2" in second.stderr  # no offer; the command on stderr
        assert serves(h1) == "green 2"

        status = hosts_of(document(fab("status", *on, "--json"), "status", 0))
        assert status["h1"]["live"] == "green" and status["h1"]["health"] == {"http_code": 200, "ok": True}
        assert status["h1"]["colors"]["green"]["services"] == dict.fromkeys(["beat", "redis", "web", "worker"], "running")
        assert status["h1"]["colors"]["blue"]["services"]["worker"] == "exited"

        history = hosts_of(document(fab("history", "--host", "h1", "--hosts-file", path, "--json"), "history", 0))
        deploys = [a for a in history["h1"]["actions"] if a["action"] == "deploy"]
        assert [(a["from"], a["to"], a["result"]) for a in deploys] == [(None, "blue", "deployed"),
                                                                        ("blue", "green", "deployed")]
        assert deploys[0]["message"] == first["message"]

        back = hosts_of(document(fab("rollback", "--host", "h1", "--hosts-file", path, "--json"), "rollback", 0))
        assert (back["h1"]["from"], back["h1"]["to"], back["h1"]["result"]) == ("green", "blue", "deployed")
        assert serves(h1) == "blue 1"

        drained = hosts_of(document(fab("drain", "--host", "h1", "--hosts-file", path, "--json"), "drain", 0))
        assert drained["h1"]["result"] == "nothing to drain" and drained["h1"]["waited"] == {"celery": 0}

        asked = fab("cleanup", "--host", "h1", "--hosts-file", path, "--json")  # no --yes, no terminal
        assert (asked.returncode, asked.stdout) == (2, "") and "add --yes" in asked.stderr
        cleaned = hosts_of(document(fab("cleanup", "--host", "h1", "--hosts-file", path, "--json", "--yes"),
                                    "cleanup", 0))
        assert (cleaned["h1"]["remove"], cleaned["h1"]["keep"], cleaned["h1"]["result"]) == ("green", "blue", "cleaned")
        assert "app-green-web (running)" in cleaned["h1"]["containers"]
        assert states(h1, "green") == {} and serves(h1) == "blue 1"

    # deploy, deploy, rollback, drain, cleanup (the refused cleanup ran nothing): once each, from the
    # workstation, the very document of stdout to both
    bodies = [body.decode() for body in hook.bodies]
    assert [json.loads(b)["task"] for b in bodies] == ["deploy", "deploy", "rollback", "drain", "cleanup"]
    assert set(hook.clients) == {bed.bridge_ip}
    assert bodies[0] == first_run.stdout.rstrip("\n")
    assert notes(folder) == bodies
    assert SECRET not in "".join(bodies)


@pytest.mark.unlike
def test_a_failing_deploy_exits_1_with_its_document_and_a_failing_webhook_changes_no_exit_code(bed, hosts, tmp_path):
    h1 = hosts[0]
    folder = tmp_path / "notes"
    folder.mkdir()
    with Receiver(host=bed.bridge_ip, status=500) as hook:
        path = str(hosts_file(tmp_path, bed, notify=notify(hook, folder),
                              health="{ retries = 3, interval = 0.5, timeout = 2 }"))
        on = ["--host", "h1", "--hosts-file", path, "--json"]
        ok = document(fab("deploy", *on), "deploy", 0)  # the webhook answers 500: a warning, still exit 0
        set_version(h1, "2", mode="web-unhealthy")
        failed = fab("deploy", *on)
        doc = document(failed, "deploy", 1)
    (h,) = doc["hosts"]
    assert (h["result"], h["ok"], h["step"], h["tries"], h["from"], h["to"]) == \
        ("rolled back", False, "health check", 3, "blue", "green")
    assert f"127.0.0.1:{PORTS['green']}/health/ gave HTTP 404 after 3 tries" in h["reason"]
    assert h["failed_service"] == "web" and "logs" in h["logs_command"]
    assert serves(h1) == "blue 1"
    warnings = [line for line in failed.stderr.splitlines() if line.startswith("warning: notify.webhook")]
    assert len(warnings) == 1 and "HTTP 500" in warnings[0] and "T0KEN" not in failed.stderr
    assert [json.loads(b)["exit_code"] for b in hook.bodies] == [0, 1]  # sent, and answered 500, both times
    # the command got them all the same, as they leave the workstation: no SSH target (issue 19, item 11)
    sent = [json.loads(n) for n in notes(folder)]
    assert sent == [off_workstation(ok), off_workstation(doc)]
    assert sent[1]["hosts"][0]["logs_command"].startswith("ssh <ssh target> ")
