"""The warm-up cap's and the sampler's shell, run for real on this machine, and the sample parser."""

import subprocess

from tasks.config.schema import HostSettings, Warmup
from tasks.shell import cgroup, cpu


def test_host_cpus_prints_a_positive_number():
    out = subprocess.run(["sh", "-c", cgroup.host_cpus()], capture_output=True, text=True, check=True).stdout
    assert float(out.strip()) > 0


def test_the_sampler_reads_cpu_time_and_memory_with_shell_builtins():
    script = cgroup.CGROUP + cpu._SAMPLER.replace("@STEPS@", "5").replace("@INTERVAL@", "0.1")
    out = subprocess.run(["sh", "-c", script], capture_output=True, text=True, check=True, timeout=10).stdout
    lines = out.splitlines()
    assert lines[0].startswith("# cpus ") and len(lines) == 6
    load = cpu.parse_samples(out)
    assert load is not None and load.samples == 5 and 0 <= load.peak <= load.cpus * 1.05
    assert load.min_available_mb > 0


def test_parse_samples_finds_peak_longest_full_stretch_and_lowest_memory():
    # 1 CPU host: 0.5 s idle, then 1.0 s at 100 %, then 0.5 s at half
    rows = [(0.0, 0, 900_000), (0.5, 0, 800_000), (1.0, 500_000_000, 700_000), (1.5, 1_000_000_000, 650_000),
            (2.0, 1_250_000_000, 750_000)]
    text = "# cpus 1 source v1\n" + "".join(f"{t} {n} {m}\n" for t, n, m in rows)
    load = cpu.parse_samples(text)
    assert load.cpus == 1 and abs(load.peak - 1.0) < 1e-9
    assert abs(load.longest_full - 1.0) < 1e-9
    assert abs(load.min_available_mb - 650_000 / 1024) < 1e-9
    assert cpu.parse_samples("# cpus 1 source stat\n") is None


def test_default_cap_is_half_the_host_and_an_explicit_value_wins():
    s = HostSettings(name="a", ssh="a")
    assert cpu.default_cap(s, 4) == 2 and cpu.default_cap(s, 1) == 0.5
    assert cpu.default_cap(HostSettings(name="a", ssh="a", warmup=Warmup(cpus=0.3)), 4) == 0.3
    assert HostSettings(name="a", ssh="a", warmup=Warmup(cpus=0)).capped == ()


def test_capped_start_creates_caps_then_starts_and_leaves_a_lift():
    line = cpu.start_capped(HostSettings(name="a", ssh="a"), "green", ("worker", "beat"), 0.5, 30)
    create = line.index("up --no-start --force-recreate --no-deps worker beat")
    cap = line.index("docker update --cpu-period 100000 --cpu-quota 25000 $by_quota")
    start = line.index("docker start $all")
    saved = line.index('mv -f "$fbg_tmp" .fab-bluegreen/app.green.lift.sh')
    lift = line.index("fbg_detach .fab-bluegreen/app.green.lift /dev/null")
    assert create < cap < start < saved < lift
    assert "sleep 30; sh .fab-bluegreen/app.green.lift.sh" in line
