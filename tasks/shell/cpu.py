"""CPU on a small host: the warm-up cap of the new background, and the host's own CPU and memory
sampled while a deploy runs. Command builders (pure, like the rest of tasks/shell/) and the parser
of samples.

The cap: the new colour's capped services are created without starting, capped with
`docker update`, then started; a process on the host (setsid, no SSH needed) lifts the cap after
`warmup.seconds`, back to exactly what the compose file set (read from the containers before
capping). Forms that work on engine 20.10 (see the test bed recipe): a container with no CPU
limit is capped with --cpu-period/--cpu-quota and lifted with --cpu-quota -1; one whose compose
file set `cpus:` (NanoCpus) refuses quota updates, so it is capped and restored with --cpus.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from shlex import quote

from ..config.schema import HostSettings
from .base import Command, in_dir, step
from .cgroup import CGROUP
from .compose import LABEL_PROJECT, LABEL_SERVICE, compose, project, shipped
from .detach import DETACH_FUNCTIONS, detached, kill_detached, still_running
from .state import STATE_DIR, private, put, state_dir

PERIOD = 100_000  # CFS period, microseconds
SAMPLE_SECONDS = 0.25
SAMPLER_MAX_SECONDS = 3600  # the sampler ends by itself even if nobody stops it


# One line per sample: "<uptime seconds> <cpu ns used so far> <MemAvailable kB>", builtins only.
_SAMPLER = r"""
echo "# cpus $CPUS source ${USAGE%% *}"
i=0
while [ "$i" -lt @STEPS@ ]; do
  i=$((i + 1)); read up _ < /proc/uptime
  case "$USAGE" in
    v1*) read ns < "${USAGE#v1 }";;
    v2*) while read k v; do [ "$k" = usage_usec ] && { ns=$((v * 1000)); break; }; done < "${USAGE#v2 }";;
    *) read _ a b c idle iow irq sirq steal _ < /proc/stat; ns=$(( (a + b + c + irq + sirq + steal) * 10000000 ));;
  esac
  while read k v _; do [ "$k" = MemAvailable: ] && break; done < /proc/meminfo
  echo "$up $ns $v"
  sleep @INTERVAL@
done
"""


def _file(s: HostSettings, what: str) -> str:
    return f"{STATE_DIR}/{s.app}.{what}"


def sampler_tag(s: HostSettings) -> str:
    return f"fbg-sampler:{s.app}"


def start_sampler(s: HostSettings) -> str:
    """Start sampling CPU and memory on the host, detached; stop_sampler() collects the samples."""
    steps = int(SAMPLER_MAX_SECONDS / SAMPLE_SECONDS)
    script = CGROUP + _SAMPLER.replace("@STEPS@", str(steps)).replace("@INTERVAL@", f"{SAMPLE_SECONDS:g}")
    start = detached(script, sampler_tag(s), _file(s, "samples.pid"), _file(s, "samples"))
    return in_dir(s, f"{state_dir()} && {private(f'{DETACH_FUNCTIONS}; {start}')}")  # samples: 0600


def stop_sampler(s: HostSettings) -> str:
    out = quote(_file(s, "samples"))
    return in_dir(s, f"{kill_detached(_file(s, 'samples.pid'), sampler_tag(s))}; cat {out} 2>/dev/null; "
                     f"rm -f {out}; true")


def lift_file(s: HostSettings, color: str) -> str:
    """The pending lift's pid file ("PID TAG"); beside it, `.sh`: the commands that lift the cap."""
    return _file(s, f"{color}.lift")


def lift_tag(s: HostSettings, color: str) -> str:
    return f"fbg-lift:{s.app}.{color}"


def cancel_lift(s: HostSettings, color: str) -> str:
    """Remove a pending lift of the colour's cap (its containers are going away or being replaced)."""
    f = lift_file(s, color)
    return in_dir(s, f"{kill_detached(f, lift_tag(s, color))}; rm -f {quote(f + '.sh')}; true")


def lift_stuck(s: HostSettings) -> str:
    """Lift the caps whose lift process is gone (killed, or the host rebooted) while their cap is
    still on: prints `lifted COLOR` for each. Runs with the lock, before a deploy changes anything."""
    parts = []
    for color in ("blue", "green"):
        f, tag = quote(lift_file(s, color)), quote(lift_tag(s, color))
        parts.append(f"if [ -f {f}.sh ] && ! {still_running(f, tag)}; then "
                     f"sh {f}.sh >/dev/null 2>&1 && rm -f {f} {f}.sh && echo lifted {color}; fi")
    return in_dir(s, "; ".join(parts) + "; true")


def lifted(stdout: str) -> list[str]:
    """The colours whose stuck cap lift_stuck() lifted, from its `lifted COLOR` lines."""
    return [line.split()[1] for line in stdout.splitlines() if line.startswith("lifted ") and len(line.split()) > 1]


def start_capped(s: HostSettings, color: str, services: tuple[str, ...], cpus: float, seconds: float,
                 ids: list[str] | None = None) -> Command:
    """Create services without starting them (unless `ids`: their containers, created already by
    compose.create()), cap their CPU (cpus shared between them), start them, and leave a detached
    process that restores each container's own limits after `seconds`. Prints `capped` or
    `nocap <why>` (then they start uncapped). Few docker calls: on a starved 1-CPU host each one
    costs a tenth of a second or more."""
    share = cpus / len(services)
    quota = max(1000, int(share * PERIOD))
    proj, f = project(s, color), quote(lift_file(s, color))
    lift = detached(f"sleep {seconds:g}; sh {f}.sh; rm -f {f} {f}.sh", lift_tag(s, color), lift_file(s, color))
    fmt = (f'{{{{index .Config.Labels "{LABEL_SERVICE}"}}}} {{{{.Id}}}} {{{{.HostConfig.NanoCpus}}}} '
           "{{.HostConfig.CpuQuota}} {{.HostConfig.CpuPeriod}}")
    want = " ".join(services)
    found = f"ids={quote(' '.join(ids))}" if ids else f"ids=$(docker ps -aq --filter label={LABEL_PROJECT}={quote(proj)})"
    pick = (f"{found}\n"
            f"rows=$(docker inspect -f {quote(fmt)} $ids | awk -v want={quote(want)} "
            "'BEGIN {n = split(want, w, \" \"); for (i = 1; i <= n; i++) ok[w[i]] = 1} ok[$1]')\n"
            f'[ $(echo "$rows" | grep -c .) -eq {len(services)} ] || {{ echo "$rows"; echo no container for every service; exit 1; }}\n')
    plan = (  # which containers take which form of cap, and how each is put back
        "all=''; by_quota=''; by_cpus=''; restore=''; why=''\n"
        "while read -r svc id nano q per; do\n"
        '  all="$all $id"\n'
        '  if [ "$nano" -gt 0 ]; then by_cpus="$by_cpus $id"\n'
        '    restore="$restore docker update --cpus $(awk -v n="$nano" \'BEGIN {print n / 1e9}\') $id >/dev/null;"\n'
        '  else by_quota="$by_quota $id"; [ "$q" -gt 0 ] || q=-1; [ "$per" -gt 0 ] || per=' + str(PERIOD) + "\n"
        '    restore="$restore docker update --cpu-period $per --cpu-quota $q $id >/dev/null;"\n'
        "  fi\n"
        'done <<EOF\n$rows\nEOF\n'
        f'[ -z "$by_quota" ] || out=$(docker update --cpu-period {PERIOD} --cpu-quota {quota} $by_quota 2>&1) || why=$out\n'
        f'[ -n "$why" ] || [ -z "$by_cpus" ] || out=$(docker update --cpus {share:.3f} $by_cpus 2>&1) || why=$out\n'
    )
    keep_restore = put(lift_file(s, color) + ".sh", 'printf "%s\\n" "$restore"')  # 0600, never through a link
    finish = (
        'if [ -n "$why" ]; then sh -c "$restore" >/dev/null 2>&1; restore=""; fi\n'
        # an update can pass and the start still fail (a quota above the host's own): go uncapped
        "if ! out=$(docker start $all 2>&1); then\n"
        '  [ -n "$restore" ] || { echo "$out"; exit 1; }\n'
        '  sh -c "$restore" >/dev/null 2>&1; restore=""; why="the capped start failed: $(echo "$out" | tail -n 1)"\n'
        "  docker start $all >/dev/null || exit 1\n"
        "fi\n"
        'if [ -n "$restore" ]; then\n'
        f"  {keep_restore} || {{ sh -c \"$restore\" >/dev/null 2>&1; echo 'nocap the lift could not be written'; exit 0; }}\n"
        f"  {private(lift)} || {{ sh {f}.sh >/dev/null 2>&1; rm -f {f}.sh; echo 'nocap the lift could not be started'; exit 0; }}\n"
        f"  echo capped\n"
        'else echo "nocap $(echo "$why" | tail -n 1)"; fi'
    )
    create = "true" if ids else compose(s, color, "up", "--no-start", "--force-recreate", "--no-deps", *shipped(s),
                                        *services)
    return step(s, f"{cancel_lift(s, color)}; {create} || exit 1\n{DETACH_FUNCTIONS}\n{pick}{plan}{finish}")


NO_CAP = "nocap"  # start_capped()'s line when its services started without the cap: `nocap <why>`


def no_cap(stdout: str) -> str | None:
    """Why start_capped() started its services without the cap (None: they are capped)."""
    line = next((ln for ln in stdout.splitlines() if ln.startswith(NO_CAP)), None)
    return None if line is None else line[len(NO_CAP) + 1:] or "docker cannot set CPU limits"


@dataclass(frozen=True)
class Telemetry:
    cpus: float  # the host's effective CPUs
    peak: float  # highest CPU use, in CPUs
    longest_full: float  # longest stretch at (nearly) 100 % of the host's CPUs, seconds
    min_available_mb: float  # lowest MemAvailable
    samples: int

    def describe(self) -> str:
        return (f"peak {self.peak:.2f}/{self.cpus:g} CPU, {self.longest_full:.1f} s at 100 %, "
                f"min {self.min_available_mb:.0f} MiB free")


def parse_samples(text: str) -> Telemetry | None:
    """Samples -> peak CPU, the longest stretch at 100 %, the lowest available memory."""
    cpus, rows = 1.0, []
    for line in text.splitlines():
        parts = line.split()
        if line.startswith("# cpus") and len(parts) >= 3:
            cpus = float(parts[2])
        elif len(parts) == 3 and not line.startswith("#"):
            try:
                rows.append((float(parts[0]), int(parts[1]), int(parts[2])))
            except ValueError:
                continue
    if len(rows) < 2:
        return None
    peak, run, longest = 0.0, 0.0, 0.0
    for (t0, n0, _), (t1, n1, _) in zip(rows, rows[1:]):
        if t1 <= t0:
            continue
        used = (n1 - n0) / 1e9 / (t1 - t0)
        peak = max(peak, used)
        run = run + (t1 - t0) if used >= 0.95 * cpus else 0.0
        longest = max(longest, run)
    low = min(m for _, _, m in rows) / 1024
    return Telemetry(cpus, min(peak, cpus * 1.05), longest, low, len(rows))


def default_cap(s: HostSettings, host_cpus: float) -> float:
    """warmup.cpus, or half of the host's CPUs."""
    return s.warmup.cpus if s.warmup.cpus is not None else max(0.1, math.floor(host_cpus * 10 / 2) / 10)
