"""The put-back at boot (issue 18, part 4), run by a real shell: the boot script puts back a run a
reboot cut off (as the next run would) and leaves a lock taken since the boot; every lock take
rewrites it; fab setup registers the unit once (stand-ins for sudo and systemctl; a folder in
place of /etc/systemd/system), fab check says whether it is there, and refuses names a unit file
cannot take plainly."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from tasks.host import check, lock
from tasks.host.deploy import Deploy
from tasks.host.remote import RecordingRemote
from tasks.shell import base, boot, guard, state

from .fakehost import FakeHost
from .test_guard_shell import S, TOKEN, locked, sh
from .test_sequence import S as SEQUENCE


def script_written(tmp_path: Path) -> Path:
    """Take the lock as lock.take() does (its command, in a real shell): it writes the boot script."""
    remote = RecordingRemote(answer=lambda command: (lambda r: (r.returncode, r.stdout))(sh(tmp_path, command)))
    lock.take(remote, S, "deploy", "f" * 32)
    assert sh(tmp_path, base.in_dir(S, state.unlock(S, "f" * 32))).returncode == 0
    return tmp_path / "app" / boot.script_path(S)


def run_at_boot(tmp_path: Path, script: Path) -> subprocess.CompletedProcess:
    """As the unit runs it: /bin/sh SCRIPT, as the SSH user, HOME set, from the root folder."""
    env = {"PATH": os.environ["PATH"], "HOME": str(tmp_path)}
    return subprocess.run(["/bin/sh", str(script)], capture_output=True, text=True, env=env, cwd="/", timeout=30)


def test_every_lock_take_writes_the_boot_script_private_and_current(tmp_path):
    (tmp_path / "app").mkdir()
    script = script_written(tmp_path)
    assert script.read_text() == boot.script(S) and (script.stat().st_mode & 0o777) == 0o600
    script.write_text("# an older version's\n")
    assert script_written(tmp_path).read_text() == boot.script(S)


def test_at_boot_the_script_puts_back_a_run_that_a_reboot_cut_off(tmp_path):
    app = locked(tmp_path)
    assert sh(tmp_path, guard.arm(S, TOKEN, 60)).returncode == 0
    pid = (app / state.STATE_DIR / "app.guard.pid").read_text().split()[0]
    os.kill(int(pid), 9)  # the power cut: the guard died with the host, its deadline a minute away
    time.sleep(0.3)
    (app / state.boot_path(S)).write_text("an-earlier-boot\n")
    script = app / boot.script_path(S)
    script.write_text(boot.script(S))
    res = run_at_boot(tmp_path, script)
    assert res.returncode == 0, res.stdout + res.stderr
    assert (app / "undo.log").read_text() == "undone\n"
    line = json.loads((app / state.history_path(S)).read_text().splitlines()[-1])
    assert (line["action"], line["cause"], line["by"], line["user"], line["token"]) == (
        "guard", guard.REBOOT, "boot", "(boot)", TOKEN[:8])
    assert line["reason"].startswith("put back at boot")
    assert not (app / state.lock_path(S)).exists()
    assert [p.name for p in (app / state.STATE_DIR).glob("app.guard*")] == ["app.guard.log"]
    assert run_at_boot(tmp_path, script).returncode == 0  # the next boot: no lock, nothing to do
    assert (app / "undo.log").read_text() == "undone\n"
    assert len((app / state.history_path(S)).read_text().splitlines()) == 1


def test_at_boot_a_lock_taken_since_the_boot_is_left_alone(tmp_path):
    app = locked(tmp_path)  # its boot id is this boot's: a run that started after the host came up
    script = app / boot.script_path(S)
    script.write_text(boot.script(S))
    assert run_at_boot(tmp_path, script).returncode == 0
    assert (app / state.lock_path(S)).is_dir() and not (app / "undo.log").exists()
    assert not (app / state.history_path(S)).exists()


# --- registering the unit (fab setup) and saying so (fab check) --------------------------------------

def fake_host(tmp_path: Path, sudo: bool = True, user: str = "") -> dict[str, str]:
    """sudo and systemctl stand-ins (and id, to play a user name); the environment to run with."""
    bin_ = tmp_path / "bin"
    bin_.mkdir(exist_ok=True)
    scripts = {
        "sudo": '[ "$1" = -n ] && shift; exec "$@"' if sudo else "exit 1",
        "systemctl": f'echo "$@" >> {tmp_path}/systemctl.log; case "$1" in '
                     f'is-enabled) [ -f {tmp_path}/enabled/"$3" ];; enable) mkdir -p {tmp_path}/enabled && '
                     f'touch {tmp_path}/enabled/"$3";; esac',
    }
    if user:
        scripts["id"] = f"echo {user!r}"
    for name, body in scripts.items():
        (bin_ / name).write_text(f"#!/bin/sh\n{body}\n")
        (bin_ / name).chmod(0o755)
    (tmp_path / "run-systemd").mkdir(exist_ok=True)
    (tmp_path / "etc").mkdir(exist_ok=True)
    (tmp_path / "app").mkdir(exist_ok=True)
    return {"PATH": f"{bin_}:{os.environ['PATH']}", "HOME": str(tmp_path)}


def run(env: dict[str, str], line: str) -> subprocess.CompletedProcess:
    return subprocess.run(["sh", "-c", line], capture_output=True, text=True, env=env, timeout=30,
                          stdin=subprocess.DEVNULL)


def check_line(tmp_path: Path, env: dict[str, str], systemd: str = "run-systemd") -> str:
    return run(env, f"say() {{ echo \"$@\"; }}; {boot.check(S, str(tmp_path / systemd), str(tmp_path / 'etc'))}").stdout


def register(tmp_path: Path, env: dict[str, str], systemd: str = "run-systemd") -> subprocess.CompletedProcess:
    return run(env, boot.register(S, str(tmp_path / systemd), str(tmp_path / "etc")))


def test_setup_registers_the_unit_once_and_check_says_so(tmp_path):
    env = fake_host(tmp_path)
    me = subprocess.run(["id", "-un"], capture_output=True, text=True).stdout.strip()
    unit = tmp_path / "etc" / f"fab-bluegreen-app-{me}.service"
    assert check_line(tmp_path, env).startswith(f"warn {boot.CHECK} {boot.NOT_REGISTERED}: fab setup registers {unit}")
    res = register(tmp_path, env)
    assert res.returncode == 0 and boot.DONE in res.stdout, res.stdout + res.stderr
    text = unit.read_text()
    app = (tmp_path / "app").resolve()
    for line in ("After=docker.service", "Wants=docker.service", "Type=oneshot", f"User={me}",
                 f"Environment=HOME={tmp_path}", f"ConditionPathExists={app}/.fab-bluegreen/app.boot.sh",
                 f"ExecStart=/bin/sh {app}/.fab-bluegreen/app.boot.sh", "WantedBy=multi-user.target"):
        assert line in text.splitlines()
    assert (unit.stat().st_mode & 0o777) == 0o644
    assert (tmp_path / "app" / boot.script_path(S)).read_text() == boot.script(S)
    assert check_line(tmp_path, env) == f"ok {boot.CHECK} {boot.REGISTERED} ({unit}: puts the host back at boot)\n"
    again = register(tmp_path, env)
    assert again.returncode == 0 and boot.KEPT in again.stdout and boot.DONE not in again.stdout
    log = (tmp_path / "systemctl.log").read_text().splitlines()
    assert log.count("daemon-reload") == 1 and log.count(f"enable --quiet {unit.name}") == 1
    unit.write_text(text.replace("Type=oneshot", "Type=simple"))  # changed by hand: setup puts it right again
    assert check_line(tmp_path, env).startswith(f"warn {boot.CHECK} {boot.NOT_REGISTERED}")
    assert boot.DONE in register(tmp_path, env).stdout and unit.read_text() == text


@pytest.mark.parametrize("systemd, sudo, why", [("no-such-folder", True, "no systemd"),
                                                ("run-systemd", False, "no passwordless sudo")])
def test_where_the_host_cannot_have_it_nothing_changes_and_check_says_why(tmp_path, systemd, sudo, why):
    env = fake_host(tmp_path, sudo=sudo)
    assert check_line(tmp_path, env, systemd) == (f"warn {boot.CHECK} {boot.NOT_AVAILABLE}: {why} "
                                                  "(the next run puts the host back)\n")
    res = register(tmp_path, env, systemd)
    assert res.returncode == 2 and f"{base.WHY}the put-back at boot is not available: {why}" in res.stdout
    assert not list((tmp_path / "etc").iterdir()) and not (tmp_path / "app" / state.STATE_DIR).exists()


@pytest.mark.parametrize("user, home", [("x;touch pwned", ""), ("-evil", ""), ("deploy", "with space"),
                                        ("deploy", "per%cent")])
def test_names_a_unit_file_cannot_take_plainly_are_refused(tmp_path, user, home):
    env = fake_host(tmp_path, user=user)
    if home:
        (tmp_path / home / "app").mkdir(parents=True)
        shutil.copytree(tmp_path / "bin", tmp_path / home / "bin")
        env = {"PATH": env["PATH"], "HOME": str(tmp_path / home)}
    assert f"warn {boot.CHECK} {boot.NOT_AVAILABLE}:" in check_line(tmp_path, env)
    assert register(tmp_path, env).returncode == 2
    assert not list((tmp_path / "etc").iterdir()) and not (tmp_path / "pwned").exists()


@pytest.mark.parametrize("shell", ["sh", "bash", "dash"])
def test_the_commands_parse(shell):
    if not shutil.which(shell):
        pytest.skip(f"no {shell}")
    for line in (f"say() {{ :; }}; {boot.check(S)}", boot.register(S), boot.script(S)):
        assert subprocess.run([shell, "-n", "-c", line], capture_output=True).returncode == 0


def test_fab_check_asks_about_it_and_a_deploy_does_not():
    host = FakeHost(checks=f"ok {boot.CHECK} {boot.REGISTERED} (/etc/systemd/system/x.service)\n")
    result = check.preflight(host.remote, S)
    assert ("ok", boot.CHECK, f"{boot.REGISTERED} (/etc/systemd/system/x.service)") in result.items
    assert "fbg_boot=" in host.commands[0]
    deploy = FakeHost()
    Deploy(deploy.remote, SEQUENCE).run()  # a deploy's pre-flight: it never registers the unit, so it does not ask
    assert ("check",) in deploy.events and not any("fbg_boot=" in command for command in deploy.commands)
