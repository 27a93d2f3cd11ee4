"""One error tree, caught once at the task edge (see edge() in tasks/edge.py)."""

from __future__ import annotations


class BlueGreenError(Exception):
    """Base of every error the tool reports as a one-line message."""

    exit_code = 1


class ConfigError(BlueGreenError):
    """hosts.toml is wrong: nothing has run on any host."""

    exit_code = 2


class UsageError(BlueGreenError):
    """The command line is wrong: nothing has run on any host."""

    exit_code = 2


class Cancelled(BlueGreenError):
    """Ctrl-C before any host was contacted (while the secrets command ran): nothing ran on any host."""

    exit_code = 130


class Unreachable(BlueGreenError):
    """No SSH connection could be made (or kept) to a host."""


class StepFailed(BlueGreenError):
    """A step of the sequence failed on one host; the sequence rolls back."""

    def __init__(self, step: str, reason: str, service: str | None = None):
        super().__init__(f"{step}: {reason}")
        self.step = step
        self.reason = reason
        self.service = service  # whose log lines explain the failure, if known


class Refused(BlueGreenError):
    """The host is in a state the tool will not touch; nothing was changed."""


class Locked(BlueGreenError):
    """Another run holds the host's deploy lock; nothing was changed."""


class Interrupted(StepFailed):
    """Ctrl-C or SIGTERM: the host is put back like after a failed step."""

    def __init__(self, step: str, cause: str = "Ctrl-C"):
        super().__init__(step, f"interrupted ({cause})")
