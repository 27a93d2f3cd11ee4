"""The --json document (tasks/document.py): its shape per task, numbers as numbers, null where the
table shows "-", every text masked as the table's is, and every field named in docs/json.md."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from tasks import document
from tasks.config.schema import Color
from tasks.host.check import CheckResult
from tasks.host.inspect import ColorStatus, HostStatus
from tasks.result import (CLEANED, DEPLOYED, DRAINED, ROLLED_BACK, CleanupResult, DeployResult, DrainResult,
                          Outcome, result_for)

ROOT = Path(__file__).resolve().parents[2]
SECRET = "hunter2"
HOSTILE = f"gave \x1b]52;c;eA==\x07\x1b[2J postgres://app:{SECRET}@db/app API_TOKEN={SECRET}"

TOP = ["format", "task", "ok", "exit_code", "dry_run", "message", "user", "time", "hosts"]
OUTCOME = ["result", "ok", "step", "seconds", "reason", "warnings", "plan"]
DEPLOY = ["host", "from", "to", *OUTCOME, "tries", "live_version", "shipped", "host_load", "warm_up_cap", "left",
          "failed_service", "logs_command", "log_tail"]
CLEANUP = ["host", "remove", "containers", "keep", "live_version", "connections_cut", *OUTCOME]
DRAIN = ["host", "drained", "waited", "live", *OUTCOME]
STATUS = ["host", "ok", "error", "live", "since", "colors", "shared", "health", "lock", "last_action", "guard"]
HISTORY = ["host", "ok", "error", "actions"]
HISTORY_LINE = ["time", "action", "user", "from", "to", "result", "step", "reason", "message", "versions", "uploaded"]
CHECK = ["host", "ok", "checks"]


def roundtrip(doc: dict) -> dict:
    """What a consumer reads: the text fab prints, parsed."""
    text = document.dumps(doc)
    assert text.isascii() and "\x1b" not in text
    return json.loads(text)


def deploy_results() -> list[DeployResult]:
    return [
        DeployResult("pi5", "deploy", DEPLOYED, Color.BLUE, Color.GREEN, tries=2, seconds=7.256, version="web@abc",
                     cap="1 CPU for 30 s", host_load="peak CPU 90 %"),
        DeployResult("vm1", "deploy", ROLLED_BACK, Color.BLUE, Color.GREEN, "health check", "gave HTTP 500",
                     tries=10, left=["nginx: put it back"], warnings=["slow"], failed_service="web",
                     logs_command="docker compose -p app-green logs web", log_tail="boom"),
        result_for("deploy", "pi9", outcome=Outcome.UNREACHABLE, step="connect", reason="no route to host"),
    ]


def test_the_deploy_document_has_the_tables_fields_with_numbers_as_numbers():
    doc = roundtrip(document.document("deploy", document.deploy_hosts(deploy_results()), 1, message="v2"))
    assert list(doc) == TOP
    assert (doc["format"], doc["task"], doc["ok"], doc["exit_code"], doc["dry_run"], doc["message"]) == \
        (1, "deploy", False, 1, False, "v2")
    assert "@" in doc["user"] and re.match(r"\d{4}-\d\d-\d\dT", doc["time"])
    pi5, vm1, pi9 = doc["hosts"]
    assert all(list(h) == DEPLOY for h in doc["hosts"])
    assert pi5 == {"host": "pi5", "from": "blue", "to": "green", "result": "deployed", "ok": True, "step": None,
                   "seconds": 7.26, "reason": None, "warnings": [], "plan": None, "tries": 2,
                   "live_version": "web@abc", "shipped": None, "host_load": "peak CPU 90 %", "warm_up_cap": "1 CPU for 30 s",
                   "left": [], "failed_service": None, "logs_command": None, "log_tail": None}
    assert (vm1["result"], vm1["ok"], vm1["step"], vm1["tries"], vm1["reason"]) == \
        ("rolled back", False, "health check", 10, "gave HTTP 500")
    assert (vm1["left"], vm1["warnings"], vm1["failed_service"], vm1["log_tail"]) == \
        (["nginx: put it back"], ["slow"], "web", "boom")
    # where the table shows "-": null (no health check made, nothing live)
    assert (pi9["result"], pi9["from"], pi9["to"], pi9["tries"], pi9["live_version"], pi9["seconds"]) == \
        ("unreachable", None, None, None, None, 0.0)


def test_a_dry_run_carries_its_plan():
    r = DeployResult("pi5", "deploy", Outcome.DRY_RUN, None, Color.BLUE, plan=["# reads: docker ps", "mkdir x"])
    doc = roundtrip(document.document("deploy", document.deploy_hosts([r]), 0, dry_run=True))
    assert doc["dry_run"] is True and doc["hosts"][0]["plan"] == ["# reads: docker ps", "mkdir x"]


def test_the_cleanup_and_drain_documents():
    cleaned = CleanupResult("pi5", "cleanup", CLEANED, Color.GREEN, Color.BLUE, seconds=1.5, version="web@abc",
                            removes=["app-green-web (running)", "app-green-redis (running)"])
    nothing = CleanupResult("vm1", "cleanup", Outcome.NOTHING, None, Color.BLUE, version="web@abc")
    doc = roundtrip(document.document("cleanup", document.cleanup_hosts([cleaned, nothing]), 0))
    assert all(list(h) == CLEANUP for h in doc["hosts"])
    assert doc["hosts"][0] == {"host": "pi5", "remove": "green", "containers": cleaned.removes, "keep": "blue",
                                    "live_version": "web@abc", "connections_cut": None, "result": "cleaned", "ok": True, "step": None,
                                    "seconds": 1.5, "reason": None, "warnings": [], "plan": None}
    assert (doc["hosts"][1]["remove"], doc["hosts"][1]["containers"]) == (None, [])

    drained = DrainResult("pi5", "drain", DRAINED, Color.GREEN, Color.BLUE, seconds=3.0, queued={"celery": 3, "mail": 0})
    skipped = result_for("drain", "vm1", outcome=Outcome.SKIPPED, reason="not started")
    doc = roundtrip(document.document("drain", document.drain_hosts([drained, skipped]), 1))
    assert all(list(h) == DRAIN for h in doc["hosts"])
    assert doc["hosts"][0]["waited"] == {"celery": 3, "mail": 0} and doc["hosts"][0]["drained"] == "green"
    assert doc["hosts"][0]["live"] == "blue" and doc["hosts"][1]["waited"] is None


def test_the_status_document():
    up = HostStatus("pi5", live="green", since="2026-01-02T03:04:05+00:00", health=200, lock="",
                    colors={"blue": ColorStatus("web@abc", {"web": "running", "worker": "exited"}),
                            "green": ColorStatus("web@def", {"web": "running", "worker": "running"}, "on")},
                    shared={"broker": "running"}, last="2026-01-02T03:04:05+00:00 deploy blue->green deployed (a@b)")
    failing = HostStatus("vm1", live="blue", health=0, colors={"blue": ColorStatus("web@abc", {"web": "running"})})
    unread = HostStatus("pi9", False, "cannot connect")
    doc = roundtrip(document.document("status", document.status_hosts([up, failing, unread]), 1))
    assert all(list(h) == STATUS for h in doc["hosts"])
    pi5, vm1, pi9 = doc["hosts"]
    assert pi5["health"] == {"http_code": 200, "ok": True} and vm1["health"] == {"http_code": 0, "ok": False}
    assert pi5["colors"]["green"] == {"version": "web@def", "services": {"web": "running", "worker": "running"},
                                      "warm_up_cap": "on"}
    assert pi5["colors"]["blue"]["warm_up_cap"] is None and list(vm1["colors"]) == ["blue"]
    assert (pi5["shared"], vm1["shared"], pi5["lock"], pi5["since"]) == \
        ({"broker": "running"}, None, None, "2026-01-02T03:04:05+00:00")
    assert (pi9["ok"], pi9["error"], pi9["live"], pi9["health"], pi9["colors"]) == (False, "cannot connect", None, None, {})


def test_the_history_document_takes_only_texts_from_the_host():
    good = {"time": "2026-01-02T03:04:05+00:00", "action": "deploy", "user": "ann@laptop", "host": "pi5",
            "from": "blue", "to": "green", "result": "deployed", "step": "", "message": "v2",
            "versions": {"blue": "web@abc", "green": "-"}, "token": "abcdef"}
    odd = {"action": "?", "reason": "a line of ~/app/.fab-bluegreen/app.history.jsonl is a list", "time": 5,
           "versions": ["x"]}
    doc = roundtrip(document.document("history", document.history_hosts(
        ["pi5", "vm1"], [[good, odd], [{"action": "unreachable", "reason": "cannot connect"}]], ["vm1"]), 1))
    assert all(list(h) == HISTORY for h in doc["hosts"])
    pi5, vm1 = doc["hosts"]
    assert [list(line) for line in pi5["actions"]] == [HISTORY_LINE, HISTORY_LINE]
    assert pi5["actions"][0] == {"time": "2026-01-02T03:04:05+00:00", "action": "deploy", "user": "ann@laptop",
                                 "from": "blue", "to": "green", "result": "deployed", "step": None, "reason": None,
                                 "message": "v2", "versions": {"blue": "web@abc", "green": None}, "uploaded": None}
    assert pi5["actions"][1]["time"] is None and pi5["actions"][1]["versions"] is None
    assert (vm1["ok"], vm1["error"], vm1["actions"]) == (False, "cannot connect", [])


def test_the_check_document():
    rows = [CheckResult([("ok", "ssh", "deploy@pi5"), ("warn", "disk", "9 % free")]),
            CheckResult([("fail", "ssh", "cannot connect")])]
    doc = roundtrip(document.document("check", document.check_hosts(["pi5", "vm1"], rows), 1))
    assert all(list(h) == CHECK for h in doc["hosts"])
    assert doc["hosts"][0] == {"host": "pi5", "ok": True, "checks": [
        {"name": "ssh", "result": "ok", "detail": "deploy@pi5"}, {"name": "disk", "result": "warn", "detail": "9 % free"}]}
    assert doc["hosts"][1]["ok"] is False


def test_no_credential_and_no_escape_sequence_reaches_the_document():
    r = DeployResult("pi5", "deploy", ROLLED_BACK, Color.BLUE, Color.GREEN, "after_front", HOSTILE, left=[HOSTILE],
                     warnings=[HOSTILE], log_tail=HOSTILE, version=HOSTILE, plan=[HOSTILE])
    # keys are never masked (issue 19, item 3), but lose their control characters
    status = HostStatus("vm1", live="blue", lock=HOSTILE, colors={"blue": ColorStatus(HOSTILE, {"web\x1b[2J": HOSTILE})})
    history = {"action": "deploy", "reason": HOSTILE, "message": HOSTILE, "versions": {"blue": HOSTILE}}
    for doc in (document.document("deploy", document.deploy_hosts([r]), 1, message=f"fix {HOSTILE}"),
                document.document("status", document.status_hosts([status]), 0),
                document.document("history", document.history_hosts(["pi5"], [[history]], []), 0)):
        text = document.dumps(doc)
        assert SECRET not in text and "\\u001b" not in text and "\\u0007" not in text, text
        assert "postgres://app:***@db/app" in text and "API_TOKEN=***" in text


def readme_json_section() -> str:
    """docs/json.md, the --json reference the README links to."""
    return (ROOT / "docs" / "json.md").read_text()


@pytest.mark.parametrize("fields", [TOP, DEPLOY, CLEANUP, DRAIN, STATUS, HISTORY, HISTORY_LINE, CHECK,
                                    ["version", "services", "warm_up_cap", "http_code", "name", "detail"]])
def test_the_readme_names_every_field(fields):
    section = readme_json_section()
    missing = [f for f in fields if f"`{f}`" not in section]
    assert not missing, f"docs/json.md: no `field` for {missing}"
