"""The tasks that look at hosts and change nothing: status, history, logs, check. Their docstrings
are the `fab -l` and `fab --help TASK` text.

What a task runs (the looks, the fleet, the report: Fabric, paramiko and rich) is imported when it
runs, not when `fab -l` lists the tasks."""

from __future__ import annotations

from invoke import task
from invoke.exceptions import Exit

from .edge import HOST_HELP, TASK, _fleet, _hosts, _lines, _look, edge
from .errors import UsageError


@task(help={**HOST_HELP, "host": "a host of the hosts file (repeat for several; default: every host)"}, **TASK)
@edge
def status(c, host=None, group=None, all_=False, hosts_file="hosts.toml"):
    """Show each host: live colour, versions, health, lock, last action.

    Exit code: 0 every host could be read, 1 a host could not, 2 usage or hosts-file error.
    """
    from . import report
    from .host import inspect

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
    from . import report
    from .host import inspect

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
    from . import report
    from .config import schema
    from .host import inspect

    if colour and colour not in schema.COLORS:
        raise UsageError(f"--colour {colour!r}: expected blue or green")
    if service and not schema.NAME.match(service):
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
    """Check hosts before a deploy: sudo, docker, nginx, ports, disk.

    With build.where = "local", also whether the builder answers, and whether each host's Docker
    has room for the images it last built.

    Exit code: 0 nothing failed, 1 a check failed, 2 usage or hosts-file error.
    """
    from . import build, report
    from .host.check import CheckResult, preflight

    hosts = _hosts(hosts_file, host, group, all_)
    rows = _fleet(c).run_plain(hosts, preflight, lambda host, error: CheckResult([("fail", "ssh", error)]))
    build.check(hosts, rows, hosts_file)  # build.where = "local": the builder answers; room for its images on each host
    report.out.print(report.check_table(list(zip([s.name for s in hosts], rows))))
    if any(not row.ok for row in rows):
        raise Exit(code=1)
