"""The dead-man's switch: a process on the host, detached from the SSH session, that puts the host
back as it was unless the tool confirms (disarms it) in time. It survives a dropped link, a
sleeping laptop and kill -9 of fab. It acts only while its token is still in the guard file, and
frees the lock only if the lock still carries that token: it never touches a later deploy."""

from __future__ import annotations

from shlex import quote

from . import commands as cmd
from . import record
from .settings import HostSettings

NOW = "@@NOW@@"  # replaced on the host by the time the guard acts
ARM_MARK = ": arm-guard;"  # starts the arming command, so that what follows it runs only if it worked


def path(s: HostSettings) -> str:
    return f"{cmd.STATE_DIR}/{s.app}.guard"


def health_budget(s: HostSettings) -> float:
    h = s.health
    return h.start_delay + h.retries * (h.timeout + h.interval)


def deadline(s: HostSettings) -> float:
    """Seconds from arming: an explicit guard_deadline, or enough for every step that follows."""
    if s.guard_deadline is not None:
        return s.guard_deadline
    hooks = len(s.hooks.after_front) + len(s.hooks.after_switch)
    return s.stop_timeout + health_budget(s) + s.settle + hooks * s.timeouts.hook + 2 * s.timeouts.command


def arm(s: HostSettings, token: str, undo: list[str], seconds: float) -> str:
    """Start the guard detached (setsid, no terminal, no stdin); the guard file holds token and pid."""
    g = quote(path(s))
    line = record.history_line("guard", s.name, "rolled back", time=NOW, token=token[:8],
                               reason=f"no confirmation from fab within {seconds:g} s")
    history = (f"printf '%s\\n' {quote(line)} | sed \"s/{NOW}/$(date -u +%Y-%m-%dT%H:%M:%S+00:00)/\" "
               f">> {quote(cmd.history_path(s))}")
    act = "; ".join([*undo, cmd.in_dir(s, history), cmd.unlock(s, token), cmd.in_dir(s, f"rm -f {g}")])
    script = (f"sleep {seconds:g}; cd {cmd.remote_path(s.dir)} || exit 1; "
              f"grep -qF {quote(token)} {g} 2>/dev/null || exit 0; {act}")
    log = quote(f"{cmd.STATE_DIR}/{s.app}.guard.log")
    return ARM_MARK + " " + cmd.in_dir(s, f"mkdir -p {cmd.STATE_DIR} && echo {quote(token)} > {g} && "
                         f"{{ setsid nohup sh -c {quote(script)} > {log} 2>&1 < /dev/null & echo $! >> {g}; }}")


def disarm(s: HostSettings, token: str) -> str:
    """Stop this run's guard (its whole process group) and remove its file; never another run's."""
    g = quote(path(s))
    return cmd.in_dir(s, f"if grep -qF {quote(token)} {g} 2>/dev/null; then "
                         f"pid=$(sed -n 2p {g}); rm -f {g}; [ -n \"$pid\" ] && kill -- -\"$pid\" 2>/dev/null; fi; true")
