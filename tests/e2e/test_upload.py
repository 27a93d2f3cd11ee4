"""upload on real hosts: the compose file comes from the app's repo (a folder on this machine), each
colour runs its own copy of it, a rollback brings back the old colour with its own (old) copy; and
health.host: the Host header that an nginx server_name site (or Django's ALLOWED_HOSTS) needs."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import pytest

from tests.testbed.bed import NGINX_SITE

from .conftest import EXAMPLE, containers, fab, get, hosts_file, rows, serves_now

COPIES = Path("app") / ".fab-bluegreen"


def app_repo(tmp_path: Path, bed, **defaults: str) -> tuple[Path, Path]:
    """The app's own repo on this machine (a copy of examples/simple) with its hosts.toml, which
    uploads compose.yml; prepare builds from the colour's copy ({compose})."""
    repo = tmp_path / "repo"
    shutil.copytree(EXAMPLE, repo)
    path = hosts_file(repo, bed, hosts='[hosts.h1]\nssh = "h1"\n',
                      **{"upload": '["compose.yml"]', "prepare": '["{compose} build -q"]', **defaults})
    return repo, path


def env_of(h, color: str, service: str = "web") -> list[str]:
    cid = containers(h, color)[service]["id"]
    return json.loads(h.run(f"docker inspect -f '{{{{json .Config.Env}}}}' {cid}").stdout)


def config_files(h, color: str) -> set[str]:
    out = h.run(f"docker ps -aq --filter label=com.docker.compose.project=app-{color} | xargs docker inspect -f "
                "'{{index .Config.Labels \"com.docker.compose.project.config_files\"}} "
                "{{index .Config.Labels \"com.docker.compose.project.working_dir\"}}'").stdout
    return set(out.splitlines())


def test_each_colour_runs_its_own_copy_of_the_repo_s_compose_file_and_a_rollback_its_old_one(bed, hosts, tmp_path):
    h1 = hosts[0]
    (h1.home / "app" / "compose.yml").unlink()  # the host holds only what the compose file builds from
    repo, path = app_repo(tmp_path, bed)
    old = (repo / "compose.yml").read_text()

    first = fab("deploy", "--host", "h1", "--hosts-file", str(path))
    assert first.returncode == 0, first.stdout
    serves_now(h1, "blue 1")
    assert not (h1.home / "app" / "compose.yml").exists()
    assert (h1.home / COPIES / "app.blue" / "compose.yml").read_text() == old
    assert config_files(h1, "blue") == {"/home/deploy/app/.fab-bluegreen/app.blue/compose.yml /home/deploy/app"}

    # the compose file changes in the repo only
    new = old.replace("    DEPLOY_COLOR: ${DEPLOY_COLOR:-blue}\n",
                      "    DEPLOY_COLOR: ${DEPLOY_COLOR:-blue}\n    RELEASE: from-the-repo\n", 1)
    assert new != old
    (repo / "compose.yml").write_text(new)
    second = fab("deploy", "--host", "h1", "--hosts-file", str(path))
    assert second.returncode == 0, second.stdout
    serves_now(h1, "green 1")
    for service in ("web", "worker", "beat"):
        assert "RELEASE=from-the-repo" in env_of(h1, "green", service)
        assert not any(e.startswith("RELEASE=") for e in env_of(h1, "blue", service))
    assert (h1.home / COPIES / "app.green" / "compose.yml").read_text() == new
    assert (h1.home / COPIES / "app.blue" / "compose.yml").read_text() == old  # blue keeps what it ran
    assert config_files(h1, "green") == {"/home/deploy/app/.fab-bluegreen/app.green/compose.yml /home/deploy/app"}

    blue = containers(h1, "blue")
    plan = fab("rollback", "--host", "h1", "--dry-run", "--hosts-file", str(path))
    starts = [line for line in plan.stdout.splitlines() if " start web redis" in line]
    assert starts and all("-p app-blue --project-directory . -f \"$([ -f .fab-bluegreen/app.blue/compose.yml ]" in line
                          for line in starts), plan.stdout
    back = fab("rollback", "--host", "h1", "--hosts-file", str(path))
    assert back.returncode == 0, back.stdout
    serves_now(h1, "blue 1")
    after = containers(h1, "blue")
    assert {s: c["id"] for s, c in after.items()} == {s: c["id"] for s, c in blue.items()}  # started, not recreated
    assert {s: c["state"] for s, c in after.items()} == dict.fromkeys(["web", "redis", "worker", "beat"], "running")
    assert not any(e.startswith("RELEASE=") for e in env_of(h1, "blue", "worker"))
    assert (h1.home / COPIES / "app.blue" / "compose.yml").read_text() == old

    history = fab("history", "--host", "h1", "--json", "--hosts-file", str(path))
    assert history.returncode == 0
    actions = json.loads(history.stdout)["hosts"][0]["actions"]
    assert [(a["action"], a["to"], a["uploaded"]) for a in actions] == [
        ("deploy", "blue", {"compose.yml": hashlib.sha256(old.encode()).hexdigest()[:12]}),
        ("deploy", "green", {"compose.yml": hashlib.sha256(new.encode()).hexdigest()[:12]}),
        ("rollback", "blue", {"compose.yml": hashlib.sha256(old.encode()).hexdigest()[:12]})]
    table = fab("history", "--host", "h1", "--hosts-file", str(path))
    for text in (old, new):  # one row per line of the history
        assert f"uploaded compose.yml {hashlib.sha256(text.encode()).hexdigest()[:12]}" in table.stdout

    # cleanup removes green, and its copy with it (never a volume)
    volumes = set(h1.run("docker volume ls -q").stdout.split())
    gone = fab("cleanup", "--host", "h1", "--yes", "--hosts-file", str(path))
    assert gone.returncode == 0, gone.stdout
    assert containers(h1, "green") == {} and not (h1.home / COPIES / "app.green").exists()
    assert (h1.home / COPIES / "app.blue" / "compose.yml").read_text() == old
    assert set(h1.run("docker volume ls -q").stdout.split()) == volumes


def test_a_compose_file_compose_cannot_read_fails_check_and_the_deploy_before_anything_stops(bed, hosts, tmp_path):
    h1 = hosts[0]
    repo, path = app_repo(tmp_path, bed)
    assert fab("deploy", "--host", "h1", "--hosts-file", str(path)).returncode == 0
    good = (repo / "compose.yml").read_text()
    (repo / "compose.yml").write_text(good.replace("image: fbg/redis:7", "image: fbg/redis:7\n    bogus_key: 1"))
    checked = fab("check", "--host", "h1", "--json", "--hosts-file", str(path))
    assert checked.returncode == 1
    assert {"name": "compose_file", "result": "fail", "detail": f"{repo}/compose.yml (upload): validating -: services.redis "
            "additional properties 'bogus_key' not allowed"} in json.loads(checked.stdout)["hosts"][0]["checks"]
    failed = fab("deploy", "--host", "h1", "--hosts-file", str(path))
    row = rows(failed.stdout)["h1"]
    assert failed.returncode == 1 and "rolled back" in row and "upload" in row, failed.stdout
    assert "docker compose config failed" in row and "bogus_key" in row
    serves_now(h1, "blue 1")
    assert containers(h1, "green") == {}
    assert {s: c["state"] for s, c in containers(h1, "blue").items()} == dict.fromkeys(
        ["web", "redis", "worker", "beat"], "running")


def test_a_host_without_its_app_folder_gets_one(bed, hosts, tmp_path):
    """check passes without dir (a deploy makes it); the images come from the builder (h3), so the
    host needs nothing of the app beforehand."""
    h1 = hosts[0]
    shutil.rmtree(h1.home / "app")
    repo, path = app_repo(tmp_path, bed, prepare="[]", build='{ where = "local", builder = "ssh://h3" }')
    checked = fab("check", "--host", "h1", "--json", "--hosts-file", str(path))
    assert checked.returncode == 0, checked.stdout
    found = {c["name"]: (c["result"], c["detail"]) for c in json.loads(checked.stdout)["hosts"][0]["checks"]}
    assert found["dir"] == ("warn", "~/app does not exist yet: a deploy makes it")
    assert found["compose_file"][0] == "ok" and found["compose_file"][1].endswith("docker compose config passes")
    first = fab("deploy", "--host", "h1", "--hosts-file", str(path))
    assert first.returncode == 0, first.stdout
    serves_now(h1, "blue 1")
    assert (h1.home / COPIES / "app.blue" / "compose.yml").read_text() == (repo / "compose.yml").read_text()


# --- health.host: an nginx site that answers only for its server_name -------------------------------

NAMED_SITE = """\
server {
    listen 80 default_server;
    server_name _;
    return 404;
}
server {
    listen 80;
    server_name app.example;
    location / {
        proxy_pass http://app_backend;
        proxy_http_version 1.1;
        proxy_set_header Connection "";
        proxy_set_header Host $host;
    }
}
"""


@pytest.fixture
def named_site(hosts):
    """h1's nginx answers the app for Host: app.example only (404 otherwise); put back afterwards."""
    h1 = hosts[0]
    site = h1.path("/etc/nginx/sites-enabled/app")
    site.write_text(NAMED_SITE)
    h1.run("nginx -t 2>&1 && nginx -s reload")
    yield h1
    site.write_text(NGINX_SITE)
    h1.run("nginx -s reload")


def test_health_host_is_what_the_check_through_nginx_needs_behind_a_server_name(bed, named_site, tmp_path):
    h1 = named_site
    plain = fab("deploy", "--host", "h1", "--hosts-file", str(hosts_file(tmp_path, bed)))
    row = rows(plain.stdout)["h1"]
    assert plain.returncode == 1 and "rolled back" in row and "switch" in row, plain.stdout
    assert "HTTP codes: 404 404 404 404 404" in row

    named = hosts_file(tmp_path, bed, health='{ retries = 15, interval = 0.5, timeout = 2, host = "app.example" }')
    res = fab("deploy", "--host", "h1", "--hosts-file", str(named))
    assert res.returncode == 0, res.stdout
    assert get(f"http://{h1.ip}/health/")[0] == 404  # no name: the default server
    code = h1.run("curl -s -H 'Host: app.example' http://127.0.0.1/health/").stdout.strip()
    assert code == "blue 1"
    status = fab("status", "--host", "h1", "--json", "--hosts-file", str(named))
    assert json.loads(status.stdout)["hosts"][0]["health"] == {"http_code": 200, "ok": True}, status.stdout
