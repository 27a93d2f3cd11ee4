"""fab setup without a host: what it plans from what `nginx -T` shows (where the site goes, whether it
includes the upstream file, which names it answers for), its command lines run by a real sh on a
sandbox (made, put back when nginx -t fails, nothing over a file that is there), and its sequence
against a recording remote (a refused host runs nothing but the read; a dry run only plans)."""

from __future__ import annotations

import subprocess
from dataclasses import replace
from pathlib import Path

import pytest

from tasks.config.schema import HostSettings, Switch
from tasks.host import setup
from tasks.host.remote import DryRunRemote, RecordingRemote
from tasks.result import DRY_RUN, READY, REFUSED
from tasks.shell import site
from tasks.shell.base import MARK

from .sandbox import Sandbox

S = HostSettings(name="pi5", ssh="deploy@pi5.local")

NGINX_CONF = """\
user www-data;
include /etc/nginx/modules-enabled/*.conf;
http {
\tinclude /etc/nginx/mime.types;
\t# include /etc/nginx/commented-out/*.conf;
\tinclude /etc/nginx/conf.d/*.conf;
\tinclude /etc/nginx/sites-enabled/*;
}
"""
DEFAULT_SITE = """\
server {
\tlisten 80 default_server;
\tlisten [::]:80 default_server;
\tserver_name _;
}
"""
CONF_D_ONLY = "http { include mime.types; include conf.d/*.conf; }\n"  # relative, on one line


def dump(files: dict[str, str]) -> str:
    return "".join(f"# configuration file {path}:\n{text}\n" for path, text in files.items())


def facts(nginx: str, dir_: bool = False, upstream: bool = False, hostname: str = "pi5",
          ssh_connection: str = "192.0.2.50 51000 192.0.2.7 22") -> str:
    return (f"ok ssh deploy@pi5\n{MARK}dir\n{'yes' if dir_ else ''}\n{MARK}upstream\n{'yes' if upstream else ''}\n"
            f"{MARK}address\n{ssh_connection}\n{hostname}\n{MARK}nginx\n{nginx}")


DEBIAN = dump({"/etc/nginx/nginx.conf": NGINX_CONF, "/etc/nginx/mime.types": "types {}\n",
               "/etc/nginx/sites-enabled/default": DEFAULT_SITE})


def test_on_debian_the_site_goes_to_sites_available_and_does_not_include_the_upstream_again():
    p = setup.plan(S, setup.parse(facts(DEBIAN)))
    assert (p.make_dir, p.upstream, p.site, p.link) == (True, True, "/etc/nginx/sites-available/app",
                                                        "/etc/nginx/sites-enabled/app")
    assert "include" not in p.text  # conf.d/*.conf loads the upstream file already: no duplicate upstream
    assert "    server_name pi5 192.0.2.7 pi5.local localhost 127.0.0.1;\n" in p.text
    assert "proxy_pass http://app_backend;" in p.text and "listen 80;\n    listen [::]:80;\n" in p.text
    assert any("default site /etc/nginx/sites-enabled/default" in k for k in p.kept)
    assert not p.refused


def test_where_only_conf_d_is_loaded_the_site_goes_there():
    p = setup.plan(S, setup.parse(facts(dump({"/etc/nginx/nginx.conf": CONF_D_ONLY}))))
    assert (p.site, p.link) == ("/etc/nginx/conf.d/app.conf", "")
    assert "include" not in p.text and "[::]" not in p.text  # no site listens on IPv6 here
    app_upstream = replace(S, app="app_upstream")  # the site may not overwrite the upstream file
    assert setup.plan(app_upstream, setup.parse(facts(dump({"/etc/nginx/nginx.conf": CONF_D_ONLY})))).site == \
        "/etc/nginx/conf.d/app_upstream-site.conf"


def test_an_upstream_file_nginx_does_not_load_is_included_by_the_site():
    s = replace(S, switch=Switch(upstream_file="/etc/nginx/app/upstream.conf"))
    p = setup.plan(s, setup.parse(facts(DEBIAN)))
    assert p.text.startswith("# written by fab-bluegreen setup")
    assert "\ninclude /etc/nginx/app/upstream.conf;" in p.text


def test_a_site_that_proxies_to_the_upstream_is_kept_and_a_set_up_host_needs_nothing():
    mine = dump({"/etc/nginx/nginx.conf": NGINX_CONF,
                 "/etc/nginx/sites-enabled/shop": "server { location / { proxy_pass http://app_backend; } }\n"})
    p = setup.plan(S, setup.parse(facts(mine, dir_=True, upstream=True)))
    assert (p.make_dir, p.upstream, p.site, p.link, p.done) == (False, False, "", "", [])
    assert "site /etc/nginx/sites-enabled/shop (proxies to app_backend already)" in p.kept


@pytest.mark.parametrize("nginx, reason", [
    (dump({"/etc/nginx/nginx.conf": "http { include mime.types; }\n"}), "nginx loads no sites from"),
    (f"{MARK}nginx-fails nginx: [emerg] unknown directive \"x\"", "nginx -t fails before setup changed anything"),
])
def test_setup_refuses_what_it_cannot_place(nginx, reason):
    assert setup.plan(S, setup.parse(facts(nginx))).refused.startswith(reason)


@pytest.mark.parametrize("hostname, ssh_connection, expected", [
    ("pi5", "192.0.2.50 51000 192.0.2.7 22", ["pi5", "192.0.2.7", "pi5.local", "localhost", "127.0.0.1"]),
    ("$(reboot)", "192.0.2.50 51000 192.0.2.7 22", ["192.0.2.7", "pi5.local", "localhost", "127.0.0.1"]),
    ("pi5;", "2001:db8::1 51000 2001:db8::7 22", ["[2001:db8::7]", "pi5.local", "localhost", "127.0.0.1"]),
    ("pi5", "fe80::1%eth0 51000 fe80::7%eth0 22", ["pi5", "pi5.local", "localhost", "127.0.0.1"]),
    ("", "", ["pi5.local", "localhost", "127.0.0.1"]),
])
def test_only_plain_names_and_ipv4_addresses_reach_server_name(hostname, ssh_connection, expected):
    assert setup.server_names(S, setup.parse(facts(DEBIAN, hostname=hostname, ssh_connection=ssh_connection))) \
        == expected


# --- the command lines, run by a real sh --------------------------------------------------------

@pytest.fixture
def box(tmp_path):
    sandbox = Sandbox(tmp_path)
    etc = tmp_path / "etc-nginx"
    for d in ("conf.d", "sites-available", "sites-enabled"):
        (etc / d).mkdir(parents=True)
    s = HostSettings(name="pi5", ssh="pi5", dir="~/my app's", switch=Switch(
        upstream_file=f"{etc}/conf.d/app_upstream.conf", pid_file=f"{tmp_path}/run/nginx.pid"))
    sandbox.start_nginx(Path(s.switch.pid_file))
    yield sandbox, s, etc
    sandbox.stop()


def apply(s: HostSettings, etc: Path) -> tuple[str, str]:
    text = site.site_text(s, ["pi5", "192.0.2.7"])
    return site.apply(s, True, True, f"{etc}/sites-available/app", text, f"{etc}/sites-enabled/app"), text


def test_apply_makes_dir_upstream_site_and_link_then_tests_and_reloads(box):
    sandbox, s, etc = box
    command, text = apply(s, etc)
    r = sandbox.sh(command)
    assert r.returncode == 0, (r.stdout, r.stderr)
    assert (sandbox.home / "my app's").is_dir()
    assert (etc / "conf.d/app_upstream.conf").read_text() == "upstream app_backend { server 127.0.0.1:18001; }\n"
    assert (etc / "sites-available/app").read_text() == text  # $host, quotes and all: intact
    assert (etc / "sites-enabled/app").readlink() == etc / "sites-available/app"
    assert [argv for _, argv in sandbox.calls("nginx")] == [["nginx", "-t"], ["nginx", "-s", "reload"]]


def test_a_failing_nginx_t_removes_what_apply_made(box):
    sandbox, s, etc = box
    (sandbox.bin / "nginx").write_text('#!/bin/sh\necho "nginx: [emerg] duplicate upstream \\"app_backend\\" in x:1" >&2\n'
                                       'echo "nginx: configuration file x test failed" >&2\nexit 1\n')
    r = sandbox.sh(apply(s, etc)[0])
    assert r.returncode == 3
    assert f'{MARK}why nginx -t rejects what setup wrote, so it was removed again: nginx: [emerg] duplicate ' \
        'upstream "app_backend" in x:1' in r.stdout
    assert sorted(p.name for p in etc.rglob("*")) == ["conf.d", "sites-available", "sites-enabled"]
    assert not (sandbox.home / "my app's").exists()


def test_apply_writes_nothing_over_a_site_file_that_is_there(box):
    sandbox, s, etc = box
    (etc / "sites-available/app").write_text("mine\n")
    r = sandbox.sh(apply(s, etc)[0])
    assert r.returncode == 2 and "exists already" in r.stdout
    assert (etc / "sites-available/app").read_text() == "mine\n"
    assert not (etc / "conf.d/app_upstream.conf").exists() and not (sandbox.home / "my app's").exists()


@pytest.mark.parametrize("shell", ["sh", "bash"])
def test_the_commands_parse(shell):
    s = replace(S, dir="~/it's $(x)")
    for line in (site.facts(s), site.apply(s, True, True, "/etc/nginx/sites-available/app", site.site_text(s, ["a"]),
                                           "/etc/nginx/sites-enabled/app")):
        assert subprocess.run([shell, "-n", "-c", line], capture_output=True).returncode == 0


# --- the sequence -----------------------------------------------------------------------------

def test_a_host_without_sudo_or_docker_is_refused_with_one_reason_after_the_read_alone():
    checks = ("ok ssh nosudo@pi5\nfail sudo sudo -n asks for a password\n"
              "fail docker the SSH user nosudo is not in the docker group\nok compose v2\n")
    remote = RecordingRemote(answer=lambda command: (0, checks + facts(DEBIAN)))
    result = setup.setup(remote, S)
    assert result.outcome == REFUSED and len(remote.commands) == 1
    assert result.reason == ("sudo: sudo -n asks for a password; docker: the SSH user nosudo is not in the docker "
                             "group (setup installs nothing)")


def test_a_dry_run_plans_the_apply_and_a_set_up_host_is_left_alone():
    remote = RecordingRemote(answer=lambda command: (0, "ok ssh d@pi5\nok compose_file compose.yml\n" + facts(DEBIAN)))
    dry = DryRunRemote(remote)
    result = setup.setup(dry, S)
    assert result.outcome == DRY_RUN and len(remote.commands) == 1  # the read ran, the apply only planned
    assert [kind for kind, _ in dry.plan] == ["read", "run"] and "sudo -n nginx -t" in dry.plan[1][1]
    assert result.done[0] == "dir ~/app created"
    ready = facts(dump({"/etc/nginx/nginx.conf": NGINX_CONF,
                        "/etc/nginx/sites-enabled/app": "server { location / { proxy_pass http://app_backend; } }"}),
                  dir_=True, upstream=True)
    remote = RecordingRemote(answer=lambda command: (0, "ok ssh d@pi5\nok compose_file compose.yml\n" + ready))
    assert setup.setup(remote, S).outcome == READY and len(remote.commands) == 1


# --- what the user sees -----------------------------------------------------------------------

def test_the_table_and_the_document_say_what_setup_did_kept_and_why():
    from rich.console import Console

    from tasks import document, report
    from tasks.result import SET_UP, SetupResult

    results = [SetupResult("pi5", "setup", outcome=SET_UP, done=["dir ~/app created"], kept=["default site x"],
                           warnings=["compose.yml is not in ~/app yet"]),
               SetupResult("vm1", "setup", outcome=READY),
               SetupResult("n1", "setup", outcome=REFUSED, reason="sudo: sudo -n asks for a password")]
    console = Console(record=True, width=200)
    console.print(report.setup_table(results))
    text = console.export_text()
    assert "dir ~/app created" in text and "default site x" in text and "warning: compose.yml is not" in text
    assert "already set up" in text and "nothing (already set up)" in text
    assert "refused" in text and "sudo: sudo -n asks for a password" in text
    hosts = document.setup_hosts(results)
    assert hosts[0] == {"host": "pi5", "done": ["dir ~/app created"], "kept": ["default site x"], "result": "set up",
                        "ok": True, "step": None, "seconds": 0.0, "reason": None,
                        "warnings": ["compose.yml is not in ~/app yet"], "plan": None}
    assert [h["ok"] for h in hosts] == [True, True, False]


def test_fab_setup_without_hosts_is_a_usage_error_and_contacts_none(tmp_path):
    import os
    import sys

    fab = Path(sys.executable).parent / "fab"
    root = Path(__file__).resolve().parents[2]
    (tmp_path / "hosts.toml").write_text('[hosts.h1]\nssh = "deploy@127.0.0.1:1"\n')
    r = subprocess.run([str(fab), "--search-root", str(root), "setup"], cwd=tmp_path, capture_output=True, text=True,
                       timeout=60, env={**os.environ, "COLUMNS": "200"})
    assert r.returncode == 2 and r.stderr.startswith("error: name the hosts to work on") and r.stderr.count("\n") == 1


# --- the put-back at boot (tasks/shell/boot.py) -------------------------------------------------------

READY_NGINX = facts(dump({"/etc/nginx/nginx.conf": NGINX_CONF,
                          "/etc/nginx/sites-enabled/app": "server { location / { proxy_pass http://app_backend; } }"}),
                    dir_=True, upstream=True)


def boot_host(line: str, registered: tuple[int, str] = (0, "")) -> RecordingRemote:
    """A set-up host whose check says `line` about the put-back at boot; registering it answers `registered`."""
    def answer(command: str) -> tuple[int, str]:
        if command.startswith("say() {"):
            return 0, f"ok ssh d@pi5\nok compose_file compose.yml\n{line}\n" + READY_NGINX
        return registered
    return RecordingRemote(answer=answer)


def test_setup_registers_the_put_back_at_boot_where_it_is_missing_and_keeps_one_that_is_there():
    from tasks.result import SET_UP
    from tasks.shell import boot

    remote = boot_host(f"warn {boot.CHECK} {boot.NOT_REGISTERED}: fab setup registers x", (0, f"{boot.DONE}\n"))
    result = setup.setup(remote, S)
    assert result.outcome == SET_UP and result.done == [setup.BOOT_DONE] and not result.warnings
    assert len(remote.commands) == 2 and remote.commands[1] == boot.register(S)  # no nginx apply: nothing to make
    remote = boot_host(f"ok {boot.CHECK} {boot.REGISTERED} (x)")
    result = setup.setup(remote, S)
    assert result.outcome == READY and len(remote.commands) == 1 and f"{boot.CHECK} {boot.REGISTERED} (x)" in result.kept


def test_a_put_back_at_boot_the_host_cannot_have_is_a_warning_never_a_failure():
    from tasks.result import SET_UP
    from tasks.shell import boot

    remote = boot_host(f"warn {boot.CHECK} {boot.NOT_AVAILABLE}: no systemd (the next run puts the host back)")
    result = setup.setup(remote, S)
    assert result.outcome == READY and len(remote.commands) == 1
    assert result.warnings == [f"{boot.CHECK}: {boot.NOT_AVAILABLE}: no systemd (the next run puts the host back)"]
    remote = boot_host(f"warn {boot.CHECK} {boot.NOT_REGISTERED}: x", (1, "Failed to enable unit\n"))
    result = setup.setup(remote, S)
    assert result.outcome == READY and result.done == [] and len(remote.commands) == 2
    assert result.warnings == [f"{boot.CHECK}: {boot.NOT_REGISTERED}: Failed to enable unit (the next run puts the "
                               "host back)"]
    dry = DryRunRemote(boot_host(f"warn {boot.CHECK} {boot.NOT_REGISTERED}: x"))
    assert setup.setup(dry, S).outcome == DRY_RUN and [kind for kind, _ in dry.plan] == ["read", "run"]
