"""End-to-end tests on the real test bed: network namespaces, each with sshd, dockerd and nginx.

The bed is built once per session (tests/testbed). Each test starts from clean hosts: no
containers, the example app freshly copied to ~/app, nginx pointing at blue's port, no record.
If the bed cannot be built the tests fail: they never skip.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.testbed.bed import Bed, Host, ensure_up

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "simple"
FAB = str(Path(sys.executable).parent / "fab")
N_HOSTS = 3
UPSTREAM = "/etc/nginx/conf.d/app_upstream.conf"
# Where real hosts differ from the bed. A test marked @pytest.mark.unlike runs twice, as
# test_x[standard] and test_x[unlike]: the second with the app on other ports and an upstream file
# that first names a port with nothing behind it, owned by root with mode 0600 (the SSH user cannot
# read it without sudo); nginx -s reload is asynchronous on both. Only the tests whose behaviour
# depends on those differences are marked (the switch and its undo, reading the live colour, ports
# in what a user is shown). FBG_BED_VARIANT=unlike runs every test on the unlike hosts.
@dataclass(frozen=True)
class Variant:
    name: str
    ports: dict
    first_upstream_port: int  # what the upstream file names before the first deploy
    upstream_mode: str


VARIANTS = {"standard": Variant("standard", {"blue": 18001, "green": 18002}, 18001, "644"),
            "unlike": Variant("unlike", {"blue": 19001, "green": 19002}, 19999, "600")}  # 19999: nothing there
DEFAULT_VARIANT = os.environ.get("FBG_BED_VARIANT", "standard")
if DEFAULT_VARIANT not in VARIANTS:
    raise RuntimeError(f"FBG_BED_VARIANT={DEFAULT_VARIANT!r}: expected standard or unlike")
PORTS = dict(VARIANTS[DEFAULT_VARIANT].ports)  # the running test's ports: updated in place per test
_current = [VARIANTS[DEFAULT_VARIANT]]

# pytest-xdist: each worker deploys to a bed of its own (slot FBG_BED_SLOT + worker number)
if os.environ.get("PYTEST_XDIST_WORKER", "").startswith("gw"):
    os.environ["FBG_BED_SLOT"] = str(int(os.environ.get("FBG_BED_SLOT", "0") or 0)
                                     + int(os.environ["PYTEST_XDIST_WORKER"][2:]))


def variant() -> Variant:
    return _current[0]


def pytest_generate_tests(metafunc) -> None:
    if metafunc.definition.get_closest_marker("unlike") and DEFAULT_VARIANT == "standard":
        metafunc.parametrize("bed_variant", ["standard", "unlike"], indirect=True)


@pytest.fixture
def bed_variant(request) -> Variant:
    """The hosts' variant for this test: the standard bed, or (marked tests) the unlike one too."""
    chosen = VARIANTS[getattr(request, "param", DEFAULT_VARIANT)]
    _current[0] = chosen
    PORTS.clear()
    PORTS.update(chosen.ports)
    return chosen


@pytest.fixture(scope="session")
def bed() -> Bed:
    return ensure_up(N_HOSTS)


@pytest.fixture
def hosts(bed: Bed, bed_variant: Variant) -> list[Host]:
    """The bed's first N_HOSTS hosts reset to a clean state, the example app copied to ~/app."""
    for h in bed.hosts[:N_HOSTS]:
        reset(h)
    return bed.hosts[:N_HOSTS]


def reset(h: Host) -> None:
    h.run("ids=$(docker ps -aq); [ -z \"$ids\" ] || docker rm -f $ids >/dev/null; "
          "docker volume prune -af >/dev/null 2>&1 || docker volume prune -f >/dev/null; "
          "docker network prune -f >/dev/null", timeout=120)
    h.put_dir(EXAMPLE, "app", clean=True)
    h.write_nginx_config()  # the bed's own nginx configuration (a test may have made it the package's)
    (h.home / "app" / "var").mkdir(exist_ok=True)
    os.chown(h.home / "app" / "var", *Bed.deploy_ids())
    v = variant()
    h.run(f"printf 'upstream app_backend {{ server 127.0.0.1:{v.first_upstream_port}; }}\\n' > {UPSTREAM} && "
          f"chown root:root {UPSTREAM} && chmod {v.upstream_mode} {UPSTREAM} && nginx -s reload")


def hosts_file(tmp_path: Path, bed: Bed, hosts: str = "", **defaults: str) -> Path:
    """A hosts file for the bed, quick to run (small settle and stop_timeout). Keyword arguments
    replace keys of [defaults], written as TOML values: hosts_file(..., settle="4")."""
    hosts = hosts or "".join(f'[hosts.{h.name}]\nssh = "{h.name}"\n' for h in bed.hosts[:N_HOSTS])
    values = {"ssh_config": f'"{bed.ssh_config}"', "prepare": '["docker compose build -q"]',
              "stop_timeout": "10", "settle": "2", "health": "{ retries = 15, interval = 0.5, timeout = 2 }",
              **({"ports": f"{{ blue = {PORTS['blue']}, green = {PORTS['green']} }}"} if PORTS["blue"] != 18001
                 else {}),
              **defaults}
    path = tmp_path / "hosts.toml"
    path.write_text("[defaults]\n" + "".join(f"{k} = {v}\n" for k, v in values.items()) + hosts)
    return path


def fab(*args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    """Run the real `fab` as a user would, with no terminal and empty stdin."""
    res = subprocess.run([FAB, *args], cwd=ROOT, capture_output=True, text=True, timeout=timeout,
                         stdin=subprocess.DEVNULL, env={**os.environ, "COLUMNS": "200"})
    print(f"$ fab {' '.join(args)}  -> exit {res.returncode}\n{res.stdout}\n{res.stderr}")
    return res


def rows(stdout: str) -> dict[str, str]:
    """A table's rows by host name, each cell's wrapped lines joined again."""
    table: dict[str, list[str]] = {}
    current = None
    for line in stdout.splitlines():
        if line.count("│") < 3:
            continue
        cells = [c.strip() for c in line.split("│")[1:-1]]
        if cells[0]:
            current = table.setdefault(cells[0], cells)
        elif current is not None:
            current[:] = [f"{a} {b}".strip() for a, b in zip(current, cells)]
    return {host: " │ ".join(cells) for host, cells in table.items()}


def get(url: str, timeout: float = 2) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as r:
            return r.status, r.read().decode().strip()
    except urllib.error.HTTPError as e:
        return e.code, ""
    except OSError as e:
        return 0, str(e)


def serves_now(h: Host, body: str, n: int = 20) -> None:
    """Right after fab returned: each of the next n requests through nginx comes from `body` (an
    old nginx worker that still runs the old upstream would answer from the old colour)."""
    got = [get(f"http://{h.ip}/health/", timeout=2) for _ in range(n)]
    assert got == [(200, body)] * n, f"{h.name}: the next {n} requests through nginx gave {got}"


def serves(h: Host) -> str:
    """What nginx on the host answers on /health/ (e.g. "blue 1"), from outside the host."""
    status, body = get(f"http://{h.ip}/health/")
    assert status == 200, f"{h.name}: nginx answered {status} {body}"
    return body


def containers(h: Host, color: str, app: str = "app") -> dict[str, dict]:
    """service -> {state, id, started, finished} for the colour's compose project (<app>-<colour>)."""
    fmt = ('{{index .Config.Labels "com.docker.compose.service"}} {{.State.Status}} {{.Id}} '
           "{{.State.StartedAt}} {{.State.FinishedAt}}")
    # a container compose removes between the listing and the inspect (a recreate) is left out
    out = h.run(f"ids=$(docker ps -aq --filter label=com.docker.compose.project={app}-{color}); "
                f"[ -z \"$ids\" ] || docker inspect -f '{fmt}' $ids 2>/dev/null || true").stdout
    result = {}
    for line in out.splitlines():
        service, state, cid, started, finished = line.split()
        result[service] = {"state": state, "id": cid, "started": started, "finished": finished}
    return result


def states(h: Host, color: str) -> dict[str, str]:
    return {s: c["state"] for s, c in containers(h, color).items()}


def set_version(h: Host, version: str, mode: str = "") -> None:
    app = h.home / "app" / "app"
    (app / "VERSION").write_text(version + "\n")
    (app / "mode").write_text(mode + "\n")


def events(h: Host) -> list[tuple[float, str, str, str]]:
    """(time, colour, version, what) from the app's events.log, e.g. (t, "blue", "1", "worker start")."""
    path = h.home / "app" / "var" / "events.log"
    rows = []
    for line in path.read_text().splitlines() if path.exists() else []:
        t, color, version, what = line.split(" ", 3)
        rows.append((float(t), color, version, what))
    return rows


@dataclass
class Traffic:
    """A request through nginx every 50 ms, in a thread, until stopped."""

    url: str
    period: float = 0.05
    results: list[tuple[float, int, str]] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)

    def __enter__(self) -> "Traffic":
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def _run(self) -> None:
        deadline = time.monotonic() + 600  # bounded: a runaway loop stops by itself
        n = 0
        while not self._stop.is_set() and time.monotonic() < deadline:
            n += 1
            t = time.time()
            status, body = get(self.request_url(n), timeout=5)
            self.results.append((t, status, body))
            self._stop.wait(max(0.0, self.period - (time.time() - t)))

    def request_url(self, n: int) -> str:
        """The URL of the n-th request (the same each time here)."""
        return self.url

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join(10)

    @property
    def failures(self) -> list[tuple[float, int, str]]:
        return [r for r in self.results if r[1] != 200]
