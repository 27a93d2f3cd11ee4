"""Read-only looks at a host, and freeing a lock left behind: status, history, logs, unlock.

Each returns plain rows for the report; none takes the deploy lock (none changes the app)."""

from __future__ import annotations

from dataclasses import dataclass, field

from ..config.schema import COLORS, NAME, HostSettings
from ..errors import Refused, Unreachable
from ..result import FAILED, INTERRUPTED, ROLLED_BACK
from ..shell import base, compose, cpu, guard, journal, probe, state
from ..shell.record import history_problem, loads
from . import lock, secrets
from .facts import bad_file, find_live, parse, restart_off, version
from .remote import Remote


@dataclass
class ColorStatus:
    """What one colour runs on the host."""
    version: str  # e.g. "web@3f2a1c" (facts.version)
    services: dict[str, str]  # service -> its container's state (running, exited, restarting, ...)
    cap: str = ""  # the warm-up cap: "on", or that it is still on with its lift gone (and how to lift it)
    restart: str = ""  # services whose restart policy is not the compose file's (facts.restart_off)


@dataclass
class HostStatus:
    host: str
    ok: bool = True
    error: str = ""
    live: str | None = None
    since: str = ""  # when the live colour went live (the record's ISO time)
    colors: dict[str, ColorStatus] = field(default_factory=dict)  # only the colours that have containers
    health: int | None = None  # the live colour's HTTP code on its port (0: no answer); None: nothing live
    lock: str = ""
    guard: str = ""
    last: str = ""
    shared: dict[str, str] = field(default_factory=dict)  # each shared service's state, or "missing"
    staged: str = ""  # a colour staged by deploy --no-switch, e.g. "green (port 18002)"

    @property
    def healthy(self) -> bool:
        return self.health is not None and 200 <= self.health < 400


def status(remote: Remote, s: HostSettings) -> HostStatus:
    row = HostStatus(host=s.name)
    res = remote.read(probe.status(s), s.timeouts.command)
    if f"{base.MARK}containers" not in res.stdout:
        row.ok, row.error = False, f"cannot read the host: {res.why()}"
        return row
    facts = parse(res.stdout)
    # a bad history line is shown in its own column: the live colour can still be told
    last_problem = bad_file(s, facts, "history")
    facts.bad.pop("history", None)
    try:
        row.live = find_live(s, facts)
    except Refused as e:
        row.error = str(e)
    row.since = ((facts.record.since if facts.record else None) or "") if row.live else ""
    for color in COLORS:
        services = facts.services(s, color)
        if services:
            cap = "on" if color in facts.capped else ""
            if color in facts.stuck_caps:
                cap = (f"STILL ON, its lift is gone: the next deploy lifts it, or run "
                       f"`sh {base.remote_path(f'{s.dir}/{cpu.lift_file(s, color)}.sh')}` on the host")
            row.colors[color] = ColorStatus(version(s, facts, color),
                                            {name: c.state for name, c in sorted(services.items())}, cap,
                                            restart_off(s, facts, color))
    row.staged = staged(s, facts)
    if s.shared:
        present = facts.services(s, compose.SHARED)
        row.shared = {name: present[name].state if name in present else "missing" for name in s.shared}
    if row.live:
        code = facts.health.get(row.live, "000")  # host text: curl's three digits, 000 when no answer
        row.health = int(code) if code.isascii() and code.isdigit() else 0
    row.lock = lock.holder(facts.lock, s) if facts.lock else ""
    if facts.lock and facts.stale:
        why = "interrupted by a reboot" if facts.stale == guard.REBOOT else facts.stale
        undo = f"puts the host back ({'; '.join(facts.undo)}), frees the lock" if facts.undo else "frees the lock"
        row.lock += f"; {why}: the next deploy, rollback, promote, cleanup or drain {undo}, and goes on"
    elif facts.lock and facts.undo:
        row.lock += f"; in flight; its undo: {'; '.join(facts.undo)}"
    row.guard = summary(facts.last_guard) if facts.last_guard else bad_file(s, facts, "guard") or ""
    row.last = summary(facts.last) if facts.last else last_problem or ""
    return row


def staged(s: HostSettings, facts) -> str:
    """The staged colour and its port (to try it with curl on the host), and its web if it is not running."""
    color = facts.record.staged if facts.record else None
    if color is None:
        return ""
    web = facts.services(s, color).get(s.web)
    down = "" if web and web.state == "running" else f", its {s.web} {web.state if web else 'missing'}"
    return f"{color} (port {s.port(color)}{down})"


def summary(line: dict) -> str:
    """One history line in words: "2026-11-28T09:00:00+00:00 deploy blue->green deployed (alice@laptop)"."""
    move = f"{line.get('from') or '-'}->{line.get('to') or '-'}"
    why = f" at {line['step']}: {line.get('reason', '')}" if line.get("step") else ""
    return f"{line.get('time', '?')} {line.get('action', '?')} {move} {line.get('result', '?')}{why} ({line.get('user', '?')})"


def history(remote: Remote, s: HostSettings, lines: int) -> list[dict]:
    """The last lines of the history, oldest first, read from its end within a byte cap (a line of
    60 MB cannot stall the read). A line that is not as fab-bluegreen writes it is skipped; one row
    at the end counts them. A read that failed (or timed out) is Refused, never an empty history."""
    res = remote.read(state.history(s, lines), s.timeouts.command)
    if not res.ok:
        raise Refused(f"cannot read the history {s.dir}/{state.history_path(s)}: {res.why()}")
    rows, skipped, first = [], 0, ""
    for text in res.stdout.splitlines():
        try:
            line = loads(text) if text != state.HISTORY_CUT else None
            why = history_problem(line) if text != state.HISTORY_CUT else "is over the read's byte cap"
        except ValueError:
            why = "is not valid JSON"
        if why:
            skipped, first = skipped + 1, first or why
        else:
            rows.append(line)
    if skipped:
        rows.append({"action": "?", "reason": f"skipped {skipped} line{'s' if skipped > 1 else ''} of "
                     f"{s.dir}/{state.history_path(s)} not as fab-bluegreen writes them (the first {first})"})
    return rows


def logs(remote: Remote, s: HostSettings, service: str | None, color: str | None, lines: int) -> tuple[str, str]:
    """The last lines of a colour's services: by default the failed ones of the last deploy."""
    if not color or not service:
        last = (history(remote, s, 1) or [{}])[-1]
        if last.get("result") in (ROLLED_BACK, FAILED, INTERRUPTED):
            color = color or last.get("to")
            named = last.get("service")  # host text: a service name, or nothing (never an option)
            service = service or (named if isinstance(named, str) and NAME.match(named) else None)
        if not color:
            res = remote.read(probe.facts(s), s.timeouts.command)
            color = find_live(s, parse(res.stdout)) if res.ok else None
    if color not in COLORS:
        raise Refused("no colour to show: name one with --colour blue|green")
    secrets.hide_written(remote, s, color)  # the colour's own secrets, masked in what it logged
    command = compose.compose(s, color, "logs", "--no-color", "--tail", str(int(lines)), *([service] if service else []))
    res = remote.read(command, s.timeouts.command)
    return f"{s.name}: {compose.project(s, color)} {service or 'all services'}", (res.stdout + res.stderr).strip()


@dataclass
class LockLook:
    """A host's deploy lock as fab unlock shows it, and the guard of the run that holds it."""
    host: str
    error: str = ""  # the host could not be read
    held: bool = False
    holder: str = ""  # "alice@laptop (deploy, since ...) for 42 s"
    token: str = ""  # the holding run's token ("" for a lock without readable info)
    since: str = ""  # the lock's mtime, epoch seconds
    guard: str = ""  # "armed: acts in 40 s unless fab is heard from", or why not
    plan: list[str] = field(default_factory=list)  # what that guard would do: its run's undo journal, newest first


def read_lock(remote: Remote, s: HostSettings) -> LockLook:
    """Who holds the lock, and whether that run's guard is armed and what it would do (reads only)."""
    res = remote.read(state.look_lock(s, journal.show(s)), s.timeouts.command)
    if not res.ok:
        raise Refused(f"cannot read the lock: {res.why()}")
    head, _, tail = res.stdout.partition(f"{base.MARK}guard\n")
    look = LockLook(host=s.name, held=head.startswith("held"))
    if not look.held:
        return look
    look.holder = lock.holder(head, s)
    first = head.split("\n", 1)[0].split()
    look.since = first[2] if len(first) == 3 else ""
    look.token = _token(head)
    guard_file, _, rest = tail.partition(f"{base.MARK}until\n")
    until, _, plan = rest.partition(f"{base.MARK}plan\n")
    look.plan = journal.shown(plan.splitlines())
    armed_token = guard_file.split()[0] if guard_file.split() else ""
    if not armed_token:
        look.guard = "none armed"
    elif look.token and armed_token != look.token:
        look.guard, look.plan = "armed by another run", []
    else:
        look.guard = _deadline(until, first)
    return look


def _token(head: str) -> str:
    try:
        info = loads(head.split("\n", 1)[1].strip().splitlines()[0])
    except (ValueError, IndexError):
        return ""
    token = info.get("token") if isinstance(info, dict) else None
    return token if isinstance(token, str) and token.isalnum() else ""


def _deadline(until: str, first: list[str]) -> str:
    parts = until.split()
    if len(parts) == 2 and parts[1].isdigit() and len(first) == 3 and first[1].isdigit():
        left = int(parts[1]) - int(first[1])
        when = f"in {left} s" if left >= 0 else f"{-left} s ago (it may be acting now)"
        return f"armed: puts the host back {when} unless that run is heard from"
    return "armed"


def remove_lock(remote: Remote, s: HostSettings, look: LockLook) -> str:
    """Remove the lock fab unlock showed, and disarm its run's guard; say what happened."""
    res = remote.run(state.force_unlock(s, look.token, look.since), s.timeouts.command)
    said = res.stdout.strip()
    if not res.ok or said not in ("removed", "gone", "changed"):
        raise Refused(f"could not remove the lock: {res.why()}")
    if said == "changed":
        return "not removed: the lock changed since it was shown (another run took it): look again"
    done = "removed the lock" if said == "removed" else "the lock was already gone"
    if not look.token:
        return done
    disarmed = guard.parse(remote.run(guard.disarm(s, look.token), s.timeouts.command).stdout)
    return done + {guard.DISARMED: "; disarmed its guard (the host stays as it is now: see fab status)",
                   guard.ACTED: "; its guard had already put the host back",
                   guard.GONE: ""}.get(disarmed or "", "; its guard could not be reached")
