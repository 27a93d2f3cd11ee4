"""Long steps show life (tasks/life.py): the last line of a command's output, masked and without
escapes; at a terminal one line at the bottom, updated in place; elsewhere a line every EVERY s;
prepare, the hooks and the build hand their output lines to it as they come."""

from __future__ import annotations

import io
import re
import subprocess
import sys
import time
from contextlib import contextmanager

import pytest
from rich.console import Console

from tasks import build, life, mask, report
from tasks.config.schema import Hooks, HostSettings
from tasks.host.deploy import Deploy
from tasks.host.remote import RecordingRemote

from .test_build_off_host import FakeDocker, settings

SECRET = "s3cr3t-value-of-the-run"


class Watched:
    """A `say` that records its lines and, for each watch, the lines the step handed on."""

    def __init__(self):
        self.said: list[str] = []
        self.watched: list[tuple[str, list[str]]] = []

    def __call__(self, message: str) -> None:
        self.said.append(message)

    @contextmanager
    def watch(self, label: str):
        lines: list[str] = []
        self.watched.append((label, lines))
        yield lines.append


def test_the_last_line_is_what_a_terminal_shows_masked_without_escapes():
    mask.hide([SECRET])
    assert life.last_line(f"\x1b[31mcompiling\x1b[0m {SECRET}\r 50%\r") == "50%"  # a counter that redraws itself
    assert life.last_line(f"\x1b]0;a title\x07step 3 {SECRET} PASSWORD=hunter2") == "step 3 *** PASSWORD=***"
    assert life.last_line("  \r ") == ""  # nothing to show: the previous line stays


def test_piped_a_long_step_says_its_time_and_last_line_every_few_seconds(monkeypatch):
    monkeypatch.setattr(life, "EVERY", 0.2)
    mask.hide([SECRET])
    console = Console(file=io.StringIO(), width=200)  # not a terminal
    say = report.Progress(console).for_host("pi5")
    with say.watch("prepare") as seen:
        time.sleep(0.3)
        seen(f"step 1 {SECRET}")
        time.sleep(0.4)
    text = console.file.getvalue()
    assert re.search(r"pi5  prepare: 0 s, no output yet\n", text)
    assert re.search(r"pi5  prepare: [01] s, last line: step 1 \*\*\*\n", text)
    assert SECRET not in text and "\x1b" not in text


def test_a_quick_step_shows_nothing(monkeypatch):
    monkeypatch.setattr(life, "EVERY", 0.5)
    for terminal in (False, True):
        console = Console(file=io.StringIO(), width=80, force_terminal=terminal)
        with report.Progress(console).for_host("pi5").watch("prepare") as seen:
            seen("done")
        assert console.file.getvalue() == ""


def test_at_a_terminal_a_long_step_is_one_line_updated_in_place_then_gone(monkeypatch):
    monkeypatch.setattr(life, "AFTER", 0.1)
    console = Console(file=io.StringIO(), width=60, force_terminal=True)
    board = life.Board.of(console)
    with report.Progress(console).for_host("pi5").watch("prepare") as seen:
        seen("Step 1/9 : FROM python")
        time.sleep(0.5)
        seen("Step 2/9 : RUN pip install --no-cache-dir -r requirements.txt and a line too long for 60 columns")
        assert board.live is not None and len(board.parts) == 1
        time.sleep(0.5)
    assert board.live is None and board.parts == {}
    drawn = console.file.getvalue()
    assert "prepare: 0 s, last line: Step 1/9 : FROM python" in drawn
    assert "prepare: 1 s, last line: Step 2/9 : RUN pip in…\r" in drawn  # one line, cut at the edge (60)
    assert "\x1b[2K" in drawn  # redrawn in place
    assert not re.search(r"Step 2/9.*\n.*Step 2/9", drawn.replace("\x1b[2K", ""))  # no line printed for good


def test_the_bars_and_a_long_step_share_the_screen_bottom(monkeypatch, tmp_path):
    from tests.unit.test_build_off_host import APP_V1, BASE, save
    from tasks import archive

    monkeypatch.setattr(life, "AFTER", 0)
    save(tmp_path / "v1.tar", [BASE, APP_V1])
    part = archive.Archive(tmp_path / "v1.tar").part(set(), True, "gzip")
    console = Console(file=io.StringIO(), width=100, force_terminal=True)
    with report.Progress(console).for_host("vm1").watch("after_front"):
        bar = report.Bars(console)("pi5", "myapp:green", part)  # one Live on the console: no LiveError
        time.sleep(0.3)
        assert len(life.Board.of(console).parts) == 2
        bar.done()
    assert "pi5 myapp:green" in console.file.getvalue()


def test_prepare_and_the_hooks_hand_their_output_lines_to_their_watch():
    s = HostSettings(name="pi5", ssh="pi5", prepare=("./build.sh",), hooks=Hooks(after_front=("./migrate.sh",)))
    outputs = {"./build.sh": "compiling\nlinking\n", "./migrate.sh": "Applying 0042_orders... OK\n"}
    remote = RecordingRemote(answer=lambda c: next(((0, out) for cmd, out in outputs.items() if cmd in c), None))
    say = Watched()
    deploy = Deploy(remote, s, say)
    deploy.run_prepare()
    deploy.run_hooks("after_front")
    assert say.watched == [("prepare", ["compiling", "linking"]), ("after_front", ["Applying 0042_orders... OK"])]


def test_the_build_hands_its_output_lines_to_its_watch(tmp_path):
    docker = FakeDocker(tmp_path)

    def run(argv, on_line=None, **kw):
        if "build" in argv and on_line:
            on_line("#7 [web 3/4] RUN pip install -r requirements.txt")
        return docker(argv, **kw)

    note = Watched()
    builds = build.Builds(note, run=run)
    s = settings(tmp_path)
    builds.read_recipes([s], "hosts.toml")
    builds.make([s], ["linux/amd64"])
    assert ("build", ["#7 [web 3/4] RUN pip install -r requirements.txt"]) in note.watched
    assert not builds.for_host(s).error


def test_run_lines_hands_on_each_line_as_it_comes_and_keeps_the_output():
    came: list[tuple[str, float]] = []
    started = time.monotonic()
    res = life.run_lines([sys.executable, "-u", "-c", "import sys, time; print('one'); time.sleep(0.6); "
                          "print('two', file=sys.stderr)"], on_line=lambda line: came.append((line, time.monotonic())),
                         timeout=10, capture_output=True, text=True)
    ended = time.monotonic()
    assert (res.returncode, res.stdout, res.stderr) == (0, "one\n", "two\n")
    assert [line for line, _ in came] == ["one", "two"] and ended - came[0][1] > 0.4  # "one" came before the end
    assert ended - started < 5
    with pytest.raises(subprocess.TimeoutExpired):
        life.run_lines(["sleep", "10"], on_line=came.append, timeout=0.3, text=True)
