"""What every task shares: its host options and their help, the hosts they select, the fleet that
runs a task on them, where its result goes (Output: the table, or with --json one document on stdout;
then the notification), and the edge where errors are caught once: a one-line message on stderr and
an exit code (0 all done, 1 a host not done, 2 usage or configuration error: nothing ran on any host,
130 interrupted by Ctrl-C, 143 by SIGTERM).

Light to import, as the task modules are: the hosts file, the fleet and the report (Fabric, paramiko
and rich) are imported when a task runs, not when `fab -l` lists the tasks."""

from __future__ import annotations

import functools
import shlex
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from invoke.exceptions import Exit

from . import cmdline
from .errors import BlueGreenError, UsageError
from .mask import shown

if TYPE_CHECKING:
    from .config.loader import Inventory
    from .config.schema import HostSettings, Notify
    from .fleet import Fleet

HOST_HELP = {
    "host": "a host named in the hosts file (repeat for several)",
    "group": "every host of a group of the hosts file (repeat for several)",
    "all": "every host in the hosts file",
    "hosts-file": "the hosts file to read (default: hosts.toml in this folder or the nearest folder above)",
}
RUN_HELP = {
    "dry-run": "print the exact commands, per host, and change nothing",
    "message": "a note kept with the lock and in the history (e.g. why you deploy)",
    "batch": "deploy N hosts at a time (default: all at once, at most 10 connections)",
    "max-fail": "start no new batch once K hosts ended other than deployed",
}
HOSTS_FILE = "hosts.toml"  # the name find_hosts_file() looks for
TASK = dict(iterable=["host", "group"], auto_shortflags=False, positional=[], klass=cmdline.Task)
JSON_HELP = {"json": "print one JSON document on stdout instead of the table (README, --json: its fields); "
                     "progress stays on stderr, the exit code is the same (example above)"}


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
    return _load(hosts_file, host, group, all_, default_all)[1]


def _load(hosts_file: str, host, group, all_: bool, default_all: bool = False) -> tuple[Inventory, list[HostSettings]]:
    """The hosts file (--hosts-file, else found: find_hosts_file), and the hosts the command line names
    in it. Its path is inventory.path from here on."""
    from .config import loader

    _one_line("--hosts-file", hosts_file)
    inventory = loader.load(hosts_file or find_hosts_file())
    everything = all_ or (default_all and not host and not group)
    return inventory, inventory.select(list(host or []), list(group or []), everything)


def _secrets(hosts: list[HostSettings]) -> dict:
    """Each host's secrets (tasks/config/secrets.py), read and checked once, masked from now on."""
    from . import report
    from .config import secrets

    return secrets.for_hosts(hosts, warn=report.warn)


def find_hosts_file() -> Path:
    """No --hosts-file: hosts.toml in the current folder, else in the nearest folder above that holds
    one (as fab finds a fabfile). Relative paths inside it are read from its own folder (the loader)."""
    here = Path.cwd()
    if (here / HOSTS_FILE).is_file():
        return Path(HOSTS_FILE)  # as today: messages name it hosts.toml
    for folder in here.parents:
        if (folder / HOSTS_FILE).is_file():
            return folder / HOSTS_FILE
    raise UsageError(f"no {HOSTS_FILE} in {here} or any folder above it: `fab-bluegreen init` writes one here, "
                     "or name one with --hosts-file PATH")


def _fab(task_name: str, hosts: list[HostSettings], hosts_file: str) -> str:
    """The command line that runs a task on these hosts, as the user types it (cmdline.typed); the
    hosts file only if the user named one (else the same search finds the same file)."""
    parts = [cmdline.typed(task_name)] + [f"--host {shlex.quote(s.name)}" for s in hosts]
    if hosts_file:
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


def exit_code(fleet: Fleet, results, *ok: str) -> int:
    """deploy, promote and rollback: 130 interrupted by Ctrl-C (143 by SIGTERM), 1 a host did not end
    as one of `ok` (or as a dry run), else 0."""
    from .result import DRY_RUN, INTERRUPTED

    if fleet.interrupted.is_set() or any(r.outcome == INTERRUPTED for r in results):
        return fleet.interrupted.exit_code
    if not all(r.outcome in (*ok, DRY_RUN) for r in results):
        return 1
    return 0


def _exit(code: int) -> None:
    if code:
        raise Exit(code=code)


class Output:
    """Where a task's result goes. Without --json: its table on stdout (and a dry run's commands).
    With --json: one JSON document on stdout and nothing else there; what a person must still read
    (the cleanup plan and its question) goes to stderr. Then, for the tasks that change hosts (given
    `notify`) and unless it was a dry run, the notification (tasks/notify.py)."""

    def __init__(self, task: str, json_: bool = False, message: str = "", dry_run: bool = False,
                 notify: Notify | None = None, hosts_file: str | Path = HOSTS_FILE):
        self.task, self.json, self.message, self.dry_run = task, bool(json_), message, bool(dry_run)
        self.notify, self.hosts_file = notify, Path(hosts_file)  # the file read (inventory.path)
        self.folder = self.hosts_file.resolve().parent  # where notify.command runs, as ssh_config is read

    @property
    def screen(self):
        """The console a person reads: stdout, or stderr with --json."""
        from . import report

        return report.err if self.json else report.out

    def show(self, table) -> None:
        """A result table: on stdout, or nothing with --json (the document holds it)."""
        from . import report

        if not self.json:
            report.show(table)

    def done(self, hosts: list[dict], code: int, results=()) -> int:
        """The run's result: the document (with --json), a dry run's commands (without), then the
        notification; returns the exit code."""
        from . import document, notify, report

        doc = document.document(self.task, hosts, code, message=self.message, dry_run=self.dry_run)
        if self.json:
            try:
                sys.stdout.write(document.dumps(doc) + "\n")
                sys.stdout.flush()
            except BrokenPipeError:  # its reader went away: carry on (the notification), as the table does
                if not cmdline.stdout_closed():
                    raise
                cmdline.to_devnull(sys.stdout)
        else:
            report.plans(list(results))
        if self.notify and self.notify.configured and not self.dry_run:
            notify.send(self.notify, document.dumps(document.off_workstation(doc)), warn=report.warn, cwd=self.folder)
        return code
