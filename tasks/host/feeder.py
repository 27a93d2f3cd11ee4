"""Keeps a host's armed guard fed while its sequence runs, and notices a lost link in seconds.

A thread sends the guard's heartbeat (guard.feed) every few seconds over a channel of its own,
beside whatever command the sequence waits on (a health wait, a long settle, a hook): the guard's
deadline is then `guard_deadline` from fab's last sign of life, never a command's time limit.
When no feed has got through for `guard_deadline`, the link is taken as gone: the feeder gives the
host up (SshRemote.give_up closes its connection), so the command fab waits on ends at once and
the host ends `unreachable`, left to its guard, which acts at about the same moment. Other hosts
have their own connection and feeder, and are unaffected.

Why a second channel on the host's connection rather than a second connection: no second login
(handshake, host-key check, each ProxyJump hop again), and a feed that gets through proves the
very link the sequence's commands use; when feeds stop getting through, that connection is the
one to give up. Paramiko runs concurrent channels on one transport.

Only the time fab is awake counts towards the silence: a laptop that slept, or a fab stopped
(SIGSTOP), is not a lost link. When it wakes, the next feed finds out whether the guard acted
(the sequence's next heartbeat then stops it, and it ends `failed`, as before).
"""

from __future__ import annotations

import threading
import time
from typing import Callable

from ..config.schema import HostSettings
from ..shell import guard

TICK = 0.2  # seconds between the watch's looks
MAX_EVERY = 5.0  # seconds between feeds at most (fewer with a short guard_deadline)


def every(deadline: float) -> float:
    """Seconds between feeds: a quarter of the deadline (so three may be lost), at most MAX_EVERY."""
    return max(TICK, min(MAX_EVERY, deadline / 4))


class Feeder:
    """feed() -> its exit code (guard.GONE_EXIT: no guard of this run's; raises: no answer);
    give_up(reason): called once when nothing was heard for `deadline` seconds."""

    def __init__(self, feed: Callable[[], int], give_up: Callable[[str], None], deadline: float):
        self.feed, self.give_up, self.deadline = feed, give_up, deadline
        self.every = every(deadline)
        self.awake = 0.0  # seconds the watch was awake (only it writes this)
        self.heard = 0.0  # self.awake when the host last answered a feed
        self.fed = False  # a feed reached this run's guard (before that, GONE means "not armed yet")
        self.gone = False  # the guard is no longer armed (it acted, or fab unlock disarmed it)
        self.stopping = threading.Event()
        self.watch = threading.Thread(target=self._watch, name="guard-feeder", daemon=True)
        self.pending: threading.Thread | None = None  # the feed in flight (one at a time)

    def start(self) -> "Feeder":
        self.watch.start()
        return self

    def stop(self) -> None:
        """Stop feeding, and wait for a feed in flight (briefly: on a dead link it never answers)."""
        self.stopping.set()
        if self.watch.is_alive() and self.watch is not threading.current_thread():
            self.watch.join()
        if self.pending is not None:
            self.pending.join(timeout=2)

    def _watch(self) -> None:
        last, next_feed = time.monotonic(), 0.0
        while not self.stopping.wait(TICK) and not self.gone:
            now = time.monotonic()
            self.awake += min(now - last, 2 * TICK)  # asleep (SIGSTOP, suspend) is not silence
            last = now
            if self.awake - self.heard >= self.deadline:
                self.give_up(f"no answer from the host for {self.deadline:g} s (guard_deadline): the link is gone")
                return
            if self.awake >= next_feed and (self.pending is None or not self.pending.is_alive()):
                next_feed = self.awake + self.every
                self.pending = threading.Thread(target=self._feed_once, name="guard-feed", daemon=True)
                self.pending.start()

    def _feed_once(self) -> None:
        try:
            exited = self.feed()
        except Exception:  # no answer (the link, the session): the watch counts the silence
            return
        if self.stopping.is_set():
            return
        self.heard = self.awake
        if exited == guard.GONE_EXIT and self.fed:
            self.gone = True  # nothing more to feed: the sequence's next heartbeat finds out why
        elif exited == 0:
            self.fed = True


def feeding(remote, s: HostSettings, token: str) -> Feeder | None:
    """A started Feeder for a remote that runs commands for real over SSH (SshRemote); None for a
    dry run, the recording fake of the unit tests, or a host whose connection is not open."""
    if not getattr(remote, "feeds", False):
        return None
    deadline = guard.grace(s)
    line = guard.feed(s, token)
    return Feeder(lambda: remote.ping(line, deadline), remote.give_up, deadline).start()
