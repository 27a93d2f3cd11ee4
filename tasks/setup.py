"""The task that prepares hosts for their first deploy: setup. Its docstring is the `fab -l` and
`fab --help setup` text.

What it runs (the fleet, the report: Fabric, paramiko and rich) is imported when it runs, not when
`fab -l` lists the tasks."""

from __future__ import annotations

from invoke import task

from .edge import HOST_HELP, JSON_HELP, RUN_HELP, TASK, Output, _exit, _fleet, _load, edge


@task(help={**HOST_HELP, "dry-run": RUN_HELP["dry-run"], **JSON_HELP}, **TASK)
@edge
def setup(c, host=None, group=None, all_=False, hosts_file="hosts.toml", dry_run=False, json_=False):
    """Prepare hosts for their first deploy: dir, the upstream file, an nginx site.

    On each host: check it as fab check does (sudo -n, docker and the docker group, compose,
    nginx); a host missing one of them is refused, with what is missing, and nothing changes
    (setup installs nothing). Then, each only if it is not there yet: create `dir`; write the
    first upstream file (switch.upstream_file, pointing at blue's port); write an nginx site
    proxying to the upstream, where nginx loads sites (sites-available/ with its link in
    sites-enabled/, else conf.d/), answering port 80 for the host's name and addresses (and
    127.0.0.1, localhost) while the packaged default site stays enabled for every other name;
    it includes the upstream file only where nginx does not load it already. Then `nginx -t`
    (failing: what setup wrote is removed again, nothing changed) and a reload. Where the host
    runs systemd and sudo -n works: a oneshot unit that puts the host back at boot after a power
    cut mid-deploy (fab check's boot-putback line); where it cannot, a warning, nothing more.

    A host with a site that proxies to the upstream keeps it. Run again, setup changes nothing
    ("already set up"). --dry-run prints the commands and changes nothing.

    With --json: one JSON document on stdout instead of the table (README, "--json"); e.g.

        fab setup --all --json | jq -r '.hosts[] | "\\(.host) \\(.result)"'

    Exit code: 0 every host set up (or already), 1 a host was not, 2 usage or hosts-file error,
    130 Ctrl-C.
    """
    from . import document, report
    from .host.setup import setup as setup_host

    _, hosts = _load(hosts_file, host, group, all_)
    out = Output("setup", json_, dry_run=dry_run)
    fleet = _fleet(c, dry_run)
    results = fleet.run(hosts, "setup", lambda r, s, say: setup_host(r, s, say))
    out.show(report.setup_table(results))
    code = fleet.interrupted.exit_code if fleet.interrupted.is_set() else 0 if all(r.ok for r in results) else 1
    _exit(out.done(document.setup_hosts(results), code, results))
