"""Hosts that differ from the bed where real hosts differ: a reload that takes effect late or never,
a root-only upstream file, a host reached only through another one (ProxyJump), a guard whose
deadline passes mid-deploy. (The tests marked `unlike` run again as test_x[unlike], with other ports
and a first upstream that names a port with nothing behind it: see tests/e2e/conftest.py.)"""

from __future__ import annotations

import pytest

import json
import signal
import subprocess
import time
from pathlib import Path

from .conftest import PORTS, UPSTREAM, fab, hosts_file, rows, serves_now, set_version, states
from .test_guard import history, wait_for
from .test_safety import start_fab

ALL = ["web", "redis", "worker", "beat"]
# signals the master 2 s after it returns: nginx takes up the new file only then
LATE_RELOAD = "sudo -n sh -c '(sleep 2; kill -HUP $(cat /run/nginx.pid)) >/dev/null 2>&1 &'"


def switch_table(**switch: str) -> str:
    return "{ " + ", ".join(f"{k} = {v}" for k, v in switch.items()) + " }"


def upstream_port(h) -> int:
    text = h.path(UPSTREAM).read_text()
    return int(text.split("127.0.0.1:")[1].split(";")[0])


@pytest.mark.unlike
def test_a_reload_that_takes_effect_late_is_waited_for_and_one_too_late_rolls_back(bed, hosts, tmp_path):
    h1 = hosts[0]
    assert fab("deploy", "--host", "h1", "--hosts-file", str(hosts_file(tmp_path, bed))).returncode == 0
    set_version(h1, "2")
    too_short = hosts_file(tmp_path, bed, switch=switch_table(reload=json.dumps(LATE_RELOAD), reload_timeout="1"))
    res = fab("deploy", "--host", "h1", "--hosts-file", str(too_short))
    assert res.returncode == 1
    assert "nginx did not take up the new upstream within 1 s of the reload" in rows(res.stdout)["h1"]
    time.sleep(2.5)  # the late HUP arrives: nginx reads the file as the rollback left it
    serves_now(h1, "blue 1")
    assert upstream_port(h1) == PORTS["blue"]

    late = hosts_file(tmp_path, bed, switch=switch_table(reload=json.dumps(LATE_RELOAD)))
    started = time.monotonic()
    res = fab("deploy", "--host", "h1", "--hosts-file", str(late))
    assert res.returncode == 0, res.stdout
    serves_now(h1, "green 2")  # at once: fab returned only once nginx served green
    assert time.monotonic() - started > 2


def test_a_reload_that_never_takes_effect_fails_the_switch_with_its_reason_and_rolls_back(bed, hosts, tmp_path):
    h1 = hosts[0]
    assert fab("deploy", "--host", "h1", "--hosts-file", str(hosts_file(tmp_path, bed))).returncode == 0
    set_version(h1, "2")
    never = hosts_file(tmp_path, bed, switch=switch_table(reload='"true"', reload_timeout="2"))
    res = fab("deploy", "--host", "h1", "--hosts-file", str(never))
    assert res.returncode == 1
    row = rows(res.stdout)["h1"]
    assert "rolled back" in row and "switch" in row
    assert "the switch failed: nginx did not take up the new upstream within 2 s of the reload" in row
    assert "signal process" not in row  # nginx's own notices are no reason
    serves_now(h1, "blue 1")
    assert upstream_port(h1) == PORTS["blue"]
    assert states(h1, "blue") == dict.fromkeys(ALL, "running")
    assert "running" not in states(h1, "green").values()


@pytest.mark.unlike
def test_a_root_only_upstream_file_is_read_through_sudo_and_switched_back_on_rollback(bed, hosts, tmp_path):
    h1 = hosts[0]
    h1.run(f"chown root:root {UPSTREAM} && chmod 600 {UPSTREAM}")
    assert h1.run(f"cat {UPSTREAM}", user="deploy", check=False).returncode != 0  # the SSH user cannot read it
    path = str(hosts_file(tmp_path, bed, settle="4"))
    assert fab("deploy", "--host", "h1", "--hosts-file", path).returncode == 0
    set_version(h1, "2", mode="worker-crash")  # fails after the switch: the rollback must switch back
    res = fab("deploy", "--host", "h1", "--hosts-file", path)
    assert res.returncode == 1 and "rolled back" in rows(res.stdout)["h1"]
    serves_now(h1, "blue 1")
    assert upstream_port(h1) == PORTS["blue"]
    assert h1.run(f"stat -c '%U %a' {UPSTREAM}").stdout.split() == ["root", "600"]
    check = fab("check", "--host", "h1", "--hosts-file", path)
    assert check.returncode == 0 and "upstream_file" in check.stdout


def jump_config(bed, tmp_path: Path, trust_hop: bool = True) -> Path:
    """The bed's ssh config with h3 behind h2 (ProxyJump); optionally a known_hosts without h2's key."""
    text = bed.ssh_config.read_text().replace("Host h3\n", "Host h3\n  ProxyJump h2\n")
    if not trust_hop:
        known = tmp_path / "known_hosts"
        known.write_text("".join(line for line in bed.known_hosts.read_text().splitlines(keepends=True)
                                 if not line.startswith("h2,")))
        text = text.replace(f"UserKnownHostsFile {bed.known_hosts}", f"UserKnownHostsFile {known}")
    path = tmp_path / f"ssh_config_jump_{trust_hop}"
    path.write_text(text)
    return path


def test_a_host_reached_only_through_a_jump_host_deploys_and_an_unknown_hop_key_is_refused(bed, hosts, tmp_path):
    h3 = hosts[2]
    h3.ssh_only_from(hosts[1].ip)  # h3's sshd accepts logins from h2 only
    try:
        direct = subprocess.run(bed.ssh_argv("h3") + ["true"], capture_output=True, text=True, timeout=30)
        assert direct.returncode != 0  # not reachable directly: the deploy below goes through h2
        only_h3 = '[hosts.h3]\nssh = "h3"\n'
        path = hosts_file(tmp_path, bed, hosts=only_h3, ssh_config=f'"{jump_config(bed, tmp_path)}"')
        res = fab("deploy", "--host", "h3", "--hosts-file", str(path))
        assert res.returncode == 0, res.stdout + res.stderr
        serves_now(h3, "blue 1")

        untrusted = hosts_file(tmp_path, bed, hosts=only_h3,
                               ssh_config=f'"{jump_config(bed, tmp_path, trust_hop=False)}"')
        before = h3.run("docker ps -a --format '{{.ID}} {{.State}}' | sort").stdout
        refused = fab("deploy", "--host", "h3", "--hosts-file", str(untrusted))
        assert refused.returncode == 1
        row = rows(refused.stdout)["h3"]
        assert "unreachable" in row and f"the host key of the jump host {hosts[1].ip} (ProxyJump of h3) is not in" in row
        assert h3.run("docker ps -a --format '{{.ID}} {{.State}}' | sort").stdout == before
    finally:
        h3.ssh_only_from(None)


def test_a_guard_whose_deadline_passes_mid_deploy_never_lets_it_end_deployed(bed, hosts, tmp_path):
    """fab stopped (a laptop asleep) in the health check past the guard's deadline, then resumed."""
    h1 = hosts[0]
    path = str(hosts_file(tmp_path, bed, guard_deadline="2", timeouts="{ command = 5 }",
                          health="{ retries = 3, interval = 0.5, timeout = 2, start_delay = 2 }"))
    assert fab("deploy", "--host", "h1", "--hosts-file", path).returncode == 0
    set_version(h1, "2")
    proc = start_fab("deploy", "--host", "h1", "--hosts-file", path)
    wait_for("green's web started", lambda: states(h1, "green").get("web") == "running", 60)
    proc.send_signal(signal.SIGSTOP)
    try:
        took = wait_for("the guard's history line", lambda: history(h1)[-1]["action"] == "guard", 20)
        print(f"the guard acted {took:.1f} s after fab stopped")  # guard_deadline from fab's last feed
    finally:
        proc.send_signal(signal.SIGCONT)
    out, err = proc.communicate(timeout=120)
    print(out, err)
    assert proc.returncode == 1
    row = rows(out)["h1"]
    assert "failed" in row and "deployed" not in row and "the guard put the host back" in row
    serves_now(h1, "blue 1")
    assert states(h1, "blue") == dict.fromkeys(ALL, "running")
    assert "running" not in states(h1, "green").values()
    assert json.loads((h1.home / "app" / ".fab-bluegreen" / "app.json").read_text())["live"] == "blue"
    assert [line["action"] for line in history(h1)][-2:] in (["guard", "deploy"], ["deploy", "guard"])
    assert not (h1.home / "app" / ".fab-bluegreen" / "app.lock").exists()


def test_a_health_path_with_shell_characters_works_end_to_end(bed, hosts, tmp_path):
    """`?`, `(`, `)` and `&` reach curl as one argument: the switch line is no shell syntax error."""
    h1 = hosts[0]
    path = str(hosts_file(tmp_path, bed, health='{ path = "/health/?q=(ready)&x=$(mkdir$IFS/tmp/fbg-pwned)", '
                                               'retries = 15, interval = 0.5, timeout = 2 }'))
    assert fab("deploy", "--host", "h1", "--hosts-file", path).returncode == 0
    set_version(h1, "2")
    res = fab("deploy", "--host", "h1", "--hosts-file", path)
    assert res.returncode == 0, res.stdout
    serves_now(h1, "green 2")
    assert not h1.path("/tmp/fbg-pwned").exists() and not Path("/tmp/fbg-pwned").exists()


def test_a_deploy_whose_guard_was_disarmed_under_it_goes_no_further(bed, hosts, tmp_path):
    """fab unlock (by someone who took the run for dead) disarms the guard mid-deploy: the run's next
    command carries a heartbeat that finds no guard of its own, so it stops there and rolls back."""
    h1 = hosts[0]
    path = str(hosts_file(tmp_path, bed, hooks='{ after_front = ["sleep 6"] }'))
    assert fab("deploy", "--host", "h1", "--hosts-file", path).returncode == 0
    set_version(h1, "2")
    proc = start_fab("deploy", "--host", "h1", "--hosts-file", path)
    wait_for("green's web started", lambda: states(h1, "green").get("web") == "running", 60)
    time.sleep(1.5)  # in the after_front hook now
    unlocked = fab("unlock", "--host", "h1", "--hosts-file", path, "--yes")
    assert unlocked.returncode == 0 and "disarmed its guard" in unlocked.stdout
    out, err = proc.communicate(timeout=120)
    print(out, err)
    assert proc.returncode == 1
    row = rows(out)["h1"]
    assert "rolled back" in row and "switch" in row and "the guard is no longer armed" in row
    serves_now(h1, "blue 1")
    assert states(h1, "blue") == dict.fromkeys(ALL, "running")
    assert "running" not in states(h1, "green").values()
