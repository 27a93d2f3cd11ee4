"""Cleanup on one host: remove the colour that is not live (the old one, or a staged one), after a
person said yes.

plan() only reads; remove() takes the lock, reads again, checks that the same colour is still the
old one, waits for the open connections to its port to close (up to drain_connections; not with
--force), then runs `down` on that colour alone (never -v: volumes stay; never the live colour;
never the shared services, which are a project of their own), removes its secrets file and says
how many connections it cut. With a broker per colour, both refuse while tasks wait in the old
colour's broker: `fab drain` runs them first.
"""

from __future__ import annotations

import time

from ..config.schema import COLORS, HostSettings
from ..errors import Refused, Unreachable
from ..result import CLEANED, FAILED, INTERRUPTED, NOTHING, PLANNED, REFUSED, CleanupResult, Outcome, outcome_for
from ..shell import compose, connections, cpu, record, state
from ..shell.record import Record
from . import broker, lock
from .facts import Facts, find_live, other, read, version
from .remote import Remote


def plan(remote: Remote, s: HostSettings) -> CleanupResult:
    """What cleanup would remove on this host (outcome PLANNED), or why not."""
    return _planned(remote, s)[0]


def _planned(remote: Remote, s: HostSettings) -> tuple[CleanupResult, Facts | None]:
    """The plan, and the facts it was made from (None when they could not be read)."""
    started = time.monotonic()
    result, facts = CleanupResult(host=s.name, action="cleanup"), None
    try:
        facts = read(remote, s, s.timeouts.command)
        _plan(s, facts, result)
        if result.outcome == PLANNED and broker.counted(s):
            queued = broker.count(remote, s, result.from_color, s.timeouts.command)
            if why := broker.refusal(s, result.from_color, queued):
                raise Refused(why)
            result.warnings += broker.warnings(s, result.from_color, queued)
    except (Refused, Unreachable) as e:
        result.outcome, result.reason = outcome_for(e)
    result.seconds = time.monotonic() - started
    return result, facts


def remove(remote: Remote, s: HostSettings, planned: CleanupResult, prune_images: bool = False, force: bool = False,
           say=lambda msg: None, interrupted=lambda: False) -> CleanupResult:
    """Remove the colour that plan() named, if it is still the old one. force: cut the open
    connections to it at once instead of waiting for them (drain_connections); interrupted(): true
    after Ctrl-C, which the wait ends in removing nothing."""
    token, result = lock.new_token(), CleanupResult(host=s.name, action="cleanup")
    removed = lock.with_lock(
        result, lambda taken: _remove(remote, s, planned, prune_images, force, say, interrupted),
        take=lambda: lock.take(remote, s, "cleanup", token, timeout=s.timeouts.command, say=say),
        release=lambda: lock.release(remote, s, token, s.timeouts.command, quiet=True),
        unreachable=lambda step: "" if step == "lock" else "; check the host with fab status")
    return removed or result


def _remove(remote: Remote, s: HostSettings, planned: CleanupResult, prune_images: bool, force: bool,
            say, interrupted) -> CleanupResult:
    result, facts = _planned(remote, s)
    if result.outcome != PLANNED:
        return result
    if result.from_color != planned.from_color:
        result.outcome = REFUSED
        result.reason = f"the host changed since the plan ({planned.from_color} was old, now {result.from_color})"
        return result
    started = time.monotonic()
    old, timeout = result.from_color, s.timeouts.command
    if stop := _wait_for_connections(remote, s, old, force, say, interrupted, result):
        return _not_removed(result, *stop, started)
    images = sorted(set(facts.images(s, old).values()))
    remote.run(cpu.cancel_lift(s, old), timeout)
    res = remote.run(compose.remove(s, old), s.stop_timeout + timeout)  # and its secrets file
    result.outcome = CLEANED if res.ok else FAILED
    result.step = "" if res.ok else "down"
    result.reason = "" if res.ok else f"`down` of {old} failed: {res.why()}"
    if not res.ok:
        result.cut = None  # what a failed `down` cut is not known
    if res.ok:
        remote.run(state.write_record(s, (facts.record or Record()).without_color(old).dump()), timeout)
    if res.ok and prune_images and images:
        pruned = remote.run(compose.remove_images(images), timeout)
        result.warnings += [f"image kept: {line}" for line in pruned.stdout.splitlines() if line.startswith("in use")]
    line = record.history_of(result, removed=result.removes, cut=result.cut)
    remote.run(state.append_history(s, line), timeout)
    result.seconds += time.monotonic() - started
    return result


def _not_removed(result: CleanupResult, outcome: Outcome, reason: str, started: float) -> CleanupResult:
    """The wait for the open connections ended the cleanup: nothing was removed, none was cut."""
    result.outcome, result.step, result.reason, result.cut = outcome, "connections", reason, None
    result.seconds += time.monotonic() - started
    return result


def _wait_for_connections(remote: Remote, s: HostSettings, old: str, force: bool, say, interrupted,
                          result: CleanupResult) -> tuple[Outcome, str] | None:
    """Wait up to drain_connections (not at all with force) for the open connections to the old
    colour's port to close, saying the count as it falls; result.cut: how many are still open, for
    `down` to cut. Returns why nothing may be removed: Ctrl-C came, or the connections could not be
    counted (with force, only a warning); None: go on."""
    port, seconds = s.port(old), 0 if force else s.drain_connections
    if not remote.dry_run:
        say(f"counting the open connections to {old} (port {port}): "
            + ("--force, no wait" if force else f"waiting up to {seconds:g} s for them to close"))

    def seen(line: str) -> None:
        if (n := connections.last_count(line)) is not None:
            say(f"open connections to {old}: {n}")

    command = connections.wait_closed(s, old, seconds)
    res = remote.run(command, command.budget, on_line=seen)
    if interrupted():
        return INTERRUPTED, "Ctrl-C while waiting for the open connections: nothing removed"
    if remote.dry_run:
        return None
    count = connections.last_count(res.stdout)
    if res.exited not in (0, 1) or count is None:
        if not force:
            return REFUSED, res.why()
        result.warnings.append(f"open connections not counted: {res.why()}")
        return None
    result.cut = count
    if count:
        say(f"{count} connection(s) to {old} still open" + ("" if force else f" after {seconds:g} s")
            + ": removing it cuts them")
    return None


def _plan(s: HostSettings, facts: Facts, result: CleanupResult) -> None:
    live = find_live(s, facts)
    staged = facts.record.staged if facts.record else None
    if live is None and staged is None:
        if any(facts.services(s, c) for c in COLORS):
            raise Refused("no colour is live (no web container runs): cleanup will not guess which "
                          "colour to remove; deploy first, or remove containers by hand")
        result.outcome = NOTHING
        return
    old = other(live) if live else staged  # a staged colour is the one that is not live
    containers = facts.services(s, old)
    result.to_color, result.version = live, version(s, facts, live) if live else "-"
    if not containers:
        result.outcome = NOTHING
        return
    result.from_color = old
    result.removes = [f"{compose.project(s, old)}-{name} ({c.state})" for name, c in sorted(containers.items())]
    result.outcome = PLANNED
