"""A colour's own broker (redis in front): the tasks still waiting in it, read with redis-cli.

With a broker per colour, tasks the old web enqueues after the old worker stopped (and until
the switch) wait in the old colour's redis. Nothing runs them, and `down` of the old colour
would throw them away: the deploy counts them after the switch, cleanup refuses while any
wait, and `fab drain` runs them with the old colour's workers.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ..config.schema import HostSettings
from ..shell.broker import UNACKED, count_queued
from .remote import Remote


@dataclass
class Queued:
    counts: dict[str, int] = field(default_factory=dict)  # queue -> messages waiting in it
    # delivered to a worker and not acknowledged yet (kombu's `unacked` hash): the message a running
    # worker reserved ahead, or one a killed worker held, which kombu delivers again only after its
    # visibility timeout (1 h by default)
    unacked: int = 0
    problem: str = ""  # why they could not be counted; empty when counted (or no broker)
    no_broker: bool = False  # the colour has no broker container: nothing can wait
    down: str = ""  # the broker container's state when it does not run (nothing counted)

    @property
    def waiting(self) -> int:
        return sum(self.counts.values())

    def describe(self) -> str:
        """e.g. "celery: 3" (the non-empty queues)."""
        return ", ".join(f"{q}: {n}" for q, n in self.counts.items() if n)


def counted(s: HostSettings) -> bool:
    """Whether this host's settings name a broker per colour with queues to count."""
    return bool(s.broker_service and s.broker.queues)


def parse(s: HostSettings, color: str, stdout: str) -> Queued:
    lines = [line.split() for line in stdout.splitlines() if line.strip()]
    if lines and lines[0][0] == "no-broker":
        return Queued(no_broker=True)
    if lines and lines[0][0] == "broker-down":
        return Queued(down=lines[0][1] if len(lines[0]) > 1 else "not running")
    queued = Queued()
    for name in (*s.broker.queues, UNACKED):
        row = next((x for x in lines if x[0] == name), None)
        if row is None or len(row) != 2 or not row[1].isdigit():
            return Queued(problem=f"redis-cli in {color}'s {s.broker_service} gave no count for {name!r}: "
                                  f"{' '.join(row[1:]) if row else 'no answer'}")
        if name == UNACKED:
            queued.unacked = int(row[1])
        else:
            queued.counts[name] = int(row[1])
    return queued


def count(remote: Remote, s: HostSettings, color: str, timeout: float) -> Queued:
    """The messages waiting in a colour's broker (a read: it runs in a dry run too)."""
    res = remote.read(count_queued(s, color), timeout)
    if not res.ok:
        return Queued(problem=f"could not count {color}'s queues: {res.why()}")
    return parse(s, color, res.stdout)


def warnings(s: HostSettings, color: str, queued: Queued) -> list[str]:
    """What the count shows besides waiting messages (with the colour's workers stopped)."""
    found = []
    if queued.down:
        # e.g. the colour of a failed deploy, stopped by its rollback: a redis that persists keeps its
        # messages in its volume (never removed), one that does not lost them when it stopped
        found.append(f"{color}'s {s.broker_service} is {queued.down}: its queues were not counted (a redis that "
                     "saves to its volume keeps them there; volumes stay)")
    if queued.unacked:  # the colour's workers are stopped: a killed one held these
        found.append(f"{color}'s {s.broker_service} holds {queued.unacked} unacknowledged message(s) "
                     f"({UNACKED}): held by a worker that was killed; kombu delivers them again only after "
                     f"its visibility timeout (1 h by default), and removing {color} loses them")
    return found


def waiting(s: HostSettings, color: str, queued: Queued) -> str:
    """The messages that wait and what to do, e.g. "3 message(s) wait in blue's redis (celery: 3):
    run them with fab drain --host pi5"; empty when none wait."""
    if not queued.waiting:
        return ""
    return (f"{queued.waiting} message(s) wait in {color}'s {s.broker_service} ({queued.describe()}): "
            f"run them with fab drain --host {s.name}")


def refusal(s: HostSettings, color: str, queued: Queued) -> str:
    """Why the colour must not be removed yet, and what to do; empty when it may."""
    if queued.problem:
        return queued.problem
    if queued.waiting:
        return f"{waiting(s, color, queued)} first: removing {color} would lose them"
    return ""
