"""The merged round trips, run by a real shell against a fake `docker` that logs its calls: what
rides along really runs (a `{ ...; exit; }` would end the line early), the pre-flight reads the
containers once, and a deploy trusts a recent pass of docker, compose and the compose file."""

from __future__ import annotations

import re

import subprocess
from pathlib import Path

import pytest

from tasks.config.schema import HostSettings, Switch
from tasks.host.check import parse_checks
from tasks.host.facts import parse
from tasks.host.remote import Result
from tasks.shell import base, broker, compose, health, probe

LISTING = {  # what the fake `docker inspect` prints: compose.LISTING_FORMAT, {wd} is the app's dir
    "idbw": "app-blue web running 0 sha256:bw idbw 0 ,18001,18001, {wd}",
    "idbk": "app-blue worker running 0 sha256:bk idbk 0 , {wd}",
    "idgk": "app-green worker running 0 sha256:gk idgk 0 , {wd}",
    "idold": "app web exited 0 sha256:ow idold 0 , {wd}",  # a plain `docker compose up` of the same dir
    "idelse": "other web running 0 sha256:x idelse 0 ,18002, /srv/other dir",
    "idbr": "app-blue redis running 0 sha256:br idbr 0 , {wd}",
}


def fake_docker(tmp_path: Path, ids: list[str], calls: Path, worker_state: str = "running") -> dict:
    """PATH with fake docker, ss and sudo; `docker` appends each call's first words to `calls`."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    app = tmp_path / "my app"
    app.mkdir(exist_ok=True)
    (app / "compose.yml").write_text("services: {web: {image: x}}\n")
    lines = "\n".join(LISTING[i].format(wd=app).replace("worker running", f"worker {worker_state}")
                      if i == "idgk" else LISTING[i].format(wd=app) for i in ids)
    (bin_dir / "docker").write_text(
        "#!/bin/sh\n"
        f"echo \"$1 $2\" >> '{calls}'\n"
        'case "$1" in\n'
        f"  ps) case \"$*\" in *--format*) echo 'idbr running';; *) printf '%s\\n' {' '.join(ids)};; esac;;\n"
        f"  inspect) cat <<'EOF'\n{lines}\nEOF\n;;\n"
        "  version) echo 20.10.24;;\n"
        '  exec) [ "$3" = idbr ] && while read -r ask; do echo 3; done;;\n'
        '  compose) case "$*" in *"version --short"*) echo 2.20.0;; esac;;\n'
        "esac\n")
    (bin_dir / "ss").write_text("#!/bin/sh\ncase \"$*\" in *18001*) echo 'LISTEN 0 4096 127.0.0.1:18001 users:((\"docker-proxy\"))';; "
                                "*18002*) echo 'LISTEN 0 4096 127.0.0.1:18002 users:((\"other\"))';; esac\n")
    for tool in bin_dir.iterdir():
        tool.chmod(0o755)
    return {"PATH": f"{bin_dir}:/usr/bin:/bin", "HOME": str(tmp_path)}


def settings(tmp_path: Path, **kw) -> HostSettings:
    return HostSettings(name="h", ssh="h", dir=str(tmp_path / "my app"), switch=Switch(mode="none"), **kw)


def sh(line: str, env: dict) -> Result:
    res = subprocess.run(["sh", "-c", line], env=env, capture_output=True, text=True, timeout=60)
    return Result(line, res.returncode, res.stdout, res.stderr)


def docker_calls(calls: Path) -> list[str]:
    text = calls.read_text() if calls.exists() else ""
    calls.write_text("")
    return text.splitlines()


def test_the_preflight_lists_containers_once_for_the_ports_the_leftovers_and_the_facts(tmp_path):
    calls = tmp_path / "calls"
    env = fake_docker(tmp_path, ["idbw", "idbk", "idold", "idelse"], calls)
    s = settings(tmp_path)
    res = sh(f"{probe.preflight(s)}; {probe.facts(s, reuse_listing=True)}", env)
    checked = parse_checks(s, res)
    items = {name: (level, detail) for level, name, detail in checked.items}
    assert items["port_blue"] == ("ok", "18001 held by app-blue itself")
    assert items["port_green"][0] == "fail" and "taken by another program" in items["port_green"][1]
    assert items["leftover"][0] == "fail" and "'app'" in items["leftover"][1]  # only the project of this dir
    assert [c.id for c in parse(res.stdout).containers] == ["idbw", "idbk", "idold", "idelse"]
    assert [c for c in docker_calls(calls) if c.startswith(("ps", "inspect"))] == ["ps -aq", "inspect -f"]


def test_a_deploy_trusts_a_recent_pass_of_docker_compose_and_the_compose_file_until_it_changes(tmp_path):
    calls = tmp_path / "calls"
    env = fake_docker(tmp_path, ["idbw"], calls)
    s = settings(tmp_path)
    (tmp_path / "my app" / ".fab-bluegreen").mkdir(mode=0o700)
    engine = ["version --format", "compose version", "compose -p"]

    def run(reuse: bool) -> tuple[dict, list[str]]:
        res = sh(probe.preflight(s, reuse), env)
        return ({name: detail for level, name, detail in parse_checks(s, res).items if level == "ok"},
                [c for c in docker_calls(calls) if not c.startswith(("ps", "inspect"))])

    ok, called = run(reuse=True)  # nothing written down yet: all three run, and their pass is kept
    assert called == engine and ok["docker"] == "engine 20.10.24"
    seen = tmp_path / "my app" / ".fab-bluegreen" / "app.checked"
    assert seen.stat().st_mode & 0o777 == 0o600
    ok, called = run(reuse=True)
    # 0 s, or 1 s when the two runs straddle a second
    assert called == [] and re.match(r"engine 20\.10\.24 \(checked by a run [01] s ago", ok["docker"]), ok["docker"]
    assert ok["compose_file"].startswith("compose.yml unchanged")
    assert run(reuse=False)[1] == engine  # fab check runs them every time
    (tmp_path / "my app" / "compose.yml").write_text("services: {web: {image: y}}\n")
    assert run(reuse=True)[1] == engine  # a changed compose file is checked again
    (tmp_path / "my app" / ".env").write_text("TAG=2\n")
    assert run(reuse=True)[1] == engine  # and a changed .env
    seen.write_text(seen.read_text().replace(seen.read_text().split()[0], str(int(seen.read_text().split()[0]) - 601)))
    assert run(reuse=True)[1] == engine  # too old
    seen.write_text("$(touch PWNED) x y z\n")
    assert run(reuse=True)[1] == engine and not (tmp_path / "my app" / "PWNED").exists()


def test_the_settle_check_and_the_facts_after_it_run_in_one_line_and_the_facts_reuse_its_listing(tmp_path):
    calls = tmp_path / "calls"
    env = fake_docker(tmp_path, ["idbw", "idgk"], calls)
    s = settings(tmp_path, settle=0)
    line = base.in_order([("worker", base.Command("true", 1))],
                         health.settled_then(s, "green", ("worker",), probe.facts(s, reuse_listing=True)))
    res = sh(line, env)
    assert res.exited == 0 and base.started("worker") in res.stdout.splitlines()
    assert [c.id for c in parse(res.stdout).containers] == ["idbw", "idgk"]  # the facts rode along
    assert [c for c in docker_calls(calls)] == ["ps -aq", "inspect -f"]  # one listing for both

    env = fake_docker(tmp_path, ["idbw", "idgk"], calls, worker_state="exited")
    res = sh(line, env)
    assert res.exited == 1 and "worker exited (exit code 0, restarts 0)" in res.stdout
    assert parse(res.stdout).containers  # read all the same: the rollback decides with them


@pytest.mark.parametrize("failing", [0, 1])
def test_in_order_stops_at_the_first_part_that_fails_and_names_the_parts_that_worked(tmp_path, failing):
    parts = [(name, base.Command("false" if i == failing else f"echo {name} ran; exit 0", 1))
             for i, name in enumerate(("one", "two"))]
    res = sh(base.in_order(parts, base.Command("echo then", 1)), {"PATH": "/usr/bin:/bin"})
    assert res.exited == 1
    assert [ln for ln in res.stdout.splitlines() if ln.startswith(base.MARK)] == [base.started("one")][:failing]
    assert "then" not in res.stdout.splitlines()
    assert base.in_order(parts, base.Command("x", 5)).budget == 7


def test_the_old_brokers_count_finds_its_container_in_the_listing_of_the_same_round_trip(tmp_path):
    calls = tmp_path / "calls"
    env = fake_docker(tmp_path, ["idbw", "idbr"], calls)
    s = settings(tmp_path)
    res = sh(f"{compose.list_containers()}; {broker.count_queued(s, 'blue')}", env)
    assert res.stdout.splitlines() == ["celery 3", "unacked 3"]
    assert docker_calls(calls) == ["ps -aq", "inspect -f", "exec -i"]  # no second listing
    res = sh(broker.count_queued(s, "blue"), env)  # alone: it lists for itself
    assert res.stdout.splitlines() == ["celery 3", "unacked 3"] and docker_calls(calls)[0] == "ps -a"


def test_fab_check_writes_no_stamp_and_a_deploy_never_writes_it_through_a_link(tmp_path):
    """issue 19, item 10: a check changes nothing on the host; the stamp is written by temp file and
    rename, and a link in its place is refused (left as it is, nothing written through it)."""
    calls = tmp_path / "calls"
    env = fake_docker(tmp_path, ["idbw"], calls)
    s = settings(tmp_path)
    state_dir = tmp_path / "my app" / ".fab-bluegreen"
    state_dir.mkdir(mode=0o700)
    checks = {name: level for level, name, _ in parse_checks(s, sh(probe.preflight(s, reuse=False), env)).items}
    assert checks["docker"] == checks["compose"] == checks["compose_file"] == "ok"
    assert list(state_dir.iterdir()) == []  # fab check: nothing written
    victim = tmp_path / "victim.txt"
    victim.write_text("precious\n")
    (state_dir / "app.checked").symlink_to(victim)
    res = sh(probe.preflight(s, reuse=True), env)  # a deploy's pre-flight
    assert {name: level for level, name, _ in parse_checks(s, res).items}["compose_file"] == "ok"
    assert victim.read_text() == "precious\n" and (state_dir / "app.checked").is_symlink()
    assert sorted(p.name for p in state_dir.iterdir()) == ["app.checked"]  # no temporary file left
