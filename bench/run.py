"""The benchmark: what a deploy costs a 1-CPU host, per way of deploying, measured on the test bed.

    sudo .venv/bin/python -m bench.run [--rounds 3] [--warmup-seconds 10]

On the project's own test bed (tests/testbed), host h1 limited to 1 CPU for the whole host (a CFS
quota on its cgroup: daemons, SSH sessions and containers), the example app with its benchmark
worker (two cores for its first 4 s, then busy half the time), in one run, rounds alternated:

  naive     all of the new colour up while the old runs, switch, stop the old (shell on the host)
  staged    the staged sequence as a plain shell script on the host, no fixed wait (the time floor)
  ssh+staged  the same script sent over SSH from the workstation (what a hand-written script costs)
  fab       `fab deploy`, warm-up cap off (settle = 0: the scripts have no settle wait)
  fab+cap   `fab deploy`, warm-up cap on (the default: half the host's CPUs)

Each round measures, over the deploy and until the cap is lifted plus 5 s (the same window for
every variant): deploy seconds; failed requests and p50/p99/max latency through nginx (a request
every 50 ms from outside the host); seconds the host's CPU quota was exhausted (cgroup cpu.stat
throttled_time) and peak cores (cpuacct.usage every 0.2 s); peak memory (memory.usage_in_bytes);
and checks that the deploy ended on the colour it was sent to and that the cap was lifted.
Then: `fab deploy` wall time on 1, 3, 5 and 10 hosts in one run; per host deploy, the SSH round
trips (FBG_TRACE) and the docker/compose CLI calls (dockerd's own debug log: one ping per call) of
`fab deploy` and of the script, and where fab's seconds go; `fab -l` start-up time. Writes bench/results.md and bench/cpu_latency.png, and prints the figures.
A benchmark that reports, not a test that fails: targets missed are reported as missed.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import resource
import statistics
import subprocess
import sys
import threading
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.testbed.bed import Bed, Host  # noqa: E402

FAB = str(Path(sys.executable).parent / "fab")
EXAMPLE = ROOT / "examples" / "simple"
UPSTREAM = "/etc/nginx/conf.d/app_upstream.conf"
VARIANTS = ["naive", "staged", "ssh+staged", "fab", "fab+cap"]

HEALTH_POLL = ("until curl -s -o /dev/null -w '%{http_code}' --max-time 2 http://127.0.0.1:18002/health/ "
               "| grep -q '^[23]'; do sleep 0.2; done")
SWITCH = ("printf 'upstream app_backend { server 127.0.0.1:18002; }\\n' > /tmp/up.conf && "
          f"sudo -n sh -c 'cat /tmp/up.conf > {UPSTREAM}' && sudo -n nginx -t 2>/dev/null && sudo -n nginx -s reload")
GREEN = "cd ~/app && export DEPLOY_COLOR=green DEPLOY_PORT=18002 && docker compose -p app-green -f compose.yml"
BLUE = "cd ~/app && export DEPLOY_COLOR=blue DEPLOY_PORT=18001 && docker compose -p app-blue -f compose.yml"
SCRIPTS = {
    "naive": f"({GREEN} up -d --force-recreate) && {HEALTH_POLL} && {SWITCH} && ({BLUE} stop -t 30)",
    "staged": (f"({BLUE} stop -t 30 worker beat) && ({GREEN} up -d --force-recreate --no-deps web redis) && "
               f"{HEALTH_POLL} && {SWITCH} && ({GREEN} up -d --force-recreate --no-deps worker beat)"),
}


@dataclass
class Round:
    variant: str
    seconds: float = 0.0
    requests: int = 0
    failed: int = 0
    p50: float = 0.0
    p99: float = 0.0
    max: float = 0.0
    throttled: float = 0.0
    peak_cores: float = 0.0
    peak_mem_mb: float = 0.0
    ended_on: str = ""
    cap_lifted: bool = True
    series: dict = field(default_factory=dict)  # for the plot: t -> cores, t -> latency


class Sampler(threading.Thread):
    """Host cgroup CPU time and memory every 0.2 s, from the root namespace (no SSH involved)."""

    def __init__(self, h: Host):
        super().__init__(daemon=True)
        self.cpu = Path(f"/sys/fs/cgroup/cpuacct/{h.cgroup}/cpuacct.usage")
        self.mem = Path(f"/sys/fs/cgroup/memory/{h.cgroup}/memory.usage_in_bytes")
        self.stat = Path(f"/sys/fs/cgroup/cpu/{h.cgroup}/cpu.stat")
        self.stop_event = threading.Event()
        self.samples: list[tuple[float, int, int]] = []

    def throttled_ns(self) -> int:
        for line in self.stat.read_text().splitlines():
            if line.startswith("throttled_time"):
                return int(line.split()[1])
        return 0

    def run(self) -> None:
        while not self.stop_event.is_set():
            self.samples.append((time.time(), int(self.cpu.read_text()), int(self.mem.read_text())))
            self.stop_event.wait(0.2)

    def cores(self) -> list[tuple[float, float]]:
        return [(t1, (c1 - c0) / 1e9 / (t1 - t0)) for (t0, c0, _), (t1, c1, _) in zip(self.samples, self.samples[1:])]


class Traffic(threading.Thread):
    def __init__(self, url: str):
        super().__init__(daemon=True)
        self.url, self.stop_event, self.results = url, threading.Event(), []

    def run(self) -> None:
        deadline = time.monotonic() + 600
        while not self.stop_event.is_set() and time.monotonic() < deadline:
            t = time.time()
            try:
                with urllib.request.urlopen(self.url, timeout=5) as r:
                    ok = r.status == 200
            except OSError:
                ok = False
            self.results.append((t, ok, time.time() - t))
            self.stop_event.wait(max(0.0, 0.05 - (time.time() - t)))


def sh(h: Host, command: str, user: str = "deploy", timeout: float = 300) -> subprocess.CompletedProcess:
    return h.run(command, user=user, timeout=timeout, check=False)


def hosts_file(path: Path, bed: Bed, hosts: list[Host], settle: float, cap: str) -> Path:
    body = "".join(f'[hosts.{h.name}]\nssh = "{h.name}"\n' for h in hosts)
    path.write_text(f'[defaults]\nssh_config = "{bed.ssh_config}"\nsettle = {settle}\nstop_timeout = 30\n'
                    f'health = {{ retries = 60, interval = 0.2, timeout = 2 }}\nwarmup = {cap}\n{body}')
    return path


def fab(*args: str, timeout: float = 600) -> tuple[int, float, str]:
    started = time.monotonic()
    res = subprocess.run([FAB, *args], cwd=ROOT, capture_output=True, text=True, timeout=timeout,
                         stdin=subprocess.DEVNULL)
    return res.returncode, time.monotonic() - started, res.stdout + res.stderr


def reset(h: Host, bed: Bed, work: Path) -> None:
    """A clean host with blue live and warm (its worker past its burst, no cap pending)."""
    h.run("ids=$(docker ps -aq); [ -z \"$ids\" ] || docker rm -f $ids >/dev/null; docker volume prune -f >/dev/null",
          timeout=120)
    app = h.put_dir(EXAMPLE, "app", clean=True)
    (app / "app" / "mode").write_text("bench-worker\n")
    (app / "var").mkdir(exist_ok=True)
    os.chown(app / "var", *bed.deploy_ids())
    h.run(f"printf 'upstream app_backend {{ server 127.0.0.1:18001; }}\\n' > {UPSTREAM} && nginx -s reload")
    code, _, out = fab("deploy", "--host", h.name, "--hosts-file", str(hosts_file(work / "setup.toml", bed, [h], 0, "{ cpus = 0 }")))
    assert code == 0, out
    (app / "app" / "VERSION").write_text("2\n")
    h.run("cd /home/deploy/app && runuser -u deploy -- env DEPLOY_COLOR=green docker compose build -q", timeout=300)
    time.sleep(8)  # blue's worker is past its burst: steady state


def run_round(h: Host, bed: Bed, variant: str, work: Path, cap_seconds: float) -> Round:
    reset(h, bed, work)
    r = Round(variant)
    sampler, traffic = Sampler(h), Traffic(f"http://{h.ip}/health/")
    throttled0 = sampler.throttled_ns()
    sampler.start()
    traffic.start()
    time.sleep(1)
    started = time.monotonic()
    if variant in SCRIPTS:
        res = sh(h, SCRIPTS[variant])
        ok = res.returncode == 0
    elif variant == "ssh+staged":
        ok = subprocess.run(["ssh", "-F", str(bed.ssh_config), h.name, SCRIPTS["staged"]], stdin=subprocess.DEVNULL,
                            capture_output=True, timeout=300).returncode == 0
    else:
        cap = "{ cpus = 0 }" if variant == "fab" else f"{{ seconds = {cap_seconds:g} }}"
        code, _, out = fab("deploy", "--host", h.name, "--hosts-file", str(hosts_file(work / "v.toml", bed, [h], 0, cap)))
        ok = code == 0
    r.seconds = time.monotonic() - started
    time.sleep(cap_seconds + 5)  # until the cap is lifted plus 5 s, for every variant alike
    traffic.stop_event.set()
    sampler.stop_event.set()
    traffic.join(10)
    sampler.join(5)
    r.throttled = (sampler.throttled_ns() - throttled0) / 1e9
    window = [x for x in traffic.results if x[0] >= time.time() - (r.seconds + cap_seconds + 6)]
    lat = sorted(x[2] * 1000 for x in window)
    r.requests, r.failed = len(window), sum(1 for x in window if not x[1])
    r.p50, r.p99, r.max = lat[len(lat) // 2], lat[min(len(lat) - 1, int(len(lat) * 0.99))], lat[-1]
    cores = sampler.cores()
    r.peak_cores = max(c for _, c in cores)
    r.peak_mem_mb = max(m for *_, m in sampler.samples) / 2**20
    body = urllib.request.urlopen(f"http://{h.ip}/health/", timeout=5).read().decode().strip()
    r.ended_on = body.split()[0] if ok else f"FAILED ({body})"
    cid = h.run("docker inspect -f '{{.Id}}' app-green-worker-1").stdout.strip()
    r.cap_lifted = int(h.run(f"cat /sys/fs/cgroup/cpu/{h.cgroup}/{cid}/cpu.cfs_quota_us").stdout) == -1
    t0 = traffic.results[0][0] if traffic.results else started
    r.series = {"cores": [(t - t0, c) for t, c in cores], "latency": [(t - t0, d * 1000) for t, _, d in traffic.results]}
    return r


def median(rounds: list[Round], attr: str) -> float:
    return statistics.median(getattr(r, attr) for r in rounds)


MULTI = (1, 3, 5, 10)  # hosts in one run; 10 is the connection cap (fleet.MAX_PARALLEL)


def multi_host(bed: Bed, work: Path) -> dict[int, tuple[float, float]]:
    """`fab deploy` wall time on 1, 3, 5 and 10 hosts in one run, and fab's own CPU seconds (no CPU
    quota: the hosts share the machine's 2 cores, so the wall time measures the workstation and the
    bed together, not a real fleet, whose hosts each bring their own CPU)."""
    times = {}
    for n in MULTI:
        hosts = bed.hosts[:n]
        for h in hosts:
            h.run("ids=$(docker ps -aq); [ -z \"$ids\" ] || docker rm -f $ids >/dev/null", timeout=120)
            h.put_dir(EXAMPLE, "app", clean=True)
            h.run(f"printf 'upstream app_backend {{ server 127.0.0.1:18001; }}\\n' > {UPSTREAM} && nginx -s reload")
        path = hosts_file(work / f"m{n}.toml", bed, hosts, 0, "{ cpus = 0 }")
        args = [a for h in hosts for a in ("--host", h.name)]
        code, _, out = fab("deploy", *args, "--hosts-file", str(path))  # blue, and images built
        assert code == 0, out
        for h in hosts:
            (h.home / "app" / "app" / "VERSION").write_text("2\n")
            h.run("cd /home/deploy/app && runuser -u deploy -- env DEPLOY_COLOR=green docker compose build -q", timeout=300)
        cpu0 = resource.getrusage(resource.RUSAGE_CHILDREN)
        code, seconds, out = fab("deploy", *args, "--hosts-file", str(path))
        cpu1 = resource.getrusage(resource.RUSAGE_CHILDREN)
        assert code == 0, out
        times[n] = seconds, (cpu1.ru_utime - cpu0.ru_utime) + (cpu1.ru_stime - cpu0.ru_stime)
    return times


@dataclass
class Calls:
    """One deploy of h1 (1 CPU), blue live: its SSH round trips and docker/compose CLI calls."""
    round_trips: int = 0
    docker_calls: int = 0
    seconds: float = 0.0
    trips: list = field(default_factory=list)  # (seconds, the command's start) per round trip, in order


def docker_debug(h: Host, on: bool) -> None:
    """dockerd's debug log on or off (a live-reloaded option: SIGHUP, no restart)."""
    path = h.root / "etc/docker/daemon.json"
    conf = json.loads(path.read_text())
    conf["debug"] = on
    path.write_text(json.dumps(conf, indent=2) + "\n")
    h.run("kill -HUP $(cat /var/run/docker.pid)")
    time.sleep(1)


def calls_per_deploy(h: Host, bed: Bed, work: Path, variant: str) -> Calls:
    """Every docker or compose CLI process pings the daemon once first: count the pings dockerd
    logs while the deploy runs; count fab's round trips from its trace (FBG_TRACE=1)."""
    reset(h, bed, work)
    log = h.root / "var/log/dockerd.log"
    docker_debug(h, True)
    try:
        start = log.stat().st_size
        calls = Calls()
        if variant == "staged":
            t = time.monotonic()
            sh(h, SCRIPTS["staged"])
            calls.seconds, calls.round_trips = time.monotonic() - t, 1
        else:
            os.environ["FBG_TRACE"] = "1"
            try:
                code, calls.seconds, out = fab("deploy", "--host", h.name, "--hosts-file",
                                               str(hosts_file(work / "c.toml", bed, [h], 0, "{ cpus = 0 }")))
            finally:
                del os.environ["FBG_TRACE"]
            assert code == 0, out
            calls.trips = [(float(m.group(1)), re.sub(r"^.*exit 9; fi; ", "", m.group(2))[:70]) for m in
                           re.finditer(r"\[trace\] \S+: ([\d.]+) s exit \d+: (.*)", out)]
            calls.round_trips = len(calls.trips)
        with open(log, "rb") as f:
            f.seek(start)
            calls.docker_calls = sum(1 for line in f if b"/_ping" in line)
        return calls
    finally:
        docker_debug(h, False)


def fab_list_seconds() -> float:
    runs = []
    for _ in range(5):
        started = time.monotonic()
        subprocess.run([FAB, "-l"], cwd=ROOT, capture_output=True, check=True)
        runs.append(time.monotonic() - started)
    return statistics.median(runs)


def plot(rounds: dict[str, list[Round]], path: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, len(VARIANTS), figsize=(16, 6), sharex=True, sharey="row")
    for col, variant in enumerate(VARIANTS):
        r = rounds[variant][0]
        axes[0][col].plot(*zip(*r.series["cores"]), color="tab:red")
        axes[0][col].axhline(1.0, color="grey", linestyle=":")
        axes[0][col].set_title(variant)
        axes[1][col].plot(*zip(*r.series["latency"]), color="tab:blue", linewidth=0.8)
        axes[1][col].set_xlabel("seconds")
    axes[0][0].set_ylabel("host CPU (cores; quota 1)")
    axes[1][0].set_ylabel("latency through nginx (ms)")
    fig.suptitle("A blue to green deploy on a 1-CPU host (first round of each variant)")
    fig.tight_layout()
    fig.savefig(path, dpi=90)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--warmup-seconds", type=float, default=10.0)
    args = ap.parse_args()
    work = ROOT / "bench" / ".work"
    work.mkdir(exist_ok=True)
    bed = Bed()
    if not bed.is_up(max(MULTI)):
        bed.up(max(MULTI))
    h = bed.hosts[0]
    bed.set_cpus(1, hosts=[h])
    rounds: dict[str, list[Round]] = {v: [] for v in VARIANTS}
    try:
        for i in range(args.rounds):
            for variant in VARIANTS:  # alternated: noise on the machine spreads over every variant
                r = run_round(h, bed, variant, work, args.warmup_seconds)
                rounds[variant].append(r)
                print(f"round {i + 1} {variant:8} {r.seconds:5.1f} s  failed {r.failed}/{r.requests}  "
                      f"p99 {r.p99:5.0f} ms  throttled {r.throttled:4.1f} s  peak {r.peak_cores:.2f} cores  "
                      f"ended on {r.ended_on}  cap lifted {r.cap_lifted}", flush=True)
    finally:
        bed.set_cpus(None, hosts=[h])
    h = bed.hosts[0]
    bed.set_cpus(1, hosts=[h])
    try:
        calls = {v: calls_per_deploy(h, bed, work, v) for v in ("staged", "fab")}
    finally:
        bed.set_cpus(None, hosts=[h])
    multi = multi_host(bed, work)
    startup = fab_list_seconds()
    report(rounds, multi, calls, startup, args)
    plot(rounds, ROOT / "bench" / "cpu_latency.png")


def report(rounds, multi, calls, startup, args) -> None:
    lines = [f"Medians of {args.rounds} rounds; host h1 limited to 1 CPU; warm-up cap {args.warmup_seconds:g} s "
             "(window: the deploy, then the cap's seconds plus 5 s, for every variant alike).", "",
             "| variant | deploy s | failed requests | p50 ms | p99 ms | max ms | throttled s | peak cores | "
             "peak memory MiB | ended on | cap lifted |", "|" + "---|" * 11]
    for v in VARIANTS:
        rs = rounds[v]
        lines.append(f"| {v} | {median(rs, 'seconds'):.1f} | {sum(r.failed for r in rs)} of {sum(r.requests for r in rs)} | "
                     f"{median(rs, 'p50'):.0f} | {median(rs, 'p99'):.0f} | {median(rs, 'max'):.0f} | "
                     f"{median(rs, 'throttled'):.2f} | {median(rs, 'peak_cores'):.2f} | {median(rs, 'peak_mem_mb'):.0f} | "
                     f"{', '.join(sorted(set(r.ended_on for r in rs)))} | {all(r.cap_lifted for r in rs)} |")
    thr = median(rounds["fab+cap"], "throttled") / max(1e-9, median(rounds["staged"], "throttled"))
    spd = median(rounds["fab"], "seconds") / median(rounds["staged"], "seconds")
    par = multi[3][0] / multi[1][0]
    fails = sum(r.failed for v in ("fab", "fab+cap") for r in rounds[v])
    lines += ["", "| target | measured | met |", "|---|---|---|",
              f"| throttled with the cap <= 25 % of the staged script's | {thr:.0%} | {'yes' if thr <= 0.25 else 'no'} |",
              f"| fab deploy <= 1.3x the staged script's seconds | {spd:.2f}x | {'yes' if spd <= 1.3 else 'no'} |",
              f"| 3 hosts in one run <= 1.5x one host | {par:.2f}x ({multi[1][0]:.1f} s, {multi[3][0]:.1f} s) | "
              f"{'yes' if par <= 1.5 else 'no'} |",
              f"| zero failed requests in the tool's variants | {fails} | {'yes' if fails == 0 else 'no'} |",
              f"| SSH round trips per host deploy <= 8 | {calls['fab'].round_trips} | "
              f"{'yes' if calls['fab'].round_trips <= 8 else 'no'} |",
              f"| `fab -l` start-up <= 0.3 s | {startup:.2f} s (median of 5) | {'yes' if startup <= 0.3 else 'no'} |",
              "", "Hosts in one `fab deploy` (all at once, the bed's hosts sharing the machine's 2 cores): "
              + ", ".join(f"{n}: {t:.1f} s" for n, (t, _) in sorted(multi.items())) + "; fab's own CPU (user + "
              "system) in those runs: " + ", ".join(f"{n}: {c:.2f} s" for n, (_, c) in sorted(multi.items())) + ".",
              "", "One more deploy each, h1 at 1 CPU, counted: docker/compose CLI calls (dockerd's debug log, one "
              f"ping per call): the script {calls['staged'].docker_calls}, fab {calls['fab'].docker_calls}; "
              f"SSH round trips: fab {calls['fab'].round_trips}.",
              "", f"Where that fab deploy's {calls['fab'].seconds:.2f} s went (FBG_TRACE, per round trip; the rest is "
              "Python start-up, the SSH handshake and local work):", "",
              "| s | round trip |", "|---|---|",
              *(f"| {sec:.2f} | `{what.strip()[:60]}` |" for sec, what in calls["fab"].trips),
              f"| {calls['fab'].seconds - sum(sec for sec, _ in calls['fab'].trips):.2f} | (the rest) |"]
    text = "\n".join(lines) + "\n"
    (ROOT / "bench" / "results.md").write_text(text)
    (ROOT / "bench" / "results.json").write_text(json.dumps(
        {v: [{k: val for k, val in r.__dict__.items() if k != "series"} for r in rs] for v, rs in rounds.items()},
        indent=1))
    print(text)


if __name__ == "__main__":
    main()
