"""The switch: the upstream file written atomically through sudo (and read back when root-only),
`nginx -t`, the reload and the wait until nginx's workers serve the new file, the check through
nginx; and, with switch.mode = "command", the user's own switch command instead."""

from __future__ import annotations

import math
from shlex import quote

from ..config.schema import HostSettings
from .base import LAST_LINE, Command, why
from .health import http_code


def upstream_text(s: HostSettings, port: int) -> str:
    return f"upstream {s.switch.upstream_name} {{ server 127.0.0.1:{port}; }}\n"


_ATOMIC_WRITE = (
    'f=$1; t=$(mktemp "$f.fbg-XXXXXX") || exit 1; '
    'if printf "%s" "$2" > "$t" && { if [ -e "$f" ]; then chown --reference="$f" "$t" && '
    'chmod --reference="$f" "$t"; else chmod 0644 "$t"; fi; } && mv -f "$t" "$f"; '
    'then exit 0; else rm -f "$t"; exit 1; fi'
)


def write_root_file(path: str, content: str) -> str:
    """Atomic write through sudo: a temporary file beside it, same owner and mode, then a rename."""
    return f"sudo -n sh -c {quote(_ATOMIC_WRITE)} sh {quote(path)} {quote(content)}"


def read_root_file(path: str, unreadable: str) -> str:
    """Print a file the SSH user may not be allowed to read (root-only, mode 0600) through
    `sudo -n`; print the line `unreadable` when it exists but cannot be read, nothing when it
    does not exist."""
    p = quote(path)
    return (f"if [ -r {p} ]; then cat {p}; echo; elif sudo -n cat {p} 2>/dev/null; then echo; "
            f"elif sudo -n test -e {p} 2>/dev/null || [ -e {p} ]; then echo {quote(unreadable)}; fi")


def nginx_workers(s: HostSettings) -> str:
    """Defines `fbg_workers`: prints the PIDs of the nginx master's workers that take connections
    (not those `shutting down` after a reload), sorted, on one line; fails when no master runs.
    The master is found through switch.pid_file (read through sudo when root-only)."""
    pid = quote(s.switch.pid_file)
    return ("fbg_workers() { m=$(cat " + pid + " 2>/dev/null || sudo -n cat " + pid + " 2>/dev/null); "
            'case "$m" in ""|*[!0-9]*) return 1;; esac; [ -d "/proc/$m" ] || return 1; w=; '
            "for p in $(cat /proc/[0-9]*/stat 2>/dev/null | awk -v m=\"$m\" "
            "'{pid = $1; sub(/^.*\\) /, \"\"); if ($2 == m) print pid}' | sort -n); do "
            "case \"$(tr '\\0' ' ' 2>/dev/null < /proc/$p/cmdline)\" in *'shutting down'*) ;; "
            "*'worker process'*) w=\"$w $p\";; esac; done; echo ${w# }; }")


def reload_applied(s: HostSettings) -> str:
    """Reload nginx (the user's command), then wait until nginx serves the new configuration:
    new workers run under the master and none of the workers from before takes connections.
    A reload only signals the master and returns at once; until then old workers answer."""
    t = s.switch.reload_timeout
    pid_file = s.switch.pid_file
    return (
        f"before=$(fbg_workers) || {{ {why('no nginx master process found through %s: is nginx running? (set switch.pid_file to its pid file)', quote(pid_file))}; exit 5; }}; "
        f"if ! out=$({reload(s)} 2>&1); then "
        f"{why('the nginx reload command failed: %s', LAST_LINE)}; exit 4; fi; "
        f"limit=$(( $(date +%s) + {math.ceil(t)} )); while :; do now=$(fbg_workers); fresh=1; "
        'for p in $now; do case " $before " in *" $p "*) fresh=0;; esac; done; '
        '[ -n "$now" ] && [ $fresh = 1 ] && break; '
        f"if [ $(date +%s) -ge $limit ]; then {why(f'nginx did not take up the new upstream within {t:g} s of the reload (its workers did not change; check switch.reload and switch.pid_file)')}; exit 8; fi; "
        "sleep 0.1; done"
    )


def switching(s: HostSettings) -> float:
    """The budget of a switch: write, test, reload and wait for the reload, verify (one command's time
    each), and the wait for nginx to take up the new upstream."""
    return s.timeouts.command * 3 + s.switch.reload_timeout


def switch_nginx(s: HostSettings, text: str, previous: str | None, unless_workers: str | None = None) -> Command:
    """Point nginx at an upstream in one round trip: write the file atomically, `nginx -t` (on
    failure put the previous file back), reload, and wait until nginx serves it.

    unless_workers: nginx's workers when this run began (switching back): if they still run,
    nginx never took up the new file, so writing the old one back is enough (no reload)."""
    file = s.switch.upstream_file
    f = quote(file)
    back = write_root_file(file, previous) if previous is not None else f"sudo -n rm -f {f}"
    reload_step = reload_applied(s)
    if unless_workers is not None:
        reload_step = (f'if [ "$(fbg_workers)" = {quote(unless_workers)} ]; then '
                       f"echo nginx never took up the new upstream: no reload needed; else {reload_step}; fi")
    return Command(f"{nginx_workers(s)}; "
                   f"{write_root_file(file, text)} || {{ {why('could not write %s through sudo -n', f)}; exit 2; }}; "
                   f"if ! out=$({nginx_test()} 2>&1); then {back}; "
                   f"{why('nginx -t rejects the new upstream: %s', LAST_LINE)}; exit 3; fi; "
                   f"{reload_step}", switching(s))


def nginx_test() -> str:
    return "sudo -n nginx -t"


def reload(s: HostSettings) -> str:
    return s.switch.reload  # the user's own command, as written in hosts.toml: shell by design


def verify_url(s: HostSettings) -> str:
    return s.switch.verify_url or f"http://127.0.0.1{s.health.path}"


VERIFY_TRIES = 5  # through nginx once it serves the new upstream: 0.5 s apart
CODES = '"$codes"'


def verify(s: HostSettings) -> str:
    """Request verify_url through nginx a few times, until 2xx/3xx; say which codes it gave."""
    url = verify_url(s)
    return (f"i=0; codes=; while :; do i=$((i+1)); code=$({http_code(url, s.health.timeout, s.health.host)}); "
            'codes="$codes $code"; case $code in 2??|3??) break;; esac; '
            f"if [ $i -ge {VERIFY_TRIES} ]; then "
            f"{why('%s did not answer 2xx/3xx through nginx after the switch (HTTP codes:%s; 000: no answer)', quote(url), CODES)}; "
            "exit 7; fi; sleep 0.5; done")


def switch_command(s: HostSettings, color: str) -> Command:
    """mode = "command": the user's command with {color} and {port} filled in (validated values)."""
    return Command(s.switch.command.format(color=color, port=s.port(color)), switching(s))
