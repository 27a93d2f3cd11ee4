"""The host's effective CPUs, as the session's cgroup sees them: a shell script that finds the cgroup
limiting this session's CPU (a quota, as in containers, LXC or the test bed; else nproc) and how to
read its CPU time. The pre-flight reports the CPUs (the warm-up cap's default); the sampler reads
the CPU time (tasks/shell/cpu.py)."""

from __future__ import annotations

# Finds the cgroup that limits this session's CPU (walking up to the first with a quota) and
# sets CPUS (the host's effective CPUs) and USAGE (how to read its CPU time in ns).
CGROUP = r"""
n=$(nproc 2>/dev/null || echo 1); CPUS=$n; USAGE=stat
if [ -f /sys/fs/cgroup/cgroup.controllers ]; then
  p=$(awk -F: '$1 == "0" {print $3}' /proc/self/cgroup)
  while :; do
    d=/sys/fs/cgroup$p
    if [ -r "$d/cpu.max" ]; then read q per < "$d/cpu.max"
      if [ "$q" != max ]; then CPUS=$(awk -v q="$q" -v p="$per" -v n="$n" 'BEGIN {c = q / p; if (c > n) c = n; print c}'); USAGE="v2 $d/cpu.stat"; break; fi
    fi
    [ -z "$p" ] || [ "$p" = / ] && break; p=$(dirname "$p")
  done
else
  p=$(awk -F: '{k = split($2, a, ","); for (i = 1; i <= k; i++) if (a[i] == "cpu") print $3}' /proc/self/cgroup)
  while [ -n "$p" ]; do
    d=/sys/fs/cgroup/cpu$p; q=$(cat "$d/cpu.cfs_quota_us" 2>/dev/null || echo -1)
    if [ "$q" -gt 0 ] 2>/dev/null; then per=$(cat "$d/cpu.cfs_period_us")
      CPUS=$(awk -v q="$q" -v p="$per" -v n="$n" 'BEGIN {c = q / p; if (c > n) c = n; print c}')
      [ -r "/sys/fs/cgroup/cpuacct$p/cpuacct.usage" ] && USAGE="v1 /sys/fs/cgroup/cpuacct$p/cpuacct.usage"; break
    fi
    [ "$p" = / ] && break; p=$(dirname "$p")
  done
fi
"""


def host_cpus() -> str:
    """Print the host's effective CPUs (its cgroup quota when it has one, else nproc)."""
    return CGROUP + 'echo "$CPUS"'
