"""The tasks that move traffic from one colour to the other: deploy (or stage), promote and
rollback. Their docstrings are the `fab -l` and `fab --help TASK` text.

What a task runs (the sequence, the fleet, the report: Fabric, paramiko and rich) is imported when
it runs, not when `fab -l` lists the tasks."""

from __future__ import annotations

from invoke import task

from .cleanup import _cleanup
from .edge import (HOST_HELP, JSON_HELP, RUN_HELP, TASK, Output, _exit, _fab, _fleet, _load, _one_line, _secrets,
                   edge, exit_code)


@task(help={**HOST_HELP, **RUN_HELP, **JSON_HELP, "no-switch": "stage the new colour beside the live one, healthy, "
            "and stop there: no traffic moves (fab promote finishes, fab rollback removes it)"}, **TASK)
@edge
def deploy(c, host=None, group=None, all_=False, hosts_file="", dry_run=False, message="",
           batch=0, max_fail=0, no_switch=False, json_=False):
    """Deploy the other colour with zero downtime, keeping the old one.

    On each host, in parallel: take the deploy lock; check the host (fab check); write the
    new colour's secrets ([defaults.secrets]) and its own copy of the `upload` files (the
    compose file from your repo: that colour runs from it); run `prepare`; arm a guard that
    puts the host back if fab goes silent; stop the live colour's background services (worker,
    beat); start the other colour's front services (web, redis); poll its health check; run
    the after_front hooks; point nginx at it; start its background services; check that they
    stay up. If a step fails (or on Ctrl-C) the host is rolled back and the old colour keeps
    serving. The old colour is never removed here: see `fab cleanup`.

    With --no-switch the deploy stops once the new front is healthy and through after_front:
    the live colour keeps the traffic and its background, and the result is `staged`. Try the
    new colour on the host (fab status shows its port), then `fab promote` finishes the deploy,
    or `fab rollback` removes it.

    With build.where = "local" in the hosts file, the images are built first, once per platform,
    by the builder (before any host starts: a failed build changes nothing), and each host is
    sent over its SSH connection only the layers it lacks, before its `prepare`; the table says
    how much each host received. --dry-run builds nothing.

    With --json the result is one JSON document on stdout (README, "--json"), and no cleanup is
    offered; e.g. the hosts not deployed:

        fab deploy --all --json | jq -r '.hosts[] | select(.ok | not) | .host'

    [defaults.notify] of the hosts file is told how the run ended (not for --dry-run).

    Exit code: 0 every host deployed (staged), 1 a host was not, 2 usage or hosts-file error,
    130 Ctrl-C.
    """
    from .host.deploy import Deploy, Stage
    from .result import DEPLOYED, STAGED

    hosts, fleet, results, out = _sequence(c, Stage if no_switch else Deploy, "deploy", host, group, all_,
                                           hosts_file, dry_run, message, batch, max_fail, json_, ship=True)
    code = out.done(_document(results), exit_code(fleet, results, STAGED if no_switch else DEPLOYED), results)
    if not dry_run and not no_switch and not fleet.interrupted.is_set():
        _offer_cleanup(c, [s for s, r in zip(hosts, results) if r.outcome == DEPLOYED and r.from_color],
                       {r.host: r for r in results}, hosts_file, out)
    _exit(code)


@task(help={**HOST_HELP, **RUN_HELP, **JSON_HELP}, **TASK)
@edge
def promote(c, host=None, group=None, all_=False, hosts_file="", dry_run=False, message="",
            batch=0, max_fail=0, json_=False):
    """Move the traffic to a colour staged by deploy --no-switch, finishing that deploy.

    fab deploy --no-switch --host pi5            # green's front runs, healthy, beside blue
    fab status --host pi5                        # live: blue; staged: green (port 18002)
    ssh pi5 curl -s http://127.0.0.1:18002/      # try green on the host
    fab promote --host pi5                       # traffic to green
    fab rollback --host pi5                      # or, instead: remove the staged green

    On each host, as a deploy does from there on: take the lock; check the host; health-check
    the staged colour again; arm the guard; stop the live colour's background; point nginx at
    the staged colour; run after_switch; start its background and check that it stays up;
    record. If a step fails (or on Ctrl-C) the host is rolled back as after a failed deploy:
    the old colour serves, the staged colour is stopped (kept for its logs). A host with no
    staged colour is refused. --json and [defaults.notify] as for deploy.

    Exit code: 0 every host promoted, 1 a host was not, 2 usage or hosts-file error, 130 Ctrl-C.
    """
    from .host.deploy import Promote
    from .result import DEPLOYED

    hosts, fleet, results, out = _sequence(c, Promote, "promote", host, group, all_, hosts_file, dry_run, message,
                                           batch, max_fail, json_)
    code = out.done(_document(results), exit_code(fleet, results, DEPLOYED), results)
    if not dry_run and not fleet.interrupted.is_set():
        _offer_cleanup(c, [s for s, r in zip(hosts, results) if r.outcome == DEPLOYED and r.from_color],
                       {r.host: r for r in results}, hosts_file, out)
    _exit(code)


@task(help={**HOST_HELP, **RUN_HELP, **JSON_HELP}, **TASK)
@edge
def rollback(c, host=None, group=None, all_=False, hosts_file="", dry_run=False, message="",
             batch=0, max_fail=0, json_=False):
    """Go back to the colour that was live before, staged and checked.

    Only while that colour's containers are still the ones that served then (a later failed
    deploy recreated them, or a cleanup removed them: then it refuses and says so). No prepare
    step; the lock and the guard work as for deploy. While a colour is staged (deploy
    --no-switch), rollback removes that colour instead (`docker compose down`, never -v) and
    nothing else changes: the result is `unstaged`. --json and [defaults.notify] as for deploy:

        fab rollback --host pi5 --json | jq -r '.hosts[] | "\\(.host) \\(.result)"'

    Exit code: 0 every host rolled back, 1 a host was not, 2 usage or hosts-file error, 130 Ctrl-C.
    """
    from .host.deploy import Rollback
    from .result import DEPLOYED, UNSTAGED

    _, fleet, results, out = _sequence(c, Rollback, "rollback", host, group, all_, hosts_file, dry_run, message,
                                       batch, max_fail, json_)
    _exit(out.done(_document(results), exit_code(fleet, results, DEPLOYED, UNSTAGED), results))


def _sequence(c, sequence, action: str, host, group, all_, hosts_file, dry_run, message, batch, max_fail, json_,
              ship: bool = False):
    """Run a sequence of tasks/host/deploy.py on the hosts (ship: first the images built off the
    hosts, build.where = "local"); show the table and what failed."""
    from . import report

    _one_line("--message", message)
    inventory, hosts = _load(hosts_file, host, group, all_)
    envs = _secrets(hosts)  # read and checked before any host is contacted
    files = _uploads(hosts)  # likewise: the files each deploy copies into the new colour's folder
    out = Output(action, json_, message, dry_run, inventory.notify, inventory.path)
    fleet = _fleet(c, dry_run, batch, max_fail)
    builds = _build_first(fleet, hosts, str(inventory.path), dry_run) if ship else None
    try:
        results = fleet.run(hosts, action, lambda r, s, say: sequence(
            r, s, say, message=message, interrupted=fleet.interrupted, env=envs[s.name], builds=builds,
            uploads=files[s.name]).run())
    finally:
        if builds:
            builds.close()
    out.show(report.deploy_table(results, title=f"fab {action}"))
    report.failure_details(results)
    return hosts, fleet, results, out


def _uploads(hosts) -> dict:
    from .config import uploads

    return uploads.for_hosts(hosts)


def _document(results) -> list[dict]:
    from . import document

    return document.deploy_hosts(results)


def _build_first(fleet, hosts, hosts_file: str, dry_run: bool):
    """build.where = "local": each host's platform read, then each build made once per platform,
    before any host's sequence starts (a build that fails changes nothing on any host)."""
    from . import report
    from .build import Builds
    from .host.ship import platform

    local = [s for s in hosts if s.build.local]
    if not local:
        return None
    builds = Builds(fleet.progress.note, dry_run, meter=report.Bars())
    try:
        builds.read_recipes(local, hosts_file)  # a wrong build.services or compose file: exit 2, nothing ran
        builds.make(local, fleet.run_plain(local, platform, lambda host, error: None))
    except BaseException:
        builds.close()
        raise
    return builds


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
    _cleanup(c, deployed, Output("cleanup", notify=out.notify, hosts_file=out.hosts_file), yes=True)
