"""The user's own commands (prepare, the hooks): run in dir with the colour's environment, as written
in hosts.toml (shell by design); a hook's {compose} is the colour's compose command."""

from __future__ import annotations

import shlex

from ..config.schema import HostSettings
from .base import Command, in_dir
from .compose import color_env, project


def prepare(s: HostSettings, color: str, command: str) -> Command:
    """A user's prepare command, run in dir with the new colour's environment."""
    return Command(in_dir(s, f"export {color_env(s, color)} && {command}"), s.timeouts.prepare)


def hook(s: HostSettings, color: str, previous: str | None, command: str) -> Command:
    """A user's hook, in dir, with the colour's environment; {compose} is the colour's compose."""
    base = f"{shlex.join(shlex.split(s.compose))} {shlex.join(['-p', project(s, color), '-f', s.compose_file])}"
    line = command.replace("{compose}", base)
    return Command(in_dir(s, f"export {color_env(s, color)} DEPLOY_PREVIOUS_COLOR={previous or ''} && {line}"),
                   s.timeouts.hook)
