"""Exact command lines and their quoting (no SSH). Shell-parsed where it matters."""

import shlex
import subprocess

import pytest

from tasks.config.schema import Broker, HostSettings, Switch
from tasks.host.facts import parse, upstream_port
from tasks.shell import base, broker, compose, health, hooks, nginx, restart, state

S = HostSettings(name="pi5", ssh="pi5")


@pytest.mark.parametrize("path, expected", [
    ("~/app", '"$HOME"/app'),
    ("~", '"$HOME"'),
    ("~/my app", "\"$HOME\"/'my app'"),
    ("/srv/app", "/srv/app"),
    ("/srv/it's", "'/srv/it'\"'\"'s'"),
    ("~/$(reboot)", "\"$HOME\"/'$(reboot)'"),
])
def test_remote_paths_expand_tilde_and_quote_the_rest(path, expected):
    assert base.remote_path(path) == expected


def test_tilde_dir_really_means_home_in_a_shell(tmp_path):
    (tmp_path / "my app").mkdir()
    line = base.in_dir(HostSettings(name="a", ssh="a", dir="~/my app"), "pwd")
    out = subprocess.run(["sh", "-c", line], env={"HOME": str(tmp_path), "PATH": "/usr/bin:/bin"},
                         capture_output=True, text=True, check=True).stdout.strip()
    assert out == str(tmp_path / "my app")


@pytest.mark.parametrize("build, expected", [
    (lambda: compose.stop(S, "blue", ("worker", "beat")),
     restart.hold(S, compose.ids_of(S, "blue", ("worker", "beat"))) + '; cd "$HOME"/app && DEPLOY_COLOR=blue DEPLOY_PORT=18001 docker compose -p app-blue -f compose.yml '
     "stop -t 30 worker beat"),
    (lambda: compose.up(S, "green", ("web", "redis")),
     'cd "$HOME"/app && DEPLOY_COLOR=green DEPLOY_PORT=18002 docker compose -p app-green -f compose.yml '
     "up -d --force-recreate --no-deps web redis"),
    (lambda: compose.start(S, "blue", ("worker", "beat")),
     restart.give_back(S, compose.ids_of(S, "blue", ("worker", "beat"))) + '; cd "$HOME"/app && DEPLOY_COLOR=blue DEPLOY_PORT=18001 docker compose -p app-blue -f compose.yml '
     "start worker beat"),
    (lambda: compose.down(S, "blue"),
     'cd "$HOME"/app && DEPLOY_COLOR=blue DEPLOY_PORT=18001 docker compose -p app-blue -f compose.yml '
     "down --remove-orphans -t 30"),
    (lambda: hooks.prepare(S, "green", "git pull --ff-only"),
     'cd "$HOME"/app && export DEPLOY_COLOR=green DEPLOY_PORT=18002 && git pull --ff-only'),
    (lambda: nginx.nginx_test(), "sudo -n nginx -t"),
])
def test_command_lines(build, expected):
    assert build() == expected


def test_ids_of_a_colour_and_of_its_services():
    label = "docker ps -aq --no-trunc --filter label=com.docker.compose.project=app-blue"
    assert compose.ids_of(S, "blue") == label
    assert compose.ids_of(S, "blue", ("worker", "beat")) == (
        f"{label} --filter label=com.docker.compose.service=worker; {label} --filter label=com.docker.compose.service=beat")


def test_down_never_removes_volumes_or_images():
    tokens = shlex.split(compose.down(S, "blue"))
    assert "-v" not in tokens and "--volumes" not in tokens and "--rmi" not in tokens


def test_compose_v1_and_odd_file_names_are_quoted():
    s = HostSettings(name="a", ssh="a", compose="docker-compose", compose_file="deploy/my compose.yml")
    assert "docker-compose -p app-green -f 'deploy/my compose.yml' stop" in compose.stop(s, "green")


def test_upstream_write_keeps_content_out_of_the_shell(tmp_path):
    target = tmp_path / "up.conf"
    target.write_text("old")
    target.chmod(0o640)
    evil = "upstream x { server 127.0.0.1:1; }\n$(touch pwned) `id` '\"\n"
    line = nginx.write_root_file(str(target), evil).replace("sudo -n ", "", 1)
    subprocess.run(["sh", "-c", line], cwd=tmp_path, check=True)
    assert target.read_text() == evil
    assert oct(target.stat().st_mode & 0o777) == "0o640"
    assert not (tmp_path / "pwned").exists()
    assert [p.name for p in tmp_path.iterdir()] == ["up.conf"]  # no temporary file left


def test_record_write_round_trips_any_text(tmp_path):
    s = HostSettings(name="a", ssh="a", dir=str(tmp_path))
    text = '{"live":"green","note":"it\'s $(x)"}'
    subprocess.run(["sh", "-c", state.write_record(s, text)], check=True)
    subprocess.run(["sh", "-c", state.append_history(s, "line 1")], check=True)
    subprocess.run(["sh", "-c", state.append_history(s, "line 2")], check=True)
    assert (tmp_path / ".fab-bluegreen" / "app.json").read_text() == text + "\n"
    assert (tmp_path / ".fab-bluegreen" / "app.history.jsonl").read_text() == "line 1\nline 2\n"


def test_health_loop_counts_tries_and_stops_at_retries(tmp_path):
    s = HostSettings(name="a", ssh="a", health=HostSettings.health.__class__(retries=3, interval=0, timeout=1))
    fake = tmp_path / "curl"
    fake.write_text("#!/bin/sh\necho -n 503\n")
    fake.chmod(0o755)
    res = subprocess.run(["sh", "-c", health.wait_healthy(s, "blue")], env={"PATH": f"{tmp_path}:/usr/bin:/bin"},
                         capture_output=True, text=True)
    assert res.returncode == 1
    assert res.stdout.splitlines() == ["try 1 503", "try 2 503", "try 3 503"]
    fake.write_text("#!/bin/sh\necho -n 302\n")
    res = subprocess.run(["sh", "-c", health.wait_healthy(s, "blue")], env={"PATH": f"{tmp_path}:/usr/bin:/bin"},
                         capture_output=True, text=True)
    assert res.returncode == 0 and res.stdout.splitlines() == ["try 1 302"]


def test_switch_command_fills_color_and_port():
    s = HostSettings(name="a", ssh="a", switch=Switch(mode="command", command="/usr/local/bin/flip {color} {port}"))
    assert nginx.switch_command(s, "green") == "/usr/local/bin/flip green 18002"


def test_upstream_text_and_port_parse_round_trip():
    assert nginx.upstream_text(S, 18002) == "upstream app_backend { server 127.0.0.1:18002; }\n"
    assert upstream_port(nginx.upstream_text(S, 18002)) == 18002
    assert upstream_port("upstream x {\n  server localhost:8000 max_fails=0;\n}") == 8000
    assert upstream_port(None) is None


FACTS = """@@fbg:record
{"live": "blue", "colors": {"blue": {"commit": "abc123"}}}

@@fbg:upstream
upstream app_backend { server 127.0.0.1:18001; }

@@fbg:git
abc123
@@fbg:compose
yes
@@fbg:containers
app-blue web running 0 sha256:1111111111111111 c1 0
app-blue worker exited 0 sha256:2222222222222222 c2 137
other-blue web running 0 sha256:3333 c3 0
"""


def test_facts_parse_captured_output():
    f = parse(FACTS)
    assert f.record.live == "blue" and f.git == "abc123" and f.compose_file
    assert upstream_port(f.upstream) == 18001
    assert set(f.services(S, "blue")) == {"web", "worker"}
    assert f.services(S, "blue")["worker"].exit_code == 137
    assert f.running(S, "blue", "web") and not f.running(S, "blue", "worker")
    assert f.services(S, "green") == {}


def test_shared_services_are_their_own_project_started_never_recreated():
    s = HostSettings(name="h", ssh="h", app="shop", front=("web",), shared=("broker",))
    line = compose.up_shared(s)
    assert line == ('cd "$HOME"/app && DEPLOY_COLOR=shared docker compose -p shop-shared -f compose.yml '
                    'up -d --no-recreate --no-deps broker')
    assert "DEPLOY_PORT" not in line


def test_queue_counts_run_redis_cli_in_the_colour_broker_container_quoted():
    s = HostSettings(name="h", ssh="h", front=("web", "redis"), broker=Broker(queues=("celery", "mail.high")))
    line = broker.count_queued(s, "blue")
    assert "--filter label=com.docker.compose.project=app-blue --filter label=com.docker.compose.service=redis" in line
    assert ("printf '%s\\n' 'LLEN celery' 'LLEN mail.high' 'HLEN unacked' | docker exec -i \"$cid\" "
            "redis-cli -n 0") in line  # one exec for every count
    assert "names='celery mail.high unacked'" in line
    other_db = HostSettings(name="h", ssh="h", broker=Broker(db=2))
    assert 'redis-cli -n 2 2>&1' in broker.count_queued(other_db, "green")
    out = subprocess.run(["sh", "-n", "-c", broker.wait_drained(s, "blue", 30)], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr  # the whole loop is valid sh


@pytest.mark.parametrize("counts, stale, rc, printed, polls", [
    ("celery 0\nunacked 0\n", 0, 0, "", 2),  # empty twice in a row, a second apart
    ("celery 0\nunacked 2\n", 2, 0, "", 2),  # left by a killed worker before the drain: not waited for
    ("celery 0\nunacked 1\n", 0, 1, "left 1", 2),  # a worker holds one it reserved ahead
    ("celery 4\nunacked 0\n", 0, 1, "left 4", 2),
    ("broker-down exited\n", 0, 3, "", 0),
])
def test_wait_drained_sums_what_waits_with_a_real_shell(tmp_path, counts, stale, rc, printed, polls):
    """A real sh runs the loop; its clock is the test's: `date +%s` reads a file that `sleep N`
    moves on by N at once, so the polls fall where the loop puts them however busy the machine is."""
    s = HostSettings(name="h", ssh="h")
    d = shlex.quote(str(tmp_path))
    (tmp_path / "clock").write_text("1000\n")
    tools = {  # `docker ps` answers a running container, `docker exec` from counts (one poll each)
        "docker": "case $1 in ps) echo c1 running;; exec) echo poll >> {d}/polls; while read -r verb key; do "
                  "awk -v q=\"$key\" '$1 == q {{print $2}}' {d}/counts; done;; esac",
        "date": "cat {d}/clock",
        "sleep": "echo $(( $(cat {d}/clock) + $1 )) > {d}/clock.new && mv {d}/clock.new {d}/clock",
    }
    if counts.startswith("broker-down"):
        tools["docker"] = "echo c1 exited"
    for name, script in tools.items():
        (tmp_path / name).write_text("#!/bin/sh\n" + script.format(d=d) + "\n")
        (tmp_path / name).chmod(0o755)
    (tmp_path / "counts").write_text(counts)
    line = broker.wait_drained(s, "blue", 1, stale_unacked=stale)
    out = subprocess.run(["sh", "-c", line], capture_output=True, text=True, timeout=20,
                         env={"PATH": f"{tmp_path}:/usr/bin:/bin"})
    assert out.returncode == rc, out.stderr
    assert (out.stdout.splitlines() or [""])[0] == printed
    polled = (tmp_path / "polls").read_text().count("poll") if (tmp_path / "polls").exists() else 0
    assert polled == polls
    assert (tmp_path / "clock").read_text().strip() == ("1001" if polls else "1000")  # one `sleep 1` between polls


def test_stop_reporting_prints_exit_codes_after_the_stop_and_keeps_its_status():
    s = HostSettings(name="h", ssh="h", stop_timeout=12.5)
    line = compose.stop_reporting(s, "blue", ("worker", "beat"))
    assert line.startswith(compose.stop(s, "blue", ("worker", "beat")) + "; rc=$?; echo @@fbg:containers; ")
    assert compose.containers() in line  # the facts' own container listing, with exit codes
    assert "stop -t 13 worker beat" in line and line.endswith("exit $rc")
