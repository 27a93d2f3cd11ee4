"""The new colour created by one compose call and started by ID, phase by phase, and the tool's own
commands at the lowest priority: run by a real shell against a fake `docker` (and `sudo`)."""

from __future__ import annotations

import subprocess
from pathlib import Path

from tasks.config.schema import HostSettings, Switch
from tasks.shell import base, compose

# what the fake `docker ps --format` prints: newest first, as docker lists them
CREATED = ["beat idbeat ", "worker idworker redis:service_started:false", "web idweb {web_depends}",
           "redis idredis "]


def fake_docker(tmp_path: Path, web_depends: str = "redis:service_started:false", listed: list[str] = CREATED) -> dict:
    """PATH with a fake docker that logs each call ("compose up ...", "start ID ...") to calls.log."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    (tmp_path / "app").mkdir(exist_ok=True)
    lines = "\n".join(x.format(web_depends=web_depends) for x in listed)
    (bin_dir / "docker").write_text(
        "#!/bin/sh\n"
        f"log='{tmp_path}/calls.log'\n"
        'case "$1" in\n'
        '  compose) shift 5; echo "compose $*" >> "$log";;\n'  # -p PROJECT -f FILE: dropped
        f"  ps) cat <<'EOF'\n{lines}\nEOF\n;;\n"
        '  *) echo "$*" >> "$log";;\n'
        "esac\n")
    (bin_dir / "docker").chmod(0o755)
    return {"PATH": f"{bin_dir}:/usr/bin:/bin", "HOME": str(tmp_path)}


def settings(tmp_path: Path) -> HostSettings:
    return HostSettings(name="h", ssh="h", dir=str(tmp_path / "app"), switch=Switch(mode="none"))


def run(line: str, env: dict) -> subprocess.CompletedProcess:
    return subprocess.run(["sh", "-c", line], env=env, capture_output=True, text=True, timeout=30)


def calls(tmp_path: Path) -> list[str]:
    log = tmp_path / "calls.log"
    return log.read_text().splitlines() if log.exists() else []


def test_one_compose_call_creates_the_colour_and_its_front_starts_by_id_dependencies_first(tmp_path):
    s, env = settings(tmp_path), fake_docker(tmp_path)
    res = run(compose.create_then_start(s, "green", ("web", "redis", "worker", "beat"), ("web", "redis")), env)
    assert res.returncode == 0, res.stdout + res.stderr
    assert calls(tmp_path) == ["compose up --no-start --force-recreate --no-deps web redis worker beat",
                               "start idredis idweb"]  # the order compose created them in: redis first
    created = compose.parse_created(res.stdout)
    assert created.order == [("redis", "idredis"), ("web", "idweb"), ("worker", "idworker"), ("beat", "idbeat")]
    assert created.waits == set() and created.has(("worker", "beat")) and not created.has(("worker", "cron"))
    assert compose.start_ids(s, "green", ("worker", "beat"), created) == "docker start idworker idbeat >/dev/null"


def test_a_service_waiting_for_another_s_health_starts_through_compose(tmp_path):
    """Only compose honours `depends_on: condition: service_healthy`: that phase goes through it."""
    s, env = settings(tmp_path), fake_docker(tmp_path, web_depends="redis:service_healthy:false")
    res = run(compose.create_then_start(s, "green", ("web", "redis", "worker", "beat"), ("web", "redis")), env)
    assert res.returncode == 0, res.stdout + res.stderr
    assert calls(tmp_path)[1:] == ["compose start web redis"]
    created = compose.parse_created(res.stdout)
    assert created.waits == {"web"}
    assert "docker start" in compose.start_ids(s, "green", ("worker", "beat"), created)
    assert "compose.yml start web" in compose.start_ids(s, "green", ("web",), created)


def test_a_service_with_no_container_fails_the_start(tmp_path):
    s, env = settings(tmp_path), fake_docker(tmp_path, listed=CREATED[:2])  # no web, no redis
    res = run(compose.create_then_start(s, "green", ("web", "redis", "worker", "beat"), ("web", "redis")), env)
    assert res.returncode == 1 and "no container for every one of web redis" in res.stdout
    assert not any(c.startswith("start") for c in calls(tmp_path))


def test_the_tool_s_commands_run_at_nice_19_in_the_idle_io_class_without_systemd(tmp_path):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "sudo").write_text(f"#!/bin/sh\necho \"$*\" >> '{tmp_path}/sudo.log'\n")
    (bin_dir / "sudo").chmod(0o755)
    env = {"PATH": f"{bin_dir}:/usr/bin:/bin"}
    line = base.low_priority().replace(base.SYSTEMD, str(tmp_path / "no-systemd"))
    res = run(f"{line}; nice; ionice -p $$; sh -c nice", env)
    assert res.stdout.split() == ["19", "idle", "19"], res.stdout + res.stderr  # what it starts inherits both
    assert not (tmp_path / "sudo.log").exists()  # no systemd: no scope asked for


def test_where_systemd_runs_the_shell_moves_into_a_scope_of_cpu_weight_1(tmp_path):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "sudo").write_text(f"#!/bin/sh\necho \"$*\" >> '{tmp_path}/sudo.log'\n")
    (bin_dir / "sudo").chmod(0o755)
    (tmp_path / "systemd").mkdir()
    line = base.low_priority().replace(base.SYSTEMD, str(tmp_path / "systemd"))
    res = run(f"{line}; echo $$", {"PATH": f"{bin_dir}:/usr/bin:/bin"})
    pid = res.stdout.split()[-1]
    asked = (tmp_path / "sudo.log").read_text().split()
    assert asked[:3] == ["-n", "busctl", "call"] and "StartTransientUnit" in asked
    assert asked[-10:] == ["fail", "2", "PIDs", "au", "1", pid, "CPUWeight", "t", "1", "0"]
    assert asked[asked.index("fail") - 1].startswith(f"fbg-low-{pid}-") and asked[asked.index("fail") - 1].endswith(".scope")
