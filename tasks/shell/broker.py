"""A colour's own broker (redis in front): the tasks waiting in it, counted with redis-cli inside its
container, and the wait until `fab drain` has run them (tasks/host/broker.py reads the counts)."""

from __future__ import annotations

import math
from shlex import quote

from ..config.schema import HostSettings
from .compose import LABEL_PROJECT, LABEL_SERVICE, project

UNACKED = "unacked"  # kombu's redis transport: delivered to a worker, not acknowledged yet


def count_queued(s: HostSettings, color: str) -> str:
    """`redis-cli` inside the colour's broker container (one `docker exec` for all the counts: each
    exec costs a starved host CPU): one `queue count` line per queue, and `unacked count`;
    `no-broker` when the colour has no broker container, `broker-down STATE` when it does not run."""
    proj, service = quote(project(s, color)), quote(s.broker_service or "")
    find = (f"docker ps -a --filter label={LABEL_PROJECT}={proj} --filter label={LABEL_SERVICE}={service} "
            "--format '{{.ID}} {{.State}}'")
    # a listing earlier in the round trip (compose.list_containers: id in field 6, state in 3) saves a call
    find = (f"if [ -n \"$fbg_listed\" ]; then printf '%s\\n' \"$fbg_ctrs\" | awk -v p={proj} -v svc={service} "
            f"'$1 == p && $2 == svc {{print $6, $3}}'; else {find}; fi")
    names = [*s.broker.queues, UNACKED]
    asks = " ".join(quote(f"LLEN {q}") for q in s.broker.queues) + f" 'HLEN {UNACKED}'"
    counts = (f"printf '%s\\n' {asks} | docker exec -i \"$cid\" redis-cli -n {int(s.broker.db)} 2>&1 | "
              f"awk -v names={quote(' '.join(names))} 'BEGIN {{split(names, n, \" \")}} {{print n[NR], $0}}'")
    return (f"x=$({find} | head -n 1); cid=${{x%% *}}; st=${{x#* }}; if [ -z \"$x\" ]; then echo no-broker; "
            f"elif [ \"$st\" != running ]; then echo broker-down $st; else {counts}; fi")


def wait_drained(s: HostSettings, color: str, timeout: float, stale_unacked: int = 0) -> str:
    """Poll the colour's broker every second until its queues are empty and no worker holds a
    message it reserved ahead (unacked, beyond the `stale_unacked` a killed worker left before the
    drain), twice in a row; or give up after timeout (exit 1). Prints `left N` while waiting."""
    total = (f"n=$({count_queued(s, color)} | awk -v stale={int(stale_unacked)} '$2 !~ /^[0-9]+$/ {{bad=1}} "
             f"$1 == \"{UNACKED}\" {{$2 -= stale}} $2 > 0 {{n += $2}} END {{if (bad) exit 3; print n + 0}}') || exit 3")
    return (f"end=$(( $(date +%s) + {math.ceil(timeout)} )); empty=0; while :; do {total}; "
            f"if [ $n -eq 0 ]; then empty=$((empty + 1)); [ $empty -ge 2 ] && exit 0; else empty=0; "
            f"echo left $n; fi; [ $(date +%s) -ge $end ] && exit 1; sleep 1; done")
