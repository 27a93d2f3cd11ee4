"""Text the tool shows or keeps must carry neither a secret nor a terminal's control sequence.

- secrets(): credentials masked: the values of the run's own secrets ([defaults.secrets], once
  hide() was given them), the password of a URL (`postgres://app:***@db/app`) and the value of
  KEY=value where KEY names a password, secret, token or key (`API_KEY=***`). Applied
  to everything shown (progress, tables, failure details, --dry-run plans, error lines) and to
  what the history and the lock keep on the host.
- printable(): control characters removed, newlines and tabs kept, escape sequences whole (an OSC
  52 clipboard write, a window title, a screen clear). Text from a host (container logs, lock
  info, history fields, docker and hook output) reaches the terminal only through it.
- shown(): both: what reaches the screen.
"""

from __future__ import annotations

import re

URL_PASSWORD = re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://[^\s/@:]*):([^\s/@]+)@")  # scheme://user:password@
KEY_VALUE = re.compile(r"(?i)\b(\w*(?:password|passwd|secret|token|key)\w*)=(\"[^\"]*\"|'[^']*'|[^\s'\"]+)")
MASK = "***"
SHORTEST_HIDDEN = 4  # shorter values ("1", "on") would mask every number and word like them
_hidden: tuple[str, ...] = ()  # this run's secret values, longest first (see hide())

_ESCAPES = re.compile(
    r"\x1b\][^\x07\x1b\n]*(?:\x07|\x1b\\)?"  # OSC: window title, clipboard (52), hyperlink; to BEL or ST
    r"|\x1b[P^_X][^\x1b\n]*(?:\x1b\\)?"  # DCS, PM, APC, SOS strings
    r"|\x1b\[[0-?]*[ -/]*[@-~]"  # CSI: cursor moves, screen clears, colours
    r"|\x1b[ -/]*[0-~]"  # the other escape sequences (ESC c: reset the terminal)
    r"|\x9d[^\x07\x9c\n]*[\x07\x9c]?|\x9b[0-?]*[ -/]*[@-~]"  # OSC and CSI as 8-bit C1 codes
    r"|[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]"  # the rest: C0 but \t \n, DEL, C1, bidi
)


def hide(values) -> None:
    """Mask these values (the run's secrets) wherever secrets() applies, from now on; values shorter
    than SHORTEST_HIDDEN characters are left alone."""
    global _hidden
    _hidden = tuple(sorted({*_hidden, *(v for v in values if len(v) >= SHORTEST_HIDDEN)}, key=len, reverse=True))


def secrets(text: str) -> str:
    """The text with the run's secrets, and anything that looks like a credential, replaced by ***."""
    for value in _hidden:
        text = text.replace(value, MASK)
    text = URL_PASSWORD.sub(lambda m: f"{m.group(1)}:{MASK}@", text)
    # "KEY=value" itself is how the tool names the shape of a line (`prod.env:7: not KEY=value`): kept
    return KEY_VALUE.sub(lambda m: m.group(0) if m.group(2) == "value" else f"{m.group(1)}={MASK}", text)


def printable(text: str) -> str:
    """The text without control characters (and whole escape sequences), but newlines and tabs."""
    return _ESCAPES.sub("", text)


def shown(text: str) -> str:
    """What may reach the screen: printable() and secrets()."""
    return secrets(printable(text))
