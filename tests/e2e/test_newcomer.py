"""The README's quickstart, as a newcomer runs it, on a bed host: from an app repository outside
this checkout (its own Celery-style tasks.py, no fabfile), with the tool installed from a wheel into
a fresh venv (not editable). The host starts as a new user's does: the package's own nginx
configuration with its default site enabled, and no app folder.

install -> init -> hosts.toml filled in (upload = the repo's compose.yml) -> setup -> check ->
deploy (the app answers through nginx on port 80) -> a change to compose.yml in the repo only ->
deploy (the new colour runs the changed file) -> rollback (the old colour runs its own copy, its
containers as they were) -> status from a subfolder of the repo."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from .conftest import containers, get, rows
from .test_install import CELERY_TASKS, install, run

COMPOSE = """\
x-app: &app
  image: fbg/busybox:1
  init: true
  environment:
    DEPLOY_COLOR: ${DEPLOY_COLOR:-blue}
    APP_VERSION: "1"

services:
  web:
    <<: *app
    command: ["sh", "-c", "mkdir -p /www/health && echo \\"$$DEPLOY_COLOR $$APP_VERSION\\" > /www/health/index.html && exec httpd -f -p 8000 -h /www"]
    ports: ["127.0.0.1:${DEPLOY_PORT:-18001}:8000"]
  worker:
    <<: *app
    command: ["sh", "-c", "while :; do sleep 1; done"]
  beat:
    <<: *app
    command: ["sh", "-c", "while :; do sleep 1; done"]
"""


def test_the_readme_quickstart_from_an_app_repository_on_a_stock_host(bed, hosts, tmp_path):
    h1 = hosts[0]
    fbg = str(install(tmp_path / "install") / "bin" / "fab-bluegreen")
    repo = tmp_path / "myapp"
    (repo / "src" / "myapp").mkdir(parents=True)
    (repo / "compose.yml").write_text(COMPOSE)
    (repo / "tasks.py").write_text(CELERY_TASKS)  # the app's own Celery tasks: never the tool's
    h1.stock_nginx()  # Debian's nginx as installed: default site enabled; no ~/app, no upstream file
    assert not (h1.home / "myapp").exists()
    try:
        said = run(fbg, "init", cwd=repo).stdout
        assert "front      web" in said and "background worker, beat" in said, said
        fill_in(repo / "hosts.toml", bed)

        setup = run(fbg, "setup", "--host", "h1", cwd=repo)
        assert "│ set up" in rows(setup.stdout)["h1"], setup.stdout
        run(fbg, "check", "--host", "h1", cwd=repo)
        run(fbg, "deploy", "--host", "h1", cwd=repo, timeout=300)
        assert get(f"http://{h1.ip}/health/") == (200, "blue 1")  # through nginx, port 80, the default site beside

        (repo / "compose.yml").write_text(COMPOSE.replace('APP_VERSION: "1"', 'APP_VERSION: "2"'))  # in the repo only
        blue = containers(h1, "blue", "myapp")
        run(fbg, "deploy", "--host", "h1", cwd=repo, timeout=300)
        assert get(f"http://{h1.ip}/health/") == (200, "green 2")
        assert env(h1, containers(h1, "green", "myapp")["web"]["id"])["APP_VERSION"] == "2"
        copies = h1.home / "myapp" / ".fab-bluegreen"
        assert 'APP_VERSION: "1"' in (copies / "myapp.blue" / "compose.yml").read_text()
        assert 'APP_VERSION: "2"' in (copies / "myapp.green" / "compose.yml").read_text()

        run(fbg, "rollback", "--host", "h1", cwd=repo, timeout=300)
        assert get(f"http://{h1.ip}/health/") == (200, "blue 1")
        back = containers(h1, "blue", "myapp")
        assert {s: c["id"] for s, c in back.items()} == {s: c["id"] for s, c in blue.items()}  # not recreated
        assert all(c["state"] == "running" for c in back.values())
        assert label(h1, back["web"]["id"], "com.docker.compose.project.config_files").endswith(
            "/.fab-bluegreen/myapp.blue/compose.yml")  # blue runs its own (old) copy

        status = run(fbg, "status", cwd=repo / "src" / "myapp")  # hosts.toml found in the repo's root
        assert "│ blue" in rows(status.stdout)["h1"], status.stdout
    finally:
        shutil.rmtree(h1.home / "myapp", ignore_errors=True)


def fill_in(path: Path, bed) -> None:
    """What the README says to edit after init: the host's name and ssh target (here a bed host, with
    the bed's SSH config), and quick timings for a test."""
    text = path.read_text()
    assert "[hosts.myhost]" in text and 'ssh = ""' in text and 'upload = ["compose.yml"]' in text, text
    text = text.replace("[hosts.myhost]", "[hosts.h1]").replace('ssh = ""', 'ssh = "h1"')
    text = text.replace("[defaults]\n", f'[defaults]\nssh_config = "{bed.ssh_config}"\nstop_timeout = 10\nsettle = 2\n', 1)
    text = text.replace("[defaults.health]", "[defaults.health]\nretries = 15\ninterval = 0.5\ntimeout = 2", 1)
    path.write_text(text)


def env(h, cid: str) -> dict[str, str]:
    out = h.run(f"docker inspect -f '{{{{json .Config.Env}}}}' {cid}").stdout
    return dict(item.split("=", 1) for item in json.loads(out))


def label(h, cid: str, name: str) -> str:
    return h.run(f"docker inspect -f '{{{{index .Config.Labels \"{name}\"}}}}' {cid}").stdout.strip()
