"""The dead-man's switch: a process on the host, detached from the SSH session, that puts the host
back as it was unless fab is heard from in time: it runs the run's undo journal (journal.py), as
fab's rollback would. It survives a dropped link, a sleeping laptop and kill -9 of fab, not a
reboot: then the next run finds the lock stale and puts the host back itself (recover()).

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
from . import base, detach, journal, record, state

NOW = "@@NOW@@"  # replaced on the host by the time the guard acts
TOKEN, CAUSE = "@@TOKEN@@", "@@CAUSE@@"  # ... by the token of the run put back, and why (history())
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


def history(s: HostSettings, line: str) -> str:
    """Shell, run in dir: append a history line whose NOW the host fills in (and TOKEN, CAUSE: with
    the shell's $fbg_token and $fbg_cause); never through a symbolic link."""
    f = quote(state.history_path(s))
    fill = (f"s/{NOW}/$(date -u +%Y-%m-%dT%H:%M:%S+00:00)/g; s/{TOKEN}/$(printf %.8s \"$fbg_token\")/g; "
            f"s/{CAUSE}/$fbg_cause/g")
    return f"[ ! -L {f} ] && printf '%s\\n' {quote(line)} | sed \"{fill}\" >> {f}"


def act(s: HostSettings, line: str) -> str:
    """Shell, run in dir once the guard file is claimed (renamed .acting; $fbg_token holds its
    token): run the journal, write the history line, free the lock (if still this run's), and
    remove the guard's files."""
    g = path(s)
    return "; ".join([journal.put_back(s), base.in_dir(s, history(s, line)), state.unlock(s, '"$fbg_token"', word=True),
                      base.in_dir(s, f"rm -f {quote(g + '.acting')} {quote(g + '.until')} {quote(g + '.pid')}")])


def arm(s: HostSettings, token: str, seconds: float) -> str:
    """Start the guard detached; it acts once `seconds` pass without a heartbeat: it runs the
    undo journal the run wrote on the host (tasks/shell/journal.py), as fab's rollback would."""
    g, until = path(s), path(s) + ".until"
    line = record.history_line("guard", s.name, ROLLED_BACK, time=NOW, token=token[:8], cause="no word from fab",
                               reason="no word from fab within its deadline (the link or fab died)")
    t = quote(token)
    wait = (f"while :; do sleep 1; grep -qF {t} {quote(g)} 2>/dev/null || exit 0; "
            f"read tok end 2>/dev/null < {quote(until)} || continue; [ \"$tok\" = {t} ] || exit 0; "
            f"[ $(date +%s) -lt \"$end\" ] || break; done")
    claim = f"grep -qF {t} {quote(g)} 2>/dev/null && mv {quote(g)} {quote(g + '.acting')} 2>/dev/null || exit 0"
    script = f"cd {base.remote_path(s.dir)} || exit 1; {wait}; {claim}; fbg_token={t}; {act(s, line)}"
    start = detach.detached(script, token, g + ".pid", f"{state.STATE_DIR}/{s.app}.guard.log")
    return (ARM_MARK + " " + detach.DETACH_FUNCTIONS + "; " + base.in_dir(
        s, state.state_dir() + " && " + state.private(  # the guard's files 0600; it keeps that umask
           f"{state.put(g, f'echo {t}')} && "
           f"{state.put(until, f'echo {t} $(( $(date +%s) + {math.ceil(seconds)} ))')} && "
           f"{{ {start} || {{ rm -f {quote(g)}; {base.why('could not start the guard on the host')}; exit 1; }}; }}")))


REBOOT, GUARD_GONE = "reboot", "guard gone"  # why a lock is stale (staleness())


def staleness(s: HostSettings) -> str:
    """Shell, run in dir while the lock is there: sets $fbg_cause to REBOOT when the host booted since
    the lock was taken (its boot id, state.lock() wrote it), or GUARD_GONE when the run's guard no
    longer runs and its deadline has passed; empty otherwise (a live guard, or a run that armed
    none yet and may still be working). $fbg_token: that guard's token ("" when none was armed)."""
    g, boot = quote(path(s)), quote(state.boot_path(s))
    passed = f"{{ read fbg_t fbg_end 2>/dev/null < {g}.until || fbg_end=0; [ $(date +%s) -ge \"$fbg_end\" ]; }}"
    gone = "! " + detach.still_running(quote(path(s) + ".pid"), '"$fbg_token"')
    return (f"fbg_cause=; fbg_token=$(cat {g} {g}.acting 2>/dev/null | head -n 1); "
            f"if [ -s {boot} ] && [ \"$(cat {boot})\" != \"$(cat {state.BOOT_ID} 2>/dev/null)\" ]; then fbg_cause={quote(REBOOT)}; "
            f"elif [ -n \"$fbg_token\" ] && {gone} && {passed}; then fbg_cause={quote(GUARD_GONE)}; fi")


BOOT = "boot"  # recover()'s task when the host's boot unit runs it (tasks/shell/boot.py)
STALE = "stale "  # recover() prints it, ARMED if a guard was, the cause, then the lock's info and the journal's words
ARMED = "armed "


def recover(s: HostSettings, task: str) -> str:
    """Shell, run in dir while the lock is there: true once a stale lock (staleness()) was put right
    as its guard would have done it: the guard file claimed (a fab that comes back finds its guard
    gone, and its next command does not run), the journal run, the guard's history line written with
    the cause, the lock freed. False, having changed nothing, for a lock that is not stale."""
    g, lock = path(s), quote(state.lock_path(s))
    at_boot = {"user": "(boot)"} if task == BOOT else {}  # the boot unit's script (boot.py): no one ran it
    by = "at boot (fab-bluegreen's unit)" if task == BOOT else f"by the next run ({task})"
    line = record.history_line("guard", s.name, ROLLED_BACK, time=NOW, token=TOKEN, cause=CAUSE, by=task,
                               reason=f"put back {by}: the run's guard was gone ({CAUSE})", **at_boot)
    return (f"{{ {staleness(s)}; [ -n \"$fbg_cause\" ]; }} && {{ echo \"{STALE}${{fbg_token:+{ARMED}}}$fbg_cause\"; "
            f"head -n 1 {lock}/info; "
            f"{journal.show(s)}; if [ -n \"$fbg_token\" ]; then mv {quote(g)} {quote(g + '.acting')} 2>/dev/null; "
            f"{journal.put_back(s)}; {history(s, line)}; fi; "
            f"rm -f {quote(g + '.acting')} {quote(g + '.until')} {quote(g + '.pid')}; rm -rf {lock}; }}")


def recovered(lines: list[str]) -> tuple[bool, str, str] | None:
    """What recover() printed, from the lines of its output: (whether a guard was armed, the cause,
    the lock's info line); None when it put nothing right."""
    first = next((i for i, line in enumerate(lines) if line.startswith(STALE)), None)
    if first is None:
        return None
    cause = lines[first][len(STALE):]
    info = lines[first + 1] if first + 1 < len(lines) else ""
    return cause.startswith(ARMED), cause.removeprefix(ARMED), info


def disarm(s: HostSettings, token: str) -> str:
    """Stop this run's guard, or find out that it acted: prints MARK + disarmed, guard-acted or
    guard-gone, and sets the shell variable fbg_guard to the same word. Never another run's."""
    g, t = path(s), quote(token)
    needle = '"token":"' + token[:8] + '"'  # in the history line the guard writes when it acts
    history_has = (f"grep -F {quote(needle)} {quote(state.history_path(s))} 2>/dev/null "
                   "| grep -q '\"action\":\"guard\"'")
    return base.in_dir(s, (
        f"if grep -qF {t} {quote(g)} 2>/dev/null && mv {quote(g)} {quote(g + '.off')} 2>/dev/null; then "
        f"{detach.kill_detached(g + '.pid', token)}; rm -f {quote(g + '.off')} {quote(g + '.until')}; "
        f"fbg_guard={DISARMED}; "
        f"elif grep -qF {t} {quote(g + '.acting')} 2>/dev/null || {history_has}; then fbg_guard={ACTED}; "
        f"else fbg_guard={GONE}; fi; echo {base.MARK}$fbg_guard"))


def parse(stdout: str) -> str | None:
    """What disarm() found, from the output of the command it rode with (None: not in it)."""
    for word in (DISARMED, ACTED, GONE):
        if f"{base.MARK}{word}" in stdout.splitlines():
            return word
    return None
