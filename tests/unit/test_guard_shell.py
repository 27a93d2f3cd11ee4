"""The guard, its heartbeat and its disarm, run by a real shell (no SSH, no docker): the guard
acts once fab is silent past its deadline, a heartbeat keeps it waiting, fab's disarm learns
whether it acted, and a stale pid file never kills a process that is not the guard's."""

from __future__ import annotations

import json
import os
import subprocess
import time
from pathlib import Path

from tasks.config.schema import HostSettings
from tasks.shell import base, detach, guard, journal, state

S = HostSettings(name="pi5", ssh="pi5", dir="~/app")
TOKEN = "0123456789abcdef0123456789abcdef"


def sh(home: Path, line: str, timeout: float = 20) -> subprocess.CompletedProcess:
    env = {"PATH": os.environ["PATH"], "HOME": str(home)}
    return subprocess.run(["sh", "-c", line], capture_output=True, text=True, timeout=timeout, env=env,
                          stdin=subprocess.DEVNULL)


UNDO = journal.Entry("undo it", base.in_dir(S, "echo undone >> undo.log"))


def locked(tmp_path: Path, token: str = TOKEN, entries: tuple[journal.Entry, ...] = (UNDO,)) -> Path:
    """dir/.fab-bluegreen with the lock of the run `token` and its undo journal."""
    app = tmp_path / "app"
    (app / state.STATE_DIR).mkdir(parents=True, exist_ok=True)
    info = json.dumps({"who": "a@b", "when": "now", "task": "deploy", "message": "", "token": token, "since": 1})
    assert "acquired" in sh(tmp_path, state.lock(S, info)).stdout
    for n, entry in enumerate(entries, 1):
        assert sh(tmp_path, journal.append(S, n, entry)).returncode == 0
    return app


def setup(tmp_path: Path, grace: float) -> tuple[Path, str]:
    app = locked(tmp_path)
    armed = sh(tmp_path, guard.arm(S, TOKEN, grace))
    assert armed.returncode == 0, armed.stderr + armed.stdout
    return app, (app / state.STATE_DIR / "app.guard.pid").read_text().split()[0]


def alive(pid: str) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        return state not in ("Z", "X")
    except (FileNotFoundError, IndexError):
        return False


def test_a_silent_fab_leaves_the_host_to_the_guard_and_the_disarm_learns_it(tmp_path):
    app, pid = setup(tmp_path, grace=1)
    deadline = time.monotonic() + 10
    while not (app / "undo.log").exists() and time.monotonic() < deadline:
        time.sleep(0.2)
    assert (app / "undo.log").read_text() == "undone\n"
    time.sleep(0.5)
    history = [json.loads(x) for x in (app / state.history_path(S)).read_text().splitlines()]
    assert history[-1]["action"] == "guard" and history[-1]["token"] == TOKEN[:8]
    assert not (app / state.lock_path(S)).exists()  # the guard freed the lock, and its journal with it
    res = sh(tmp_path, guard.disarm(S, TOKEN))
    assert guard.parse(res.stdout) == guard.ACTED
    assert not alive(pid)


def test_heartbeats_keep_the_guard_waiting_and_the_disarm_stops_it(tmp_path):
    app, pid = setup(tmp_path, grace=1)
    for _ in range(5):  # 3 s in all: well past the first deadline
        assert sh(tmp_path, base.in_dir(S, guard.heartbeat(S, TOKEN, 2))).returncode == 0
        time.sleep(0.6)
    assert not (app / "undo.log").exists() and alive(pid)
    res = sh(tmp_path, guard.disarm(S, TOKEN))
    assert guard.parse(res.stdout) == guard.DISARMED
    time.sleep(0.3)
    assert not alive(pid)
    assert not list((app / state.STATE_DIR).glob("app.guard*.pid"))
    time.sleep(2.5)
    assert not (app / "undo.log").exists()


def test_another_runs_disarm_neither_stops_nor_extends_this_guard(tmp_path):
    app, pid = setup(tmp_path, grace=1)
    other = "f" * 32
    beat = sh(tmp_path, f"{base.in_dir(S, guard.heartbeat(S, other, 60))}; echo ran")
    assert beat.returncode == 9 and "ran" not in beat.stdout and "no longer armed" in beat.stdout
    res = sh(tmp_path, guard.disarm(S, other))
    assert guard.parse(res.stdout) == guard.GONE and alive(pid)
    deadline = time.monotonic() + 10
    while not (app / "undo.log").exists() and time.monotonic() < deadline:
        time.sleep(0.2)
    assert (app / "undo.log").exists()


def test_a_stale_pid_file_never_kills_a_stranger(tmp_path):
    stranger = subprocess.Popen(["sleep", "30"], start_new_session=True)
    try:
        pid_file = tmp_path / "x.pid"
        pid_file.write_text(f"{stranger.pid} fbg-lift:app.green\n")  # the lift died; its PID was reused
        assert sh(tmp_path, f"cd {tmp_path} && {detach.kill_detached('x.pid', 'fbg-lift:app.green')}").returncode == 0
        time.sleep(0.2)
        assert stranger.poll() is None and not pid_file.exists()
    finally:
        stranger.kill()
        stranger.wait()


def test_a_detached_process_outlives_its_shell_and_is_killed_by_its_tag(tmp_path):
    line = (f"cd {tmp_path} && {detach.DETACH_FUNCTIONS}; "
            f"{detach.detached('sleep 30', 'fbg-test:tag', 'p.pid')}")
    assert sh(tmp_path, line).returncode == 0
    pid, tag = (tmp_path / "p.pid").read_text().split()
    assert tag == "fbg-test:tag" and alive(pid)
    assert sh(tmp_path, f"cd {tmp_path} && {detach.kill_detached('p.pid', 'fbg-test:tag')}").returncode == 0
    time.sleep(0.3)
    assert not alive(pid)


def fake_systemd(tmp_path: Path, kills: bool) -> Path:
    """busctl, loginctl, sudo and systemd-run stand-ins: logind kills at logout (or not), no linger."""
    bin_ = tmp_path / "bin"
    bin_.mkdir()
    scripts = {
        "busctl": f"echo 'b {'true' if kills else 'false'}'",
        "loginctl": "echo no",
        "sudo": '[ "$1" = -n ] && shift; exec "$@"',
        "systemd-run": f'echo "$@" >> {tmp_path}/systemd-run.args; '
                       'while [ $# -gt 0 ]; do case "$1" in -*) shift;; *) break;; esac; done; exec "$@"',
    }
    for name, body in scripts.items():
        (bin_ / name).write_text(f"#!/bin/sh\n{body}\n")
        (bin_ / name).chmod(0o755)
    return bin_


def test_where_logind_kills_at_logout_detached_processes_go_through_sudo_systemd_run(tmp_path):
    for kills in (True, False):
        home = tmp_path / str(kills)
        home.mkdir()
        bin_ = fake_systemd(home, kills)
        line = f"cd {home} && {detach.DETACH_FUNCTIONS}; {detach.detached('echo $HOME > home.txt; sleep 30', 'fbg-t', 'p.pid')}"
        env = {"PATH": f"{bin_}:{os.environ['PATH']}", "HOME": str(home)}
        res = subprocess.run(["sh", "-c", line], capture_output=True, text=True, env=env, timeout=20)
        assert res.returncode == 0, res.stderr
        pid = (home / "p.pid").read_text().split()[0]
        time.sleep(0.2)
        assert alive(pid) and (home / "home.txt").read_text().strip() == str(home)
        args = home / "systemd-run.args"
        if kills:
            assert "--scope --uid=" in args.read_text() and "setsid nohup sh -c" in args.read_text()
        else:
            assert not args.exists()
        subprocess.run(["sh", "-c", f"cd {home} && {detach.kill_detached('p.pid', 'fbg-t')}"], check=True)


def test_a_detached_script_that_ends_at_once_and_removes_its_pid_file_started_well(tmp_path):
    """A warm-up lift of 0 s: done (and its pid file gone) before fbg_detach looks for it."""
    line = (f"cd {tmp_path} && {detach.DETACH_FUNCTIONS}; "
            f"{detach.detached('rm -f p.pid', 'fbg-t', 'p.pid')} && echo started")
    started = time.monotonic()
    assert "started" in sh(tmp_path, line).stdout
    assert time.monotonic() - started < 2  # it did not wait for a pid file that will never come


# --- no state file of the guard is written through a symbolic link (issue 19, item 10) ---------------

def planted(app: Path, name: str, victim: Path) -> Path:
    link = app / state.STATE_DIR / name
    link.parent.mkdir(parents=True, exist_ok=True)
    link.symlink_to(victim)
    return link


def test_arming_refuses_a_link_in_place_of_the_guard_its_deadline_or_its_plan(tmp_path):
    victim = tmp_path / "victim.txt"
    for name in ("app.guard", "app.guard.until", "app.guard.log"):
        victim.write_text("precious\n")
        app = tmp_path / "app"
        link = planted(app, name, victim)
        res = sh(tmp_path, guard.arm(S, TOKEN, 30))
        assert victim.read_text() == "precious\n", name
        if name == "app.guard.log":  # removed before the guard starts: the link goes, the victim stays
            assert res.returncode == 0 and not link.is_symlink(), res.stdout
            sh(tmp_path, guard.disarm(S, TOKEN))
        else:
            assert res.returncode != 0 and f"{name} is a symbolic link" in res.stdout and link.is_symlink(), name
        subprocess.run(["rm", "-rf", str(app)], check=True)


def test_a_heartbeat_refuses_a_link_in_place_of_the_deadline_and_its_command_does_not_run(tmp_path):
    app, pid = setup(tmp_path, grace=30)
    victim = tmp_path / "victim.txt"
    victim.write_text("precious\n")
    until = app / state.STATE_DIR / "app.guard.until"
    until.unlink()
    until.symlink_to(victim)
    res = sh(tmp_path, base.in_dir(S, guard.heartbeat(S, TOKEN, 2) + "; echo ran > ran.txt"))
    assert res.returncode == 1 and "app.guard.until is a symbolic link" in res.stdout
    assert victim.read_text() == "precious\n" and not (app / "ran.txt").exists()
    sh(tmp_path, guard.disarm(S, TOKEN))


def test_the_guard_never_appends_its_history_line_through_a_link(tmp_path):
    victim = tmp_path / "victim.txt"
    victim.write_text("precious\n")
    app = locked(tmp_path)
    planted(app, state.history_path(S).split("/")[-1], victim)
    armed = sh(tmp_path, guard.arm(S, TOKEN, 1))
    assert armed.returncode == 0, armed.stdout
    deadline = time.monotonic() + 10
    while not (app / "undo.log").exists() and time.monotonic() < deadline:
        time.sleep(0.2)
    time.sleep(0.5)
    assert (app / "undo.log").read_text() == "undone\n"  # the guard acted...
    assert victim.read_text() == "precious\n"  # ...and wrote nothing through the link


# --- a lock whose guard is gone is put right by the next run (issue 18, part 4) --------------------

NEXT = "fedcba9876543210fedcba9876543210"


def take(tmp_path: Path, token: str = NEXT) -> subprocess.CompletedProcess:
    info = json.dumps({"who": "b@c", "when": "later", "task": "deploy", "message": "", "token": token, "since": 2})
    return sh(tmp_path, state.lock(S, info, guard.recover(S, "deploy")))


def entries() -> tuple[journal.Entry, ...]:
    """Three entries, the second of two lines (as a switch back's old upstream text is), the third failing."""
    first = journal.Entry("first", base.in_dir(S, "echo first >> undo.log"))
    second = journal.Entry("second", base.in_dir(S, "printf '%s\\n' 'two\nlines' >> undo.log"))
    return first, second, journal.Entry("third", base.in_dir(S, "echo third >> undo.log; false"))


def armed_then_killed(tmp_path: Path) -> Path:
    """A run's lock, journal and guard; then the guard is killed (kill -9), its deadline past."""
    app = locked(tmp_path, entries=entries())
    assert sh(tmp_path, guard.arm(S, TOKEN, 60)).returncode == 0
    pid = (app / state.STATE_DIR / "app.guard.pid").read_text().split()[0]
    os.kill(int(pid), 9)
    time.sleep(0.3)
    (app / state.STATE_DIR / "app.guard.until").write_text(f"{TOKEN} {int(time.time()) - 1}\n")
    return app


def test_the_next_run_puts_back_a_run_whose_guard_is_gone_once_its_deadline_passed(tmp_path):
    app = armed_then_killed(tmp_path)
    res = take(tmp_path)
    assert res.returncode == 0 and res.stdout.endswith("acquired\n"), res.stdout + res.stderr
    out = res.stdout.splitlines()
    assert out[0] == f"{guard.STALE}{guard.ARMED}{guard.GUARD_GONE}" and json.loads(out[1])["token"] == TOKEN
    assert out[2:5] == [f"{journal.SHOWN}third", f"{journal.SHOWN}second", f"{journal.SHOWN}first"]
    assert f"{journal.NOT_PUT_BACK}third" in out
    assert (app / "undo.log").read_text() == "third\ntwo\nlines\nfirst\n"  # newest first, each whole
    line = json.loads((app / state.history_path(S)).read_text().splitlines()[-1])
    assert (line["action"], line["cause"], line["by"], line["token"]) == ("guard", guard.GUARD_GONE, "deploy", TOKEN[:8])
    assert json.loads((app / state.lock_path(S) / "info").read_text())["token"] == NEXT  # the next run holds it
    assert [p.name for p in (app / state.STATE_DIR).glob("app.guard*")] == ["app.guard.log"]
    assert guard.parse(sh(tmp_path, guard.disarm(S, TOKEN)).stdout) == guard.ACTED  # the old fab learns it


def test_a_live_guard_or_a_deadline_to_come_keeps_the_lock(tmp_path):
    app = locked(tmp_path, entries=entries())
    assert sh(tmp_path, guard.arm(S, TOKEN, 60)).returncode == 0
    res = take(tmp_path)  # the guard runs
    assert res.returncode == 3 and res.stdout.startswith("held") and not (app / "undo.log").exists()
    pid = (app / state.STATE_DIR / "app.guard.pid").read_text().split()[0]
    os.kill(int(pid), 9)
    time.sleep(0.3)
    res = take(tmp_path)  # its guard is gone, but its run may still be heard from until its deadline
    assert res.returncode == 3 and res.stdout.startswith("held") and not (app / "undo.log").exists()


def test_after_a_reboot_the_lock_is_stale_at_once_and_one_without_a_guard_is_freed_with_nothing_run(tmp_path):
    app = locked(tmp_path, entries=entries()[:1])
    boot = app / state.boot_path(S)
    assert boot.read_text().strip() == Path(state.BOOT_ID).read_text().strip()
    boot.write_text("an-earlier-boot\n")
    res = take(tmp_path)  # no guard was armed: nothing to undo, the lock is freed
    assert res.stdout.splitlines()[0] == f"{guard.STALE}{guard.REBOOT}" and res.stdout.endswith("acquired\n")
    assert not (app / "undo.log").exists() and not (app / state.history_path(S)).exists()

    sh(tmp_path, f"rm -rf {app}")
    app = locked(tmp_path, entries=entries()[:1])
    assert sh(tmp_path, guard.arm(S, TOKEN, 60)).returncode == 0
    pid = (app / state.STATE_DIR / "app.guard.pid").read_text().split()[0]
    os.kill(int(pid), 9)  # a power cut: the guard died with the host, its deadline is a minute away
    (app / state.boot_path(S)).write_text("an-earlier-boot\n")
    res = take(tmp_path)
    assert res.stdout.splitlines()[0] == f"{guard.STALE}{guard.ARMED}{guard.REBOOT}", res.stdout
    assert (app / "undo.log").read_text() == "first\n"
    assert json.loads((app / state.history_path(S)).read_text())["cause"] == guard.REBOOT
