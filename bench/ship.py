"""The benchmark of build.where = "local": what building on a 1-CPU host costs it, against building
off the host and shipping only the layers it lacks, measured on the test bed.

    sudo .venv/bin/python -m bench.ship

The app (bench/shipapp/) is a Python web service whose image has a Python base layer of tens of MB
(the bed's python rootfs, tests/testbed/pyimage.py, without its packages), a layer made by a real
`pip install` of Celery from wheels (downloaded once with this machine's pip into bench/.work/wheels:
the bed reaches no registry) and a small app layer that changes. Host h1 is limited to 1 CPU (a CFS
quota on the whole host); h3 is the builder, with no limit (a workstation or a build box). Each way,
four deploys, from cold (no image and no build cache of the app on h1, nor on the builder):

  first      the first deploy: nothing of the app on the host
  change     after a one-line change of the app's code
  deps       after a change of requirements.txt (a pin): the `pip install` layer is made again
  unchanged  the same source again

  host   `prepare = ["docker compose build -q"]` on h1 (the source copied to h1's ~/app, as a
         `git pull` would): what the tool did before build.where
  local  build.where = "local", builder = "ssh://h3": built on h3, only what h1 lacks sent to it

For each: the deploy's seconds, h1's CPU-throttled seconds (its cgroup's cpu.stat throttled_time)
and CPU seconds (cpuacct.usage), and for `local` the bytes sent (the history's "shipped"); and the
size of the app layer the one-line change changed. Prints them side by side and writes
bench/ship-results.md. Each way holds the bed's lock (/tmp/fbg-bed.lock) for its own deploys only.
"""

from __future__ import annotations

import fcntl
import json
import shutil
import subprocess
import sys
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.run import Sampler, fab  # noqa: E402
from tasks.archive import human  # noqa: E402
from tests.testbed.bed import Bed, Host  # noqa: E402

APP = ROOT / "bench" / "shipapp"
UPSTREAM = "/etc/nginx/conf.d/app_upstream.conf"
LOCK = "/tmp/fbg-bed.lock"
SCENARIOS = ("first", "change", "deps", "unchanged")
PYTHON = "/usr/bin/python3.11"  # Debian's, the one the bed's rootfs holds: its wheels fit
WAYS = ("host", "local")


@dataclass
class Deploy:
    seconds: float = 0.0
    throttled: float = 0.0  # seconds h1's CPU quota was exhausted
    cpu: float = 0.0  # CPU seconds h1 used
    full: float = 0.0  # seconds h1 used its whole CPU (sampled every 0.2 s): the app starved
    sent: int | None = None  # bytes shipped (local)
    serves: str = ""


@contextmanager
def bed_lock():
    with open(LOCK, "w") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def source(bed: Bed, work: Path) -> Path:
    """The app and its build context (the python rootfs without packages, the wheels), a git
    repository as a project would be."""
    src = work / "src"
    shutil.rmtree(src, ignore_errors=True)
    shutil.copytree(APP, src)
    shutil.copytree(bed.cache_dir / "python.rootfs", src / "rootfs", symlinks=True,
                    ignore=lambda folder, names: ["site"] if folder.endswith("/opt") else [])
    wheels = work / "wheels"
    if not any(wheels.glob("celery-*.whl")):
        subprocess.run([PYTHON, "-m", "pip", "download", "-q", "--only-binary", ":all:", "-d", str(wheels),
                        "-r", str(APP / "requirements.txt"), "pip"], check=True)
    shutil.copytree(wheels, src / "wheels", ignore=lambda folder, names: [n for n in names if n.startswith("pip-")])
    shutil.copy(next(wheels.glob("pip-*.whl")), src / "pip.whl")
    for args in (["init", "-q"], ["add", "-A"], ["commit", "-qm", "v1"]):
        git(src, *args)
    return src


def git(src: Path, *args: str) -> None:
    subprocess.run(["git", "-C", str(src), "-c", "user.email=bench@example.org", "-c", "user.name=bench", *args],
                   check=True, capture_output=True)


def clean(h: Host, builder: Host) -> None:
    """No container, no image of the app and no build cache on h1 (and none of the app on the builder)."""
    h.run("ids=$(docker ps -aq); [ -z \"$ids\" ] || docker rm -f $ids >/dev/null", timeout=120)
    for host in (h, builder):
        host.run("ids=$(docker image ls -q shipbench); [ -z \"$ids\" ] || docker rmi -f $ids >/dev/null; "
                 "docker image prune -f >/dev/null; docker builder prune -af >/dev/null", timeout=300)
    h.run(f"printf 'upstream app_backend {{ server 127.0.0.1:18001; }}\\n' > {UPSTREAM} && nginx -s reload")


def hosts_file(bed: Bed, work: Path, way: str, src: Path) -> Path:
    build = (f'build = {{ where = "local", builder = "ssh://h3", source = "{src}" }}\nprepare = []' if way == "local"
             else 'prepare = ["docker compose build -q"]')
    path = work / f"{way}.toml"
    path.write_text(f'[defaults]\nssh_config = "{bed.ssh_config}"\nfront = ["web"]\nbackground = []\nsettle = 2\n'
                    f'health = {{ retries = 60, interval = 0.5, timeout = 2 }}\n{build}\n[hosts.h1]\nssh = "h1"\n')
    return path


def deploy(h: Host, path: Path) -> Deploy:
    sampler = Sampler(h)
    throttled0, cpu0 = sampler.throttled_ns(), int(sampler.cpu.read_text())
    sampler.start()
    code, seconds, out = fab("deploy", "--host", h.name, "--hosts-file", str(path), timeout=1800)
    sampler.stop_event.set()
    sampler.join(5)
    if code != 0:
        raise SystemExit(f"fab deploy failed:\n{out}")
    d = Deploy(seconds, (sampler.throttled_ns() - throttled0) / 1e9, (int(sampler.cpu.read_text()) - cpu0) / 1e9)
    d.full = sum(t1 - t0 for (t0, c0, _), (t1, c1, _) in zip(sampler.samples, sampler.samples[1:])
                 if (c1 - c0) / 1e9 / (t1 - t0) >= 0.95)
    last = json.loads((h.home / "app" / ".fab-bluegreen" / "app.history.jsonl").read_text().splitlines()[-1])
    if "shipped" in last:
        d.sent = sum(last["shipped"].values())
    d.serves = h.run("curl -s http://127.0.0.1/").stdout.strip()
    return d


def edit(src: Path, app: Path, name: str, text: str) -> None:
    """A change, committed in the source, and in the host's copy (where `host` builds from)."""
    for folder in (src, app):
        (folder / name).write_text(text)
    git(src, "commit", "-qam", f"change {name}")


def one_way(bed: Bed, work: Path, way: str) -> tuple[dict[str, Deploy], int]:
    """The three deploys of one way, from cold; for `local`, the size of the app layer the change changed."""
    h, builder = bed.host("h1"), bed.host("h3")
    src = source(bed, work)
    with bed_lock():
        clean(h, builder)
        app = h.put_dir(src, "app", clean=True)  # the host's compose file (and, for `host`, its build context)
        bed.set_cpus(1, hosts=[h])
        try:
            path = hosts_file(bed, work, way, src)
            runs = {"first": deploy(h, path)}
            edit(src, app, "app/VERSION", "2\n")  # a one-line change
            runs["change"] = deploy(h, path)
            edit(src, app, "requirements.txt", "celery[redis]==5.7.0\nasync-timeout\n")  # a pin
            runs["deps"] = deploy(h, path)
            runs["unchanged"] = deploy(h, path)
        finally:
            bed.set_cpus(None, hosts=[h])
        changed = builder.saved_layer_sizes("shipbench:build")[-1] if way == "local" else 0
        clean(h, builder)
    for name, d in runs.items():
        print(f"{way:5} {name:9} {d.seconds:6.1f} s  throttled {d.throttled:6.2f} s  CPU {d.cpu:6.1f} s  "
              f"at 100 % {d.full:5.1f} s  "
              f"sent {human(d.sent) if d.sent is not None else '-':>8}  serves {d.serves!r}", flush=True)
    return runs, changed


def report(results: dict[str, dict[str, Deploy]], changed: int) -> str:
    host, local = results["host"], results["local"]
    lines = ["One run on the test bed: h1 limited to 1 CPU (the whole host), h3 the builder; each way from cold "
             "(no image or build cache of the app on h1, nor on the builder for `local`).", "",
             "| deploy | seconds: build on host | seconds: local | h1 throttled s: host | h1 throttled s: local | "
             "h1 CPU s: host | h1 CPU s: local | h1 s at 100 %: host | h1 s at 100 %: local | bytes sent: local |",
             "|" + "---|" * 10]
    for name in SCENARIOS:
        h, lo = host[name], local[name]
        lines.append(f"| {name} | {h.seconds:.1f} | {lo.seconds:.1f} | {h.throttled:.2f} | {lo.throttled:.2f} | "
                     f"{h.cpu:.1f} | {lo.cpu:.1f} | {h.full:.1f} | {lo.full:.1f} | {lo.sent} ({human(lo.sent or 0)}) |")
    goals = []
    for name in ("first", "change", "deps"):
        share = local[name].throttled / max(host[name].throttled, 1e-9)
        goals.append(f"| h1 throttled with `local` <= 10 % of the on-host build's ({name}) | {share:.0%} "
                     f"({local[name].throttled:.2f} s of {host[name].throttled:.2f} s) | {'yes' if share <= 0.10 else 'no'} |")
    sent = local["change"].sent or 0
    goals.append(f"| after a one-line change, bytes sent <= 2x the changed layer ({changed} B) | {sent} B "
                 f"({sent / changed:.2f}x) | {'yes' if sent <= 2 * changed else 'no'} |")
    goals.append(f"| an unchanged redeploy sends 0 bytes | {local['unchanged'].sent} | "
                 f"{'yes' if local['unchanged'].sent == 0 else 'no'} |")
    lines += ["", "| goal | measured | met |", "|---|---|---|", *goals, "",
              "`local` seconds include the build on h3 and the platform read; bytes sent are zstd-compressed. "
              "The host's figures are the whole host's cgroup over the deploy (dockerd, sshd, the build, the "
              "containers). Throttled seconds count only the time the host wanted more than its 1 CPU: a "
              "single-threaded build using all of it is not counted; the `at 100 %` columns are the time the "
              "host had no CPU left (its cpuacct.usage sampled every 0.2 s)."]
    return "\n".join(lines) + "\n"


def main() -> None:
    bed = Bed()
    if not bed.is_up(3):
        raise SystemExit("the test bed is not up with 3 hosts: python -m tests.testbed up --hosts 3")
    work = ROOT / "bench" / ".work"
    work.mkdir(exist_ok=True)
    results, changed = {}, {}
    for way in WAYS:
        results[way], changed[way] = one_way(bed, work, way)
    text = report(results, changed["local"])
    (ROOT / "bench" / "ship-results.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
