"""fab cleanup, configuration errors and SSH refusals, on real hosts."""

from __future__ import annotations

import json
import socket
import threading

import pytest

from .conftest import fab, hosts_file, rows, serves, set_version, states


@pytest.mark.unlike
def test_cleanup_removes_only_the_old_colour_and_keeps_its_volume(bed, hosts, tmp_path):
    h1 = hosts[0]
    path = str(hosts_file(tmp_path, bed))
    assert fab("deploy", "--host", "h1", "--hosts-file", path).returncode == 0
    set_version(h1, "2")
    assert fab("deploy", "--host", "h1", "--hosts-file", path).returncode == 0
    assert "app-blue_data" in h1.run("docker volume ls -q").stdout

    refused = fab("cleanup", "--host", "h1", "--hosts-file", path)  # no terminal and no --yes
    assert refused.returncode == 2 and "--yes" in refused.stderr
    assert states(h1, "blue")["web"] == "running"

    res = fab("cleanup", "--host", "h1", "--hosts-file", path, "--yes", "--prune-images")
    assert res.returncode == 0 and "cleaned" in res.stdout
    assert states(h1, "blue") == {}
    images = h1.run("docker images --format '{{.Repository}}:{{.Tag}}'").stdout.split()
    assert "simple-app:blue" not in images  # pruned: no container uses it any more
    assert "simple-app:green" in images and "fbg/redis:7" in images  # in use: kept
    assert states(h1, "green") == dict.fromkeys(["web", "redis", "worker", "beat"], "running")
    assert "app-blue_data" in h1.run("docker volume ls -q").stdout  # the volume survives
    assert serves(h1) == "green 2"
    history = (h1.home / "app" / ".fab-bluegreen" / "app.history.jsonl").read_text().splitlines()
    assert json.loads(history[-1])["action"] == "cleanup"

    again = fab("cleanup", "--host", "h1", "--hosts-file", path, "--yes")
    assert again.returncode == 0 and "nothing to clean" in again.stdout


def test_a_drain_whose_queue_does_not_empty_fails_after_drain_timeout_and_cleanup_still_refuses(bed, hosts, tmp_path):
    """The simple example's worker never reads redis: messages pushed into blue's queue stay."""
    h1 = hosts[0]
    path = str(hosts_file(tmp_path, bed, broker="{ drain_timeout = 2 }"))
    assert fab("deploy", "--host", "h1", "--hosts-file", path).returncode == 0
    set_version(h1, "2")
    assert fab("deploy", "--host", "h1", "--hosts-file", path).returncode == 0
    h1.run("docker exec app-blue-redis-1 redis-cli LPUSH celery m1 m2")
    drained = fab("drain", "--host", "h1", "--hosts-file", path)
    assert drained.returncode == 1
    assert "2 still wait (celery: 2) after 2 s (drain_timeout)" in rows(drained.stdout)["h1"]
    assert states(h1, "blue") == {"web": "running", "redis": "running", "worker": "exited", "beat": "exited"}
    history = (h1.home / "app" / ".fab-bluegreen" / "app.history.jsonl").read_text().splitlines()
    assert json.loads(history[-1])["action"] == "drain" and json.loads(history[-1])["result"] == "failed"
    refused = fab("cleanup", "--host", "h1", "--hosts-file", path, "--yes")
    assert refused.returncode == 1 and "celery: 2" in refused.stdout
    assert states(h1, "blue")["web"] == "running"  # nothing removed


def test_deploy_without_a_terminal_keeps_the_old_colour_and_prints_the_cleanup_command(bed, hosts, tmp_path):
    h1 = hosts[0]
    path = str(hosts_file(tmp_path, bed))
    fab("deploy", "--host", "h1", "--hosts-file", path)
    set_version(h1, "2")
    res = fab("deploy", "--host", "h1", "--hosts-file", path)
    assert f"fab cleanup --host h1 --hosts-file {path}" in res.stdout
    assert states(h1, "blue")["web"] == "running"


class Listener:
    """A TCP port that counts connection attempts: proves that no SSH connection was made."""

    def __enter__(self):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(8)
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.accepted = 0
        self.done = threading.Event()
        self.thread = threading.Thread(target=self.serve, daemon=True)
        self.thread.start()
        return self

    def serve(self):
        while not self.done.is_set():
            try:
                conn, _ = self.sock.accept()
                self.accepted += 1
                conn.close()
            except OSError:
                pass

    def __exit__(self, *exc):
        self.done.set()
        self.thread.join(2)
        self.sock.close()


BAD_FILES = [
    ("[defaults]\nsettle = 'long'\n", "defaults.settle: expected a number"),
    ("[defaults]\nbackgrund = ['worker']\n", "defaults.backgrund: unknown key"),
    ("[defaults.ports]\nblue = 18001\ngreen = 18001\n", "hosts.x.ports: blue and green both use port 18001"),
    ("[defaults.health]\nretries = 0\n", "defaults.health.retries: 0 is out of range"),
    ("[defaults]\nfront = []\n", "defaults.front: needs at least one service"),
    ("[defaults.switch]\nmode = 'traefik'\n", "defaults.switch.mode: 'traefik': expected one of"),
    ("[groups]\nedge = ['x', 'pi9']\n", "groups.edge: unknown host 'pi9'"),
    ("[defaults]\napp = 'shop;reboot'\n", "defaults.app: 'shop;reboot': use lowercase"),
]


@pytest.mark.parametrize("defect, message", BAD_FILES, ids=[m.split(":")[0] for _, m in BAD_FILES])
def test_a_bad_hosts_file_exits_2_naming_the_key_and_contacts_no_host(tmp_path, defect, message):
    with Listener() as listener:
        path = tmp_path / "hosts.toml"
        path.write_text(f"{defect}\n[hosts.x]\nssh = \"deploy@127.0.0.1:{listener.port}\"\n")
        res = fab("deploy", "--host", "x", "--hosts-file", str(path))
    assert res.returncode == 2
    assert res.stderr.strip() == f"error: {path}: {message}" or message in res.stderr
    assert str(path) in res.stderr and len(res.stderr.strip().splitlines()) == 1
    assert listener.accepted == 0


def test_an_unknown_host_on_the_command_line_lists_the_known_ones(bed, tmp_path):
    res = fab("deploy", "--host", "h9", "--hosts-file", str(hosts_file(tmp_path, bed)))
    assert res.returncode == 2 and "unknown host 'h9' (known hosts: h1, h2, h3)" in res.stderr


def test_no_host_named_is_a_usage_error(bed, tmp_path):
    res = fab("cleanup", "--hosts-file", str(hosts_file(tmp_path, bed)))
    assert res.returncode == 2 and "--host NAME, --group NAME or --all" in res.stderr


def test_a_host_whose_key_is_not_known_is_refused(bed, hosts, tmp_path):
    empty = tmp_path / "known_hosts"
    empty.write_text("")
    config = tmp_path / "ssh_config"
    config.write_text(bed.ssh_config.read_text().replace(str(bed.known_hosts), str(empty)))
    path = hosts_file(tmp_path, bed).read_text().replace(str(bed.ssh_config), str(config))
    (tmp_path / "hosts.toml").write_text(path)
    res = fab("deploy", "--host", "h1", "--hosts-file", str(tmp_path / "hosts.toml"))
    assert res.returncode == 1
    assert "unreachable" in res.stdout and "not in" in res.stdout and "known_hosts" in res.stdout
    assert states(hosts[0], "blue") == {}  # nothing ran


def test_a_changed_host_key_is_refused(bed, hosts, tmp_path):
    h1, h2 = hosts[0], hosts[1]
    # known_hosts that pins h2's key for h1's address: exactly what a re-installed host looks like
    lines = bed.known_hosts.read_text().splitlines()
    h2_keys = [ln.split(" ", 1)[1] for ln in lines if ln.split(" ", 1)[0].split(",")[0] in (h2.ip, "h2")]
    wrong = tmp_path / "known_hosts"
    wrong.write_text("".join(f"{h1.ip} {k}\n" for k in h2_keys))
    config = tmp_path / "ssh_config"
    config.write_text(bed.ssh_config.read_text().replace(str(bed.known_hosts), str(wrong)))
    (tmp_path / "hosts.toml").write_text(hosts_file(tmp_path, bed).read_text().replace(str(bed.ssh_config), str(config)))
    res = fab("deploy", "--host", "h1", "--hosts-file", str(tmp_path / "hosts.toml"))
    assert res.returncode == 1 and "CHANGED" in res.stdout and "ssh-keygen -R" in res.stdout


def test_sudo_that_asks_for_a_password_is_reported_and_nothing_stops(bed, hosts, tmp_path):
    h1 = hosts[0]
    path = str(hosts_file(tmp_path, bed))
    assert fab("deploy", "--host", "h1", "--hosts-file", path).returncode == 0
    h1.run("rm -rf /home/nosudo/app && cp -r /home/deploy/app /home/nosudo/app && chown -R nosudo /home/nosudo/app")
    nosudo = hosts_file(tmp_path, bed, hosts='[hosts.h1]\nssh = "nosudo@h1"\n')
    res = fab("deploy", "--host", "h1", "--hosts-file", str(nosudo))
    assert res.returncode == 1 and "refused" in res.stdout
    assert "refused at check: pre-flight: sudo: sudo -n asks for a password" in res.stderr
    assert states(h1, "blue")["worker"] == "running"


def run_at_a_terminal(args: list[str], answer: str, timeout: float = 300) -> tuple[int, str]:
    """Run fab with a pseudo-terminal as stdin and stdout; type `answer` at the [y/N] prompt."""
    import os
    import select
    import subprocess
    import time

    from .conftest import FAB, ROOT

    master, slave = os.openpty()
    proc = subprocess.Popen([FAB, *args], cwd=ROOT, stdin=slave, stdout=slave, stderr=subprocess.DEVNULL,
                            env={**os.environ, "COLUMNS": "200"})
    os.close(slave)
    output, answered, deadline = b"", False, time.monotonic() + timeout
    while time.monotonic() < deadline:
        ready, _, _ = select.select([master], [], [], 0.5)
        if ready:
            try:
                chunk = os.read(master, 4096)
            except OSError:  # the child closed the terminal
                break
            if not chunk:
                break
            output += chunk
            if not answered and b"[y/N]" in output:
                os.write(master, answer.encode())
                answered = True
        elif proc.poll() is not None:
            break
    try:
        code = proc.wait(timeout=30)
    finally:
        proc.kill()
        os.close(master)
    text = output.decode(errors="replace")
    print(text)
    assert answered, "no [y/N] prompt was shown"
    return code, text


@pytest.mark.parametrize("answer, removed", [("\n", False), ("y\n", True)], ids=["default-no", "yes"])
def test_at_a_terminal_deploy_asks_before_removing_the_old_colour(bed, hosts, tmp_path, answer, removed):
    h1 = hosts[0]
    path = str(hosts_file(tmp_path, bed))
    assert fab("deploy", "--host", "h1", "--hosts-file", path).returncode == 0
    set_version(h1, "2")
    code, text = run_at_a_terminal(["deploy", "--host", "h1", "--hosts-file", path], answer)
    assert code == 0
    assert "Remove the old colour now? h1: blue (app-blue)" in text
    assert f"fab cleanup --host h1 --hosts-file {path} --yes" in text
    assert (states(h1, "blue") == {}) is removed
    assert serves(h1) == "green 2"


def test_an_unreachable_host_is_a_row_and_the_others_deploy(bed, hosts, tmp_path):
    with Listener() as closed:
        pass  # a port that was just closed: connections to it are refused
    path = hosts_file(tmp_path, bed, hosts=f'[hosts.h1]\nssh = "h1"\n[hosts.ghost]\nssh = "deploy@127.0.0.1:{closed.port}"\n')
    res = fab("deploy", "--host", "ghost", "--host", "h1", "--hosts-file", str(path))
    assert res.returncode == 1
    table = rows(res.stdout)
    assert "unreachable" in table["ghost"] and "connect" in table["ghost"]
    assert "deployed" in table["h1"]
    assert serves(hosts[0]) == "blue 1"
