"""Is the new colour up? Its health check polled with curl on the host until 2xx/3xx, and its
background services watched for settle seconds (not exited, not restarting)."""

from __future__ import annotations

import math
from shlex import quote

from ..config.schema import HostSettings
from .base import Command
from .compose import list_containers, project


def http_code(url: str, timeout: float, host: str = "") -> str:
    """curl printing only the HTTP status code of url (000: no answer within timeout seconds); host:
    the Host header to send (health.host: Django's ALLOWED_HOSTS, an nginx server_name), "" curl's own."""
    header = f" -H {quote('Host: ' + host)}" if host else ""
    return f"curl -s -o /dev/null -w '%{{http_code}}' --max-time {timeout:g}{header} {quote(url)}"


def health_url(s: HostSettings, color: str) -> str:
    return f"http://127.0.0.1:{s.port(color)}{s.health.path}"


def wait_healthy(s: HostSettings, color: str) -> Command:
    """Poll until 2xx/3xx or retries run out; prints `try N CODE` per try (000: no answer). Its own
    shell (a subshell): it ends with `exit`, and may be followed by other commands."""
    h = s.health
    budget = h.start_delay + h.retries * (h.timeout + h.interval) + s.timeouts.command
    curl = http_code(health_url(s, color), h.timeout, h.host)
    loop = (f"i=0; while :; do i=$((i+1)); code=$({curl}); echo \"try $i $code\"; "
            f"case $code in 2??|3??) exit 0;; esac; [ $i -ge {h.retries} ] && exit 1; sleep {h.interval:g}; done")
    return Command(f"( sleep {h.start_delay:g}; {loop} )" if h.start_delay else f"( {loop} )", budget)


def tries(stdout: str) -> list[str]:
    """wait_healthy()'s answers, one HTTP code per try ("000": no answer)."""
    return [line.split()[2] if len(line.split()) == 3 else "?" for line in stdout.splitlines()
            if line.startswith("try ")]


def settled_then(s: HostSettings, color: str, services: tuple[str, ...], reads: str,
                 ids: list[str] | None = None) -> Command:
    """wait_settled(), then `reads` (e.g. probe.facts(s, reuse_listing=True): the last listing of the
    wait) whatever the wait found, keeping the wait's exit status."""
    wait = wait_settled(s, color, services, ids)
    return Command(f"{{ {wait}; rc=$?; {reads}; exit $rc; }}", wait.budget + s.timeouts.command)


def wait_settled(s: HostSettings, color: str, services: tuple[str, ...], ids: list[str] | None = None) -> Command:
    """Fail as soon as one of the services is not running or has restarted, within settle seconds.
    Prints what is wrong (`worker exited (exit code 1, restarts 0)`). The last listing stays in
    $fbg_ctrs (compose.list_containers(), of `ids` if given: one docker call a look), for facts
    that follow in the same round trip."""
    proj = project(s, color)
    want = " ".join(services)
    check = (f"{list_containers(ids)}; printf '%s\\n' \"$fbg_ctrs\" | awk -v p={quote(proj)} -v want={quote(want)} "
             "'BEGIN{n=split(want,w,\" \"); for(i=1;i<=n;i++) seen[w[i]]=0} "
             "$1==p && ($2 in seen) {seen[$2]=1; if ($3!=\"running\" || $4!=\"0\") "
             "{print $2\" \"$3\" (exit code \"$7\", restarts \"$4\")\"; bad=1}} "
             "END{for (x in seen) if (!seen[x]) {print x\" has no container\"; bad=1}; exit bad}'")
    end = f"end=$(( $(date +%s) + {math.ceil(s.settle)} ))"
    return Command(f"{{ {end}; while :; do {check} || {{ rc=1; break; }}; [ $(date +%s) -ge $end ] && {{ rc=0; break; }}; "
                   "sleep 0.5; done; [ $rc -eq 0 ]; }", s.settle + s.timeouts.command)
