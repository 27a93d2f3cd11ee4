"""The --json document: what a task did, per host, as one JSON object; also the notification's body.

Built from the result objects (tasks/result.py, and the looks' rows), never from the table, in one
shape for every task (README, "--json", names every field):

    {"format": 1, "task": "deploy", "ok": false, "exit_code": 1, "dry_run": false, "message": null,
     "user": "alice@laptop", "time": "2026-01-02T03:04:05+00:00", "hosts": [{"host": "pi5", ...}, ...]}

The fields of a host are the table's columns, with numbers as numbers (seconds, tries, counts, HTTP
codes) and null where the table shows "-". Every text is free of control characters; every free
text (not a key, nor a fixed word: FIXED) goes through shown() (tasks/mask.py), as the table's does. FORMAT changes only when a field changes its
meaning or goes away (fields may be added).

The notification's body is the same document without the hosts' SSH targets (off_workstation()).

Pure: no I/O but the user's name and the clock (tasks/shell/record.py)."""

from __future__ import annotations

import json
import re
from typing import Any, Iterable

from .mask import printable, shown
from .result import CleanupResult, DeployResult, DrainResult, HostResult, SetupResult
from .shell.record import now, who

FORMAT = 1
SSH_TARGET = "<ssh target>"  # what stands for an SSH target in the notification's body


def document(task: str, hosts: list[dict], exit_code: int, message: str = "", dry_run: bool = False) -> dict:
    """The whole document: the run, then one object per host (in the order the hosts were named)."""
    return masked({"format": FORMAT, "task": task, "ok": exit_code == 0, "exit_code": exit_code,
                   "dry_run": dry_run, "message": message or None, "user": who(), "time": now(), "hosts": hosts})


def dumps(doc: dict) -> str:
    """The document as text: indented, ASCII only (anything else as \\u escapes)."""
    return json.dumps(doc, indent=2)


# Fields whose values are the tool's own words or names it checked (a task, a result, a colour, a
# step, a host, a service, the user): never masked, or a secret "deploy" would turn "task": "deploy"
# into "task": "***". Keys are never masked either.
FIXED = frozenset({"task", "user", "time", "host", "result", "step", "from", "to", "live", "keep", "remove",
                   "drained", "name", "action", "failed_service", "containers"})


def masked(value: Any, fixed: bool = False) -> Any:
    """The value with every text free of control characters, and every free text (a reason, command
    output, a message, a host's text) through shown(): what the table would show of it."""
    if isinstance(value, str):
        return printable(value) if fixed else shown(value)
    if isinstance(value, dict):
        return {printable(str(k)): masked(v, fixed or k in FIXED) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [masked(v, fixed) for v in value]
    return value


# What names an SSH target in free text (tasks/host/remote.py's reasons and hints, a deploy's
# logs_command): user@host:port as remote.py writes it (a version such as web@3f2a1c is no
# target), and the host a hint or a host-key refusal names.
_TARGETS = (
    (re.compile(r"^ssh \S+ "), f"ssh {SSH_TARGET} "),  # logs_command
    (re.compile(r"(?<![\w.+-])\w[\w.-]*@(?:\[[^\]\s]+\]|\w[\w.-]*):\d+(?![\w.])"), SSH_TARGET),  # user@host:port
    (re.compile(r"(ssh-keygen -R |ssh-keyscan -p \d+ |`ssh (?:-p \d+ )?|\bthe host key of (?:the jump host )?"
                r"|\bUnable to connect to port \d+ on )"
                r"(?!<ssh target>)('[^']*'|[^\s`':]+(?::\d+)?)"), rf"\1{SSH_TARGET}"),
)


def off_workstation(value: Any, fixed: bool = False) -> Any:
    """The document as it may leave the workstation (the notification's body): its free texts
    without the hosts' SSH targets (the table and --json on stdout keep them)."""
    if isinstance(value, str):
        if not fixed:
            for pattern, put in _TARGETS:
                value = pattern.sub(put, value)
        return value
    if isinstance(value, dict):
        return {k: off_workstation(v, fixed or k in FIXED) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [off_workstation(v, fixed) for v in value]
    return value


def _text(value: object) -> str | None:
    """A text cell: null where the table shows "-" (nothing, or "-" itself)."""
    return value if isinstance(value, str) and value not in ("", "-") else None


def _outcome(r: HostResult) -> dict:
    """What every action's row says, after the action's own columns."""
    return {"result": str(r.outcome) or None, "ok": r.ok, "step": _text(r.step), "seconds": round(r.seconds, 2),
            "reason": _text(r.reason), "warnings": list(r.warnings), "plan": list(r.plan) if r.plan else None}


def deploy_hosts(results: Iterable[DeployResult]) -> list[dict]:
    """deploy and rollback: the deploy table's columns, "why" split into reason, left and warnings."""
    return [{"host": r.host, "from": r.from_color, "to": r.to_color, **_outcome(r), "tries": r.tries or None,
             "live_version": _text(r.version), "shipped": dict(r.shipped) if r.shipped is not None else None,
             "host_load": _text(r.host_load), "warm_up_cap": _text(r.cap),
             "left": list(r.left), "failed_service": _text(r.failed_service),
             "logs_command": _text(r.logs_command), "log_tail": _text(r.log_tail)} for r in results]


def cleanup_hosts(results: Iterable[CleanupResult]) -> list[dict]:
    return [{"host": r.host, "remove": r.from_color, "containers": list(r.removes), "keep": r.to_color,
             "live_version": _text(r.version), "connections_cut": r.cut, **_outcome(r)} for r in results]


def drain_hosts(results: Iterable[DrainResult]) -> list[dict]:
    return [{"host": r.host, "drained": r.from_color, "waited": dict(r.queued) or None, "live": r.to_color,
             **_outcome(r)} for r in results]


def setup_hosts(results: Iterable[SetupResult]) -> list[dict]:
    return [{"host": r.host, "done": list(r.done), "kept": list(r.kept), **_outcome(r)} for r in results]


def status_hosts(rows) -> list[dict]:
    """fab status: tasks/host/inspect.py's HostStatus rows."""
    return [{"host": r.host, "ok": r.ok, "error": _text(r.error), "live": r.live, "since": _text(r.since),
             "colors": {c: {"version": _text(cs.version), "services": dict(cs.services), "warm_up_cap": _text(cs.cap)}
                        for c, cs in r.colors.items()},
             "shared": dict(r.shared) or None,
             "health": {"http_code": r.health, "ok": r.healthy} if r.health is not None else None,
             "lock": _text(r.lock), "last_action": _text(r.last), "guard": _text(r.guard)} for r in rows]


HISTORY_TEXTS = ("time", "action", "user", "from", "to", "result", "step", "reason", "message")


def history_hosts(hosts: list[str], rows: list[list[dict]], unread: list[str]) -> list[dict]:
    """fab history: per host its lines, oldest first; a host that could not be read has its error."""
    found = []
    for host, lines in zip(hosts, rows):
        if host in unread:
            error = next((line.get("reason") for line in lines if isinstance(line.get("reason"), str)), "")
            found.append({"host": host, "ok": False, "error": _text(error) or "could not be read", "actions": []})
        else:
            found.append({"host": host, "ok": True, "error": None, "actions": [_history_line(line) for line in lines]})
    return found


def _history_line(line: dict) -> dict:
    """The table's fields of one history line. Host text: only strings are taken, anything else is null."""
    entry: dict[str, Any] = {key: _text(line.get(key)) for key in HISTORY_TEXTS}
    versions = line.get("versions")
    entry["versions"] = ({str(c): _text(v) for c, v in versions.items()} if isinstance(versions, dict) else None)
    uploaded = line.get("uploaded")  # upload: file name -> the first 12 hex digits of its sha256
    entry["uploaded"] = ({str(f): _text(h) for f, h in uploaded.items()} if isinstance(uploaded, dict) else None)
    return entry


def check_hosts(hosts: list[str], rows) -> list[dict]:
    """fab check: per host its checks (tasks/host/check.py's CheckResult rows) in the table's order."""
    return [{"host": host, "ok": row.ok,
             "checks": [{"name": name, "result": level, "detail": detail} for level, name, detail in row.items]}
            for host, row in zip(hosts, rows)]
