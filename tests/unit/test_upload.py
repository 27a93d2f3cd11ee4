"""upload (the compose file from the repo, copied into each new colour's own folder) and health.host
(the Host header of the health check and of the check through nginx): the hosts file's errors, the
exact command lines, the atomic write in a real sh, and the sequences against the fake host.
On real hosts: tests/e2e/test_upload.py."""

from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
from pathlib import Path

import pytest

from tasks.config import loader, uploads
from tasks.config.schema import HostSettings
from tasks.errors import ConfigError
from tasks.host import check, cleanup
from tasks.host.deploy import Deploy, Promote, Rollback, Stage
from tasks.host.remote import RecordingRemote
from tasks.result import CLEANED, DEPLOYED, ROLLED_BACK, STAGED
from tasks.shell import compose, health, hooks, nginx, probe, restart, state

from .fakehost import FakeHost
from .test_cli import assert_usage_error, fab, tripwire  # noqa: F401 (a fixture)

ALL = ["web", "redis", "worker", "beat"]
COMPOSE = "services:\n  web:\n    image: app:${DEPLOY_COLOR}\n"


def app_folder(tmp_path: Path, defaults: str = 'upload = ["compose.yml"]', host: str = "") -> Path:
    (tmp_path / "compose.yml").write_text(COMPOSE)
    path = tmp_path / "hosts.toml"
    path.write_text(f"[defaults]\n{defaults}\n[hosts.a]\nssh = \"a\"\n{host}")
    return path


# --- the hosts file: each mistake is one line naming the file, the host and the key -------------

def test_upload_paths_are_relative_to_the_hosts_file_and_may_lie_outside_its_folder(tmp_path):
    (tmp_path / "deploy").mkdir()
    (tmp_path / "compose.yml").write_text(COMPOSE)
    (tmp_path / "deploy" / "nginx.conf").write_text("x")
    path = tmp_path / "deploy" / "hosts.toml"
    path.write_text('[defaults]\nupload = ["../compose.yml", "nginx.conf"]\n[hosts.a]\nssh = "a"\n')
    s = loader.load(path).hosts["a"]
    assert s.upload == (str(tmp_path / "compose.yml"), str(tmp_path / "deploy" / "nginx.conf"))
    assert uploads.compose_upload(s) == str(tmp_path / "compose.yml")


def test_empty_upload_is_the_default_and_today_s_behaviour(tmp_path):
    s = loader.load(app_folder(tmp_path, defaults="")).hosts["a"]
    assert s.upload == () and HostSettings.upload == ()
    assert compose.up(s, "green", ("web",)).endswith("docker compose -p app-green -f compose.yml up -d "
                                                      "--force-recreate --no-deps web")


def make_fifo(p: Path) -> None:
    os.mkfifo(p)


@pytest.mark.parametrize("defaults, host, make, message", [
    ('upload = ["compose.yml", "missing.yml"]', "", None,
     "hosts.toml: defaults.upload[1]: missing.yml: no such file (upload names local files, relative to the hosts file)"),
    ("", 'upload = ["compose.yml", "sub"]', lambda d: (d / "sub").mkdir(),
     "hosts.toml: hosts.a.upload[1]: sub: is a folder, not a file"),
    ("", 'upload = ["compose.yml", "pipe"]', lambda d: make_fifo(d / "pipe"),
     "hosts.toml: hosts.a.upload[1]: pipe: is not a regular file"),
    ("", 'upload = ["other.yml"]', lambda d: (d / "other.yml").write_text("x"),
     "hosts.toml: hosts.a.upload: compose_file 'compose.yml' is not among the uploaded files (other.yml)"),
    ("", 'upload = ["compose.yml", "x/compose.yml"]', lambda d: ((d / "x").mkdir(), (d / "x/compose.yml").write_text("")),
     "hosts.toml: hosts.a.upload[1]: x/compose.yml: a file named 'compose.yml' is uploaded already (hosts.a.upload[0])"),
    ("", 'upload = ["compose.yml", "a b.yml"]', lambda d: (d / "a b.yml").write_text(""),
     "hosts.toml: hosts.a.upload[1]: a b.yml: the file's name 'a b.yml' may hold only letters"),
    ("", 'upload = "compose.yml"', None, "hosts.toml: hosts.a.upload: expected a list of file names, got 'compose.yml'"),
    ("", 'upload = ["compose.yml", "x\\ny"]', None, "hosts.toml: hosts.a.upload[1]: 'x\\ny': a file name is one line"),
    ("", 'upload = [""]', None, "hosts.toml: hosts.a.upload[0]: '': a file name is one line, not empty"),
])
def test_an_upload_that_cannot_be_is_one_line_naming_the_key(tmp_path, defaults, host, make, message):
    path = app_folder(tmp_path, defaults, host)
    if make:
        make(tmp_path)
    with pytest.raises(ConfigError) as e:
        loader.load(path)
    assert str(e.value).startswith(f"{tmp_path}/") and message in str(e.value), str(e.value)
    assert "\n" not in str(e.value)


def test_an_unreadable_upload_is_one_line(tmp_path, monkeypatch):
    path = app_folder(tmp_path)
    real_open = Path.open

    def refuse(self, *args, **kwargs):  # the tests run as root: chmod 000 would not stop them
        if self.name == "compose.yml":
            raise PermissionError(13, "Permission denied")
        return real_open(self, *args, **kwargs)

    monkeypatch.setattr(Path, "open", refuse)
    with pytest.raises(ConfigError, match=r"hosts.toml: defaults.upload\[0\]: compose.yml: cannot be read: "
                                          "Permission denied"):
        loader.load(path)


def test_a_missing_upload_is_exit_2_before_any_host_is_contacted(tmp_path, tripwire):
    (tmp_path / "compose.yml").write_text(COMPOSE)
    path = tmp_path / "hosts.toml"
    path.write_text(f'[defaults]\nconnect_timeout = 1\n[hosts.pi5]\nssh = "deploy@127.0.0.1:{tripwire.getsockname()[1]}"\n'
                    'upload = ["compose.yml", "nginx/site.conf"]\n')
    r = fab(tmp_path, "deploy", "--host", "pi5", "--hosts-file", str(path))
    assert_usage_error(r, f"error: {path}: hosts.pi5.upload[1]: nginx/site.conf: no such file", tripwire)


@pytest.mark.parametrize("value, message", [
    ("app example", "'app example': expected a host name"),
    ("app.example\\r\\nX-Evil: 1", "must be one line, without control characters"),
    ("-app.example", "'-app.example': expected a host name"),
    ("app.example:80:80", "expected a host name"),
    ("$(touch x)", "expected a host name"),
])
def test_health_host_is_a_host_name(tmp_path, value, message):
    path = app_folder(tmp_path, defaults=f'health = {{ host = "{value}" }}')
    with pytest.raises(ConfigError) as e:
        loader.load(path)
    assert "hosts.toml: defaults.health.host: " in str(e.value) and message in str(e.value), str(e.value)


def test_health_host_loads_with_a_port(tmp_path):
    path = app_folder(tmp_path, defaults="", host='health = { host = "app.example.com:8080" }')
    assert loader.load(path).hosts["a"].health.host == "app.example.com:8080"


# --- the command lines: the one place they get their -p and -f --------------------------------

PLAIN = HostSettings(name="a", ssh="a")
UP = HostSettings(name="a", ssh="a", upload=("/repo/compose.yml",))


def own(color: str) -> str:
    return (f'-p app-{color} --project-directory . -f "$([ -f .fab-bluegreen/app.{color}/compose.yml ] && '
            f'echo .fab-bluegreen/app.{color}/compose.yml || echo compose.yml)"')


@pytest.mark.parametrize("s, color, line", [
    (PLAIN, "blue", 'cd "$HOME"/app && DEPLOY_COLOR=blue DEPLOY_PORT=18001 docker compose -p app-blue -f compose.yml '
                    "stop -t 30 worker"),
    (PLAIN, "green", 'cd "$HOME"/app && DEPLOY_COLOR=green DEPLOY_PORT=18002 docker compose -p app-green -f compose.yml '
                     "stop -t 30 worker"),
    (UP, "blue", f'cd "$HOME"/app && DEPLOY_COLOR=blue DEPLOY_PORT=18001 docker compose {own("blue")} stop -t 30 worker'),
    (UP, "green", f'cd "$HOME"/app && DEPLOY_COLOR=green DEPLOY_PORT=18002 docker compose {own("green")} stop -t 30 worker'),
])
def test_each_colour_runs_its_own_copy_with_upload(s, color, line):
    held = restart.hold(s, compose.ids_of(s, color, ("worker",)))  # its restart policy off first
    assert compose.stop(s, color, ("worker",)) == f"{held}; {line}"


def test_every_builder_of_a_compose_line_gets_the_colour_s_copy():
    """compose, the hooks' and prepare's {compose}, the warm-up cap, logs, down: all from compose_command()."""
    for line in (compose.up(UP, "green", ("web",)), compose.start(UP, "green", ("worker",)),
                 compose.down(UP, "green"), compose.logs(UP, "green", "web"),
                 hooks.hook(UP, "green", "blue", "{compose} exec -T web true"),
                 hooks.prepare(UP, "green", "{compose} build -q"),
                 compose.config_check(UP, "green")):
        assert own("green") in line and "-f compose.yml" not in line, line
    assert hooks.prepare(UP, "green", "{compose} build -q") == (
        f'cd "$HOME"/app && export DEPLOY_COLOR=green DEPLOY_PORT=18002 && docker compose {own("green")} build -q')
    assert hooks.prepare(PLAIN, "green", "{compose} build -q") == (
        'cd "$HOME"/app && export DEPLOY_COLOR=green DEPLOY_PORT=18002 && docker compose -p app-green -f compose.yml '
        "build -q")


def test_the_shared_project_runs_from_the_deployed_colour_s_copy():
    assert compose.up_shared(UP, "green") == (
        'cd "$HOME"/app && DEPLOY_COLOR=shared docker compose -p app-shared --project-directory . -f '
        '"$([ -f .fab-bluegreen/app.green/compose.yml ] && echo .fab-bluegreen/app.green/compose.yml || echo compose.yml)"'
        " up -d --no-recreate --no-deps")
    assert compose.up_shared(PLAIN, "green").endswith("-p app-shared -f compose.yml up -d --no-recreate --no-deps")


def test_a_compose_file_in_a_subfolder_lands_by_its_name():
    s = HostSettings(name="a", ssh="a", compose_file="deploy/prod compose.yml", upload=("/r/prod compose.yml",))
    assert compose.compose_command(s, "blue") == (
        "docker compose -p app-blue --project-directory . -f \"$([ -f '.fab-bluegreen/app.blue/prod compose.yml' ] && "
        "echo '.fab-bluegreen/app.blue/prod compose.yml' || echo 'deploy/prod compose.yml')\"")


def test_cleanup_removes_the_colour_s_copy_with_it_never_volumes():
    line = compose.remove(UP, "blue")
    assert line.endswith(" down --remove-orphans -t 30 && rm -f .fab-bluegreen/app.blue.env && "
                         "rm -rf .fab-bluegreen/app.blue")
    assert " -v" not in line


def test_with_upload_the_lock_makes_dir_and_the_preflight_needs_no_compose_file_there():
    assert state.lock(UP, "{}").startswith('mkdir -p "$HOME"/app 2>/dev/null; cd "$HOME"/app 2>/dev/null || ')
    assert state.lock(PLAIN, "{}").startswith('cd "$HOME"/app 2>/dev/null || ')
    line = probe.compose_file_check(UP, "blue")
    assert "config -q" not in line and "say ok compose_file" in line and "say warn dir" in line
    assert "say fail" not in line
    assert "config -q" in probe.compose_file_check(PLAIN, "blue")
    assert probe.check_upload(UP) == (
        '{ cd "$HOME"/app 2>/dev/null || cd; } && DEPLOY_COLOR=blue DEPLOY_PORT=18001 docker compose -p app-blue '
        "--project-directory . -f - config -q")


# --- the copy, written in a real sh: atomically, never through a link -----------------------------

def write(tmp_path: Path, data: bytes, name: str = "compose.yml") -> subprocess.CompletedProcess:
    return subprocess.run(["sh", "-c", state.write_copy(UP, "green", name)], input=data, capture_output=True,
                          env={**os.environ, "HOME": str(tmp_path)})


def test_the_copy_is_written_whole_0600_and_replaced_atomically(tmp_path):
    (tmp_path / "app").mkdir()
    assert write(tmp_path, b"one\n").returncode == 0
    copy = tmp_path / "app/.fab-bluegreen/app.green/compose.yml"
    assert copy.read_bytes() == b"one\n" and oct(copy.stat().st_mode & 0o777) == "0o600"
    inode = copy.stat().st_ino
    assert write(tmp_path, b"two\n").returncode == 0
    assert copy.read_bytes() == b"two\n" and copy.stat().st_ino != inode  # a new file, renamed into place
    assert os.listdir(copy.parent) == ["compose.yml"]  # no temporary file left


@pytest.mark.parametrize("trap", ["folder link", "file link", "file is a folder"])
def test_the_copy_refuses_what_stands_in_its_way(tmp_path, trap):
    (tmp_path / "app/.fab-bluegreen").mkdir(parents=True)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    folder = tmp_path / "app/.fab-bluegreen/app.green"
    if trap == "folder link":
        folder.symlink_to(elsewhere)
    else:
        folder.mkdir()
        if trap == "file link":
            (folder / "compose.yml").symlink_to(elsewhere / "target")
        else:
            (folder / "compose.yml").mkdir()
    r = write(tmp_path, b"x\n")
    assert r.returncode == 5 and b"a symbolic link or a folder stands in the way" in r.stdout, r
    assert os.listdir(elsewhere) == []


# --- the sequences, against the fake host ----------------------------------------------------------

def files(*texts: str) -> tuple[uploads.Upload, ...]:
    return tuple(uploads.Upload(name, f"/repo/{name}", text.encode())
                 for name, text in zip(("compose.yml", "extra.conf"), texts))


S = HostSettings(name="pi5", ssh="pi5", settle=0, prepare=("{compose} build -q",),
                 upload=("/repo/compose.yml", "/repo/extra.conf"))


def test_a_deploy_uploads_after_the_secrets_before_prepare_and_runs_from_the_copy():
    host = FakeHost(running={"blue": ALL}, settings=S)
    r = Deploy(host.remote, S, uploads=files("new compose\n", "extra\n")).run()
    assert r.outcome == DEPLOYED, r
    assert host.copies == {("green", "compose.yml"): b"new compose\n", ("green", "extra.conf"): b"extra\n"}
    assert [data for _, data in host.remote.puts] == [b"new compose\n", b"extra\n"]
    assert not any("new compose" in c for c in host.commands)  # the text never on a command line
    config = host.index(f"{own('green')} config -q")
    assert host.index("mv -f \"$fbg_tmp\" .fab-bluegreen/app.green/extra.conf") < config
    assert config < host.index(f"{own('green')} build -q") < host.index(f"{own('green')} up --no-start")
    history = next(c for c in host.commands if '"action":"deploy"' in c)
    assert json.loads(re.search(r"'(\{\"action\":\"deploy\"[^']*)'", history).group(1))["uploaded"] == {"compose.yml": hashlib.sha256(b"new compose\n").hexdigest()[:12],
                                "extra.conf": hashlib.sha256(b"extra\n").hexdigest()[:12]}


def test_a_copy_that_does_not_pass_compose_config_changes_nothing():
    host = FakeHost(running={"blue": ALL}, settings=S, fail=(f"{own('green')} config -q",))
    r = Deploy(host.remote, S, uploads=files("bad\n", "x\n")).run()
    assert (r.step, r.outcome) == ("upload", ROLLED_BACK) and "docker compose config failed" in r.reason, r
    assert host.state("blue") == dict.fromkeys(ALL, "running") and host.state("green") == {}
    assert not any("build -q" in c for c in host.commands)


def test_the_guard_stage_promote_and_rollback_use_each_colour_s_own_copy():
    host = FakeHost(settings=S)
    assert Deploy(host.remote, S, uploads=files("v1\n", "x\n")).run().outcome == DEPLOYED
    n = len(host.commands)
    assert Stage(host.remote, S, uploads=files("v2\n", "x\n")).run().outcome == STAGED
    undo = " ".join(host.undo_commands(freed=True))  # the journal the guard would have run
    assert f"{own('green')} stop -t 30" in undo and f"{own('blue')} start worker beat" not in undo  # a stage stops nothing
    host.remote.puts.clear()
    n = len(host.commands)
    assert Promote(host.remote, S).run().outcome == DEPLOYED
    assert host.remote.puts == []  # the staged colour keeps the copy it was staged with
    promote = host.commands[n:]
    assert any(f"{own('green')} up --no-start --force-recreate --no-deps worker beat" in c for c in promote)
    assert f"{own('blue')} start worker beat" in " ".join(host.undo_commands(freed=True))  # the guard's undo
    n = len(host.commands)
    rolled = Rollback(host.remote, S).run()
    assert rolled.outcome == DEPLOYED and rolled.to_color == "blue", rolled
    assert host.remote.puts == []
    assert any(f"{own('blue')} start web redis" in c for c in host.commands[n:])
    assert not any(f"{own('green')} up" in c or "build" in c for c in host.commands[n:])
    # the promote's and the rollback's history lines name the files of the colour that now serves
    for action, text in (("promote", "v2\n"), ("rollback", "v1\n")):
        line = next(c for c in host.commands if f'"action":"{action}"' in c)
        history = json.loads(re.search(rf"'(\{{\"action\":\"{action}\"[^']*)'", line).group(1))
        assert history["uploaded"] == {
            "compose.yml": hashlib.sha256(text.encode()).hexdigest()[:12], "extra.conf": hashlib.sha256(b"x\n").hexdigest()[:12]}


def test_cleanup_removes_the_old_colour_s_copy():
    host = FakeHost(running={"blue": ["web", "redis"], "green": ALL}, upstream_port=18002, settings=S)
    host.copies = {("blue", "compose.yml"): b"old", ("green", "compose.yml"): b"new"}
    done = cleanup.remove(host.remote, S, cleanup.plan(host.remote, S))
    assert done.outcome == CLEANED and host.copies == {("green", "compose.yml"): b"new"}


def test_fab_check_runs_compose_config_on_the_local_file_s_text(tmp_path):
    s = loader.load(app_folder(tmp_path)).hosts["a"]
    remote = RecordingRemote(name="a", answer=lambda c: (0, "ok ssh deploy@a\nok compose_file uploaded\n")
                             if c.startswith("say() {") else (1, "service \"web\" has neither an image nor a build"))
    result = check.preflight(remote, s)
    assert remote.puts == [(probe.check_upload(s), COMPOSE.encode())]
    assert ("fail", "compose_file", f"{tmp_path}/compose.yml (upload): service \"web\" has neither an image nor a "
            "build") in result.items


# --- health.host: the Host header of the health check and of the check through nginx ------------

NAMED = HostSettings(name="a", ssh="a", health=HostSettings.health.__class__(host="app.example.com"))


def test_health_host_goes_into_every_curl_quoted():
    assert health.http_code("http://127.0.0.1:18001/health/", 2, "app.example.com") == (
        "curl -s -o /dev/null -w '%{http_code}' --max-time 2 -H 'Host: app.example.com' "
        "http://127.0.0.1:18001/health/")
    assert health.http_code("http://127.0.0.1/", 2) == "curl -s -o /dev/null -w '%{http_code}' --max-time 2 http://127.0.0.1/"
    for line in (health.wait_healthy(NAMED, "green"), nginx.verify(NAMED), probe.status(NAMED)):
        assert "--max-time 2 -H 'Host: app.example.com' http://127.0.0.1" in line, line
    for line in (health.wait_healthy(PLAIN, "green"), nginx.verify(PLAIN), probe.status(PLAIN)):
        assert "Host:" not in line
