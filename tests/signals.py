"""The signal dispositions the tests rely on, set by the tests themselves.

A process started by `nohup ... &` from a script inherits SIGHUP, SIGINT and SIGQUIT as ignored, and
hands that on to every child it starts: a shell cannot trap a signal ignored on entry (the sandbox's
fake nginx never reloads) and Python keeps an ignored SIGINT (fab never sees the test's Ctrl-C). So
the suite never relies on what it inherited:
- pytest itself (a session fixture in tests/conftest.py): SIGINT raises KeyboardInterrupt, SIGQUIT
  and SIGTERM act by default, and SIGHUP is caught by a handler that does nothing. A caught signal
  is reset to its default in every program a child execs, while pytest itself still outlives the
  hang-up that nohup was asked to survive.
- a child that a test signals, or a daemon that must answer a signal: started with `preexec_fn=
  defaults_in_child` as well, so it holds whatever pytest had.
"""

from __future__ import annotations

import os
import signal

SIGNALLED = (signal.SIGHUP, signal.SIGINT, signal.SIGQUIT, signal.SIGTERM)


def _ignore_hangup(signum, frame) -> None:
    """pytest outlives a hang-up (what nohup was for); its children exec with SIGHUP at its default."""


def reset_in_pytest() -> None:
    if os.environ.get("FBG_TEST_KEEP_SIGNALS") == "1":  # only for the test that shows the reset matters
        return
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGQUIT, signal.SIG_DFL)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    signal.signal(signal.SIGHUP, _ignore_hangup)


def defaults_in_child() -> None:
    """preexec_fn: the child starts with SIGHUP, SIGINT, SIGQUIT and SIGTERM at their defaults."""
    if os.environ.get("FBG_TEST_KEEP_SIGNALS") == "1":
        return
    for s in SIGNALLED:
        signal.signal(s, signal.SIG_DFL)
