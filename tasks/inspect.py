"""Read-only looks at a host, and freeing a lock left behind: status, history, logs, unlock.

Each returns plain rows for the report; none takes the deploy lock (none changes the app)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field

from . import commands as cmd
from . import lock
from .errors import Refused, Unreachable
from .facts import find_live, parse, version
from .remote import Remote
from .settings import COLORS, HostSettings


@dataclass
class HostStatus:
    host: str
    ok: bool = True
    error: str = ""
    live: str | None = None
    since: str = ""
    colors: dict[str, str] = field(default_factory=dict)  # colour -> "version: web running, ..."
    health: str = ""
    lock: str = ""
    guard: str = ""
    last: str = ""
    shared: str = ""  # the shared services and their states, e.g. "broker running"


def status(remote: Remote, s: HostSettings) -> HostStatus:
    row = HostStatus(host=s.name)
    res = remote.read(cmd.status(s), s.timeouts.command)
    if f"{cmd.MARK}containers" not in res.stdout:
        row.ok, row.error = False, f"cannot read the host: {res.why()}"
        return row
    facts = parse(res.stdout)
    try:
        row.live = find_live(s, facts)
    except Refused as e:
        row.error = str(e)
    row.since = (facts.record or {}).get("since", "")[:16].replace("T", " ") if row.live else ""
    for color in COLORS:
        services = facts.services(s, color)
        if services:
            by_state: dict[str, list[str]] = {}
            for name, c in sorted(services.items()):
                by_state.setdefault(c.state, []).append(name)
            states = "; ".join(f"{' '.join(names)} {state}" for state, names in sorted(by_state.items(), reverse=True))
            cap = " (warm-up cap on)" if color in facts.capped else ""
            row.colors[color] = f"{version(s, facts, color)}: {states}{cap}"
    if s.shared:
        present = facts.services(s, cmd.SHARED)
        row.shared = ", ".join(f"{name} {present[name].state if name in present else 'missing'}" for name in s.shared)
    if row.live:
        code = facts.health.get(row.live, "000")
        row.health = f"{code} {'ok' if code[:1] in '23' else 'FAILING'}"
    row.lock = lock.holder(facts.lock) if facts.lock else ""
    row.guard = summary(facts.last_guard) if facts.last_guard else ""
    row.last = summary(facts.last) if facts.last else ""
    return row


def summary(line: dict) -> str:
    """One history line in words: "2026-11-28T09:00:00+00:00 deploy blue->green deployed (alice@laptop)"."""
    move = f"{line.get('from') or '-'}->{line.get('to') or '-'}"
    why = f" at {line['step']}: {line.get('reason', '')}" if line.get("step") else ""
    return f"{line.get('time', '?')} {line.get('action', '?')} {move} {line.get('result', '?')}{why} ({line.get('user', '?')})"


def history(remote: Remote, s: HostSettings, lines: int) -> list[dict]:
    res = remote.read(cmd.history(s, lines), s.timeouts.command)
    rows = []
    for text in res.stdout.splitlines():
        try:
            rows.append(json.loads(text))
        except json.JSONDecodeError:
            rows.append({"action": "?", "reason": text[:200]})
    return rows


def logs(remote: Remote, s: HostSettings, service: str | None, color: str | None, lines: int) -> tuple[str, str]:
    """The last lines of a colour's services: by default the failed ones of the last deploy."""
    if not color or not service:
        last = (history(remote, s, 1) or [{}])[-1]
        if last.get("result") in ("rolled back", "failed", "interrupted"):
            color = color or last.get("to")
            service = service or last.get("service")
        if not color:
            res = remote.read(cmd.facts(s), s.timeouts.command)
            color = find_live(s, parse(res.stdout)) if res.ok else None
    if color not in COLORS:
        raise Refused("no colour to show: name one with --colour blue|green")
    command = cmd.compose(s, color, "logs", "--no-color", "--tail", str(int(lines)), *([service] if service else []))
    res = remote.read(command, s.timeouts.command)
    return f"{s.name}: {cmd.project(s, color)} {service or 'all services'}", (res.stdout + res.stderr).strip()


def unlock(remote: Remote, s: HostSettings) -> str:
    """Remove the lock; say whose it was."""
    try:
        res = remote.run(cmd.force_unlock(s), s.timeouts.command)
    except Unreachable as e:
        return f"unreachable: {e}"
    if not res.ok:
        return f"could not remove the lock: {res.why()}"
    return f"removed the lock of {lock.holder(res.stdout)}" if res.stdout.startswith("held") else "no lock"
