"""Text the tool shows or keeps must carry neither a secret nor a terminal's control sequence.

- secrets(): credentials masked: the values of the run's own secrets ([defaults.secrets], once
  hide() was given them; each as a whole token, with its usual derived forms: see hide()), the password of a URL (`postgres://app:***@db/app`) and the value of
  KEY=value where KEY names a password, secret, token or key (`API_KEY=***`). Applied
  to everything shown (progress, tables, failure details, --dry-run plans, error lines) and to
  what the history and the lock keep on the host.
- printable(): control characters removed, newlines and tabs kept, escape sequences whole (an OSC
  52 clipboard write, a window title, a screen clear). Text from a host (container logs, lock
  info, history fields, docker and hook output) reaches the terminal only through it.
- shown(): both: what reaches the screen.
"""

from __future__ import annotations

import base64
import re
from urllib.parse import quote, quote_plus

URL_PASSWORD = re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://[^\s/@:]*):([^\s/@]+)@")  # scheme://user:password@
KEY_VALUE = re.compile(r"(?i)\b(\w*(?:password|passwd|secret|token|key)\w*)=(\"[^\"]*\"|'[^']*'|[^\s'\"]+)")
MASK = "***"
SHORTEST_HIDDEN = 4  # shorter values ("1", "on") would mask every number and word like them
_hidden: tuple[str, ...] = ()  # this run's secret values and their forms, longest first (see hide())
_pattern: re.Pattern | None = None  # any of them, as a whole token

_ESCAPES = re.compile(
    r"\x1b\][^\x07\x1b\n]*(?:\x07|\x1b\\)?"  # OSC: window title, clipboard (52), hyperlink; to BEL or ST
    r"|\x1b[P^_X][^\x1b\n]*(?:\x1b\\)?"  # DCS, PM, APC, SOS strings
    r"|\x1b\[[0-?]*[ -/]*[@-~]"  # CSI: cursor moves, screen clears, colours
    r"|\x1b[ -/]*[0-~]"  # the other escape sequences (ESC c: reset the terminal)
    r"|\x9d[^\x07\x9c\n]*[\x07\x9c]?|\x9b[0-?]*[ -/]*[@-~]"  # OSC and CSI as 8-bit C1 codes
    r"|[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]"  # the rest: C0 but \t \n, DEL, C1, bidi
)


def hide(values) -> None:
    """Mask these values (the run's secrets) wherever secrets() applies, from now on: each as a whole
    token (never inside another word), with the forms it is often shown in (each line of a multi-line
    value, URL-encoded, base64, without its control characters). Values and forms shorter than
    SHORTEST_HIDDEN characters are left alone."""
    global _hidden, _pattern
    forms = {form for v in values for form in _forms(v) if len(form) >= SHORTEST_HIDDEN}
    _hidden = tuple(sorted({*_hidden, *forms}, key=len, reverse=True))
    _pattern = re.compile("|".join(map(_token, _hidden))) if _hidden else None


def _forms(value: str) -> set[str]:
    """The value and what it becomes when a line of it, a URL or a base64 text carries it."""
    raw = value.encode()
    b64 = base64.b64encode(raw).decode()
    return {value, printable(value), *value.splitlines(), quote(value, safe=""), quote(value), quote_plus(value),
            b64, b64.rstrip("="), base64.urlsafe_b64encode(raw).decode().rstrip("=")}


def _token(form: str) -> str:
    """A pattern that finds form as a whole token: not preceded or followed by a letter, digit or _
    where form itself starts or ends with one."""
    before = r"(?<!\w)" if re.match(r"\w", form[0]) else ""
    after = r"(?!\w)" if re.match(r"\w", form[-1]) else ""
    return before + re.escape(form) + after


def secrets(text: str) -> str:
    """The text with the run's secrets, and anything that looks like a credential, replaced by ***."""
    text = _values(text)
    text = URL_PASSWORD.sub(lambda m: f"{m.group(1)}:{MASK}@", text)
    # "KEY=value" itself is how the tool names the shape of a line (`prod.env:7: not KEY=value`): kept
    return KEY_VALUE.sub(lambda m: m.group(0) if m.group(2) == "value" else f"{m.group(1)}={MASK}", text)


def _values(text: str) -> str:
    """The text with the run's secrets (see hide()) replaced by ***."""
    return _pattern.sub(MASK, text) if _pattern is not None else text


def printable(text: str) -> str:
    """The text without control characters (and whole escape sequences), but newlines and tabs."""
    return _ESCAPES.sub("", text)


def shown(text: str) -> str:
    """What may reach the screen: printable() and secrets(), the secrets matched on the raw text first
    (a value holding a control character, `abcd\refgh`, would not match once it is stripped)."""
    return secrets(printable(_values(text)))
