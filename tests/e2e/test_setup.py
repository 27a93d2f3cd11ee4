"""fab setup on the bed: a host as a new user's is (the packaged nginx configuration, the Debian default
site enabled, no app site, no upstream file, no app folder) is made ready for its first deploy; run
again it changes nothing; --dry-run changes nothing; a user without sudo, or an nginx that rejects
what setup wrote, leaves the host as it was, with one reason."""

from __future__ import annotations

import os
from pathlib import Path

from tests.testbed.bed import Bed, Host

from .conftest import EXAMPLE, PORTS, UPSTREAM, fab, get, hosts_file, rows, serves


def nginx_and_app(h: Host) -> dict[str, str]:
    """What setup may change on a host: every file and link under /etc/nginx, and the app folder."""
    etc = h.path("/etc/nginx")
    found = {}
    for p in sorted(etc.rglob("*")):
        key = str(p.relative_to(etc))
        found[key] = f"-> {os.readlink(p)}" if p.is_symlink() else ("dir" if p.is_dir() else p.read_text())
    found["~/app"] = "dir" if (h.home / "app").is_dir() else "absent"
    return found


def one_host(tmp_path: Path, bed: Bed, h: Host, ssh: str = "") -> str:
    return str(hosts_file(tmp_path, bed, hosts=f'[hosts.{h.name}]\nssh = "{ssh or h.name}"\n'))


def test_setup_makes_a_stock_host_ready_for_its_first_deploy_and_then_changes_nothing(bed, hosts, tmp_path):
    h = hosts[0]
    h.stock_nginx()
    stock = nginx_and_app(h)
    assert stock["~/app"] == "absent" and stock["sites-enabled/default"].startswith("->")
    assert "conf.d/app_upstream.conf" not in stock and "sites-enabled/app" not in stock
    assert get(f"http://{h.ip}/health/")[0] == 404  # the packaged default site answers
    path = one_host(tmp_path, bed, h)

    dry = fab("setup", "--host", h.name, "--hosts-file", path, "--dry-run")
    assert dry.returncode == 0 and "dry run" in rows(dry.stdout)[h.name]
    assert "sudo -n nginx -t" in dry.stdout  # the commands it would run
    assert nginx_and_app(h) == stock  # and nothing changed

    r = fab("setup", "--host", h.name, "--hosts-file", path)
    assert r.returncode == 0, r.stderr
    row = rows(r.stdout)[h.name]
    assert "set up" in row and "sites-available/app" in row and h.ip in row
    assert h.run("nginx -t", check=False).returncode == 0
    assert h.path(UPSTREAM).read_text() == f"upstream app_backend {{ server 127.0.0.1:{PORTS['blue']}; }}\n"
    site = h.path("/etc/nginx/sites-available/app").read_text()
    assert f"server_name {h.name} {h.ip} localhost 127.0.0.1;" in site and "proxy_pass http://app_backend;" in site
    assert "include" not in site  # conf.d/*.conf is loaded by nginx.conf already: no duplicate upstream
    assert os.readlink(h.path("/etc/nginx/sites-enabled/app")) == "/etc/nginx/sites-available/app"
    assert os.readlink(h.path("/etc/nginx/sites-enabled/default")) == "/etc/nginx/sites-available/default"  # kept
    assert (h.home / "app").is_dir() and (h.home / "app").stat().st_uid == Bed.deploy_ids()[0]
    ready = nginx_and_app(h)

    again = fab("setup", "--host", h.name, "--hosts-file", path)
    assert again.returncode == 0 and "already set up" in rows(again.stdout)[h.name]
    assert nginx_and_app(h) == ready

    h.put_dir(EXAMPLE, "app")
    (h.home / "app" / "var").mkdir(exist_ok=True)
    os.chown(h.home / "app" / "var", *Bed.deploy_ids())
    deployed = fab("deploy", "--host", h.name, "--hosts-file", path)
    assert deployed.returncode == 0, deployed.stderr
    assert serves(h) == "blue 1"  # http://<ip>/health/ through port 80: the app, not the default site
    status, body = get(f"http://{h.ip}/")
    assert (status, body) == (200, "blue 1")
    assert h.run("curl -s -H 'Host: elsewhere' http://127.0.0.1/health/", user="deploy").stdout != "blue 1"


def test_setup_refuses_a_user_without_sudo_or_docker_and_changes_nothing(bed, hosts, tmp_path):
    h = hosts[0]
    h.stock_nginx()
    stock = nginx_and_app(h)
    r = fab("setup", "--host", h.name, "--hosts-file", one_host(tmp_path, bed, h, ssh=f"nosudo@{h.name}"))
    assert r.returncode == 1
    row = rows(r.stdout)[h.name]
    assert "refused" in row and "sudo -n asks for a password" in row
    assert "the SSH user nosudo is not in the docker group" in row
    assert nginx_and_app(h) == stock


def test_a_failing_nginx_t_puts_back_what_setup_wrote(bed, hosts, tmp_path):
    """An upstream of the same name elsewhere: nginx -t passes before setup, and rejects the upstream
    file it writes (duplicate upstream): setup removes what it wrote, and the host is as before."""
    h = hosts[0]
    h.stock_nginx()
    other = h.path("/etc/nginx/conf.d/mine.conf")
    other.write_text("upstream app_backend { server 127.0.0.1:9; }\n")
    h.reload_nginx()
    stock = nginx_and_app(h)
    r = fab("setup", "--host", h.name, "--hosts-file", one_host(tmp_path, bed, h))
    assert r.returncode == 1
    row = rows(r.stdout)[h.name]
    assert "refused" in row and "duplicate upstream" in row and "removed again" in row
    assert nginx_and_app(h) == stock
    assert h.run("nginx -t", check=False).returncode == 0


def test_a_host_set_up_by_hand_is_left_as_it_is(bed, hosts, tmp_path):
    """The bed's own hosts: a site of their own proxying to the upstream, the upstream file, ~/app."""
    h = hosts[0]
    before = nginx_and_app(h)
    r = fab("setup", "--host", h.name, "--hosts-file", one_host(tmp_path, bed, h))
    assert r.returncode == 0 and "already set up" in rows(r.stdout)[h.name]
    assert "sites-enabled/app (proxies to app_backend already)" in rows(r.stdout)[h.name]
    assert nginx_and_app(h) == before
