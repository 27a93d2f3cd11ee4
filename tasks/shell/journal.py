"""The undo journal: what a run changed on the host, as the commands that put it back.

Each step that changes the host appends its inverse here before it changes anything (the append
rides in front of the step's own command: tasks/host/trip.py), so a change cut off halfway is
undone too. An entry is one file, `<app>.lock/undo/NNN`, inside the lock's folder (freed with the
lock): its first line is `# ` and the entry's words (what `fab unlock` and `fab status` show), the
rest a self-contained, idempotent shell command (it goes to its own folders; it may span lines:
the upstream file's old text is in the switch back).

The journal runs backwards, newest first, whoever runs it: fab's rollback (the same texts, one
round trip each), the guard when fab is not heard from, and the next run that finds the lock
stale (the host rebooted, or the guard was killed: tasks/shell/guard.py recover())."""

from __future__ import annotations

from dataclasses import dataclass
from shlex import quote

from ..config.schema import HostSettings
from .base import Command, in_dir
from .state import lock_path, private, put

SHOWN = "undo "  # show() prints each entry's words after it
NOT_PUT_BACK = "not put back: "  # put_back() prints an entry that failed, with its words, after it


@dataclass(frozen=True)
class Entry:
    """One inverse: its words (one line), its command, what it means when it fails (for `left`), and
    the step that wrote it."""
    words: str
    command: Command | str
    failed: str = ""
    step: str = ""


def folder(s: HostSettings) -> str:
    """The journal's folder, under dir: inside the lock's, so that it goes with the lock."""
    return f"{lock_path(s)}/undo"


def text(entry: Entry) -> str:
    """What an entry's file holds: `# words`, then the command."""
    return "# " + " ".join(entry.words.split()) + "\n" + str(entry.command)


def append(s: HostSettings, n: int, entry: Entry) -> str:
    """Shell: write entry number n (in a subshell: the command it rides with keeps its own folder).
    False (and nothing else runs after the `&&` it rides with) if it could not be written, or if
    the lock is gone (fab unlock removed it: this run no longer changes the host)."""
    f, made = f"{folder(s)}/{n:03d}", private(f"mkdir -p {quote(folder(s))}")  # in the lock's folder only: not one remade
    return f"( {in_dir(s, f'[ -d {quote(lock_path(s))} ] && {made} && ' + put(f, 'printf %s ' + quote(text(entry) + chr(10))))} )"


def _newest_first(s: HostSettings, body: str) -> str:
    """`body` for each entry's file ($f), newest first, in dir; nothing when there is none."""
    d = quote(folder(s))
    return (f"( {in_dir(s, 'true')} || exit 0; for f in $(ls -r {d} 2>/dev/null | grep -x '[0-9][0-9][0-9]'); do "
            f"f={d}/$f; {body}; done )")


def show(s: HostSettings) -> str:
    """Shell printing each entry's words (SHOWN + words), in the order put_back() runs them."""
    return _newest_first(s, f"printf '{SHOWN}%s\\n' \"$(head -n 1 \"$f\" | cut -c3-)\"")


def shown(lines: list[str]) -> list[str]:
    """The words show() printed, in its order (newest first), from the lines of its output."""
    return [line[len(SHOWN):] for line in lines if line.startswith(SHOWN)]


def not_put_back(lines: list[str]) -> list[str]:
    """The entries put_back() said failed (NOT_PUT_BACK + words), from the lines of its output."""
    return [line for line in lines if line.startswith(NOT_PUT_BACK)]


def put_back(s: HostSettings) -> str:
    """Shell running the journal, newest first, each entry in a shell of its own (each goes to its
    own folders); an entry that fails is said (NOT_PUT_BACK + words) and the next one still runs."""
    return _newest_first(s, f"sh \"$f\" || printf '{NOT_PUT_BACK}%s\\n' \"$(head -n 1 \"$f\" | cut -c3-)\"")
