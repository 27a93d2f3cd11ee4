"""Long steps show life: while a user's command (prepare, a hook) or a build runs longer than a few
seconds, its host's progress shows the time it has run and the last line it printed (masked, no
escape sequence: tasks/mask.py).

- At a terminal: a line at the bottom of the screen from AFTER seconds on, updated in place (the
  Board: one rich Live per console, which also holds the bars of tasks/report.py's Bars).
- Elsewhere (a pipe, CI): a progress line every EVERY seconds. FBG_PROGRESS_EVERY sets EVERY (30);
  it is there for the end-to-end tests, which cannot wait 30 s.

The lines come from the command as it runs: Remote.run(on_line=...) for a host's command,
run_lines() for one on this machine (a build)."""

from __future__ import annotations

import os
import subprocess
import threading
import time
from contextlib import nullcontext
from typing import TYPE_CHECKING, Callable, ContextManager

from .mask import shown

if TYPE_CHECKING:  # rich is imported when a step is shown, not when a task module is
    from rich.console import Console, Group, RenderableType
    from rich.live import Live
    from rich.text import Text

AFTER = 3.0  # seconds a step runs before its line appears at a terminal
EVERY = float(os.environ.get("FBG_PROGRESS_EVERY") or 30)  # seconds between two lines elsewhere (tests: less)
LONGEST = 300  # characters kept of a line


def last_line(text: str) -> str:
    """What a terminal would show of an output line: after its last carriage return (a progress
    counter redraws itself), masked, without escape sequences, trimmed."""
    visible = [part for part in text.split("\r") if part.strip()]
    return shown(visible[-1]).strip()[:LONGEST] if visible else ""


def watching(say: Callable[[str], None], label: str) -> ContextManager[Callable[[str], None]]:
    """say.watch(label) where `say` can show a step's life (a report.Progress line), else a sink that
    drops each line: `with watching(say, "prepare") as seen: remote.run(command, t, on_line=seen)`."""
    watch = getattr(say, "watch", None)
    return watch(label) if watch else nullcontext(lambda line: None)


class Watch:
    """One long step: `seen(line)` for each line of its output; while it runs, its life is shown."""

    def __init__(self, label: str, say: Callable[[str], None], markup: Callable[[str], str], console: Console):
        self.label, self.say, self.markup, self.console = label, say, markup, console
        self.last, self.started = "", time.monotonic()
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True, name=f"watch {label}")

    def __enter__(self) -> Callable[[str], None]:
        self.started = time.monotonic()
        self.thread.start()
        return self.seen

    def __exit__(self, *exc) -> None:
        self.stop.set()
        self.thread.join()
        Board.of(self.console).drop(self)

    def seen(self, line: str) -> None:
        if text := last_line(line):
            self.last = text

    def message(self) -> str:
        ran = f"{self.label}: {time.monotonic() - self.started:.0f} s"
        return f"{ran}, last line: {self.last}" if self.last else f"{ran}, no output yet"

    def __rich__(self) -> Text:
        from rich.text import Text

        line = Text.from_markup(self.markup(self.message()))
        line.no_wrap, line.overflow = True, "ellipsis"  # one line, cut at the screen's edge
        return line

    def _run(self) -> None:
        if self.console.is_terminal:
            if not self.stop.wait(AFTER):
                Board.of(self.console).show(self, self)
            return
        while not self.stop.wait(EVERY):
            self.say(self.message())


class Board:
    """The lines kept at the bottom of a terminal while they change: bars of bytes sent, long steps.
    One per console (rich allows one Live at a time); it runs while it has something to show."""

    _boards: dict[Console, Board] = {}  # a console's for as long as the run (a few consoles)
    _made = threading.Lock()

    @classmethod
    def of(cls, console: Console) -> Board:
        with cls._made:
            if console not in cls._boards:
                cls._boards[console] = Board(console)
            return cls._boards[console]

    def __init__(self, console: Console):
        self.console = console
        self.lock = threading.Lock()  # one change at a time; never taken while drawing
        self.parts: dict[object, RenderableType] = {}  # replaced, never changed: drawn without a lock
        self.live: Live | None = None

    def __rich__(self) -> Group:
        from rich.console import Group

        return Group(*self.parts.values())

    def show(self, key: object, part: RenderableType) -> None:
        with self.lock:
            self.parts = {**self.parts, key: part}
            if self.live is None:
                from rich.live import Live

                self.live = Live(self, console=self.console, refresh_per_second=4, transient=True)
                self.live.start()

    def drop(self, key: object) -> None:
        with self.lock:
            if key not in self.parts:
                return
            self.parts = {k: part for k, part in self.parts.items() if k is not key}
            if not self.parts and self.live is not None:
                self.live.stop()
                self.live = None


def run_lines(argv: list[str], *, on_line: Callable[[str], None] | None = None, timeout: float, **kwargs
              ) -> subprocess.CompletedProcess:
    """subprocess.run(argv, capture_output=True, text=True, timeout=timeout, **kwargs), with each line
    of its output (stdout and stderr) handed to on_line as it comes."""
    if on_line is None:
        return subprocess.run(argv, timeout=timeout, **kwargs)
    kwargs.pop("capture_output", None)
    with subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, **kwargs) as proc:
        streams = {"stdout": [], "stderr": []}
        readers = [threading.Thread(target=_read, args=(getattr(proc, name), kept, on_line), daemon=True)
                   for name, kept in streams.items()]
        for reader in readers:
            reader.start()
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            raise
        finally:
            for reader in readers:
                reader.join(5)
        return subprocess.CompletedProcess(argv, proc.returncode, "".join(streams["stdout"]),
                                           "".join(streams["stderr"]))


def _read(stream, kept: list[str], on_line: Callable[[str], None]) -> None:
    for line in stream:
        kept.append(line)
        on_line(line.rstrip("\n"))
