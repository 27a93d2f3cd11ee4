"""The secrets a colour was given, as its file on the host holds them (written by the deploy that
made the colour), read back only to be masked (tasks/mask.py) wherever fab shows what that colour
prints: a rollback, a promote or `fab logs` may show a colour that was given other secrets than
this run read. Nothing shows or keeps the text."""

from __future__ import annotations

from .. import mask
from ..config.schema import HostSettings
from ..config.secrets import values_in
from ..shell import state
from .remote import Remote


def hide_written(remote: Remote, s: HostSettings, color: str) -> None:
    res = remote.read(state.read_env(s, color), s.timeouts.command)
    mask.hide(values_in(res.stdout))
