"""What the user sees: progress per host while it runs (stderr), then one table (stdout).

Only renders: tested with Console(record=True)."""

from __future__ import annotations

import sys
import time
from typing import Callable

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from .result import CLEANED, DEPLOYED, NOTHING, PLANNED, ROLLED_BACK, HostResult

OUTCOME_STYLE = {DEPLOYED: "green", CLEANED: "green", NOTHING: "green", PLANNED: "cyan",
                 ROLLED_BACK: "yellow"}
HOST_STYLES = ["cyan", "magenta", "blue", "yellow", "green"]

out = Console(highlight=False, soft_wrap=False)
err = Console(stderr=True, highlight=False)


class Progress:
    """One line per step per host, prefixed with the time since start and the host name."""

    def __init__(self, console: Console = err):
        self.console = console
        self.started = time.monotonic()
        self.width = 4

    def for_host(self, host: str, index: int = 0) -> Callable[[str], None]:
        self.width = max(self.width, len(host))
        style = HOST_STYLES[index % len(HOST_STYLES)]

        def say(message: str) -> None:
            elapsed = time.monotonic() - self.started
            self.console.print(f"[dim]{elapsed:6.1f}s[/] [{style}]{host:<{self.width}}[/] {escape(message)}",
                               markup=True, highlight=False)

        return say


def _color(c: str | None) -> str:
    return {"blue": "[blue]blue[/]", "green": "[green]green[/]"}.get(c or "", c or "-")


def _outcome(r: HostResult) -> str:
    return f"[{OUTCOME_STYLE.get(r.outcome, 'red')}]{r.outcome}[/]"


def deploy_table(results: list[HostResult]) -> Table:
    table = Table(title="fab deploy", title_justify="left")
    for column in ("host", "from", "to", "result", "step", "health tries", "seconds", "live version", "why"):
        table.add_column(column, no_wrap=column not in ("why", "live version"))
    for r in results:
        why = "; ".join(filter(None, [r.reason, *r.left]))
        table.add_row(r.host, _color(r.from_color), _color(r.to_color), _outcome(r), r.step or "-",
                      str(r.tries or "-"), f"{r.seconds:.1f}", r.version or "-", why or "")
    return table


def cleanup_table(results: list[HostResult], title: str = "fab cleanup") -> Table:
    table = Table(title=title, title_justify="left")
    for column in ("host", "remove", "containers", "keep (live)", "result", "why"):
        table.add_column(column, no_wrap=column in ("host", "remove", "result"))
    for r in results:
        table.add_row(r.host, _color(r.from_color), "\n".join(r.removes) or "-",
                      f"{_color(r.to_color)} {r.version}".strip(), _outcome(r), r.reason)
    return table


def failure_details(results: list[HostResult], console: Console = err) -> None:
    """The last log lines of each failing service, and what to do next."""
    for r in results:
        if r.log_tail:
            console.print(f"\n[bold]{r.host}[/]: last log lines of the failed {r.to_color} service "
                          f"(its containers were kept: `docker compose -p ... logs` on the host):")
            console.print(r.log_tail, markup=False, highlight=False)
        for item in r.left:
            console.print(f"[red]{r.host}: needs a person:[/] {item}")


def interactive() -> bool:
    return sys.stdin.isatty() and sys.stdout.isatty()


def confirm(question: str) -> bool:
    """Ask at a terminal; the default answer is no (and no terminal means no)."""
    if not interactive():
        return False
    try:
        answer = input(f"{question} [y/N] ")
    except EOFError:
        return False
    return answer.strip().lower() in ("y", "yes")
