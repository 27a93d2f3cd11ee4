"""The task that frees a deploy lock left behind, and disarms that run's guard: unlock. Its docstring
is the `fab -l` and `fab --help unlock` text.

What it runs (the look at the lock, the fleet, the report: Fabric, paramiko and rich) is imported
when it runs, not when `fab -l` lists the tasks."""

from __future__ import annotations

from invoke import task
from invoke.exceptions import Exit

from .edge import HOST_HELP, TASK, _hosts, _look, edge
from .errors import UsageError


@task(help={**HOST_HELP, "yes": "remove without asking (needed when there is no terminal)"}, **TASK)
@edge
def unlock(c, host=None, group=None, all_=False, hosts_file="", yes=False):
    """Remove a deploy lock left behind by a run that is gone, and disarm that run's guard.

    Shows each lock first: who holds it, since when, for which task, whether that run's guard
    is armed and what it would do: that run's undo journal, newest first (stop the new colour,
    start the old background again, ...). Asks unless --yes;
    with no terminal and no --yes it refuses. Removing the lock also disarms that run's guard:
    the host then stays as it is (fab status shows it); a lock taken again meanwhile is kept.
    A lock left by a reboot (or by a run whose guard died, once its deadline passed) needs no
    unlock: the next deploy, rollback, promote, cleanup or drain puts it right.

    Exit code: 0 done or no lock, 1 a host could not be read or a lock not removed, 2 usage or
    hosts-file error (including no terminal to ask at and no --yes).
    """
    from . import report
    from .host import inspect

    hosts = _hosts(hosts_file, host, group, all_)
    looks, unread = _look(c, hosts, inspect.read_lock, lambda name, error: inspect.LockLook(name, error=error))
    report.show(report.lock_table(looks))
    held = [(s, look) for s, look in zip(hosts, looks) if look.held]
    if held and not yes:
        if not report.interactive():
            raise UsageError("unlock removes the lock of a run that may still be going, and disarms its guard: "
                             "add --yes to confirm (there is no terminal to ask at)")
        if not report.confirm("Remove these locks and disarm their guards?"):
            report.out.print("Nothing removed.")
            raise Exit(code=1)
    plans = {s.name: look for s, look in held}
    done, failed = _look(c, [s for s, _ in held], lambda r, s: inspect.remove_lock(r, s, plans[s.name]),
                         lambda name, error: f"not removed: {error}")
    if held:
        report.show(report.simple_table("fab unlock", ["host", "result"],
                                        [[s.name, row] for (s, _), row in zip(held, done)]))
    if unread or failed or any(row.startswith("not removed") for row in done):
        raise Exit(code=1)
