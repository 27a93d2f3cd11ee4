"""What the user sees: progress per host while it runs (stderr), then one table (stdout).

Only renders: tested with Console(record=True). Every text reaches the screen through shown()
(tasks/mask.py): credentials masked, and no control character or escape sequence from a host."""

from __future__ import annotations

import os
import sys
import threading
import time
from typing import Callable

from rich.console import Console
from rich.markup import escape as _markup_escape
from rich.progress import BarColumn, TextColumn
from rich.progress import Progress as RichProgress
from rich.table import Table

from .archive import Count, human
from .cmdline import to_devnull
from .config.schema import COLORS
from .layout import Fitted
from .life import Board, Watch
from .mask import shown
from .result import CleanupResult, DeployResult, DrainResult, HostResult, Outcome, SetupResult

OUTCOME_STYLE = {Outcome.DEPLOYED: "green", Outcome.CLEANED: "green", Outcome.NOTHING: "green",
                 Outcome.DRAINED: "green", Outcome.NOTHING_TO_DRAIN: "green", Outcome.SET_UP: "green",
                 Outcome.READY: "green",
                 Outcome.STAGED: "cyan", Outcome.UNSTAGED: "green", Outcome.PLANNED: "cyan", Outcome.DRY_RUN: "cyan",
                 Outcome.ROLLED_BACK: "yellow", Outcome.SKIPPED: "dim", Outcome.INTERRUPTED: "yellow"}
HOST_STYLES = ["cyan", "magenta", "blue", "yellow", "green"]


def escape(text: str) -> str:
    """Text for rich markup: shown() (no secret, no control character), then no markup either."""
    return _markup_escape(shown(str(text)))


class Screen(Console):
    """A console whose reader may go away: the tables on stdout, the progress on stderr."""

    def on_broken_pipe(self) -> None:
        """Its reader went away (`fab status --all | head -3`, `fab deploy 2>&1 | head`): not rich's
        SystemExit(1), which in a host's thread would end its sequence halfway. The task carries on
        without this stream (the hosts' work, the notification) and exits with its own code, which
        says how the hosts went (`fab -l | head -1` is 141: cmdline.py)."""
        self.quiet = True
        to_devnull(self.file)


# Not at a terminal (CI logs, pipes) rich would assume 80 columns: give tables room to breathe.
out = Screen(highlight=False, soft_wrap=False,
             width=None if sys.stdout.isatty() or os.environ.get("COLUMNS") else 140)
err = Screen(stderr=True, highlight=False, soft_wrap=True)  # progress lines are never cut


class Progress:
    """One line per step per host, prefixed with the time since start and the host name; `note` for
    the run's own lines (a build). Both have .watch(label): a long step's life (tasks/life.py)."""

    def __init__(self, console: Console = err):
        self.console = console
        self.started = time.monotonic()
        self.width = 4
        self.note = Say(self, lambda message: f"[bold]{escape(message)}[/]")

    def for_host(self, host: str, index: int = 0) -> Say:
        self.width = max(self.width, len(host))
        style = HOST_STYLES[index % len(HOST_STYLES)]

        def markup(message: str) -> str:
            elapsed = time.monotonic() - self.started
            return f"[dim]{elapsed:6.1f}s[/] [{style}]{host:<{self.width}}[/] {escape(message)}"

        return Say(self, markup)


class Say:
    """say(message): one progress line; say.watch(label): the life of a long step (tasks/life.py)."""

    def __init__(self, progress: Progress, markup: Callable[[str], str]):
        self.progress, self.markup = progress, markup

    def __call__(self, message: str) -> None:
        self.progress.console.print(self.markup(message), markup=True, highlight=False)

    def watch(self, label: str) -> Watch:
        return Watch(label, self, self.markup, self.progress.console)


def _color(c: str | None) -> str:
    """A colour in its own colour; anything else (a host's history may say anything) escaped."""
    return f"[{c}]{c}[/]" if c in COLORS else escape(c or "-")


def _outcome(r: HostResult) -> str:
    return f"[{OUTCOME_STYLE.get(r.outcome, 'red')}]{r.outcome}[/]"


def deploy_table(results: list[DeployResult], title: str = "fab deploy") -> Fitted:
    table = Table(title=title, title_justify="left")
    shipped = any(r.shipped is not None for r in results)  # the column only where images were shipped
    for column in ("host", "from", "to", "result", "step", "tries", "seconds", "live version",
                   *(["shipped"] if shipped else []), "host CPU and memory", "why"):
        table.add_column(column, no_wrap=column not in ("why", "host CPU and memory"),
                         min_width=16 if column == "live version" else None)
    for r in results:
        why = "; ".join(filter(None, [r.reason, *r.left, *(f"warning: {w}" for w in r.warnings)]))
        load = "; ".join(filter(None, [r.host_load, f"warm-up cap: {r.cap}" if r.cap else ""]))
        table.add_row(escape(r.host), _color(r.from_color), _color(r.to_color), _outcome(r), escape(r.step or "-"),
                      str(r.tries or "-"), f"{r.seconds:.1f}", escape(r.version or "-"),
                      *([shipped_cell(r.shipped)] if shipped else []), escape(load or "-"), escape(why))
    return Fitted(table, under=("host CPU and memory", "why"), keep=("host", "from", "to", "result"))


def shipped_cell(shipped: dict[str, int] | None) -> str:
    """The bytes sent to a host (build.where = "local"): "8.7 kB", "0 B (had it)", or "-"."""
    if not shipped:
        return "-"
    total = sum(shipped.values())
    return human(total) + (" (had it)" if total == 0 else "")


def cleanup_table(results: list[CleanupResult], title: str = "fab cleanup") -> Fitted:
    table = Table(title=title, title_justify="left")
    counted = any(r.cut is not None for r in results)  # the column once a removal counted connections
    for column in ("host", "remove", "containers", "keep (live)", "result", *(["connections cut"] if counted else []),
                   "why"):
        table.add_column(column, no_wrap=column in ("host", "remove", "result"))
    for r in results:
        why = "; ".join(filter(None, [r.reason, *r.warnings]))
        cut = ["-" if r.cut is None else str(r.cut)] if counted else []
        table.add_row(escape(r.host), _color(r.from_color), escape("\n".join(r.removes) or "-"),
                      f"{_color(r.to_color)} {escape(r.version)}".strip(), _outcome(r), *cut, escape(why))
    return Fitted(table, under=("why",), keep=("host", "remove", "result"))


def drain_table(results: list[DrainResult]) -> Fitted:
    table = Table(title="fab drain", title_justify="left")
    for column in ("host", "drained", "waited", "live", "result", "seconds", "why"):
        table.add_column(column, no_wrap=column not in ("waited", "why"))
    for r in results:
        why = "; ".join(filter(None, [r.reason, *(f"warning: {w}" for w in r.warnings)]))
        queued = ", ".join(f"{queue}: {n}" for queue, n in r.queued.items() if n)
        table.add_row(escape(r.host), _color(r.from_color), escape(queued or "-"), _color(r.to_color), _outcome(r),
                      f"{r.seconds:.1f}", escape(why))
    return Fitted(table, under=("why",), keep=("host", "drained", "result"))


def show(table, console: Console | None = None) -> None:
    """A result table on stdout (or `console`): not at a terminal, at its own width, never cut (tasks/layout.py)."""
    console, fitted = console or out, table if isinstance(table, Fitted) else Fitted(table)
    console.print(fitted if console.is_terminal else fitted.whole(), crop=False)


def setup_table(results: list[SetupResult]) -> Fitted:
    table = Table(title="fab setup", title_justify="left")
    for column in ("host", "result", "done", "kept", "why"):
        table.add_column(column, no_wrap=column in ("host", "result"))
    for r in results:
        why = "; ".join(filter(None, [r.reason, *(f"warning: {w}" for w in r.warnings)]))
        done = "\n".join(r.done) or ("nothing (already set up)" if r.ok else "nothing")
        table.add_row(escape(r.host), _outcome(r), escape(done), escape("\n".join(r.kept) or "-"), escape(why))
    return Fitted(table, under=("done", "kept", "why"), keep=("host", "result"))


def warn(message: str, console: Console = err) -> None:
    """One warning line on stderr: worth knowing, and no reason to change the exit code."""
    console.print(f"[yellow]warning:[/] {escape(message)}", soft_wrap=True)


def failure_details(results: list[DeployResult], console: Console = err) -> None:
    """The last log lines of each failing service, and what to do next."""
    for r in results:
        if r.log_tail:
            console.print(f"\n[bold]{escape(r.host)}[/]: last log lines of the failed {r.to_color} service "
                          "(its containers were kept, stopped; all of its log:)")
            console.print(f"  {shown(r.logs_command)}", markup=False, highlight=False)
            console.print(shown(r.log_tail), markup=False, highlight=False)
        for item in r.left:
            console.print(f"[red]{escape(r.host)}: needs a person:[/] {escape(item)}")


def interactive(console: Console = out) -> bool:
    """Whether a person can answer: stdin and the console asked on are terminals."""
    return sys.stdin.isatty() and console.file.isatty()


def confirm(question: str, console: Console = out) -> bool:
    """Ask at a terminal (on stdout, beside the table; --json asks on stderr); the default answer is no,
    and no terminal means no."""
    if not interactive(console):
        return False
    try:
        answer = console.input(escape(f"{question} [y/N] "))
    except EOFError:
        return False
    return answer.strip().lower() in ("y", "yes")


def plans(results: list[HostResult]) -> None:
    """--dry-run: every command each host would run, in order, as the real run sends it."""
    for r in results:
        if r.plan:
            out.rule(escape(f"{r.host}: the commands a real {r.action} would run (nothing was changed)"))
            for i, line in enumerate(r.plan, 1):
                out.print(f"{i:3}. {shown(line)}", markup=False, highlight=False, soft_wrap=True)


def simple_table(title: str, columns: list[str], rows: list[list[str]]) -> Fitted:
    table = Table(title=title, title_justify="left")
    for column in columns:
        table.add_column(column)
    for row in rows:
        table.add_row(*(escape(str(cell)) for cell in row))
    return Fitted(table, keep=(columns[0],), whole=())


def lock_table(looks) -> Fitted:
    """fab unlock: each host's lock, and the guard of the run that holds it."""
    table = Table(title="fab unlock: the locks", title_justify="left")
    for column in ("host", "lock", "its guard", "what the guard would do"):
        table.add_column(column, no_wrap=column == "host")
    for look in looks:
        lock = look.error or (look.holder if look.held else "no lock")
        table.add_row(escape(look.host), escape(lock), escape(look.guard or "-"), escape("; ".join(look.plan) or "-"))
    return Fitted(table, under=("its guard", "what the guard would do"))


def status_table(rows) -> Fitted:
    table = Table(title="fab status", title_justify="left")
    shared = any(r.shared for r in rows)  # the column only where there are shared services
    columns = ["host", "live", "since", "blue", "green", *(["shared"] if shared else []), "health", "lock",
               "last action", "guard"]
    for column in columns:
        table.add_column(column, no_wrap=column == "host")
    for r in rows:
        if not r.ok:
            cells = [escape(r.host), "[red]?[/]"] + [""] * (len(columns) - 4) + [escape(r.error), ""]
            table.add_row(*cells)
            continue
        live = _color(r.live) if r.live else ("[red]none[/]" + (f" ({escape(r.error)})" if r.error else ""))
        since = r.since[:16].replace("T", " ")
        colors = [escape(_color_status(r.colors[c]) if c in r.colors else "-") for c in COLORS]
        shared_cell = ", ".join(f"{name} {state}" for name, state in r.shared.items())
        health = f"{r.health:03d} {'ok' if r.healthy else 'FAILING'}" if r.health is not None else ""
        live += f"; staged: {escape(r.staged)}" if r.staged else ""
        table.add_row(escape(r.host), live, escape(since or "-"), *colors,
                      *([escape(shared_cell or "-")] if shared else []), escape(health or "-"),
                      escape(r.lock or "-"), escape(r.last or "-"), escape(r.guard or "-"))
    return Fitted(table, under=(*COLORS, "shared", "lock", "last action", "guard"), keep=("host", "live"))


def _color_status(c) -> str:
    """e.g. "web@3f2a1c: web redis running; worker beat exited (warm-up cap on)"."""
    by_state: dict[str, list[str]] = {}
    for name, state in c.services.items():
        by_state.setdefault(state, []).append(name)
    states = "; ".join(f"{' '.join(names)} {state}" for state, names in sorted(by_state.items(), reverse=True))
    restart = f" ({c.restart})" if c.restart else ""
    return f"{c.version}: {states}{f' (warm-up cap {c.cap})' if c.cap else ''}{restart}"


def history_table(hosts: list[tuple[str, list[dict]]]) -> Fitted:
    table = Table(title="fab history", title_justify="left")
    for column in ("host", "time", "action", "user", "from", "to", "result", "step / why", "versions"):
        table.add_column(column, no_wrap=column in ("host", "action"))
    for host, lines in hosts:
        for h in lines:
            why = ": ".join(filter(None, [h.get("step"), h.get("reason"), h.get("message")]))
            versions = ", ".join(f"{c} {v}" for c, v in (h.get("versions") or {}).items() if v != "-")
            if h.get("shipped") is not None:
                versions += f"; shipped {shipped_cell(h['shipped'])}"
            if h.get("uploaded"):
                versions += "; uploaded " + ", ".join(f"{name} {digest}" for name, digest in h["uploaded"].items())
            table.add_row(escape(host), escape(h.get("time", "")), escape(h.get("action", "")),
                          escape(h.get("user", "")), _color(h.get("from")), _color(h.get("to")),
                          escape(h.get("result", "")), escape(why), escape(versions))
        if not lines:
            table.add_row(escape(host), "", "(no history)", "", "", "", "", "", "")
    return Fitted(table, under=("step / why", "versions"), keep=("host", "time", "action", "result"))


def check_table(hosts) -> Fitted:
    table = Table(title="fab check", title_justify="left")
    for column in ("host", "check", "result", "detail"):
        table.add_column(column, no_wrap=column != "detail")
    style = {"ok": "green", "warn": "yellow", "fail": "red"}
    for host, result in hosts:
        for level, name, detail in result.items:
            table.add_row(escape(host), escape(name), f"[{style[level]}]{level}[/]", escape(detail))
    return Fitted(table, under=("detail",), keep=("host", "check", "result"))


class Bars:
    """build.where = "local": a bar per host of the bytes sent (at a terminal; elsewhere the progress
    lines say what was sent). Called as builds' meter: (host, image name, part) -> a Count."""

    def __init__(self, console: Console = err):
        self.console = console
        self.lock = threading.Lock()
        self.progress: RichProgress | None = None
        self.running = 0

    def __call__(self, host: str, name: str, part) -> Count:
        return _Bar(self, f"{host} {name}", part) if self.console.is_terminal else Count()

    def start(self, label: str, total: int) -> int:
        with self.lock:
            if self.progress is None:  # shown by the console's Board (tasks/life.py), beside long steps
                self.progress = RichProgress(TextColumn("{task.description}"), BarColumn(),
                                             TextColumn("{task.percentage:>3.0f} %  {task.fields[sent]} sent"),
                                             console=self.console, auto_refresh=False)
                Board.of(self.console).show(self, self)
            self.running += 1
            return self.progress.add_task(escape(label), total=max(total, 1), sent="0 B")

    def __rich__(self):
        progress = self.progress  # no lock: drawn by the Board's Live while stop() may hold it
        return progress.get_renderable() if progress else ""

    def stop(self) -> None:
        with self.lock:
            self.running -= 1
            if self.running == 0 and self.progress is not None:
                Board.of(self.console).drop(self)
                self.console.print(self.progress.get_renderable())  # the bars as they ended stay on the screen
                self.progress = None


class _Bar(Count):
    def __init__(self, bars: Bars, label: str, part):
        super().__init__()
        self.bars, self.part = bars, part
        self.task = bars.start(label, part.size)

    def sent(self, n: int) -> None:
        super().sent(n)
        self.bars.progress.update(self.task, completed=min(self.part.fed, self.part.size), sent=human(self.total))

    def done(self) -> None:
        self.bars.progress.update(self.task, sent=human(self.total))
        self.bars.stop()
