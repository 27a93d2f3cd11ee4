"""The tasks that move traffic from one colour to the other: deploy and rollback. Their docstrings
are the `fab -l` and `fab --help TASK` text.

What a task runs (the sequence, the fleet, the report: Fabric, paramiko and rich) is imported when
it runs, not when `fab -l` lists the tasks."""

from __future__ import annotations

from invoke import task

from .cleanup import _cleanup
from .edge import (HOST_HELP, JSON_HELP, RUN_HELP, TASK, Output, _exit, _fab, _fleet, _load, _one_line, edge,
                   exit_code)


@task(help={**HOST_HELP, **RUN_HELP, **JSON_HELP}, **TASK)
@edge
def deploy(c, host=None, group=None, all_=False, hosts_file="hosts.toml", dry_run=False, message="",
           batch=0, max_fail=0, json_=False):
    """Deploy the other colour with zero downtime, keeping the old one.

    On each host, in parallel: take the deploy lock; check the host (fab check); run
    `prepare`; arm a guard that puts the host back if fab goes silent; stop the live colour's
    background services (worker, beat); start the other colour's front services (web, redis);
    poll its health check; run the after_front hooks; point nginx at it; start its background
    services; check that they stay up. If a step fails (or on Ctrl-C) the host is rolled back
    and the old colour keeps serving. The old colour is never removed here: see `fab cleanup`.

    With --json the result is one JSON document on stdout (README, "--json"), and no cleanup is
    offered; e.g. the hosts not deployed:

        fab deploy --all --json | jq -r '.hosts[] | select(.ok | not) | .host'

    [defaults.notify] of the hosts file is told how the run ended (not for --dry-run).

    Exit code: 0 every host deployed, 1 a host was not, 2 usage or hosts-file error, 130 Ctrl-C.
    """
    from . import document, report
    from .host.deploy import Deploy
    from .result import DEPLOYED

    _one_line("--message", message)
    inventory, hosts = _load(hosts_file, host, group, all_)
    out = Output("deploy", json_, message, dry_run, inventory.notify, hosts_file)
    fleet = _fleet(c, dry_run, batch, max_fail)
    results = fleet.run(hosts, "deploy", lambda r, s, say: Deploy(
        r, s, say, message=message, interrupted=fleet.interrupted).run())
    out.show(report.deploy_table(results))
    report.failure_details(results)
    code = out.done(document.deploy_hosts(results), exit_code(fleet, results, DEPLOYED), results)
    if not dry_run and not fleet.interrupted.is_set():
        _offer_cleanup(c, [s for s, r in zip(hosts, results) if r.outcome == DEPLOYED and r.from_color],
                       {r.host: r for r in results}, hosts_file, out)
    _exit(code)


@task(help={**HOST_HELP, **RUN_HELP, **JSON_HELP}, **TASK)
@edge
def rollback(c, host=None, group=None, all_=False, hosts_file="hosts.toml", dry_run=False, message="",
             batch=0, max_fail=0, json_=False):
    """Go back to the colour that was live before, staged and checked.

    Only while that colour's containers are still the ones that served then (a later failed
    deploy recreated them, or a cleanup removed them: then it refuses and says so). No prepare
    step; the lock and the guard work as for deploy. --json and [defaults.notify] as for deploy:

        fab rollback --host pi5 --json | jq -r '.hosts[] | "\\(.host) \\(.result)"'

    Exit code: 0 every host rolled back, 1 a host was not, 2 usage or hosts-file error, 130 Ctrl-C.
    """
    from . import document, report
    from .host.deploy import Rollback
    from .result import DEPLOYED

    _one_line("--message", message)
    inventory, hosts = _load(hosts_file, host, group, all_)
    out = Output("rollback", json_, message, dry_run, inventory.notify, hosts_file)
    fleet = _fleet(c, dry_run, batch, max_fail)
    results = fleet.run(hosts, "rollback", lambda r, s, say: Rollback(
        r, s, say, message=message, interrupted=fleet.interrupted).run())
    out.show(report.deploy_table(results, title="fab rollback"))
    report.failure_details(results)
    _exit(out.done(document.deploy_hosts(results), exit_code(fleet, results, DEPLOYED), results))


def _offer_cleanup(c, deployed, results, hosts_file: str, out: Output) -> None:
    """At a terminal, offer to remove the old colour now (its own run: it notifies as a cleanup); with
    --json or no terminal, say how to do it later (on stderr with --json)."""
    from . import report

    if not deployed:
        return
    command = _fab("cleanup", deployed, hosts_file)
    names = ", ".join(f"{s.name}: {results[s.name].from_color} ({s.app}-{results[s.name].from_color})"
                      for s in deployed)
    if out.json or not report.confirm(f"Remove the old colour now? {names}\n(the same as: {command} --yes)"):
        out.screen.print(f"The old colour still runs, for a quick switch back. When you are happy: {command}",
                         soft_wrap=True, markup=False)
        return
    _cleanup(c, deployed, Output("cleanup", notify=out.notify, hosts_file=hosts_file), yes=True)
