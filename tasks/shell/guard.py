"""The dead-man's switch: a process on the host, detached from the SSH session, that puts the host
back as it was unless fab is heard from in time. It survives a dropped link, a sleeping laptop and
kill -9 of fab.

While the guard is armed, fab feeds it every few seconds over a channel of its own, whatever
the sequence's command is doing (tasks/host/feeder.py): each feed moves the guard's deadline to
`guard_deadline` seconds (20) from now. So a slow but healthy step (a long health wait, a hook)
never runs into the guard, and a cut link or a dead fab is noticed within `guard_deadline`,
whichever step it was in. Every command fab sends also carries the same heartbeat in front of it:
it finds out that the guard acted, and then stops that command from running.

Who acts is settled once, by renaming the guard file: the guard renames it to `.acting` before it
undoes anything, fab's disarm renames it to `.off`. Only one rename can succeed, so fab always
learns whether the guard acted, and a deploy the guard undid is never reported as deployed.
The guard acts only while its token is in the guard file, and frees the lock only if the lock still
carries that token: it never touches a later deploy."""

from __future__ import annotations

import math
from shlex import quote

from ..config.schema import HostSettings
from ..result import ROLLED_BACK
from . import base, detach, record, state

NOW = "@@NOW@@"  # replaced on the host by the time the guard acts
ARM_MARK = ": arm-guard;"  # starts the arming command, so that what follows it runs only if it worked
DEFAULT_GRACE = 20.0  # seconds without a sign of life from fab before the guard acts
DISARMED, ACTED, GONE = "disarmed", "guard-acted", "guard-gone"  # what disarm() prints after base.MARK


def path(s: HostSettings) -> str:
    return f"{state.STATE_DIR}/{s.app}.guard"


def grace(s: HostSettings) -> float:
    """Seconds the guard waits after fab's last sign of life (a feed, a command's heartbeat)."""
    return s.guard_deadline if s.guard_deadline is not None else DEFAULT_GRACE


GONE_EXIT = 9  # the exit code of a heartbeat that found the guard gone (its command did not run)
GONE_REASON = ("the guard is no longer armed: it put the host back (fab was not heard from in time), or "
               "fab unlock disarmed it")


def heartbeat(s: HostSettings, token: str, seconds: float) -> str:
    """Move the guard's deadline to `seconds` from now; if this run's guard is no longer armed (it
    acted), stop there (GONE_EXIT): the command it rides with must not run. Runs in dir."""
    deadline = state.put(path(s) + ".until", f"echo {quote(token)} $(( $(date +%s) + {math.ceil(seconds)} ))")
    return (f"if grep -qF {quote(token)} {quote(path(s))} 2>/dev/null; then {deadline} || exit 1; "
            f"else {base.why(GONE_REASON)}; exit {GONE_EXIT}; fi")


def feed(s: HostSettings, token: str) -> str:
    """What the feeder sends every few seconds: the heartbeat alone (exit GONE_EXIT: the guard is
    not armed, or no longer)."""
    return base.in_dir(s, heartbeat(s, token, grace(s)))


def arm(s: HostSettings, token: str, undo: list[str], seconds: float, plan: tuple[str, ...] = ()) -> str:
    """Start the guard detached; it acts once `seconds` pass without a heartbeat. `plan` says in
    words what `undo` does (fab unlock shows it)."""
    g, until, history_file = path(s), path(s) + ".until", state.history_path(s)
    line = record.history_line("guard", s.name, ROLLED_BACK, time=NOW, token=token[:8],
                               reason="no word from fab within its deadline (the link or fab died)")
    history = (f"[ ! -L {quote(history_file)} ] && printf '%s\\n' {quote(line)} | "
               f"sed \"s/{NOW}/$(date -u +%Y-%m-%dT%H:%M:%S+00:00)/\" >> {quote(history_file)}")
    act = "; ".join([*undo, base.in_dir(s, history), state.unlock(s, token),
                     base.in_dir(s, f"rm -f {quote(g + '.acting')} {quote(until)} {quote(g + '.pid')} {quote(g + '.plan')}")])
    t = quote(token)
    wait = (f"while :; do sleep 1; grep -qF {t} {quote(g)} 2>/dev/null || exit 0; "
            f"read tok end 2>/dev/null < {quote(until)} || continue; [ \"$tok\" = {t} ] || exit 0; "
            f"[ $(date +%s) -lt \"$end\" ] || break; done")
    claim = f"grep -qF {t} {quote(g)} 2>/dev/null && mv {quote(g)} {quote(g + '.acting')} 2>/dev/null || exit 0"
    script = f"cd {base.remote_path(s.dir)} || exit 1; {wait}; {claim}; {act}"
    start = detach.detached(script, token, g + ".pid", f"{state.STATE_DIR}/{s.app}.guard.log")
    plan_text = "printf '%s\\n' " + (" ".join(quote(x) for x in plan) or quote(""))
    return (ARM_MARK + " " + detach.DETACH_FUNCTIONS + "; " + base.in_dir(
        s, state.state_dir() + " && " + state.private(  # the guard's files 0600; it keeps that umask
           f"{state.put(g, f'echo {t}')} && "
           f"{state.put(until, f'echo {t} $(( $(date +%s) + {math.ceil(seconds)} ))')} && "
           f"{state.put(g + '.plan', plan_text)} && "
           f"{{ {start} || {{ rm -f {quote(g)}; {base.why('could not start the guard on the host')}; exit 1; }}; }}")))


def disarm(s: HostSettings, token: str) -> str:
    """Stop this run's guard, or find out that it acted: prints MARK + disarmed, guard-acted or
    guard-gone, and sets the shell variable fbg_guard to the same word. Never another run's."""
    g, t = path(s), quote(token)
    needle = '"token":"' + token[:8] + '"'  # in the history line the guard writes when it acts
    history_has = (f"grep -F {quote(needle)} {quote(state.history_path(s))} 2>/dev/null "
                   "| grep -q '\"action\":\"guard\"'")
    return base.in_dir(s, (
        f"if grep -qF {t} {quote(g)} 2>/dev/null && mv {quote(g)} {quote(g + '.off')} 2>/dev/null; then "
        f"{detach.kill_detached(g + '.pid', token)}; rm -f {quote(g + '.off')} {quote(g + '.until')} {quote(g + '.plan')}; "
        f"fbg_guard={DISARMED}; "
        f"elif grep -qF {t} {quote(g + '.acting')} 2>/dev/null || {history_has}; then fbg_guard={ACTED}; "
        f"else fbg_guard={GONE}; fi; echo {base.MARK}$fbg_guard"))


def parse(stdout: str) -> str | None:
    """What disarm() found, from the output of the command it rode with (None: not in it)."""
    for word in (DISARMED, ACTED, GONE):
        if f"{base.MARK}{word}" in stdout.splitlines():
            return word
    return None
