"""The tasks that move traffic from one colour to the other: deploy and rollback. Their docstrings
are the `fab -l` and `fab --help TASK` text.

What a task runs (the sequence, the fleet, the report: Fabric, paramiko and rich) is imported when
it runs, not when `fab -l` lists the tasks."""

from __future__ import annotations

from invoke import task

from .cleanup import _cleanup
from .edge import HOST_HELP, RUN_HELP, TASK, _fab, _finish, _fleet, _hosts, _one_line, edge


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

    With build.where = "local" in the hosts file, the images are built first, once per platform,
    by the builder (before any host starts: a failed build changes nothing), and each host is
    sent over its SSH connection only the layers it lacks, before its `prepare`; the table says
    how much each host received. --dry-run builds nothing.

    Exit code: 0 every host deployed, 1 a host was not, 2 usage or hosts-file error, 130 Ctrl-C.
    """
    from . import report
    from .host.deploy import Deploy
    from .result import DEPLOYED

    _one_line("--message", message)
    hosts = _hosts(hosts_file, host, group, all_)
    fleet = _fleet(c, dry_run, batch, max_fail)
    builds = _build_first(fleet, hosts, hosts_file, dry_run)
    try:
        results = fleet.run(hosts, "deploy", lambda r, s, say: Deploy(
            r, s, say, message=message, interrupted=fleet.interrupted, builds=builds).run())
    finally:
        if builds:
            builds.close()
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
    from . import report
    from .host.deploy import Rollback
    from .result import DEPLOYED

    _one_line("--message", message)
    hosts = _hosts(hosts_file, host, group, all_)
    fleet = _fleet(c, dry_run, batch, max_fail)
    results = fleet.run(hosts, "rollback", lambda r, s, say: Rollback(
        r, s, say, message=message, interrupted=fleet.interrupted).run())
    report.out.print(report.deploy_table(results, title="fab rollback"))
    report.failure_details(results)
    _finish(fleet, results, DEPLOYED)


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


def _offer_cleanup(c, deployed, results, hosts_file: str) -> None:
    from . import report

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
