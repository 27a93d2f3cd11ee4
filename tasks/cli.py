"""The fab tasks. Their docstrings are the `fab -l` and `fab --help TASK` text.

Errors are caught once here: a one-line message on stderr and an exit code
(0 all done, 1 a host not done, 2 usage or configuration error: nothing ran on any host,
130 interrupted by Ctrl-C)."""

from __future__ import annotations

import functools
import shlex

from invoke.exceptions import Exit
from fabric import task

from . import cleanup as cleanup_host
from . import drain as drain_host
from . import cmdline, inspect, report, settings
from .bluegreen import Deploy, Rollback
from .check import CheckResult, preflight
from .errors import BlueGreenError, UsageError
from .fleet import Fleet
from .result import DEPLOYED, DRY_RUN, INTERRUPTED, NOTHING, PLANNED

HOST_HELP = {
    "host": "a host named in the hosts file (repeat for several)",
    "group": "every host of a group of the hosts file (repeat for several)",
    "all": "every host in the hosts file",
    "hosts-file": "the hosts file to read (default: hosts.toml)",
}
RUN_HELP = {
    "dry-run": "print the exact commands, per host, and change nothing",
    "message": "a note kept with the lock and in the history (e.g. why you deploy)",
    "batch": "deploy N hosts at a time (default: all at once, at most 10 connections)",
    "max-fail": "start no new batch once K hosts ended other than deployed",
}
TASK = dict(iterable=["host", "group"], auto_shortflags=False, positional=[], klass=cmdline.Task)


def edge(fn):
    """Turn the tool's errors into one line on stderr and the right exit code."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except BlueGreenError as e:
            raise Exit(f"error: {report.shown(str(e))}", code=e.exit_code) from None  # no secret, no escape

    return wrapper


def _hosts(hosts_file: str, host, group, all_: bool, default_all: bool = False) -> list[settings.HostSettings]:
    _one_line("--hosts-file", hosts_file)
    inventory = settings.load(hosts_file)
    return inventory.select(list(host or []), list(group or []), all_ or (default_all and not host and not group))


def _fab(task_name: str, hosts: list[settings.HostSettings], hosts_file: str) -> str:
    parts = ["fab", task_name] + [f"--host {shlex.quote(s.name)}" for s in hosts]
    if hosts_file != "hosts.toml":
        parts.append(f"--hosts-file {shlex.quote(hosts_file)}")
    return " ".join(parts)


def _one_line(option: str, value: str) -> None:
    if settings.CONTROL.search(value):
        raise UsageError(f"{option} {value!r}: expected one line, without control characters")


def _lines(lines) -> int:
    if not 1 <= int(lines) <= 100_000:
        raise UsageError(f"--lines expects a number of lines from 1 to 100000, got {int(lines)}")
    return int(lines)


def _look(c, hosts: list[settings.HostSettings], fn, failed) -> tuple[list, list[str]]:
    """A read-only look at every host: the rows, and the names of the hosts that could not be read."""
    unread: list[str] = []

    def failed_(host: str, error: str):
        unread.append(host)
        return failed(host, error)

    return _fleet(c).run_plain(hosts, fn, failed_), unread


def _fleet(c, dry_run=False, batch=0, max_fail=0) -> Fleet:
    if int(batch) < 0 or int(max_fail) < 0:
        raise UsageError("--batch and --max-fail take a number of hosts, 0 or more")
    return Fleet(report.Progress(), c.config, dry_run=dry_run, batch=int(batch), max_fail=int(max_fail))


def _finish(fleet: Fleet, results, ok: str) -> None:
    report.plans(results)
    if fleet.interrupted.is_set() or any(r.outcome == INTERRUPTED for r in results):
        raise Exit(code=130)
    if not all(r.outcome in (ok, DRY_RUN) for r in results):
        raise Exit(code=1)


@task(help={**HOST_HELP, **RUN_HELP}, **TASK)
@edge
def deploy(c, host=None, group=None, all_=False, hosts_file="hosts.toml", dry_run=False, message="",
           batch=0, max_fail=0):
    """Deploy the other colour with zero downtime, keeping the old one.

    On each host, in parallel: take the deploy lock; check the host (fab check); run
    `prepare`; arm a guard that puts the host back if fab goes silent; stop the live colour's
    background services (worker, beat); start the other colour's front services (web, redis);
    poll its health check; run the after_front hooks; point nginx at it; start its background
    services; check that they stay up. If a step fails (or on Ctrl-C) the host is rolled back
    and the old colour keeps serving. The old colour is never removed here: see `fab cleanup`.

    Exit code: 0 every host deployed, 1 a host was not, 2 usage or hosts-file error, 130 Ctrl-C.
    """
    _one_line("--message", message)
    hosts = _hosts(hosts_file, host, group, all_)
    fleet = _fleet(c, dry_run, batch, max_fail)
    results = fleet.run(hosts, "deploy", lambda r, s, say: Deploy(
        r, s, say, message=message, interrupted=fleet.interrupted).run())
    report.out.print(report.deploy_table(results))
    report.failure_details(results)
    if not dry_run and not fleet.interrupted.is_set():
        _offer_cleanup(c, [s for s, r in zip(hosts, results) if r.outcome == DEPLOYED and r.from_color],
                       {r.host: r for r in results}, hosts_file)
    _finish(fleet, results, DEPLOYED)


@task(help={**HOST_HELP, **RUN_HELP}, **TASK)
@edge
def rollback(c, host=None, group=None, all_=False, hosts_file="hosts.toml", dry_run=False, message="",
             batch=0, max_fail=0):
    """Go back to the colour that was live before, staged and checked.

    Only while that colour's containers are still the ones that served then (a later failed
    deploy recreated them, or a cleanup removed them: then it refuses and says so). No prepare
    step; the lock and the guard work as for deploy.

    Exit code: 0 every host rolled back, 1 a host was not, 2 usage or hosts-file error, 130 Ctrl-C.
    """
    _one_line("--message", message)
    hosts = _hosts(hosts_file, host, group, all_)
    fleet = _fleet(c, dry_run, batch, max_fail)
    results = fleet.run(hosts, "rollback", lambda r, s, say: Rollback(
        r, s, say, message=message, interrupted=fleet.interrupted).run())
    report.out.print(report.deploy_table(results, title="fab rollback"))
    report.failure_details(results)
    _finish(fleet, results, DEPLOYED)


def _offer_cleanup(c, deployed, results, hosts_file: str) -> None:
    if not deployed:
        return
    command = _fab("cleanup", deployed, hosts_file)
    names = ", ".join(f"{s.name}: {results[s.name].from_color} ({s.app}-{results[s.name].from_color})"
                      for s in deployed)
    if not report.confirm(f"Remove the old colour now? {names}\n(the same as: {command} --yes)"):
        report.out.print(f"The old colour still runs, for a quick switch back. When you are happy: {command}",
                         soft_wrap=True, markup=False)
        return
    _cleanup(c, deployed, yes=True)


@task(help={**HOST_HELP, "yes": "remove without asking (needed when there is no terminal)",
            "dry-run": "print the exact commands, per host, and change nothing",
            "prune-images": "also remove the old colour's images that no container uses"}, **TASK)
@edge
def cleanup(c, host=None, group=None, all_=False, hosts_file="hosts.toml", yes=False, dry_run=False,
            prune_images=False):
    """Remove the old colour, after you have checked the new one.

    Shows what it will remove on each host (the colour that is not live), asks (the default is
    no) unless --yes, then runs `docker compose -p <app>-<old colour> down` on that colour only:
    never -v (volumes stay), never the live colour, never the shared services. A host with
    nothing left to remove is "nothing to clean". With a broker per colour it refuses while
    tasks wait in the old colour's broker, naming the queues: run `fab drain` first.

    Exit code: 0 done or nothing to clean, 1 a host not cleaned, 2 usage or hosts-file error
    (including no terminal to ask at and no --yes).
    """
    hosts = _hosts(hosts_file, host, group, all_)
    if not _cleanup(c, hosts, yes or dry_run, dry_run, prune_images):
        raise Exit(code=1)


def _cleanup(c, hosts, yes: bool, dry_run: bool = False, prune_images: bool = False) -> bool:
    plans = _fleet(c).run(hosts, "cleanup", lambda r, s, say: cleanup_host.plan(r, s))
    todo = [(s, p) for s, p in zip(hosts, plans) if p.outcome == PLANNED]
    if not todo:
        report.out.print(report.cleanup_table(plans))
        return all(p.outcome == NOTHING for p in plans)
    report.out.print(report.cleanup_table(plans, title="fab cleanup: plan"))
    if not yes and not report.confirm("Remove these containers? (volumes and the live colour stay)"):
        if not report.interactive():
            raise UsageError("cleanup removes containers: add --yes to confirm (there is no terminal to ask at)")
        report.out.print("Nothing removed.")
        return False
    planned = {s.name: p for s, p in todo}
    done = _fleet(c, dry_run).run([s for s, _ in todo], "cleanup", lambda r, s, say: cleanup_host.remove(
        r, s, planned[s.name], prune_images))
    by_host = {r.host: r for r in done}
    results = [by_host.get(p.host, p) for p in plans]
    report.out.print(report.cleanup_table(results))
    report.plans(results)
    return all(r.ok for r in results)


@task(help={**HOST_HELP, "message": RUN_HELP["message"]}, **TASK)
@edge
def drain(c, host=None, group=None, all_=False, hosts_file="hosts.toml", message=""):
    """Run the tasks left in the old colour's broker, so that cleanup may remove it.

    With a broker per colour (redis in `front`), tasks queued in the old colour's redis after
    its workers stopped wait there, and `fab cleanup` refuses to remove them. drain starts the
    old colour's worker services only (never beat; [broker] workers names them), waits until
    its queues ([broker] queues) are empty (up to [broker] drain_timeout), stops the workers
    again, gracefully, and writes a `drain` line in the history. The old workers run beside
    the new ones meanwhile.

    Exit code: 0 drained or nothing waited, 1 a host not drained, 2 usage or hosts-file error.
    """
    _one_line("--message", message)
    hosts = _hosts(hosts_file, host, group, all_)
    fleet = _fleet(c)
    results = fleet.run(hosts, "drain", lambda r, s, say: drain_host.drain(r, s, say, message))
    report.out.print(report.drain_table(results))
    if not all(r.ok for r in results):
        raise Exit(code=1)


@task(help={**HOST_HELP, "yes": "remove without asking (needed when there is no terminal)"}, **TASK)
@edge
def unlock(c, host=None, group=None, all_=False, hosts_file="hosts.toml", yes=False):
    """Remove a deploy lock left behind by a run that is gone, and disarm that run's guard.

    Shows each lock first: who holds it, since when, for which task, whether that run's guard
    is armed and what it would do (switch back, stop the new colour, ...). Asks unless --yes;
    with no terminal and no --yes it refuses. Removing the lock also disarms that run's guard:
    the host then stays as it is (fab status shows it); a lock taken again meanwhile is kept.

    Exit code: 0 done or no lock, 1 a host could not be read or a lock not removed, 2 usage or
    hosts-file error (including no terminal to ask at and no --yes).
    """
    hosts = _hosts(hosts_file, host, group, all_)
    looks, unread = _look(c, hosts, inspect.read_lock, lambda name, error: inspect.LockLook(name, error=error))
    report.out.print(report.lock_table(looks))
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
        report.out.print(report.simple_table("fab unlock", ["host", "result"],
                                             [[s.name, row] for (s, _), row in zip(held, done)]))
    if unread or failed or any(row.startswith("not removed") for row in done):
        raise Exit(code=1)


@task(help={**HOST_HELP, "host": "a host of the hosts file (repeat for several; default: every host)"}, **TASK)
@edge
def status(c, host=None, group=None, all_=False, hosts_file="hosts.toml"):
    """Show each host: live colour, versions, health, lock, last action.

    Exit code: 0 every host could be read, 1 a host could not, 2 usage or hosts-file error.
    """
    hosts = _hosts(hosts_file, host, group, all_, default_all=True)
    rows, _ = _look(c, hosts, inspect.status, lambda host, error: inspect.HostStatus(host, False, error))
    report.out.print(report.status_table(rows))
    if not all(row.ok for row in rows):
        raise Exit(code=1)


@task(help={**HOST_HELP, "lines": "how many of the last lines (default 20)"}, **TASK)
@edge
def history(c, host=None, group=None, all_=False, hosts_file="hosts.toml", lines=20):
    """Show what was done on each host (deploys, rollbacks, cleanups, drains).

    Exit code: 0 every host could be read, 1 a host could not, 2 usage or hosts-file error.
    """
    lines = _lines(lines)
    hosts = _hosts(hosts_file, host, group, all_)
    rows, unread = _look(c, hosts, lambda r, s: inspect.history(r, s, lines),
                         lambda host, error: [{"action": "unreachable", "reason": error}])
    report.out.print(report.history_table(list(zip([s.name for s in hosts], rows))))
    if unread:
        raise Exit(code=1)


@task(help={**HOST_HELP, "service": "one service (default: the failed one of the last deploy, else all)",
            "colour": "blue or green (default: the failed colour of the last deploy, else the live one)",
            "lines": "how many of the last lines (default 50)"}, **TASK)
@edge
def logs(c, host=None, group=None, all_=False, hosts_file="hosts.toml", service="", colour="", lines=50):
    """Show recent log lines of a colour's services (default: what failed).

    Exit code: 0 every host could be read, 1 a host could not, 2 usage or hosts-file error.
    """
    if colour and colour not in ("blue", "green"):
        raise UsageError(f"--colour {colour!r}: expected blue or green")
    if service and not settings.NAME.match(service):
        raise UsageError(f"--service {service!r}: expected a service name (letters, digits, '_', '.' and '-', "
                         "starting with a letter or digit)")
    lines = _lines(lines)
    hosts = _hosts(hosts_file, host, group, all_)
    rows, unread = _look(c, hosts, lambda r, s: inspect.logs(r, s, service or None, colour or None, lines),
                         lambda host, error: (host, error))
    for title, text in rows:
        report.out.rule(report.escape(title))  # the service may come from the history: host text
        report.out.print(report.shown(text) or "(no log lines)", markup=False, highlight=False)  # host text
    if unread:
        raise Exit(code=1)


@task(help=HOST_HELP, **TASK)
@edge
def check(c, host=None, group=None, all_=False, hosts_file="hosts.toml"):
    """Check hosts before a deploy: sudo, docker, nginx, ports, disk."""
    hosts = _hosts(hosts_file, host, group, all_)
    rows = _fleet(c).run_plain(hosts, preflight, lambda host, error: CheckResult([("fail", "ssh", error)]))
    report.out.print(report.check_table(list(zip([s.name for s in hosts], rows))))
    if any(not row.ok for row in rows):
        raise Exit(code=1)
