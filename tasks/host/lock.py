"""The per-app deploy lock on a host (a directory under dir/.fab-bluegreen/, made atomically with mkdir).

It holds who, from where, when, which task and an optional message, plus a token that only the
run that took it (or its guard) may use to free it."""

from __future__ import annotations

import time
import uuid
from typing import Callable, TypeVar

from ..config.schema import HostSettings
from ..errors import BlueGreenError, Interrupted, Locked, Refused, StepFailed, Unreachable
from ..mask import secrets
from ..shell import boot, compose, guard, journal, record, state
from ..result import INTERRUPTED, ROLLED_BACK, UNREACHABLE, HostResult, Outcome, outcome_for
from .remote import Remote, Result

T = TypeVar("T")


def new_token() -> str:
    return uuid.uuid4().hex


def take(remote: Remote, s: HostSettings, task: str, token: str, message: str = "",
         timeout: float = 120.0, and_then: str = "", say: Callable[[str], None] = lambda msg: None) -> Result:
    """Take the lock (then run and_then, in the same round trip; its output is returned) or raise
    Locked naming the holder and the lock's age (Refused when its info is not what take() writes).
    A stale lock (its run's guard is gone: guard.staleness) is put right first, in the same round
    trip, as its guard would have (its undo journal run, the guard's history line written), and
    said in one line (say). Once taken, the boot unit's script is rewritten (boot.keep), in the
    same round trip: it is always this version's put-back."""
    info = record.dump({"who": record.who(), "when": record.now(), "task": task, "message": secrets(message),
                        "token": token, "since": int(time.time())})
    command = f"{state.lock(s, info, guard.recover(s, task))} && {{ {boot.keep(s)}; }}"
    timeout += 2 * compose.stopping(s)  # a stale lock's journal may stop a colour and start a background
    res = remote.run(f"{command} && {{ {and_then}; }}" if and_then else command, timeout)
    if said := stale(res.stdout, s):
        say(said)
    if res.exited == state.NO_DIR_EXIT:
        raise Refused(f"{s.dir} does not exist on the host: put the app there, or set dir in the hosts file")
    if res.stdout.startswith("held") and (why := problem(res.stdout, s)):
        raise Refused(f"{why}: if no run holds the lock, remove it with fab unlock --host {s.name}")
    if res.stdout.startswith("held"):
        raise Locked(f"locked by {holder(res.stdout)}: wait for it to finish, or if it was left behind: "
                     f"fab unlock --host {s.name}")
    if not res.ok:
        raise Refused(f"cannot take the deploy lock: {res.why()}")
    return res


def stale(output: str, s: HostSettings) -> str:
    """The one line that says a stale lock was put right (recover() printed it), or ""."""
    lines = output.splitlines()
    if (found := guard.recovered(lines)) is None:
        return ""
    armed, cause, info = found
    who = holder("held\n" + info, s)
    why = "interrupted by a reboot" if cause == guard.REBOOT else "left by a run whose guard is gone"
    if not armed:
        return f"the lock of {who} was {why} before it changed anything: freed it"
    undone, failed = journal.shown(lines), journal.not_put_back(lines)
    done = f"put the host back as its guard would have ({'; '.join(undone) or 'nothing to undo'})"
    return f"the lock of {who} was {why}: {done}{'; ' + '; '.join(failed) if failed else ''}; freed it"


def release(remote: Remote, s: HostSettings, token: str, timeout: float = 120.0, quiet: bool = False) -> None:
    """Free the lock this run took; quiet: a lost link is not an error (the run's result stands)."""
    try:
        remote.run(release_command(s, token), timeout)
    except Unreachable:
        if not quiet:
            raise


def problem(output: str, s: HostSettings | None = None) -> str | None:
    """One line when the lock's info is valid JSON but not what take() writes; None otherwise."""
    _, readable, info = _parsed(output)
    why = record.lock_problem(info) if readable else None
    where = f"{s.dir}/{state.lock_path(s)}/info" if s else "info"
    return f"the lock {where} {why}" if why else None


def _parsed(output: str) -> tuple[str, bool, object]:
    """(" for 42 s" or "", whether the info is there and valid JSON, its value)."""
    first, _, rest = output.partition("\n")
    parts = first.split()
    age = ""
    if len(parts) == 3 and parts[1].isdigit() and parts[2].isdigit():
        age = f" for {int(parts[1]) - int(parts[2])} s"
    try:
        return age, True, record.loads(rest.strip().splitlines()[0])
    except (ValueError, IndexError):  # not JSON, or JSON too deep or with too long a number
        return age, False, None


def release_command(s: HostSettings, token: str) -> str:
    return state.unlock(s, token)


def holder(output: str, s: HostSettings | None = None) -> str:
    """`held NOW SINCE` + info JSON -> "alice@laptop (deploy, 'fix login') for 42 s"."""
    age, readable, info = _parsed(output)
    if not readable:
        return f"an unreadable lock{age}"
    if why := problem(output, s):
        return f"a lock not taken by fab-bluegreen{age} ({why})"
    message = f", {info['message']!r}" if info.get("message") else ""
    return f"{info.get('who', '?')} ({info.get('task', '?')}{message}, since {info.get('when', '?')}){age}"


def with_lock(result: HostResult, run: Callable[[Result], T], take: Callable[[], Result],
              release: Callable[[], None], step: Callable[[], str] = lambda: "",
              unreachable: Callable[[str], str] = lambda step: "",
              say: Callable[[str], None] | None = None) -> T | None:
    """Kamal's with_lock { yield }, once for every task that takes the lock: take it (take(): a call
    of take() above, the one entry that takes it), run(what it returned), release() it, and end
    `result` as an error says.

    Another run's lock: LOCKED; the host's state: REFUSED; no connection: UNREACHABLE (+ unreachable(step):
    what is left on the host); a step that failed or Ctrl-C before anything was changed: ROLLED_BACK or
    INTERRUPTED at that step. The step is "lock" when taking failed, else the error's or step()'s.
    Returns what run() returned (None after an error). Anything else is a bug: it goes up, released."""
    taken = False
    try:
        res = take()
        taken = True
        try:
            return run(res)
        finally:
            release()
    except (Locked, Refused, Unreachable, StepFailed) as e:
        outcome, at, reason = ended(e, step() if taken else "lock")
        if outcome == UNREACHABLE:
            reason += unreachable(at)
        result.outcome, result.step, result.reason = outcome, at, reason
        if say:
            say(f"{outcome} at {at}: {reason}")
        return None


def ended(e: BlueGreenError, step: str) -> tuple[Outcome, str, str]:
    """(outcome, step, reason) of a run that an error ended while it held the lock."""
    if isinstance(e, Interrupted):
        return INTERRUPTED, e.step, f"{e.reason} before anything was changed"
    if isinstance(e, StepFailed):
        return ROLLED_BACK, e.step, f"{e.reason} (nothing was changed)"
    outcome, reason = outcome_for(e)
    return outcome, step, reason
