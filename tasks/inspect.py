"""The tasks that look at hosts and change nothing: status, history, logs, check. Their docstrings
are the `fab -l` and `fab --help TASK` text.

What a task runs (the looks, the fleet, the report: Fabric, paramiko and rich) is imported when it
runs, not when `fab -l` lists the tasks."""

from __future__ import annotations

from invoke import task
from invoke.exceptions import Exit

from .edge import HOST_HELP, JSON_HELP, TASK, Output, _exit, _fleet, _hosts, _lines, _load, _look, edge
from .errors import UsageError


@task(help={**HOST_HELP, "host": "a host of the hosts file (repeat for several; default: every host)",
            **JSON_HELP}, **TASK)
@edge
def status(c, host=None, group=None, all_=False, hosts_file="", json_=False):
    """Show each host: live colour, versions, health, lock, last action.

    With --json: one JSON document on stdout instead of the table (README, "--json"); e.g.

        fab status --json | jq -r '.hosts[] | "\\(.host) \\(.live)"'

    Exit code: 0 every host could be read, 1 a host could not, 2 usage or hosts-file error.
    """
    from . import document, report
    from .host import inspect

    hosts = _hosts(hosts_file, host, group, all_, default_all=True)
    out = Output("status", json_)
    rows, _ = _look(c, hosts, inspect.status, lambda host, error: inspect.HostStatus(host, False, error))
    out.show(report.status_table(rows))
    _exit(out.done(document.status_hosts(rows), 0 if all(row.ok for row in rows) else 1))


@task(help={**HOST_HELP, "lines": "how many of the last lines (default 20)", **JSON_HELP}, **TASK)
@edge
def history(c, host=None, group=None, all_=False, hosts_file="", lines=20, json_=False):
    """Show what was done on each host (deploys, rollbacks, cleanups, drains).

    With --json: one JSON document on stdout instead of the table (README, "--json"); e.g.

        fab history --host pi5 --json | jq '.hosts[].actions[-1]'

    Exit code: 0 every host could be read, 1 a host could not, 2 usage or hosts-file error.
    """
    from . import document, report
    from .host import inspect

    lines = _lines(lines)
    hosts = _hosts(hosts_file, host, group, all_)
    out = Output("history", json_)
    rows, unread = _look(c, hosts, lambda r, s: inspect.history(r, s, lines),
                         lambda host, error: [{"action": "unreachable", "reason": error}])
    names = [s.name for s in hosts]
    out.show(report.history_table(list(zip(names, rows))))
    _exit(out.done(document.history_hosts(names, rows, unread), 1 if unread else 0))


@task(help={**HOST_HELP, "service": "one service (default: the failed one of the last deploy, else all)",
            "colour": "blue or green (default: the failed colour of the last deploy, else the live one)",
            "lines": "how many of the last lines (default 50)"}, **TASK)
@edge
def logs(c, host=None, group=None, all_=False, hosts_file="", service="", colour="", lines=50):
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


@task(help={**HOST_HELP, **JSON_HELP}, **TASK)
@edge
def check(c, host=None, group=None, all_=False, hosts_file="", json_=False):
    """Check hosts before a deploy: sudo, docker, nginx, ports, disk, the put-back at boot.

    With build.where = "local", also whether the builder answers, and whether each host's Docker
    has room for the images it last built.

    With --json: one JSON document on stdout instead of the table (README, "--json"); e.g.

        fab check --all --json | jq -r '.hosts[] | select(.ok | not) | .host'

    Exit code: 0 no check failed, 1 a check failed (or a host could not be reached), 2 usage or
    hosts-file error.
    """
    from . import build, document, report
    from .host.check import CheckResult, preflight

    inventory, hosts = _load(hosts_file, host, group, all_)
    out = Output("check", json_)
    rows = _fleet(c).run_plain(hosts, preflight, lambda host, error: CheckResult([("fail", "ssh", error)]))
    build.check(hosts, rows, str(inventory.path))  # build.where = "local": the builder answers; room for its images on each host
    names = [s.name for s in hosts]
    out.show(report.check_table(list(zip(names, rows))))
    _exit(out.done(document.check_hosts(names, rows), 0 if all(row.ok for row in rows) else 1))
