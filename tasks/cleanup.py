"""Cleanup on one host: remove the colour that is not live, after a person said yes.

plan() only reads; remove() reads again, checks that the same colour is still the old one,
then runs `down` on that colour alone (never -v: volumes stay; never the live colour).
"""

from __future__ import annotations

import time

from . import commands as cmd
from . import record
from .bluegreen import COMMAND_TIMEOUT
from .errors import Refused, Unreachable
from .facts import find_live, other, read, version
from .remote import Remote
from .result import CLEANED, FAILED, NOTHING, PLANNED, REFUSED, UNREACHABLE, HostResult
from .settings import HostSettings


def plan(remote: Remote, s: HostSettings) -> HostResult:
    """What cleanup would remove on this host (outcome PLANNED), or why not."""
    started = time.monotonic()
    result = HostResult(host=s.name, action="cleanup")
    try:
        _plan(remote, s, result)
    except Refused as e:
        result.outcome, result.reason = REFUSED, str(e)
    except Unreachable as e:
        result.outcome, result.reason = UNREACHABLE, str(e)
    result.seconds = time.monotonic() - started
    return result


def remove(remote: Remote, s: HostSettings, planned: HostResult) -> HostResult:
    """Remove the colour that plan() named, if it is still the old one."""
    result = plan(remote, s)
    if result.outcome != PLANNED:
        return result
    if result.from_color != planned.from_color:
        result.outcome = REFUSED
        result.reason = f"the host changed since the plan ({planned.from_color} was old, now {result.from_color})"
        return result
    started = time.monotonic()
    old = result.from_color
    res = remote.run(cmd.down(s, old), s.stop_timeout + COMMAND_TIMEOUT)
    result.outcome = CLEANED if res.ok else FAILED
    result.step = "" if res.ok else "down"
    result.reason = "" if res.ok else f"`down` of {old} failed: {res.why()}"
    if res.ok:
        facts = read(remote, s, COMMAND_TIMEOUT)
        remote.run(cmd.write_record(s, record.dump(record.without_color(facts.record, old))), COMMAND_TIMEOUT)
    line = record.history_line("cleanup", s.name, result.outcome, **{
        "from": old, "to": result.to_color, "removed": result.removes, "reason": result.reason})
    remote.run(cmd.append_history(s, line), COMMAND_TIMEOUT)
    result.seconds += time.monotonic() - started
    return result


def _plan(remote: Remote, s: HostSettings, result: HostResult) -> None:
    facts = read(remote, s, COMMAND_TIMEOUT)
    live = find_live(s, facts)
    if live is None:
        if any(facts.services(s, c) for c in ("blue", "green")):
            raise Refused("no colour is live (no web container runs): cleanup will not guess which "
                          "colour to remove; deploy first, or remove containers by hand")
        result.outcome = NOTHING
        return
    old = other(live)
    containers = facts.services(s, old)
    result.to_color, result.version = live, version(s, facts, live)
    if not containers:
        result.outcome = NOTHING
        return
    result.from_color = old
    result.removes = [f"{cmd.project(s, old)}-{name} ({c.state})" for name, c in sorted(containers.items())]
    result.outcome = PLANNED
