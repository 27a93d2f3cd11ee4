"""The open connections to a colour's published port on the host, counted with `ss` (iproute2), and
the wait until they close: what cleanup does before it removes the old colour.

A graceful nginx reload lets the old workers finish the requests they run, so a long-lived one (a
websocket, a streaming response) opened before the switch still runs through the old colour's port
until cleanup removes that colour."""

from __future__ import annotations

import math

from ..config.schema import HostSettings
from .base import Command, why

OPEN = "open"  # the wait prints `open N` each time the count changes


def count_open(port: int) -> str:
    """Defines `fbg_open`: prints how many established TCP connections the host has to `port`.

    Counted from both ends, as the host's sockets show them: those whose local port is the port
    (docker-proxy's side: every client of the published port) and those whose peer port is it
    (clients on the host, nginx among them: all the host shows where Docker forwards the port
    without docker-proxy). The larger of the two, so that a connection seen from both ends counts
    once. Idle keep-alive connections count too: the tool's upstream block has no `keepalive`, so
    nginx keeps none to the app."""
    p = int(port)  # validated 1..65535: nothing else reaches the filter

    def side(end: str) -> str:
        return f"$(ss -Htn state established '( {end} = :{p} )') || return 1; "

    return (f"fbg_open() {{ a={side('sport')}b={side('dport')}"
            "a=$(printf '%s' \"$a\" | grep -c .); b=$(printf '%s' \"$b\" | grep -c .); "
            "if [ \"$a\" -gt \"$b\" ]; then echo \"$a\"; else echo \"$b\"; fi; }")


def wait_closed(s: HostSettings, color: str, seconds: float) -> Command:
    """Count the open connections to the colour's port every second until none is left (exit 0) or
    `seconds` have passed (exit 1; 0 seconds: count once). Prints `open N` first and each time the
    count changes, so the last such line is the count at the end. Exit 3: they could not be counted."""
    port = s.port(color)
    cannot = why(f"could not count the open connections to {color}'s port {port}: %s "
                 "(install iproute2 for ss, or skip the wait with --force)", '"$err"')
    return Command(
        f"fbg_cannot() {{ {cannot}; exit 3; }}; command -v ss >/dev/null 2>&1 || {{ err='ss not found'; fbg_cannot; }}; "
        f"{count_open(port)}; end=$(( $(date +%s) + {math.ceil(seconds)} )); last=; while :; do "
        'n=$(fbg_open 2>&1) || { err=$(echo "$n" | tail -n 1); fbg_cannot; }; '
        f'[ "$n" = "$last" ] || echo {OPEN} "$n"; last=$n; [ "$n" -eq 0 ] && exit 0; '
        "[ $(date +%s) -ge $end ] && exit 1; sleep 1; done",
        seconds + s.timeouts.command)


def last_count(stdout: str) -> int | None:
    """The count the wait printed last (`open N`); None when it printed none."""
    counts = [words[1] for words in map(str.split, stdout.splitlines())
              if len(words) == 2 and words[0] == OPEN and words[1].isascii() and words[1].isdigit()]
    return int(counts[-1]) if counts else None
