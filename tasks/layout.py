"""Result tables that fit where they are shown.

- Not at a terminal (a pipe, a file, CI): the whole table, plain (rich writes no colour there);
  through report.show(), at its own width, never cut or wrapped.
- At a terminal wide enough for it: the whole table.
- At a narrower terminal: the short columns stay a table; the long ones (a row's reason, its
  telemetry) go on their own indented lines under the row, `name: text`. If the short columns
  still do not fit, the rightmost that may move go under the row too (together, on one line, first);
  then the widest that may wrap is narrowed (a long host name folds); a result word is never cut.
"""

from __future__ import annotations

from rich.console import Console, ConsoleOptions, RenderResult
from rich.measure import Measurement
from rich.padding import Padding
from rich.table import Table
from rich.text import Text

GAP = 2  # spaces between two columns
INDENT = 4  # the lines under a row
WIDEST = 100_000  # a table's own width is measured with this much room


class Fitted:
    """A rich Table, shown whole where it fits (or where nothing is cut: not a terminal), else with its
    `under` columns (and, as needed, the columns not in `keep`, rightmost first) under each row."""

    def __init__(self, table: Table, under: tuple[str, ...] = (), keep: tuple[str, ...] = ("host",),
                 whole: tuple[str, ...] = ("result",), uncut: bool = False):
        self.table, self.under, self.keep = table, under, keep
        self.never_narrowed = whole  # columns of single words (an outcome): never wrapped, never cut
        self.uncut = uncut  # not at a terminal: at the table's own width (print it with crop=False)

    def whole(self) -> Fitted:
        """This table, never cut or wrapped where it is not at a terminal (print it with crop=False)."""
        return Fitted(self.table, self.under, self.keep, self.never_narrowed, uncut=True)

    def natural(self, console: Console, options: ConsoleOptions) -> int:
        """The table's width when no column is wrapped or cut."""
        return Measurement.get(console, options.update_width(WIDEST), self.table).maximum

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        width = self.natural(console, options)
        if width <= options.max_width:
            yield self.table
        elif not console.is_terminal:
            yield from console.render(self.table, options.update_width(width)) if self.uncut else [self.table]
        else:
            yield from self.narrow(console, options.max_width)

    def narrow(self, console: Console, width: int) -> RenderResult:
        names = [str(c.header) for c in self.table.columns]
        cells = [[_text(console, cell) for cell in c.cells] for c in self.table.columns]
        widths = [max([_widest(Text(name)), *map(_widest, column)]) for name, column in zip(names, cells)]
        shown = [i for i, name in enumerate(names) if name not in self.under]
        movable = [i for i in shown if names[i] not in self.keep]
        while _total(widths, shown) > width and movable:
            shown.remove(movable.pop())
        _narrow_to(widths, shown, width, [name in self.never_narrowed for name in names])
        if self.table.title:
            yield Text(str(self.table.title), style="table.title")
        yield from _row(console, [Text(names[i], style="table.header") for i in shown], [widths[i] for i in shown])
        yield Text("─" * min(width, _total(widths, shown)), style="dim")
        for row in range(self.table.row_count):
            yield from _row(console, [cells[i][row] for i in shown], [widths[i] for i in shown])
            moved = [i for i in range(len(names)) if i not in shown and names[i] not in self.under]
            for group in ([moved] if moved else []) + [[i] for i in range(len(names)) if names[i] in self.under]:
                said = [(names[i], Text(", ").join(cells[i][row].split("\n"))) for i in group
                        if cells[i][row].plain.strip() not in ("", "-")]  # a cell's lines: one line
                if said:
                    line = Text("   ").join(Text.assemble((f"{name}: ", "dim"), cell) for name, cell in said)
                    yield Padding(line, (0, 0, 0, INDENT))


def _text(console: Console, cell) -> Text:
    """A cell as styled text: a string is rich markup (the tables escape what they did not write)."""
    return console.render_str(cell, highlight=False) if isinstance(cell, str) else Text(str(cell))


def _widest(text: Text) -> int:
    return max((line.cell_len for line in text.split("\n", allow_blank=True)), default=0)


def _total(widths: list[int], shown: list[int]) -> int:
    return sum(widths[i] for i in shown) + GAP * max(0, len(shown) - 1)


def _narrow_to(widths: list[int], shown: list[int], width: int, whole: list[bool]) -> None:
    """Still too wide with only the columns that stay: narrow the widest that may wrap (a long host
    name folds), never below 4."""
    while (over := _total(widths, shown) - width) > 0:
        narrowable = [i for i in shown if not whole[i] and widths[i] > 4]
        if not narrowable:
            return
        widest = max(narrowable, key=lambda i: widths[i])
        widths[widest] = max(4, widths[widest] - over)


def _row(console: Console, cells: list[Text], widths: list[int]) -> RenderResult:
    """A row's lines: each cell wrapped to its column's width (a word longer than it folds)."""
    lines = [cell.wrap(console, w, overflow="fold") for cell, w in zip(cells, widths)]
    for k in range(max(len(ls) for ls in lines)):
        yield _line([ls[k] if k < len(ls) else Text() for ls in lines], widths)


def _line(pieces: list[Text], widths: list[int]) -> Text:
    """One line of the table: each piece padded to its column's width; no trailing space."""
    line = Text(no_wrap=True, overflow="ignore")
    for n, (piece, w) in enumerate(zip(pieces, widths)):
        piece = piece.copy()
        piece.pad_right(w - piece.cell_len)
        line.append_text(piece)
        if n < len(pieces) - 1:
            line.append(" " * GAP)
    line.rstrip()
    return line
