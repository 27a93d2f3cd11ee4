"""The user's own commands (prepare, the hooks): run in dir with the colour's environment, as written
in hosts.toml (shell by design); a hook's {compose} is the colour's compose command."""

from __future__ import annotations

from ..config.schema import HostSettings
from .base import Command, in_dir
from .compose import color_env, compose_command


def prepare(s: HostSettings, color: str, command: str) -> Command:
    """A user's prepare command, run in dir with the new colour's environment; {compose} is the
    colour's compose (with upload, the way to build from the colour's own copy of the file)."""
    line = command.replace("{compose}", compose_command(s, color))
    return Command(in_dir(s, f"export {color_env(s, color)} && {line}"), s.timeouts.prepare)


def hook(s: HostSettings, color: str, previous: str | None, command: str) -> Command:
    """A user's hook, in dir, with the colour's environment; {compose} is the colour's compose."""
    line = command.replace("{compose}", compose_command(s, color))
    return Command(in_dir(s, f"export {color_env(s, color)} DEPLOY_PREVIOUS_COLOR={previous or ''} && {line}"),
                   s.timeouts.hook)
