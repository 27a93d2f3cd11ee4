"""The warm-up cap and the host telemetry on real hosts."""

from __future__ import annotations

import time

from .conftest import fab, hosts_file, rows, serves, set_version


def limits(h, color: str, service: str) -> tuple[int, int]:
    """(NanoCpus, CpuQuota) of a colour's service container."""
    out = h.run(f"docker inspect -f '{{{{.HostConfig.NanoCpus}}}} {{{{.HostConfig.CpuQuota}}}}' app-{color}-{service}-1").stdout
    nano, quota = out.split()
    return int(nano), int(quota)


def kernel_quota(h, color: str, service: str) -> int:
    cid = h.run(f"docker inspect -f '{{{{.Id}}}}' app-{color}-{service}-1").stdout.strip()
    return int(h.run(f"cat /sys/fs/cgroup/cpu/{h.cgroup}/{cid}/cpu.cfs_quota_us").stdout)


def test_the_new_background_warms_up_capped_then_gets_its_own_limits_back(bed, hosts, tmp_path):
    h1 = hosts[0]
    path = str(hosts_file(tmp_path, bed, settle="0", warmup="{ cpus = 0.5, seconds = 6 }"))
    res = fab("deploy", "--host", "h1", "--hosts-file", path)
    assert res.returncode == 0
    row = rows(res.stdout)["h1"]
    assert "warm-up cap: 0.5 CPU for 6 s" in row and "at 100 %" in row and "MiB free" in row
    # capped now: 0.5 CPU shared by worker and beat
    assert limits(h1, "blue", "worker") == (0, 25000) and kernel_quota(h1, "blue", "worker") == 25000
    assert limits(h1, "blue", "beat") == (250_000_000, 0)  # its own cpus: 0.9 -> capped with --cpus
    lift = h1.home / "app" / ".fab-bluegreen" / "app.blue.lift"
    assert lift.exists()
    assert "(warm-up cap on)" in rows(fab("status", "--host", "h1", "--hosts-file", path).stdout)["h1"]
    time.sleep(8)
    # lifted by the host itself, fab long gone: back to exactly what the compose file set
    assert kernel_quota(h1, "blue", "worker") == -1 and limits(h1, "blue", "worker")[0] == 0
    assert limits(h1, "blue", "beat") == (900_000_000, 0)
    assert not lift.exists()
    assert serves(h1) == "blue 1"


def test_cleanup_removes_a_pending_lift_with_its_containers(bed, hosts, tmp_path):
    h1 = hosts[0]
    path = str(hosts_file(tmp_path, bed, settle="0", warmup="{ cpus = 0.5, seconds = 120 }"))
    assert fab("deploy", "--host", "h1", "--hosts-file", path).returncode == 0
    lift = h1.home / "app" / ".fab-bluegreen" / "app.blue.lift"
    pid = lift.read_text().split()[0]  # "PID TAG"
    set_version(h1, "2")
    assert fab("deploy", "--host", "h1", "--hosts-file", path).returncode == 0
    assert fab("cleanup", "--host", "h1", "--hosts-file", path, "--yes").returncode == 0
    assert not lift.exists()
    # the lifter is gone too (at most a zombie: the bed's hosts share the machine's lazy PID 1)
    state = h1.run(f"awk '{{print $3}}' /proc/{pid}/stat 2>/dev/null", check=False).stdout.strip()
    assert state in ("", "Z"), f"the lifter {pid} still runs ({state})"
    assert (h1.home / "app" / ".fab-bluegreen" / "app.green.lift").exists()  # the live colour's stays


def test_a_cap_docker_cannot_set_is_skipped_and_said(bed, hosts, tmp_path):
    h1 = hosts[0]
    bed.set_cpus(1, hosts=[h1])  # a 1-CPU host: a child's quota may not exceed its parent's
    try:
        path = str(hosts_file(tmp_path, bed, settle="0", warmup="{ cpus = 4, seconds = 5 }"))
        res = fab("deploy", "--host", "h1", "--hosts-file", path)
        assert res.returncode == 0
        assert "warm-up cap: no cap" in rows(res.stdout)["h1"]
        nano, quota = limits(h1, "blue", "worker")
        assert nano == 0 and quota in (0, -1) and kernel_quota(h1, "blue", "worker") == -1  # uncapped
        assert serves(h1) == "blue 1"
    finally:
        bed.set_cpus(None, hosts=[h1])


def test_a_cap_whose_lift_died_is_shown_by_status_and_lifted_by_the_next_deploy(bed, hosts, tmp_path):
    h1 = hosts[0]
    path = str(hosts_file(tmp_path, bed, settle="0", warmup="{ cpus = 0.5, seconds = 300 }"))
    assert fab("deploy", "--host", "h1", "--hosts-file", path).returncode == 0
    lift = h1.home / "app" / ".fab-bluegreen" / "app.blue.lift"
    h1.run(f"kill -9 -{lift.read_text().split()[0]}")  # its process group, as a reboot would: the cap stays on
    assert kernel_quota(h1, "blue", "worker") == 25000
    row = rows(fab("status", "--host", "h1", "--hosts-file", path).stdout)["h1"]
    assert "warm-up cap STILL ON" in row and "app.blue.lift.sh" in row
    set_version(h1, "2")
    res = fab("deploy", "--host", "h1", "--hosts-file", path)
    assert res.returncode == 0
    assert "blue's warm-up cap was still on (its lift had died): lifted it" in rows(res.stdout)["h1"]
    # blue's worker and beat are stopped now: their own limits are back in their configuration
    assert limits(h1, "blue", "worker")[1] in (0, -1) and limits(h1, "blue", "beat") == (900_000_000, 0)
    assert not lift.exists()
