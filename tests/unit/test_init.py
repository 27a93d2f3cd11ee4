"""fab init: its guesses on compose files, the file it writes (which the tool's own loader reads once
a host is filled in), what it says the compose file lacks, and that it never overwrites."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
from invoke import Context
from invoke.exceptions import Exit

from tasks.config import composefile, loader, starter
from tasks.errors import ConfigError
from tasks.init import init

ROOT = Path(__file__).resolve().parents[2]
FAB = Path(sys.executable).parent / "fab"

DJANGO = """\
version: "3.9"
services:
  nginx:                       # serves /static, proxies to django
    image: nginx:1.25
    ports: ["80:80"]
  django:
    build:
      context: .
      dockerfile: Dockerfile
    image: shop:latest
    command: gunicorn shop.wsgi -b 0.0.0.0:8000
    env_file: .env
  celery_worker:
    image: shop:latest
    command: celery -A shop worker -l info
  celery_beat:
    image: shop:latest
    command: celery -A shop beat
  postgres:
    image: postgres:16
  rabbitmq:
    image: rabbitmq:3-management
"""

FLASK_RQ = """\
services:
  api:
    build: .
    ports:
    - 5000:5000
  tasks:
    image: flaskapp
    build: .
    command: rq worker default
  cache:
    image: memcached:1.6
  store:
    image: "redis:7-alpine"
  mailhog: {image: mailhog/mailhog}
"""

ODD = """\
services:
  frontdoor:
    build: .
    ports: ["3000:3000"]
  helper:
    image: busybox
include:
  - other.yml
"""


def guess(text: str) -> starter.Guess:
    return starter.guess(composefile.read(text))


@pytest.mark.parametrize("text, front, background, shared, unplaced", [
    ((ROOT / "examples/simple/compose.yml").read_text(), ["web"], ["worker", "beat"], ["redis"], []),
    ((ROOT / "examples/celery-app/compose.yml").read_text(), ["web"], ["worker", "beat"], ["redis", "broker"], []),
    (DJANGO, ["nginx", "django"], ["celery_worker", "celery_beat"], ["postgres", "rabbitmq"], []),
    (FLASK_RQ, ["api"], ["tasks"], ["cache", "store"], ["mailhog"]),
    (ODD, ["frontdoor"], [], [], ["helper"]),
])
def test_init_guesses_front_background_and_shared_by_the_usual_names(text, front, background, shared, unplaced):
    g = guess(text)
    assert (g.front, g.background, g.shared, g.unplaced) == (front, background, shared, unplaced)


def test_the_reader_resolves_anchors_and_says_what_it_could_not_read():
    simple = composefile.read((ROOT / "examples/simple/compose.yml").read_text())
    assert simple.unread == []
    assert simple.services["worker"]["init"] == "true"  # from <<: *app
    assert "DEPLOY_PORT" in simple.services["web"]["ports"]
    odd = composefile.read(ODD + "  # a comment\n")
    assert odd.unread == ["include: the files it names were not read"]
    flask = composefile.read(FLASK_RQ)
    assert flask.unread == ["service mailhog: written in flow style: its keys were not read"]
    assert composefile.read("services: {web: {image: x}}\n").unread[0].startswith("services: written in flow style")
    assert composefile.read("name: x\n").unread == ["no services: key at the top level"]
    assert "tab" in composefile.read("services:\n\tweb:\n").unread[0]


def test_init_asks_for_the_compose_changes_a_file_still_lacks_and_only_those():
    simple = composefile.read((ROOT / "examples/simple/compose.yml").read_text())
    assert starter.compose_changes(simple, starter.guess(simple), "app") == []
    django = composefile.read(DJANGO)
    changes = starter.compose_changes(django, starter.guess(django), "shop")
    assert [c.split(":", 1)[0] for c in changes] == [
        "nginx",  # the web service: ports with DEPLOY_PORT
        "django, celery_worker, celery_beat",  # image: shop:${DEPLOY_COLOR:-blue}
        "django, celery_worker, celery_beat",  # env_file: DEPLOY_ENV_FILE
        "celery_worker, celery_beat",  # init: true
    ]
    assert 'ports: ["127.0.0.1:${DEPLOY_PORT:-18001}:80"]' in changes[0]
    assert "image: shop:${DEPLOY_COLOR:-blue}" in changes[1]
    assert 'env_file: ["${DEPLOY_ENV_FILE:-/dev/null}"]' in changes[2]
    assert "init: true" in changes[3]
    flask = composefile.read(FLASK_RQ)
    changes = starter.compose_changes(flask, starter.guess(flask), "flask")
    assert 'api: ports: ["127.0.0.1:${DEPLOY_PORT:-18001}:5000"]' in changes[0]
    assert changes[1].startswith("tasks: image: flaskapp:${DEPLOY_COLOR:-blue}")  # api builds without image: fine


def run_init(folder: Path, monkeypatch, **kwargs) -> None:
    monkeypatch.chdir(folder)
    init(Context(), **kwargs)


def test_the_file_init_writes_loads_once_a_host_is_filled_in(tmp_path, monkeypatch, capsys):
    (tmp_path / "My Shop").mkdir()
    folder = tmp_path / "My Shop"
    (folder / "docker-compose.yml").write_text(DJANGO)
    run_init(folder, monkeypatch)
    said = capsys.readouterr().out
    written = (folder / "hosts.toml").read_text()
    with pytest.raises(ConfigError, match=r"hosts\.myhost\.ssh: '' is not an ssh alias"):
        loader.load(folder / "hosts.toml")  # as written: the host is still to fill in
    (folder / "hosts.toml").write_text(written.replace('ssh = ""', 'ssh = "deploy@192.0.2.7"'))
    s = loader.load(folder / "hosts.toml").hosts["myhost"]
    assert (s.app, s.dir, s.compose_file) == ("my-shop", "~/my-shop", "docker-compose.yml")
    assert (s.front, s.background, s.shared) == (("nginx", "django"), ("celery_worker", "celery_beat"),
                                                 ("postgres", "rabbitmq"))
    assert s.prepare == ("{compose} build -q",)  # the colour's compose command: its own uploaded copy
    assert [Path(p).name for p in s.upload] == ["docker-compose.yml"]  # brought from the repo at each deploy
    assert "hosts.myhost: rename it" in said and "health.path" in said
    assert "Compose changes docker-compose.yml still needs:" in said and "init: true" in said


def test_without_a_compose_file_init_writes_the_defaults_which_load(tmp_path, monkeypatch, capsys):
    run_init(tmp_path, monkeypatch)
    text = (tmp_path / "hosts.toml").read_text().replace('ssh = ""', 'ssh = "pi5"')
    (tmp_path / "hosts.toml").write_text(text)
    s = loader.load(tmp_path / "hosts.toml").hosts["myhost"]
    assert (s.front, s.background, s.shared, s.compose_file) == (("web",), (), (), "compose.yml")
    assert "no compose file here" in capsys.readouterr().out


def test_init_never_overwrites_a_hosts_file(tmp_path, monkeypatch):
    (tmp_path / "hosts.toml").write_text("# mine\n")
    (tmp_path / "compose.yml").write_text(DJANGO)
    with pytest.raises(Exit) as e:
        run_init(tmp_path, monkeypatch)
    assert e.value.code == 2 and "exists already: init never overwrites it" in str(e.value.message)
    assert (tmp_path / "hosts.toml").read_text() == "# mine\n"
    os.symlink(tmp_path / "nowhere", tmp_path / "dangling.toml")  # a dangling link is there too
    with pytest.raises(Exit):
        run_init(tmp_path, monkeypatch, hosts_file="dangling.toml")
    assert not (tmp_path / "nowhere").exists()


def test_fab_init_over_a_file_is_one_line_and_exit_2(tmp_path):
    (tmp_path / "hosts.toml").write_text("# mine\n")
    r = subprocess.run([str(FAB), "--search-root", str(ROOT), "init"], cwd=tmp_path, capture_output=True, text=True,
                       timeout=60)
    assert r.returncode == 2 and r.stdout == "", (r.stdout, r.stderr)
    assert r.stderr.startswith("error: hosts.toml: exists already") and r.stderr.count("\n") == 1, r.stderr
    assert (tmp_path / "hosts.toml").read_text() == "# mine\n"
