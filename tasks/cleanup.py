"""The tasks that remove the old colour: cleanup, and drain, which runs the tasks left in its broker
first. Their docstrings are the `fab -l` and `fab --help TASK` text.

What a task runs (the sequence, the fleet, the report: Fabric, paramiko and rich) is imported when
it runs, not when `fab -l` lists the tasks."""

from __future__ import annotations

from typing import TYPE_CHECKING

from invoke import task

from .edge import HOST_HELP, JSON_HELP, RUN_HELP, TASK, Output, _exit, _fleet, _load, _one_line, edge
from .errors import UsageError

if TYPE_CHECKING:
    from .config.schema import HostSettings


@task(help={**HOST_HELP, "yes": "remove without asking (needed when there is no terminal)",
            "dry-run": "print the exact commands, per host, and change nothing",
            "prune-images": "also remove the old colour's images that no container uses",
            "force": "do not wait for open connections to the old colour to close: cut them at once "
                     "(the table counts them)", **JSON_HELP}, **TASK)
@edge
def cleanup(c, host=None, group=None, all_=False, hosts_file="", yes=False, dry_run=False,
            prune_images=False, force=False, json_=False):
    """Remove the old colour, after you have checked the new one.

    Shows what it will remove on each host (the colour that is not live), asks (the default is
    no) unless --yes, then runs `docker compose -p <app>-<old colour> down` on that colour only:
    never -v (volumes stay), never the live colour, never the shared services. A host with
    nothing left to remove is "nothing to clean". With a broker per colour it refuses while
    tasks wait in the old colour's broker, naming the queues: run `fab drain` first.

    Before `down` it counts the open connections to the old colour's port (long requests,
    websockets, streams that began before the switch) and waits up to drain_connections seconds
    (60) for them to close, showing the count as it falls; the table says how many were still
    open and cut. --force skips that wait (it never skips the broker's refusal); --yes only
    answers the question. Ctrl-C during the wait: nothing is removed where it waits.

    With --json the result is one JSON document on stdout (README, "--json"); the plan and the
    question, if it asks, go to stderr. E.g. what was removed:

        fab cleanup --all --yes --json | jq '.hosts[].containers'

    [defaults.notify] of the hosts file is told how the run ended (not for --dry-run).

    Exit code: 0 done or nothing to clean, 1 a host not cleaned, 2 usage or hosts-file error
    (including no terminal to ask at and no --yes), 130 Ctrl-C.
    """
    inventory, hosts = _load(hosts_file, host, group, all_)
    out = Output("cleanup", json_, dry_run=dry_run, notify=inventory.notify, hosts_file=inventory.path)
    _exit(_cleanup(c, hosts, out, yes or dry_run, dry_run, prune_images, force))


def _cleanup(c, hosts: list[HostSettings], out: Output, yes: bool, dry_run: bool = False,
             prune_images: bool = False, force: bool = False) -> int:
    """Plan on every host, ask, remove; the exit code (0 every host cleaned or had nothing to clean,
    130 Ctrl-C)."""
    from . import document, report
    from .host import cleanup as cleanup_host
    from .result import NOTHING, PLANNED

    plans = _fleet(c).run(hosts, "cleanup", lambda r, s, say: cleanup_host.plan(r, s))
    todo = [(s, p) for s, p in zip(hosts, plans) if p.outcome == PLANNED]
    if not todo:
        out.show(report.cleanup_table(plans))
        return out.done(document.cleanup_hosts(plans), 0 if all(p.outcome == NOTHING for p in plans) else 1)
    if not yes:
        report.show(report.cleanup_table(plans, title="fab cleanup: plan"), out.screen)
        if not report.confirm("Remove these containers? (volumes and the live colour stay)", out.screen):
            if not report.interactive(out.screen):
                raise UsageError("cleanup removes containers: add --yes to confirm (there is no terminal to ask at)")
            out.screen.print("Nothing removed.")
            return out.done(document.cleanup_hosts(plans), 1)
    else:
        out.show(report.cleanup_table(plans, title="fab cleanup: plan"))
    planned = {s.name: p for s, p in todo}
    fleet = _fleet(c, dry_run)
    done = fleet.run([s for s, _ in todo], "cleanup", lambda r, s, say: cleanup_host.remove(
        r, s, planned[s.name], prune_images, force, say, fleet.interrupted.is_set))
    by_host = {r.host: r for r in done}
    results = [by_host.get(p.host, p) for p in plans]
    out.show(report.cleanup_table(results))
    code = fleet.interrupted.exit_code if fleet.interrupted.is_set() else 0 if all(r.ok for r in results) else 1
    return out.done(document.cleanup_hosts(results), code, results)


@task(help={**HOST_HELP, "message": RUN_HELP["message"], **JSON_HELP}, **TASK)
@edge
def drain(c, host=None, group=None, all_=False, hosts_file="", message="", json_=False):
    """Run the tasks left in the old colour's broker, so that cleanup may remove it.

    With a broker per colour (redis in `front`), tasks queued in the old colour's redis after
    its workers stopped wait there, and `fab cleanup` refuses to remove them. drain starts the
    old colour's worker services only (never beat; [broker] workers names them), waits until
    its queues ([broker] queues) are empty (up to [broker] drain_timeout), stops the workers
    again, gracefully, and writes a `drain` line in the history. The old workers run beside
    the new ones meanwhile.

    With --json the result is one JSON document on stdout (README, "--json"); e.g. what waited:

        fab drain --host pi5 --json | jq '.hosts[].waited'

    [defaults.notify] of the hosts file is told how the run ended.

    Exit code: 0 drained or nothing waited, 1 a host not drained, 2 usage or hosts-file error.
    """
    from . import document, report
    from .host import drain as drain_host

    _one_line("--message", message)
    inventory, hosts = _load(hosts_file, host, group, all_)
    out = Output("drain", json_, message, notify=inventory.notify, hosts_file=inventory.path)
    fleet = _fleet(c)
    results = fleet.run(hosts, "drain", lambda r, s, say: drain_host.drain(r, s, say, message))
    out.show(report.drain_table(results))
    _exit(out.done(document.drain_hosts(results), 0 if all(r.ok for r in results) else 1))
