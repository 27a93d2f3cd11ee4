"""How a sequence's commands reach one host: few round trips, and the guard kept informed.

- A write that need not be its own round trip rides along with the next command: the guard's
  arming (which must succeed, or the command does not run) and its disarming (best effort).
- While the guard is armed, a feeder (feeder.py) keeps it fed every few seconds over a channel of
  its own, and gives the host up when its feeds stop getting through; every command also carries
  the heartbeat in front of it, which stops that command if the guard already acted. The feeder
  stops when the disarm is sent (or the sequence abandons the host to its guard).
- The undo journal's entry for a step (tasks/shell/journal.py) is written in front of the step's
  own command, which runs only if it was: a change is in the journal before it starts.
- The last round trip (close) confirms what the run did (the record, the history line), unless the
  guard acted first, and frees the lock.

A sequence only says what to send; it never builds these lines itself.
"""

from __future__ import annotations

import os
from typing import Callable

from ..config.schema import HostSettings
from ..errors import Unreachable
from ..shell import base, guard
from .feeder import Feeder, feeding
from .remote import Remote, Result

# FBG_PRIORITY=normal: the tool's commands at the priority the SSH session has (bench/run.py measures
# what the lowest one buys the live site)
LOWER = os.environ.get("FBG_PRIORITY", "low") != "normal"


def lowered(line: str) -> str:
    """The line at the lowest priority the host offers (base.low_priority), unless FBG_PRIORITY=normal."""
    return f"{base.low_priority()}; {line}" if LOWER else line


class Trip:
    def __init__(self, remote: Remote, s: HostSettings, token: str, say: Callable[[str], None] = lambda msg: None):
        self.remote, self.s, self.token, self.say = remote, s, token, say
        self.arming = ""  # the guard's arming, sent in front of the next command (which runs only if it worked)
        self.riding: list[str] = []  # best-effort writes sent in front of the next command
        self.noting: list[str] = []  # journal entries written in front of the next command (which runs only if they were)
        self.closing: list[tuple[str, str]] = []  # (command, what failed) confirmed by close()
        self.armed = False  # heartbeats go in front of each command
        self.disarming = False  # a disarm rides with the next command
        self.guard_acted = False  # the guard put the host back before fab could disarm it
        self.feeder: Feeder | None = None  # keeps the armed guard fed until the disarm is sent

    def arm(self, command: str) -> None:
        """Arm the guard with the next command; from now on it is fed, and every command carries a
        heartbeat."""
        self.arming, self.armed = command, True
        self.feeder = feeding(self.remote, self.s, self.token)

    def note(self, command: str) -> None:
        """Write a journal entry (journal.append) in front of the next command, which runs only if it was."""
        self.noting.append(command)

    def disarm(self) -> None:
        """Disarm with the next command (the guard stays armed until it is sent)."""
        if self.armed and not self.disarming:
            self.riding.append(f"{{ {guard.disarm(self.s, self.token)}; }}")
            self.disarming = True

    def at_close(self, command: str, what: str) -> None:
        """A write to confirm in the last round trip (`what` is said if it fails)."""
        self.closing.append((command, what))

    def send(self, command: str, timeout: float | None = None, on_line: Callable[[str], None] | None = None,
             own: bool = True) -> Result:
        """One round trip: what rides along, the heartbeat, then the command, within its budget
        (a Command's own, else `timeout`, else timeouts.command); on_line: each line of its output;
        the tool's `own` command at the lowest priority (not a user's: prepare, a hook)."""
        if timeout is None:
            timeout = base.budget_of(command, self.s.timeouts.command)
        line = command
        if self.noting:
            line = f"{' && '.join(self.noting)} && {{ {line}; }}"
        if self.armed and not self.disarming:  # the guard waits while fab works
            beat = guard.heartbeat(self.s, self.token, guard.grace(self.s))
            line = f"{base.in_dir(self.s, beat)}; {line}"
        if self.arming:
            line = f"{self.arming} && {{ {line}; }}"
        line = "; ".join([*self.riding, line])
        self.arming, self.riding, self.noting = "", [], []
        if self.disarming:  # fed until the disarm is sent: the guard must not act while fab still works
            self.stop_feeding()
        res = self.remote.run(lowered(line) if own else line, timeout, on_line=on_line)
        self._heard(res)
        return res

    def close(self, unlock: str, otherwise: str = "", then: str = "") -> tuple[Result | None, list[str]]:
        """The last round trip: disarm, the writes to confirm and `unlock` (or, if the guard acted,
        `otherwise`: it frees the lock itself), then `then`. Returns the result (None: the link is
        gone, the guard or fab unlock frees the lock) and what failed to be confirmed."""
        self.disarm()
        confirmed = "; ".join([*(f"{{ {c}; }} || echo '{base.MARK}failed {what}'" for c, what in self.closing),
                               unlock])
        if self.disarming:
            confirmed = f"if [ \"$fbg_guard\" != {guard.ACTED} ]; then {confirmed}; else {otherwise or ':'}; fi"
        line = "; ".join(filter(None, [*self.riding, confirmed, then]))
        self.riding, self.closing = [], []
        self.stop_feeding()  # whatever happens now: the guard is disarmed, or left to act
        try:
            res = self.remote.run(lowered(line), self.s.timeouts.command)
        except Unreachable:
            return None, []
        self._heard(res)
        failed = [ln.split(" ", 1)[1] for ln in res.stdout.splitlines() if ln.startswith(f"{base.MARK}failed ")]
        return res, failed

    def abandon(self) -> None:
        """Leave the host to its armed guard (a bug of the tool's): send nothing more that was queued."""
        self.arming, self.riding, self.closing, self.noting = "", [], [], []
        self.stop_feeding()

    def stop_feeding(self) -> None:
        if self.feeder is not None:
            self.feeder.stop()
            self.feeder = None

    def _heard(self, res: Result) -> None:
        """A disarm that rode along reached the host: did the guard act before it?"""
        if self.disarming:
            self.armed = self.disarming = False
            if guard.parse(res.stdout) == guard.ACTED:
                self.guard_acted = True
                self.say("the guard had already put the host back: fab was not heard from in time")
