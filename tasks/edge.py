"""What every task shares: its host options and their help, the hosts they select, the fleet that
runs a task on them, and the edge where errors are caught once: a one-line message on stderr and an
exit code (0 all done, 1 a host not done, 2 usage or configuration error: nothing ran on any host,
130 interrupted by Ctrl-C).

Light to import, as the task modules are: the hosts file, the fleet and the report (Fabric, paramiko
and rich) are imported when a task runs, not when `fab -l` lists the tasks."""

from __future__ import annotations

import functools
import shlex
from typing import TYPE_CHECKING

from invoke.exceptions import Exit

from . import cmdline
from .errors import BlueGreenError, UsageError
from .mask import shown

if TYPE_CHECKING:
    from .config.schema import HostSettings
    from .fleet import Fleet

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
            raise Exit(f"error: {shown(str(e))}", code=e.exit_code) from None  # no secret, no escape

    return wrapper


def _hosts(hosts_file: str, host, group, all_: bool, default_all: bool = False) -> list[HostSettings]:
    from .config import loader

    _one_line("--hosts-file", hosts_file)
    inventory = loader.load(hosts_file)
    return inventory.select(list(host or []), list(group or []), all_ or (default_all and not host and not group))


def _secrets(hosts: list[HostSettings]) -> dict:
    """Each host's secrets (tasks/config/secrets.py), read and checked once, masked from now on."""
    from .config import secrets

    return secrets.for_hosts(hosts)


def _fab(task_name: str, hosts: list[HostSettings], hosts_file: str) -> str:
    parts = ["fab", task_name] + [f"--host {shlex.quote(s.name)}" for s in hosts]
    if hosts_file != "hosts.toml":
        parts.append(f"--hosts-file {shlex.quote(hosts_file)}")
    return " ".join(parts)


def _one_line(option: str, value: str) -> None:
    from .config import schema

    if schema.CONTROL.search(value):
        raise UsageError(f"{option} {value!r}: expected one line, without control characters")


def _lines(lines) -> int:
    if not 1 <= int(lines) <= 100_000:
        raise UsageError(f"--lines expects a number of lines from 1 to 100000, got {int(lines)}")
    return int(lines)


def _look(c, hosts: list[HostSettings], fn, failed) -> tuple[list, list[str]]:
    """A read-only look at every host: the rows, and the names of the hosts that could not be read."""
    unread: list[str] = []

    def failed_(host: str, error: str):
        unread.append(host)
        return failed(host, error)

    return _fleet(c).run_plain(hosts, fn, failed_), unread


def _fleet(c, dry_run=False, batch=0, max_fail=0) -> Fleet:
    from . import report
    from .fleet import Fleet

    if int(batch) < 0 or int(max_fail) < 0:
        raise UsageError("--batch and --max-fail take a number of hosts, 0 or more")
    return Fleet(report.Progress(), c.config, dry_run=dry_run, batch=int(batch), max_fail=int(max_fail))


def _finish(fleet: Fleet, results, *ok: str) -> None:
    from . import report
    from .result import DRY_RUN, INTERRUPTED

    report.plans(results)
    if fleet.interrupted.is_set() or any(r.outcome == INTERRUPTED for r in results):
        raise Exit(code=130)
    if not all(r.outcome in (*ok, DRY_RUN) for r in results):
        raise Exit(code=1)
