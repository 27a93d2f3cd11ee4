"""Drain on one host: run the tasks left in the old colour's broker with the old colour's workers.

    lock -> find the old colour -> count its queues (nothing waits: done) -> start its workers
    (never beat) -> wait until its queues are empty (drain_timeout) -> stop the workers gracefully
    (stop_timeout: running tasks finish) -> count again -> history line -> unlock

The old colour's workers run beside the new colour's for as long as the drain takes.
"""

from __future__ import annotations

import time

from ..config.schema import HostSettings
from ..errors import Refused
from ..result import DRAINED, FAILED, NOTHING_TO_DRAIN, DrainResult, Outcome
from ..shell import compose, record, state
from ..shell.broker import wait_drained
from . import broker, lock
from .facts import find_live, killed, other, read
from .remote import Remote


def drain(remote: Remote, s: HostSettings, say=lambda msg: None, message: str = "") -> DrainResult:
    started = time.monotonic()
    result = DrainResult(host=s.name, action="drain")
    token = lock.new_token()
    lock.with_lock(result, lambda taken: _drain(remote, s, say, result),
                   take=lambda: lock.take(remote, s, "drain", token, message, s.timeouts.command, say=say),
                   release=lambda: lock.release(remote, s, token, s.timeouts.command),
                   unreachable=lambda step: "; the old colour's workers may still run: fab status")
    result.seconds = time.monotonic() - started
    return result


def _drain(remote: Remote, s: HostSettings, say, result: DrainResult) -> None:
    timeout = s.timeouts.command
    if not broker.counted(s):
        result.outcome = NOTHING_TO_DRAIN
        result.reason = "no broker per colour (broker.service / broker.queues): nothing to count"
        return
    facts = read(remote, s, timeout)
    live = find_live(s, facts)
    if live is None:
        raise Refused("no colour is live: drain runs the old colour's queue beside a live one")
    old = result.from_color = other(live)
    result.to_color = live
    before = broker.count(remote, s, old, timeout)
    if before.problem:
        raise Refused(before.problem)
    if before.down:
        raise Refused(f"{old}'s {s.broker_service} is {before.down}: start it (docker compose -p "
                      f"{compose.project(s, old)} start {s.broker_service}), then drain again")
    result.queued = dict(before.counts)
    if before.no_broker or not before.waiting:
        result.outcome = NOTHING_TO_DRAIN
        return
    workers = s.drain_workers
    missing = [w for w in workers if w not in facts.services(s, old)]
    if not workers or missing:
        raise Refused(f"{old} has no {', '.join(missing) or 'worker'} container to run its queue with "
                      "(broker.workers names the worker services)")
    say(f"{before.waiting} message(s) wait in {old}'s {s.broker_service} ({before.describe()}): "
        f"starting {old} {', '.join(workers)}")
    res = remote.run(compose.start(s, old, workers), timeout)
    if not res.ok:
        _end(remote, s, result, FAILED, f"could not start {old}'s {', '.join(workers)}: {res.why()}", before)
        return
    say(f"waiting until {old}'s queues are empty (up to {s.broker.drain_timeout:g} s)")
    emptied = remote.run(wait_drained(s, old, s.broker.drain_timeout, stale_unacked=before.unacked),
                         s.broker.drain_timeout + timeout)
    say(f"stopping {old} {', '.join(workers)} (up to {s.stop_timeout:g} s each: running tasks finish)")
    stop = remote.run(compose.stop_reporting(s, old, workers), s.stop_timeout + timeout)
    result.warnings += killed(s, old, workers, stop.stdout)
    after = broker.count(remote, s, old, timeout)
    result.warnings += broker.warnings(s, old, after)
    if not stop.ok:
        why = f"{old}'s {', '.join(workers)} could not be stopped again: {stop.why()}"
    elif after.problem or after.waiting:
        left = after.problem or f"{after.waiting} still wait ({after.describe()})"
        waited = "" if emptied.ok else f" after {s.broker.drain_timeout:g} s (drain_timeout)"
        why = (f"{left}{waited}: see why with fab logs --host {s.name} --colour {old} --service {workers[0]}, "
               "then run fab drain again")
    else:
        why = ""
    _end(remote, s, result, FAILED if why else DRAINED, why, before)
    say(f"drained: {before.describe()} ran on {old}'s workers" if not why else f"not drained: {why}")


def _end(remote: Remote, s: HostSettings, result: DrainResult, outcome: Outcome, why: str,
         before: broker.Queued) -> None:
    result.outcome, result.reason = outcome, why
    line = record.history_of(result, queued=before.counts)
    remote.run(state.append_history(s, line), s.timeouts.command)
