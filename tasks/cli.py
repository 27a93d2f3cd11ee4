"""The fab tasks. Their docstrings are the `fab -l` and `fab --help TASK` text.

Errors are caught once here: a one-line message on stderr and an exit code
(0 all done, 1 a host not done, 2 usage or configuration error: nothing ran on any host)."""

from __future__ import annotations

import functools
import shlex

from invoke.exceptions import Exit
from fabric import task

from . import cleanup as cleanup_host
from . import report, settings
from .bluegreen import Deploy
from .errors import BlueGreenError, UsageError
from .fleet import run_each
from .result import DEPLOYED, NOTHING, PLANNED

HOST_HELP = {
    "host": "a host named in the hosts file (repeat for several)",
    "group": "every host of a group of the hosts file (repeat for several)",
    "all": "every host in the hosts file",
    "hosts-file": "the hosts file to read (default: hosts.toml)",
}
TASK = dict(iterable=["host", "group"], auto_shortflags=False, positional=[])


def edge(fn):
    """Turn the tool's errors into one line on stderr and the right exit code."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except BlueGreenError as e:
            raise Exit(f"error: {e}", code=e.exit_code) from None

    return wrapper


def _hosts(hosts_file: str, host, group, all_: bool) -> list[settings.HostSettings]:
    inventory = settings.load(hosts_file)
    return inventory.select(list(host or []), list(group or []), all_)


def _fab(task_name: str, hosts: list[settings.HostSettings], hosts_file: str) -> str:
    parts = ["fab", task_name] + [f"--host {shlex.quote(s.name)}" for s in hosts]
    if hosts_file != "hosts.toml":
        parts.append(f"--hosts-file {shlex.quote(hosts_file)}")
    return " ".join(parts)


@task(help={**HOST_HELP}, **TASK)
@edge
def deploy(c, host=None, group=None, all_=False, hosts_file="hosts.toml"):
    """Deploy the other colour with zero downtime, keeping the old one.

    On each host, in parallel: find the live colour; run `prepare`; stop the live colour's
    background services (worker, beat); start the other colour's front services (web,
    redis); poll its health check; point nginx at it; start its background services; check
    that they stay up. If a step fails the host is rolled back and the old colour keeps
    serving. The old colour is never removed here: see `fab cleanup`.

    Exit code: 0 every host deployed, 1 a host was not, 2 usage or hosts-file error.
    """
    hosts = _hosts(hosts_file, host, group, all_)
    progress = report.Progress()
    results = run_each(hosts, "deploy", lambda r, s, say: Deploy(r, s, say).run(), progress, c.config)
    report.out.print(report.deploy_table(results))
    report.failure_details(results)
    _offer_cleanup(c, [s for s, r in zip(hosts, results) if r.outcome == DEPLOYED and r.from_color],
                   {r.host: r for r in results}, hosts_file)
    if not all(r.outcome == DEPLOYED for r in results):
        raise Exit(code=1)


def _offer_cleanup(c, deployed, results, hosts_file: str) -> None:
    if not deployed:
        return
    command = _fab("cleanup", deployed, hosts_file)
    names = ", ".join(f"{s.name}: {results[s.name].from_color} ({s.app}-{results[s.name].from_color})"
                      for s in deployed)
    if not report.confirm(f"Remove the old colour now? {names}\n(the same as: {command} --yes)"):
        report.out.print(f"The old colour still runs, for a quick switch back. When you are happy: {command}")
        return
    _cleanup(c, deployed, yes=True)


@task(help={**HOST_HELP, "yes": "remove without asking (needed when there is no terminal)"}, **TASK)
@edge
def cleanup(c, host=None, group=None, all_=False, hosts_file="hosts.toml", yes=False):
    """Remove the old colour, after you have checked the new one.

    Shows what it will remove on each host, asks (the default is no) unless --yes, then runs
    `docker compose -p <app>-<old colour> down` on that colour only: never -v, never the live
    colour. A host with nothing left to remove is "nothing to clean".

    Exit code: 0 done or nothing to clean, 1 a host not cleaned, 2 usage or hosts-file error
    (including no terminal to ask at and no --yes).
    """
    hosts = _hosts(hosts_file, host, group, all_)
    if not _cleanup(c, hosts, yes):
        raise Exit(code=1)


def _cleanup(c, hosts, yes: bool) -> bool:
    progress = report.Progress()
    plans = run_each(hosts, "cleanup", lambda r, s, say: cleanup_host.plan(r, s), progress, c.config)
    todo = [(s, p) for s, p in zip(hosts, plans) if p.outcome == PLANNED]
    if not todo:
        report.out.print(report.cleanup_table(plans))
        return all(p.outcome == NOTHING for p in plans)
    report.out.print(report.cleanup_table(plans, title="fab cleanup: plan"))
    if not yes:
        if not report.confirm("Remove these containers? (volumes and the live colour stay)"):
            if not report.interactive():
                raise UsageError("cleanup removes containers: add --yes to confirm (there is no terminal to ask at)")
            report.out.print("Nothing removed.")
            return False
    planned = {s.name: p for s, p in todo}
    done = run_each([s for s, _ in todo], "cleanup",
                    lambda r, s, say: cleanup_host.remove(r, s, planned[s.name]), progress, c.config)
    by_host = {r.host: r for r in done}
    results = [by_host.get(p.host, p) for p in plans]
    report.out.print(report.cleanup_table(results))
    return all(r.ok for r in results)
